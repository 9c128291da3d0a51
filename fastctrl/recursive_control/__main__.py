"""``python -m fastctrl.recursive_control`` runs the whole pipeline (see :mod:`.pipeline`)."""

from __future__ import annotations

from .pipeline import main

raise SystemExit(main(prog="python -m fastctrl.recursive_control"))
