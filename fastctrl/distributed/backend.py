"""Where independent jobs run: this machine or a Ray cluster, behind one function.

:func:`map_jobs` runs ``fn(item)`` for every item and yields each :class:`JobOutcome` as it
finishes, so the stages that fan out (``fastctrl.compare``'s (method, seed) runs,
``fastctrl.tune``'s trials) never branch on the backend:

- ``local``: ``jobs=1`` in this process (no worker start-up), else a pool of ``jobs`` spawned
  processes;
- ``ray``: one Ray task per item, each declaring ``num_cpus``; the cluster's CPUs bound how
  many run at once.

A job that raises is an outcome with ``error`` set (the job's own exception, unwrapped from
Ray's), never an exception out of :func:`map_jobs`: one failed run must not lose the others.
``fn`` must be a module-level function (pickled by reference) and its result picklable.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

from ..cli import need
from .ray_session import ray_session, require_ray

Backend = Literal["local", "ray"]
BACKENDS: tuple[str, ...] = ("local", "ray")


@dataclass
class BackendArgs:
    """Where the work runs: this machine or a Ray cluster (every command that fans out)."""

    backend: Backend = "local"
    """Where the work runs: local (this machine) or ray (a Ray cluster; see --ray_address)."""
    ray_address: str | None = None
    """With --backend ray: `auto` (the cluster `ray start` / `ray job submit` set up), host:port
    of a head node, ray://host:10001 (Ray Client) or `local` (always a new local cluster);
    None: a cluster on this machine if one runs, else a new local one."""

    def __post_init__(self) -> None:
        need(self.backend in BACKENDS, f"--backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.backend == "local":
            need(self.ray_address is None, "--ray_address needs --backend ray")
        else:
            require_ray()  # the install hint now, not after the data is loaded

    def session(self) -> AbstractContextManager[Any]:
        """Connected to the cluster for the block (``ray``), or nothing to do (``local``)."""
        return ray_session(self.ray_address) if self.backend == "ray" else nullcontext()


@dataclass(frozen=True)
class JobOutcome:
    """One finished job: ``items[index]``'s result, or the exception it raised."""

    index: int
    value: Any = None
    error: BaseException | None = None


def map_jobs(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    backend: str = "local",
    jobs: int = 1,
    num_cpus: float = 1.0,
    ray_address: str | None = None,
) -> Iterator[JobOutcome]:
    """``fn(item)`` for every item, yielded in the order they finish (see the module doc).

    ``jobs``: processes of the local backend. ``num_cpus``: the CPUs each Ray task reserves.
    ``ray_address``: the cluster, when this process is not connected yet.
    """
    need(backend in BACKENDS, f"--backend must be one of {BACKENDS}, got {backend!r}")
    need(jobs >= 1, f"--jobs must be >= 1, got {jobs}")
    need(num_cpus > 0, f"--cpus_per_task must be > 0, got {num_cpus}")
    if not items:
        return
    if backend == "ray":
        with ray_session(ray_address) as ray:
            yield from _ray_jobs(ray, fn, items, num_cpus)
    elif jobs == 1:
        for i, item in enumerate(items):
            try:
                yield JobOutcome(i, fn(item))
            except Exception as e:  # reported, not raised: the other jobs go on
                yield JobOutcome(i, error=e)
    else:
        with ProcessPoolExecutor(
            max_workers=min(jobs, len(items)), mp_context=mp.get_context("spawn")
        ) as pool:
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            for f in as_completed(futures):
                e = f.exception()
                yield JobOutcome(futures[f], None if e else f.result(), e)


def _ray_jobs(
    ray: Any, fn: Callable[[Any], Any], items: Sequence[Any], num_cpus: float
) -> Iterator[JobOutcome]:
    task = ray.remote(num_cpus=num_cpus)(fn)
    refs = {task.remote(item): i for i, item in enumerate(items)}
    pending = list(refs)
    try:
        while pending:
            [ref], pending = ray.wait(pending, num_returns=1)
            try:
                yield JobOutcome(refs[ref], ray.get(ref))
            except ray.exceptions.RayTaskError as e:  # the job's own exception, as raised
                yield JobOutcome(refs[ref], error=e.cause if e.cause is not None else e)
            except ray.exceptions.RayError as e:  # the worker died (after Ray's retries)
                yield JobOutcome(refs[ref], error=e)
    finally:
        for ref in pending:  # the caller stopped early (an error, Ctrl-C): free the cluster
            ray.cancel(ref, force=True)


def parallel_slots(backend: str, jobs: int, num_cpus: float) -> int:
    """How many jobs run at once: ``jobs`` locally, the CPUs of the connected Ray cluster
    divided by ``num_cpus`` on Ray (at least 1)."""
    if backend != "ray":
        return jobs
    ray = require_ray()
    return max(1, int(ray.cluster_resources().get("CPU", 0) // num_cpus))
