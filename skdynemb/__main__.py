"""``python -m skdynemb``: the ``skdynemb`` command line."""

import sys

from skdynemb.cli import main

sys.exit(main())
