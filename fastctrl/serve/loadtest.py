"""``fastctrl loadtest``: Poisson load on ``fastctrl serve`` with the real ``openai`` client.

For each server variant (``--variants``: ``controller`` -- the controller, each request at its
own config; ``static`` -- the best static config for the request's remaining budget, chosen on
the profile's train split; ``full`` -- always the full config; ``min`` -- the controller with
the per-knob-minimum batching that a batch ran before per-request configs), the load test
starts ``fastctrl serve`` on 127.0.0.1 as its own process, then sends, at each offered rate
(``--rates``, requests/s), ``--requests`` requests with Poisson arrivals (``--seed``): digits
pages of the test scan pool from a page seed the profile never used, each with a budget class
drawn from ``--budget_ratios`` x the reference (the full config's mean latency on the
profile's train split, the controller's own reference) and its question type as
``task_type``. Per
variant, rate and budget class it reports p50/p95/p99 end-to-end latency (client-measured),
deadline attainment (answered within the deadline the server schedules by: its arrival
there + the budget; the client clock's, which adds the client's HTTP work, beside it),
refusals, accuracy (exact
match over answered requests) and goodput (requests answered correctly within their deadline
per second of offered load); JSON out and a figure of goodput and attainment vs offered load.
``--url`` drives one running server instead (any OpenAI-compatible server that reads
``fastctrl.budget_ms`` or ``vllm_xargs``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .. import cli
from .. import io as fio
from ..sysinfo import machine
from . import require_serve_extra

log = logging.getLogger(__name__)

Variant = Literal["controller", "static", "full", "min"]
VARIANT_FLAGS: dict[str, list[str]] = {
    "controller": ["--policy", "controller", "--batching", "per_request"],
    "static": ["--policy", "static", "--batching", "per_request"],
    "full": ["--policy", "full", "--batching", "per_request"],
    "min": ["--policy", "controller", "--batching", "min"],
}


@dataclass
class LoadTestArgs:
    """Drive fastctrl serve (or a running server) with Poisson arrivals of digits pages, each
    with its own latency budget, and report goodput and deadline attainment."""

    output_dir: str = "runs/loadtest"
    """Where loadtest.json and loadtest.png are written."""
    variants: tuple[Variant, ...] = ("controller", "static", "full", "min")
    """Server variants to start and drive, one after another."""
    rates: tuple[float, ...] = (10.0, 20.0, 40.0, 60.0, 80.0)
    """Offered loads (requests per second)."""
    requests: int = 200
    """Requests per rate (bounded: a run sends at most rates x requests per variant)."""
    budget_ratios: tuple[float, ...] = (0.35, 0.5, 0.7, 0.85, 1.0)
    """Budget classes: ratios of the full config's measured end-to-end p50 latency."""
    max_batch: int = 1
    """--max_batch of the started servers."""
    serve_args: tuple[str, ...] = ()
    """More flags for every started server (e.g. --on_infeasible cheapest)."""
    url: str | None = None
    """Drive this running server (its base URL, without /v1) instead of starting variants."""
    model: str = "fastctrl-digits"
    """The model name sent in requests (the started servers serve fastctrl-digits)."""
    page_seed: int = 1234
    """Seed of the digits pages (test scan pool; the shipped profile used seed 0)."""
    seed: int = 0
    """Seed of the arrivals and the budget classes."""
    timeout_s: float = 10.0
    """Client timeout per request (a request past it counts as failed)."""
    reference_ms: float | None = None
    """The budgets' reference (ms); default: the served model's profile reference, the full
    config's mean latency on its train split (what the controller's budgets are ratios of)."""
    profile: str = "fastctrl-digits"
    """The profile the default reference comes from."""
    port: int = 8731
    """Port of the first started server (127.0.0.1); the others take the next ones."""

    def __post_init__(self) -> None:
        cli.need_at_least(self, 1, "requests", "max_batch", "port")
        cli.need_positive(self, "timeout_s")
        if not self.rates or any(not r > 0 for r in self.rates):
            raise ValueError(f"--rates must be > 0, got {self.rates}")
        if not self.budget_ratios or any(not r > 0 for r in self.budget_ratios):
            raise ValueError(f"--budget_ratios must be > 0, got {self.budget_ratios}")
        if self.reference_ms is not None:
            cli.need_positive(self, "reference_ms")


@dataclass
class Sent:
    """One request as the client saw it."""

    budget_class: float
    budget_ms: float
    task_type: str
    status: int
    latency_ms: float
    correct: bool
    server: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------- requests
def pages(n: int, seed: int) -> list[tuple[str, str, str, str]]:
    """``(question, data URL, answer, task type)`` of ``n`` digits pages."""
    from ..digits.pages import PageGenerator
    from .media import data_url

    gen = PageGenerator("test", seed)
    return [(p.question, data_url(p.rgb), p.answer, p.task_type) for p in map(gen.page, range(n))]


