"""``python -m fastctrl``: the ``fastctrl`` command (:mod:`fastctrl.commands`)."""

from __future__ import annotations

from .commands import main

raise SystemExit(main())
