"""``python -m ppinfer``: the command line (the demonstration by default)."""

import sys

from .cli import main

sys.exit(main())