async def send_one(
    client: Any, model: str, page: tuple[str, str, str, str], budget: float, budget_class: float
) -> Sent:
    import openai

    question, url, answer, task = page
    t0 = time.perf_counter()
    try:
        out = await client.chat.completions.create(
            model=model,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": question},
                        {"type": "image_url", "image_url": {"url": url}},
                    ],
                }
            ],
            max_tokens=8,
            extra_body={"fastctrl": {"budget_ms": budget, "task_type": task}},
        )
        ms = (time.perf_counter() - t0) * 1e3
        text = (out.choices[0].message.content or "").strip()
        return Sent(
            budget_class,
            budget,
            task,
            200,
            ms,
            text == answer,
            (out.model_extra or {}).get("fastctrl", {}),
        )
    except openai.APIStatusError as e:
        return Sent(
            budget_class, budget, task, e.status_code, (time.perf_counter() - t0) * 1e3, False
        )
    except (openai.APIConnectionError, openai.APITimeoutError):
        return Sent(budget_class, budget, task, 0, (time.perf_counter() - t0) * 1e3, False)


async def drive(
    url: str,
    model: str,
    rate: float,
    n: int,
    reqs: list,
    ratios: tuple,
    reference_ms: float,
    rng: np.random.Generator,
    timeout_s: float,
) -> tuple[list[Sent], float]:
    """``n`` requests at Poisson rate ``rate``; the sent requests and the offered duration."""
    import httpx
    import openai

    http = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=256)
    )
    client = openai.AsyncOpenAI(
        base_url=f"{url}/v1",
        api_key=os.environ.get("FASTCTRL_API_KEY", "unused"),
        max_retries=0,
        timeout=timeout_s,
        http_client=http,
    )
    gaps = rng.exponential(1.0 / rate, size=n)
    classes = rng.choice(np.asarray(ratios, dtype=float), size=n)
    start = time.perf_counter()
    arrivals = start + np.cumsum(gaps)
    tasks = []
    for i in range(n):
        delay = arrivals[i] - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        c = float(classes[i])
        tasks.append(
            asyncio.create_task(send_one(client, model, reqs[i % len(reqs)], c * reference_ms, c))
        )
    sent = await asyncio.gather(*tasks)
    duration = float(arrivals[-1] - start)
    await client.close()
    return list(sent), duration


def reference_ms(profile: str) -> float:
    """The profile's reference latency: the full config's mean on its train split (ms)."""
    from ..evaluate.live import reference_latency_ms
    from ..profile.table import Profile

    return reference_latency_ms(Profile.load(profile))


