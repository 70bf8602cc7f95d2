from skdynemb.backbones.alignn.fetch import main

main()
