"""Does this machine run the model as fast as the one its profile was measured on?

Budgets are milliseconds, and the controller learnt which configs fit them from the profile's
latencies. On a machine that runs the model twice as slowly, every config costs twice what the
controller expects and SLO attainment collapses, through no fault of the controller. The live
evaluation runs the full config at every budget anyway, so it measures this for free: the
live full-config p50 over the profile's full-config p50. Beside it, the machine fields the
profile's ``.sweep.json`` recorded that differ from this one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..profile.sweep import SIDECAR_SUFFIX
from ..profile.table import Profile

log = logging.getLogger(__name__)

#: A live / profile latency ratio outside this band means the profile's budgets do not transfer.
#: A chosen band, wider than the run-to-run spread: the digits model's full-config p50 varied
#: by about +-10% between back-to-back runs on one 2-vCPU host (19.1-23.5 ms).
SAME_SPEED = (0.8, 1.25)


@dataclass
class HostCheck:
    """The live full config's speed against the profile's, and what differs between machines."""

    full_p50_live_ms: float
    full_p50_profile_ms: float
    latency_scale: float
    """``full_p50_live_ms / full_p50_profile_ms``: 1 on the profile's machine."""
    profile_machine: dict[str, Any] | None
    """The ``machine`` of the profile's ``.sweep.json`` (None: no sidecar beside the table)."""
    machine: dict[str, Any]
    differs: list[str] = field(default_factory=list)
    """Machine fields both record with different values."""
    warning: str | None = None


def profile_machine(table_path: str | Path) -> dict[str, Any] | None:
    """The machine the sweep that wrote ``table_path`` recorded in its ``.sweep.json``, or
    None (an imported or hand-made table has none); ``fastctrl-digits``: the shipped one."""
    sidecar = Profile.resolve_path(table_path).with_suffix(SIDECAR_SUFFIX)
    if not sidecar.is_file():
        return None
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"profile sidecar {sidecar} is unreadable: {e}") from e
    out = meta.get("machine") if isinstance(meta, dict) else None
    if out is not None and not isinstance(out, dict):
        raise ValueError(f"profile sidecar {sidecar}: 'machine' must be an object, got {out!r}")
    if out is not None:  # how it ran, beside where: threads and the answer path time alike
        out = {**out, **{k: meta[k] for k in ("torch_threads", "answered_by") if k in meta}}
    return out


def check_host(
    profile: Profile,
    recorded: dict[str, Any] | None,
    full_latency_ms: list[float],
    machine: dict[str, Any],
) -> HostCheck:
    """Compare the live full-config latencies with the profile's (median over its requests).

    ``recorded``: the machine its sweep recorded (:func:`profile_machine`); ``machine``: this
    host as :func:`fastctrl.sysinfo.machine` describes it (plus ``torch_threads`` and
    ``answered_by``)."""
    live = np.asarray(full_latency_ms, dtype=np.float64)
    if live.size == 0 or not np.isfinite(live).all() or (live <= 0).any():
        raise ValueError("full_latency_ms must be a non-empty list of positive finite ms")
    prof = float(np.median(profile.mean_latency[:, profile.full_index]))
    live_p50 = float(np.median(live))
    scale = live_p50 / prof
    differs = sorted(k for k in (recorded or {}) if k in machine and recorded[k] != machine[k])
    warning = None
    lo, hi = SAME_SPEED
    if not lo <= scale <= hi:
        where = (
            f"machine fields that differ: {', '.join(differs) or 'none recorded'}"
            if recorded is not None
            else "the profile records no machine"
        )
        warning = (
            f"the full config runs {scale:.2f}x the profile's latency here "
            f"({live_p50:.2f} vs {prof:.2f} ms p50): budgets in ms learnt from that "
            f"profile do not transfer to this machine ({where}); profile the model on "
            "the machine that serves it"
        )
        log.warning(warning)
    return HostCheck(live_p50, prof, scale, recorded, machine, differs, warning)