# ---------------------------------------------------------------------- the servers
class StartedServer:
    """``fastctrl serve`` in its own process on 127.0.0.1, stopped with SIGINT (drain)."""

    def __init__(self, flags: list[str], port: int, log_path: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(log_path, "w")  # noqa: SIM115 (closed in stop)
        cmd = [sys.executable, "-m", "fastctrl.serve", "--port", str(port), *flags]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        import httpx

        for _ in range(1200):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}); see {log_path}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not start in 120 s; see {log_path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


# ---------------------------------------------------------------------- the report
def summarize(sent: list[Sent], duration: float) -> dict[str, Any]:
    def pct(xs: list[float], q: float) -> float | None:
        return float(np.percentile(xs, q)) if xs else None

    answered = [s for s in sent if s.status == 200]
    # the deadline is the server's: arrival there + budget (what it schedules by); the client
    # clock adds the client's own HTTP work, reported beside it
    met = [s for s in answered if s.server.get("deadline_met", s.latency_ms <= s.budget_ms)]
    met_client = [s for s in answered if s.latency_ms <= s.budget_ms]
    good = [s for s in met if s.correct]
    lat = [s.latency_ms for s in answered]
    out = {
        "sent": len(sent),
        "answered": len(answered),
        "refused": sum(s.status == 429 for s in sent),
        "failed": sum(s.status not in (200, 429) for s in sent),
        "latency_ms": {"p50": pct(lat, 50), "p95": pct(lat, 95), "p99": pct(lat, 99)},
        "attainment": len(met) / len(sent) if sent else None,
        "attainment_client_clock": len(met_client) / len(sent) if sent else None,
        "accuracy": sum(s.correct for s in answered) / len(answered) if answered else None,
        "goodput_rps": len(good) / duration if duration > 0 else None,
        # nothing hangs: answered or refused, on the client's clock, by the deadline + 50 ms
        "resolved_by_deadline_plus_50ms": sum(
            s.status in (200, 429) and s.latency_ms <= s.budget_ms + 50.0 for s in sent
        )
        / len(sent)
        if sent
        else None,
        "late_ms_p99": pct([max(0.0, s.latency_ms - s.budget_ms) for s in sent], 99),
    }
    served = [s.server for s in answered if s.server]
    if served:
        overhead = [
            s.latency_ms - s.server["model_ms"] - s.server["decision_ms"]
            for s in answered
            if s.server and s.server["decided_by"] == "controller"
        ]
        share = [
            s.server["decision_ms"] / s.latency_ms
            for s in answered
            if s.server and s.server["decided_by"] == "controller"
        ]
        out["server_deadline_met"] = sum(s["deadline_met"] for s in served) / len(served)
        out["decision_ms_p50"] = pct([s["decision_ms"] for s in served], 50)
        out["queue_ms_p50"] = pct([s["queue_ms"] for s in served], 50)
        out["overhead_ms_p50"] = pct(overhead, 50)
        out["controller_share_p50"] = pct(share, 50)
    return out


def report(sent: list[Sent], duration: float, ratios: tuple[float, ...]) -> dict[str, Any]:
    per_class = {
        f"{r:g}": summarize(
            [s for s in sent if s.budget_class == r],
            duration * sum(s.budget_class == r for s in sent) / max(len(sent), 1),
        )
        for r in ratios
    }
    return {"overall": summarize(sent, duration), "per_budget_class": per_class}


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for variant, runs in results.items():
        rates = [float(r) for r in runs]
        axes[0].plot(rates, [runs[r]["overall"]["goodput_rps"] for r in runs], "o-", label=variant)
        axes[1].plot(rates, [runs[r]["overall"]["attainment"] for r in runs], "o-", label=variant)
    axes[0].set(xlabel="offered load (req/s)", ylabel="goodput (correct within deadline, req/s)")
    axes[1].set(xlabel="offered load (req/s)", ylabel="deadline attainment", ylim=(0, 1.05))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fio.write_with(path, lambda p: fig.savefig(p, dpi=120, format="png"))
    plt.close(fig)


def run(args: LoadTestArgs) -> int:
    require_serve_extra("openai", "httpx")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    reqs = pages(args.requests, args.page_seed)
    results: dict[str, Any] = {}
    references: dict[str, float] = {}
    targets = [("url", None)] if args.url else [(v, VARIANT_FLAGS[v]) for v in args.variants]
    t_start = time.time()
    ref = args.reference_ms or reference_ms(args.profile)
    servers: list[StartedServer] = []
    urls: dict[str, str] = {}
    try:
        # every variant's server up first (each its own process and port, idle while another
        # is driven), then rates outside and variants inside: the host's speed drifts over the
        # minutes a run takes on a shared VM, and run one variant after another it ranked the
        # variants by when they ran (at max_batch 1, controller and min, the same policy,
        # differed by up to 1.6x between two such runs)
        for i, (name, flags) in enumerate(targets):
            if flags is None:
                urls[name] = args.url
            else:
                server = StartedServer(
                    [*flags, "--max_batch", str(args.max_batch), *args.serve_args],
                    args.port + i,
                    out / f"serve_{name}.log",
                )
                servers.append(server)
                urls[name] = server.url
            references[name] = ref
            results[name] = {}
            log.info("%s: budgets are ratios of %.2f ms", name, ref)
        for k, rate in enumerate(args.rates):
            for name, url in urls.items():
                rng = np.random.default_rng([args.seed, k])  # the same arrivals for every variant
                sent, duration = asyncio.run(
                    drive(
                        url,
                        args.model,
                        rate,
                        args.requests,
                        reqs,
                        args.budget_ratios,
                        ref,
                        rng,
                        args.timeout_s,
                    )
                )
                results[name][f"{rate:g}"] = report(sent, duration, args.budget_ratios)
                o = results[name][f"{rate:g}"]["overall"]
                log.info(
                    "%s @ %g req/s: goodput %.1f, attainment %.3f, accuracy %s, refused %d",
                    name,
                    rate,
                    o["goodput_rps"],
                    o["attainment"],
                    o["accuracy"],
                    o["refused"],
                )
    finally:
        for server in servers:
            server.stop()
    doc = {
        "command": "fastctrl loadtest "
        + " ".join(sys.argv[2:] if sys.argv[1:2] == ["loadtest"] else sys.argv[1:]),
        "args": asdict(args),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d", time.localtime(t_start)),
        "wall_s": time.time() - t_start,
        "reference_ms": references,
        "results": results,
    }
    fio.write_json(out / "loadtest.json", doc)
    plot(results, out / "loadtest.png")
    print(
        json.dumps(
            {v: {r: results[v][r]["overall"]["goodput_rps"] for r in results[v]} for v in results},
            indent=1,
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = cli.parse(LoadTestArgs, argv, prog="python -m fastctrl.serve.loadtest")
    return cli.execute(run, args)


if __name__ == "__main__":
    sys.exit(main())
