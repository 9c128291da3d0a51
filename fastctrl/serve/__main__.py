"""``python -m fastctrl.serve``: the same as ``fastctrl serve``."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
