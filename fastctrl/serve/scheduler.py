"""Earliest-deadline-first scheduling with admission control, on one model worker.

Every request carries an absolute deadline (arrival + budget). Waiting requests sit in a heap
ordered by deadline; one worker thread takes the earliest and, up to ``max_batch``, the next
earliest that are waiting too (no waiting for more: a batch is what the queue holds when the
model is free), and hands them to the :class:`~.runner.ModelRunner`, which decides on what is
left of each budget at that moment, so time spent queueing is time the request no longer has.

Admission: the queue is bounded (full -> refused, ``Retry-After`` the time to drain it); a
request whose remaining budget, when it arrives or when it is taken, is below what the
cheapest config takes (``cheapest_ms``, measured at start-up and updated from every
cheapest-config answer) cannot make its deadline: ``on_infeasible="reject"`` refuses it
(HTTP 429), ``"cheapest"`` runs it at the cheapest config and reports ``deadline_met:
false``. A request whose client went away is dropped before it runs. ``stop()`` lets the
worker finish what is queued (drain), then ends it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from .runner import Answer, Job, ModelRunner
from .telemetry import Telemetry

log = logging.getLogger(__name__)

OnInfeasible = Literal["reject", "cheapest"]


class Refused(Exception):  # noqa: N818 (an outcome the HTTP layer maps to 429 / 503)
    """The server will not run this request; ``retry_after`` in seconds, or None."""

    def __init__(
        self, message: str, status: int, retry_after: int | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.param = param
        """The request field the refusal is about (the budget), or None (the server's state)."""


@dataclass(order=True)
class _Entry:
    deadline: float
    seq: int
    job: Job = field(compare=False)
    done: Callable[[Answer | BaseException], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class Scheduler:
    def __init__(
        self,
        runner: ModelRunner,
        telemetry: Telemetry,
        *,
        max_batch: int = 1,
        max_queue: int = 64,
        on_infeasible: OnInfeasible = "reject",
        cheapest_ms: float = 0.0,
    ) -> None:
        if max_batch < 1 or max_queue < 1:
            raise ValueError("max_batch and max_queue must be >= 1")
        self.runner, self.telemetry = runner, telemetry
        self.max_batch, self.max_queue, self.on_infeasible = max_batch, max_queue, on_infeasible
        self.cheapest_ms = cheapest_ms
        self.service_ms = cheapest_ms  # mean model time per request (EWMA): Retry-After
        # what a request spends before its model run (handing over + the processor), EWMA:
        # a budget below cheapest_ms + overhead_ms cannot be met
        self.overhead_ms = 0.0
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="fastctrl-model", daemon=True)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread.start()

    def stop(self, drain_s: float = 30.0) -> None:
        """Refuse new requests, let the worker answer the queued ones (up to ``drain_s``),
        then end it; what is still queued after that is refused."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(drain_s)
        with self._cond:
            left, self._heap = self._heap, []
        for e in left:
            e.done(Refused("the server is shutting down", 503))

    @property
    def depth(self) -> int:
        return len(self._heap)

    # ------------------------------------------------------------------ requests
    async def submit(self, job: Job) -> Answer:
        """Queue ``job`` and wait for its answer; raises :class:`Refused`. Cancelling the
        awaiting task (the client went away) drops the job if it has not started."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Answer] = loop.create_future()

        def done(result: Answer | BaseException) -> None:
            def resolve() -> None:
                if fut.done():
                    return
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)

            loop.call_soon_threadsafe(resolve)

        entry = self._admit(job, done)
        try:
            return await fut
        except asyncio.CancelledError:
            entry.cancelled = True
            self.telemetry.requests.labels("cancelled").inc()
            raise

    def _admit(self, job: Job, done: Callable[[Answer | BaseException], None]) -> _Entry:
        with self._cond:
            if self._stopping:
                raise Refused("the server is shutting down", 503)
            if len(self._heap) >= self.max_queue:
                self.telemetry.requests.labels("refused_queue_full").inc()
                raise Refused(
                    f"the queue is full ({self.max_queue} requests waiting)",
                    429,
                    self._retry_after(),
                )
            floor = self.cheapest_ms + self.overhead_ms
            if job.budget_ms < floor:
                refusal = self._infeasible(
                    job,
                    f"budget_ms {job.budget_ms:g} is below what the cheapest config and the "
                    f"server's own work take here ({floor:.1f} ms): the deadline cannot be met",
                    retry_after=None,
                )
                if refusal is not None:
                    raise refusal
            entry = _Entry(job.deadline, next(self._seq), job, done)
            heapq.heappush(self._heap, entry)
            self.telemetry.queue_depth.set(len(self._heap))
            self._cond.notify()
            return entry

    def _infeasible(self, job: Job, message: str, retry_after: int | None) -> Refused | None:
        """A job that cannot meet its deadline: the refusal to give it (``reject``, counted),
        or None after marking it to run at the cheapest config (``cheapest``)."""
        if self.on_infeasible == "reject":
            self.telemetry.requests.labels("refused_infeasible").inc()
            return Refused(message, 429, retry_after, "fastctrl.budget_ms")
        job.force_cheapest = True
        return None

    def _retry_after(self) -> int:
        return max(1, math.ceil(len(self._heap) * max(self.service_ms, 1.0) / 1e3))

    # ------------------------------------------------------------------ the worker
    def _take_batch(self) -> list[_Entry] | None:
        with self._cond:
            while not self._heap and not self._stopping:
                self._cond.wait()
            if not self._heap:
                return None  # stopping, nothing left
            batch: list[_Entry] = []
            now = time.perf_counter()
            while self._heap and len(batch) < self.max_batch:
                e = heapq.heappop(self._heap)
                if e.cancelled:
                    continue
                if (e.deadline - now) * 1e3 < self.cheapest_ms and not e.job.force_cheapest:
                    refusal = self._infeasible(
                        e.job,
                        "queueing left less of the budget than the cheapest config takes "
                        f"({self.cheapest_ms:.1f} ms): the deadline cannot be met",
                        retry_after=self._retry_after(),
                    )
                    if refusal is not None:
                        e.done(refusal)
                        continue
                batch.append(e)
            self.telemetry.queue_depth.set(len(self._heap))
            return batch

    def _work(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            if not batch:
                continue
            try:
                answers = self.runner.run([e.job for e in batch])
            except Exception as exc:  # a model failure answers every request of the batch
                log.exception("model run failed")
                for e in batch:
                    e.done(exc)
                continue
            self._observe(answers)
            for e, a in zip(batch, answers, strict=True):
                before = (a.started - e.job.arrival) * 1e3 + a.prep_ms
                self.overhead_ms += 0.1 * (before - self.overhead_ms)
                e.done(a)

    def _observe(self, answers: list[Answer]) -> None:
        t = self.telemetry
        t.batch_size.observe(len(answers))
        for a in answers:
            key = ",".join(f"{k}={v}" for k, v in a.config.items())
            t.decisions.labels(key, a.decided_by).inc()
            if math.isfinite(a.decision_ms) and a.decided_by != "cheapest":
                t.controller_ms.observe(a.decision_ms)
            self.service_ms = 0.9 * self.service_ms + 0.1 * a.model_ms / max(a.batch_size, 1)
            if a.config == dict(self.runner.cheapest.values) and a.batch_size == 1:
                self.cheapest_ms = 0.9 * self.cheapest_ms + 0.1 * (a.model_ms + a.decision_ms)
