"""``python -m fastctrl.profile --backend ray``: the sweep on a Ray cluster.

- Workers: Ray actors (:class:`ProfileWorker`), each loading ``--model`` once and reserving
  ``--gpus_per_worker`` GPUs and ``--threads`` CPUs; they measure with the local sweep's own
  :class:`~fastctrl.profile.sweep.BatchMeasurer`, so both backends measure through one code
  path.
- Dispatch: the requests are cut into shards (:mod:`.shards`); :class:`ray.util.ActorPool`
  hands the next shard to whichever worker finishes first, so a slow worker takes fewer.
- Results: each shard comes back to the driver, which writes it atomically into
  ``<out>.shards/`` (no filesystem shared with the workers is needed) and advances one progress
  bar; at the end the shards are merged and checked (:meth:`.shards.ShardStore.merge`) and
  written by :func:`~fastctrl.profile.sweep.finish_sweep`: the same table, feature store and
  sidecar as the local sweep.
- Faults: a worker that dies is restarted by Ray (``max_restarts``: the model is loaded again)
  and the shard it held is measured again from its start (``max_task_retries``); after
  :data:`WORKER_RESTARTS` deaths the sweep stops with :class:`WorkerError`. A driver that dies
  leaves the finished shards: the same command measures only the others.

:data:`CRASH_ENV` injects a fault for the tests: ``N:FLAG`` makes one worker exit abruptly
after N requests of a shard, once (the first to create the file FLAG).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..runtime.metrics import resolve_metric
from ..runtime.requests import Request, as_request
from ..space import ActionSpace
from .sweep import (
    SIDECAR_SUFFIX,
    BatchMeasurer,
    SweepResult,
    SweepSetup,
    batches,
    check_out_path,
    finish_sweep,
)
from .sweep_shards import ShardStore, shard_dir_for

log = logging.getLogger(__name__)

#: deaths of one worker that Ray repairs (restart, shard measured again) before the sweep stops
WORKER_RESTARTS = 3
#: shards per worker when --shard_size is not given: enough for a fast worker to take more
#: than a slow one, few enough that each shard's round trip is noise
SHARDS_PER_WORKER = 4
CRASH_ENV = "FASTCTRL_PROFILE_CRASH"


class WorkerError(RuntimeError):
    """A sweep worker could not start, or died more often than Ray restarts it."""


class ProfileWorker:
    """One model replica, run as a Ray actor: loads the model once, measures shards."""

    def __init__(
        self,
        args: Any,
        have_answers: bool,
        dataset_name: str | None,
        crash: tuple[int, str] | None = None,
    ) -> None:
        import torch

        from .options import args_space, load_args_model

        if args.threads:
            torch.set_num_threads(args.threads)
        model, processor = load_args_model(args)
        self.setup = sweep_setup(args, args_space(args, model), have_answers, dataset_name)
        self.fingerprint = self.setup.fingerprint(model)
        self.measurer = BatchMeasurer(model, processor, self.setup)
        self.crash = crash

    def describe(self) -> dict[str, Any]:
        return {
            "grid": self.setup.space.to_dict(),
            "fingerprint": self.fingerprint,
            "where": self.measurer.describe(),
        }

    def measure_shard(self, shard_id: int, requests: list[Request]) -> dict[str, Any]:
        """The shard's rows, features and cost (what :meth:`ShardStore.write` stores)."""
        t0, before = time.perf_counter(), dict(self.measurer.cost)
        requests = [_writable(r) for r in requests]
        rows: list[dict[str, Any]] = []
        features: dict[str, tuple[list[float], list[float]]] = {}
        done = 0
        for batch in batches(requests, self.setup.batch_size, skip=set()):
            batch_rows, batch_features = self.measurer.measure(batch)
            rows += batch_rows
            features.update(batch_features)
            done += len(batch)
            self._maybe_crash(done)
        cost = {k: self.measurer.cost[k] - before[k] for k in before}
        return {
            "shard": shard_id,
            "request_ids": [r.request_id for r in requests],
            "rows": rows,
            "features": features,
            "cost": cost,
            "wall_s": time.perf_counter() - t0,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
        }

    def _maybe_crash(self, done: int) -> None:
        if self.crash is None or done != self.crash[0]:
            return
        try:
            os.close(os.open(self.crash[1], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os._exit(1)  # like a killed process: no cleanup, no exception to the driver


def _writable(request: Request) -> Request:
    """The request with an image array torch may use: arrays from Ray's object store are
    read-only views."""
    img = request.image
    if isinstance(img, np.ndarray) and not img.flags.writeable:
        return dataclasses.replace(request, image=img.copy())
    return request


def sweep_setup(
    args: Any, space: ActionSpace, have_answers: bool, dataset_name: str | None
) -> SweepSetup:
    """The :class:`SweepSetup` of ``--`` arguments (the driver's and every worker's)."""
    return SweepSetup.create(
        space, have_answers=have_answers, dataset_name=dataset_name, **args.sweep_settings()
    )


def crash_from_env() -> tuple[int, str] | None:
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return None
    n, sep, flag = spec.partition(":")
    if not sep or not n.isdigit() or not flag:
        raise ValueError(f"{CRASH_ENV} must be N:FLAG_FILE, got {spec!r}")
    return int(n), flag


def default_workers(resources: dict[str, float], cpus: float, gpus: float) -> int:
    """Workers the cluster holds: its GPUs / ``gpus`` per worker, or without GPUs its CPUs /
    ``cpus``."""
    if gpus > 0:
        return max(1, int(resources.get("GPU", 0) // gpus))
    return max(1, int(resources.get("CPU", 1) // cpus))


def ray_sweep(
    args: Any, data: Sequence[Any], *, dataset_name: str | None, total: int | None = None
) -> SweepResult:
    """Sweep ``data`` with the profile arguments ``args`` on Ray (see the module doc)."""
    out_path = check_out_path(args.table_path)
    if args.grid != "auto":  # a bad --grid fails here, not in every worker
        ActionSpace(json.loads(args.grid))
    data = data if isinstance(data, Sequence) else list(data)
    if not len(data):
        raise ValueError("the dataset is empty")
    first = as_request(data[0], 0)
    ids = list(
        getattr(data, "request_ids", None)
        or [as_request(x, i).request_id for i, x in enumerate(data)]
    )
    if len(set(ids)) != len(ids):
        dup = next(r for r in ids if ids.count(r) > 1)
        raise ValueError(f"request ids must be unique to shard a sweep; {dup!r} repeats")
    have_answers = first.answer is not None
    resolve_metric(args.metric, have_answers, dataset_name)  # e.g. exact_match without answers
    crash = crash_from_env()
    store = ShardStore(shard_dir_for(out_path))
    t0 = time.perf_counter()
    with args.execution.session() as ray:
        resources = ray.cluster_resources()
        gpus = (
            args.gpus_per_worker
            if args.gpus_per_worker is not None
            else (1.0 if resources.get("GPU", 0) > 0 else 0.0)
        )
        cpus = max(1, args.threads)
        workers = min(
            args.num_workers or default_workers(resources, cpus, gpus),
            math.ceil(len(ids) / args.batch_size),
        )
        if workers * cpus > resources.get("CPU", 0) or workers * gpus > resources.get("GPU", 0):
            log.warning(
                "--num_workers %d x (%g CPUs, %g GPUs) is more than the cluster has "
                "(%g CPUs, %g GPUs): the rest wait until it grows",
                workers,
                cpus,
                gpus,
                resources.get("CPU", 0),
                resources.get("GPU", 0),
            )
        actor = ray.remote(ProfileWorker).options(
            num_cpus=cpus,
            num_gpus=gpus,
            max_restarts=WORKER_RESTARTS,
            max_task_retries=WORKER_RESTARTS,
        )
        log.info("starting %d workers (%g CPUs, %g GPUs each)", workers, cpus, gpus)
        actors = [actor.remote(args, have_answers, dataset_name, crash) for _ in range(workers)]
        try:
            info = _describe(ray, actors, args.loading.model)
            startup_s = time.perf_counter() - t0
            setup = sweep_setup(args, ActionSpace(info["grid"]), have_answers, dataset_name)
            plan = store.open(
                info["fingerprint"],
                ids,
                batch_size=args.batch_size,
                shard_size=args.shard_size or math.ceil(len(ids) / (SHARDS_PER_WORKER * workers)),
                resume=args.resume,
            )
            done = store.finished()
            todo = [sid for sid in range(len(plan)) if sid not in done]
            resumed = sum(len(plan[sid]) for sid in done)
            busy = actors[: len(todo)]
            for a in actors[len(todo) :]:  # more workers than shards left
                ray.kill(a)
            _dispatch(
                ray,
                busy,
                todo,
                plan,
                data,
                {r: i for i, r in enumerate(ids)},
                store,
                tqdm(
                    total=total or len(ids),
                    initial=resumed,
                    desc="profile",
                    unit="req",
                    disable=args.quiet,
                ),
            )
        finally:
            for a in actors:
                ray.kill(a)
            if store.manifest:
                store.add_wall(time.perf_counter() - t0)
    rows, features, cost = store.merge(setup)
    backend = {
        "name": "ray",
        "workers": len(busy),
        "shards": len(plan),
        "shard_size": len(plan[0]),
        "worker_s": round(cost.pop("worker_s"), 3),
        "startup_s": round(startup_s, 3),
    }
    profile = finish_sweep(
        rows,
        features,
        setup,
        out_path,
        where=info["where"],
        cost={**cost, "wall_s": store.wall_s},
        backend=backend,
    )
    store.remove()
    return SweepResult(
        profile,
        out_path,
        out_path.with_suffix(SIDECAR_SUFFIX),
        measured=len(ids) - resumed,
        resumed=resumed,
    )


def _describe(ray: Any, actors: list[Any], model: str) -> dict[str, Any]:
    """Every worker's description once its model is loaded; they must agree."""
    try:
        infos = ray.get([a.describe.remote() for a in actors])
    except ray.exceptions.RayActorError as e:
        raise WorkerError(f"a profile worker could not start (loading --model {model}): {e}") from e
    if len({i["fingerprint"] for i in infos}) > 1:
        raise WorkerError(
            "the workers loaded different models or grids (fingerprints "
            f"{sorted({i['fingerprint'] for i in infos})}): check that every "
            "node has the same model files and versions"
        )
    return infos[0]


def _dispatch(
    ray: Any,
    actors: list[Any],
    todo: list[int],
    plan: list[list[str]],
    data: Sequence[Any],
    index: dict[str, int],
    store: ShardStore,
    bar: Any,
) -> None:
    """Hand shards to free workers until none is left; write each as it comes back."""
    from ray.util import ActorPool

    pool, queue = ActorPool(actors), iter(todo)

    def submit_next() -> None:
        sid = next(queue, None)
        if sid is not None:  # a shard's images are decoded only when it is handed out
            requests = [as_request(data[index[r]], index[r]) for r in plan[sid]]
            pool.submit(lambda a, v: a.measure_shard.remote(*v), (sid, requests))

    for _ in actors:
        submit_next()
    while pool.has_next():
        try:
            result = pool.get_next_unordered()
        except ray.exceptions.RayTaskError as e:  # the measuring raised: that error, as is
            raise (e.cause if e.cause is not None else e) from None
        except ray.exceptions.RayActorError as e:
            raise WorkerError(
                f"a profile worker died more than {WORKER_RESTARTS} times ({e}); "
                f"the finished shards are kept in {store.directory}: rerun the "
                "same command to measure the rest"
            ) from e
        store.write(result)
        bar.update(len(result["request_ids"]))
        submit_next()
    bar.close()
