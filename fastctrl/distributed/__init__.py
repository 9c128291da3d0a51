"""Scaling out: the same stages on this machine or on a Ray cluster (``--backend local|ray``).

- :mod:`.backend`: :class:`~.backend.BackendArgs` (the ``--backend`` / ``--ray_address``
  flags) and :func:`~.backend.map_jobs`, the one interface for independent jobs (compare's
  (method, seed) runs, tune's trials): in-process, a process pool or Ray tasks.
- :mod:`.ray_session`: Ray as an optional extra (the install hint) and a cluster connection.
- The profiler's Ray sweep lives beside the profiler (:mod:`fastctrl.profile.ray_sweep`,
  :mod:`fastctrl.profile.sweep_shards`) and stands on these two.

Ray is imported only when ``--backend ray`` asks for it.
"""

from __future__ import annotations

from .backend import BACKENDS, BackendArgs, JobOutcome, map_jobs
from .ray_session import RAY_MISSING, RayUnavailableError, require_ray

__all__ = [
    "BACKENDS",
    "RAY_MISSING",
    "BackendArgs",
    "JobOutcome",
    "RayUnavailableError",
    "map_jobs",
    "require_ray",
]
