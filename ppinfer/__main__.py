"""``python -m ppinfer``: the command line (``ppinfer fit``, ``demo``, ``simulate``; help without a command)."""

import sys

from .cli import main

sys.exit(main())
