"""Load whatever a ``--controller`` argument names: a controller (``Controller.
save_pretrained``), a lookup table (``LookupTablePolicy.save_pretrained``), or a training run
directory holding one of them (``controller/``, ``lookup_table/``)."""

from __future__ import annotations

from pathlib import Path

from .. import io
from .controller import Controller
from .lookup_table import FORMAT_NAME, RUN_SUBDIR, LookupTablePolicy


def load_policy(path: str | Path, flag: str = "--controller") -> Controller | LookupTablePolicy:
    """The policy at ``path`` (a controller in eval mode, or a lookup table)."""
    p = Path(path)
    for cand in (p, p / "controller", p / RUN_SUBDIR):
        if (cand / "config.json").is_file():
            meta = io.read_json(cand / "config.json", what=f"{flag} config")
            if isinstance(meta, dict) and meta.get("format") == FORMAT_NAME:
                return LookupTablePolicy.from_pretrained(cand)
            return Controller.from_pretrained(cand).eval()
    raise FileNotFoundError(
        f"{flag} {path}: no controller there (expected config.json written by "
        "Controller.save_pretrained or LookupTablePolicy.save_pretrained, or a run directory "
        f"with controller/ or {RUN_SUBDIR}/)"
    )
