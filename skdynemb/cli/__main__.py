"""``python -m skdynemb.cli``: the ``skdynemb`` command line."""

import sys

from skdynemb.cli import main

sys.exit(main())
