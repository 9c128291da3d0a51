"""The deadline scheduler on its own, with a stand-in model runner whose service time is
fixed: earliest deadline first, the remaining budget at scheduling time, admission control,
cancellation and draining."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from fastctrl.serve.runner import Answer, Job
from fastctrl.serve.scheduler import Refused, Scheduler
from fastctrl.serve.telemetry import Telemetry


class Cheapest:
    values = {"num_active_blocks": 1}


class SlowRunner:
    """Answers each job after ``service_ms``; records the order and remaining budgets."""

    cheapest = Cheapest()

    def __init__(self, service_ms: float, gate: threading.Event | None = None) -> None:
        self.service_ms, self.gate = service_ms, gate
        self.order: list[str] = []
        self.remaining: dict[str, float] = {}
        self.forced: dict[str, bool] = {}

    def run(self, jobs: list[Job]) -> list[Answer]:
        if self.gate is not None:
            self.gate.wait(10)
        start = time.perf_counter()
        out = []
        for j in jobs:
            self.order.append(j.request_id)
            self.remaining[j.request_id] = (j.deadline - start) * 1e3
            self.forced[j.request_id] = j.force_cheapest
        time.sleep(self.service_ms / 1e3)
        for j in jobs:
            out.append(
                Answer(
                    token_ids=[1],
                    text="x",
                    finish_reason="stop",
                    config={"num_active_blocks": 8},
                    decided_by="controller",
                    remaining_budget_ms=self.remaining[j.request_id],
                    latency_scale=1.0,
                    decision_ms=0.01,
                    model_ms=self.service_ms,
                    batch_size=len(jobs),
                    prompt_tokens=3,
                    started=start,
                    prep_ms=0.0,
                    finished=time.perf_counter(),
                )
            )
        return out


def job(rid: str, budget_ms: float, arrival: float | None = None) -> Job:
    return Job(
        rid, "q", [], budget_ms, None, 1, time.perf_counter() if arrival is None else arrival
    )


async def submit_all(s: Scheduler, jobs: list[Job]) -> list:
    return await asyncio.gather(*(s.submit(j) for j in jobs), return_exceptions=True)


def test_earliest_deadline_first_and_the_remaining_budget_is_what_is_left():
    gate = threading.Event()
    runner = SlowRunner(20.0, gate)
    s = Scheduler(runner, Telemetry(), max_batch=1, max_queue=16)
    s.start()
    now = time.perf_counter()
    jobs = [
        job("blocker", 1e4, now),
        job("loose", 900.0, now),
        job("tight", 300.0, now),
        job("middle", 600.0, now),
    ]

    async def go():
        first = asyncio.ensure_future(s.submit(jobs[0]))
        await asyncio.sleep(0.05)  # the blocker is taken; the others queue behind it
        rest = asyncio.ensure_future(submit_all(s, jobs[1:]))
        await asyncio.sleep(0.05)
        gate.set()
        return await first, await rest

    asyncio.run(go())
    s.stop(5)
    assert runner.order == ["blocker", "tight", "middle", "loose"]
    # queueing ate budget: each decided on what was left, not on its original budget
    assert runner.remaining["tight"] < 300.0 - 20.0
    assert runner.remaining["loose"] < runner.remaining["middle"] + 300.0


def test_a_full_queue_refuses_with_retry_after():
    gate = threading.Event()
    s = Scheduler(SlowRunner(5.0, gate), Telemetry(), max_batch=1, max_queue=2)
    s.start()

    async def go():
        first = asyncio.ensure_future(s.submit(job("taken", 1e4)))
        await asyncio.sleep(0.02)  # the worker holds it (gated): the queue is empty again
        rest = await submit_all(s, [job(str(i), 1e4) for i in range(4)])
        return [await first, *rest]

    async def release_later():
        await asyncio.sleep(0.2)
        gate.set()

    async def both():
        return (await asyncio.gather(go(), release_later()))[0]

    out = asyncio.run(both())
    s.stop(5)
    refused = [r for r in out if isinstance(r, Refused)]
    assert len(refused) == 2 and all(r.status == 429 and r.retry_after >= 1 for r in refused)
    assert "queue is full" in str(refused[0])
    assert refused[0].param is None  # the server's state, not a field of the request


@pytest.mark.parametrize("mode", ["reject", "cheapest"])
def test_a_budget_the_cheapest_config_cannot_meet(mode):
    runner = SlowRunner(1.0)
    s = Scheduler(runner, Telemetry(), on_infeasible=mode, cheapest_ms=50.0)
    s.start()
    out = asyncio.run(submit_all(s, [job("hopeless", 10.0), job("fine", 1e4)]))
    s.stop(5)
    if mode == "reject":
        assert isinstance(out[0], Refused) and out[0].status == 429
        assert out[0].param == "fastctrl.budget_ms"
        assert "cheapest" in str(out[0]) and runner.order == ["fine"]
    else:
        assert isinstance(out[0], Answer) and runner.forced == {"hopeless": True, "fine": False}


def test_queueing_that_leaves_too_little_budget_is_refused_when_taken():
    gate = threading.Event()
    runner = SlowRunner(30.0, gate)
    s = Scheduler(runner, Telemetry(), cheapest_ms=20.0)
    s.start()

    async def go():
        first = asyncio.ensure_future(s.submit(job("blocker", 1e4)))
        await asyncio.sleep(0.02)
        late = asyncio.ensure_future(s.submit(job("late", 60.0)))  # feasible on arrival
        await asyncio.sleep(0.1)  # 100 ms of queueing: 60 ms budget gone
        gate.set()
        return await first, await asyncio.gather(late, return_exceptions=True)

    _, (late,) = asyncio.run(go())
    s.stop(5)
    assert isinstance(late, Refused) and "queueing left less" in str(late)
    assert runner.order == ["blocker"]


def test_a_cancelled_request_never_runs_and_stop_drains_the_queue():
    gate = threading.Event()
    runner = SlowRunner(5.0, gate)
    s = Scheduler(runner, Telemetry(), max_batch=1)
    s.start()

    async def go():
        a = asyncio.ensure_future(s.submit(job("a", 1e4)))
        await asyncio.sleep(0.02)
        b = asyncio.ensure_future(s.submit(job("b", 1e4)))
        c = asyncio.ensure_future(s.submit(job("c", 1e4)))
        await asyncio.sleep(0.02)
        b.cancel()  # the client went away while b waited
        gate.set()
        return await a, await c

    asyncio.run(go())
    assert runner.order == ["a", "c"]

    # stop() answers what is queued before it ends (drain), then refuses new work
    gate.clear()
    results: list = []

    async def queued_then_stop():
        futs = [asyncio.ensure_future(s.submit(job(f"d{i}", 1e4))) for i in range(3)]
        await asyncio.sleep(0.02)
        loop = asyncio.get_running_loop()
        stopper = loop.run_in_executor(None, s.stop, 5.0)
        await asyncio.sleep(0.05)
        gate.set()
        await stopper
        results.extend(await asyncio.gather(*futs, return_exceptions=True))
        with pytest.raises(Refused, match="shutting down"):
            await s.submit(job("late", 1e4))

    asyncio.run(queued_then_stop())
    assert all(isinstance(r, Answer) for r in results)
    assert runner.order[-3:] == ["d0", "d1", "d2"]


def test_a_batch_holds_what_is_waiting_up_to_max_batch():
    gate = threading.Event()
    runner = SlowRunner(5.0, gate)
    sizes: list[int] = []
    orig = runner.run

    def run(jobs):
        sizes.append(len(jobs))
        return orig(jobs)

    runner.run = run
    s = Scheduler(runner, Telemetry(), max_batch=3)
    s.start()

    async def go():
        first = asyncio.ensure_future(s.submit(job("first", 1e4)))
        await asyncio.sleep(0.02)
        rest = asyncio.ensure_future(submit_all(s, [job(str(i), 1e4) for i in range(5)]))
        await asyncio.sleep(0.02)
        gate.set()
        return await first, await rest

    asyncio.run(go())
    s.stop(5)
    assert sizes == [1, 3, 2]
