"""``fastctrl serve``: the OpenAI-compatible server with a latency budget per request.

    fastctrl serve                                   # the digits VLM and its shipped controller
    fastctrl serve --model DIR --controller RUN_DIR --profile PROFILE

Binds 127.0.0.1 unless ``--host`` says otherwise. See :mod:`fastctrl.serve` for the request
fields and the response's ``fastctrl`` object.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import tyro

from .. import cli
from ..runtime.loading import ModelArgs
from . import require_serve_extra

log = logging.getLogger(__name__)


@dataclass
class ServeArgs:
    """Serve a VLM behind an OpenAI-compatible endpoint; every request carries its own
    latency budget and runs at the config its controller decides on what is left of it."""

    loading: tyro.conf.OmitArgPrefixes[ModelArgs] = field(
        default_factory=lambda: ModelArgs(model="fastctrl-digits")
    )
    """The model served and how it is loaded (the shipped digits VLM by default)."""
    output_dir: str | None = None
    """Log every answered request (its config, budget and timings) to
    <output_dir>/requests.jsonl; none: no log."""
    controller: str = "auto"
    """A controller directory (Controller.save_pretrained) or a training run directory holding
    one in controller/; auto: the built-in model's shipped controller."""
    profile: str = "auto"
    """The model's profile (table or `fastctrl profile` output directory): the static policy's
    configs and the default budget come from it; auto: the built-in model's, if any."""
    policy: Literal["controller", "static", "full"] = "controller"
    """Who picks each request's config: the controller, the best static config for the
    remaining budget (chosen on the profile's train split), or always the full config."""
    batching: Literal["per_request", "min"] = "per_request"
    """A batch of requests: each at its own config (one run per distinct config), or all at the
    per-knob minimum of their decisions (the tightest request binds everyone)."""
    max_batch: int = 1
    """Requests answered together at most (what is waiting when the model is free)."""
    max_queue: int = 64
    """Requests waiting at most; a full queue answers 429 with Retry-After."""
    on_infeasible: Literal["reject", "cheapest"] = "reject"
    """A request whose remaining budget is below the cheapest config's latency: refuse it (429)
    or run it at the cheapest config (deadline_met false)."""
    default_budget_ms: float | None = None
    """Budget of a request that gives none; default: the profile's full-config mean latency."""
    default_max_tokens: int = 16
    """Tokens generated for a request without max_tokens."""
    max_tokens_limit: int = 64
    """Largest max_tokens a request may ask for."""
    max_images: int = 1
    """Images per request at most."""
    max_prompt_chars: int = 4096
    """Characters of text per request at most (413 above)."""
    allowed_local_media_path: str | None = None
    """Serve local image files (file:// or absolute paths) found under this directory only."""
    api_key: str | None = None
    """Require `Authorization: Bearer <key>` on /v1/ routes."""
    host: str = "127.0.0.1"
    """Address to bind (loopback by default)."""
    port: int = 8000
    """Port to bind."""
    engine: Literal["auto", "torch", "int8", "triton"] = "auto"
    """The controller's decision engine."""
    threads: int = 1
    """Torch CPU threads (0: torch's default)."""
    guardrail: bool = False
    """After the controller decides, replace a config whose latency (the profile's train-split
    p90 for the request's task type, times this host's scale) misses the remaining budget with
    the best config predicted to meet it. Needs the profile. Off by default: live on unseen
    digits pages it lowered accuracy without raising deadline attainment (the Evaluate docs
    page renders the measurement)."""
    calibrate: bool = True
    """Divide each remaining budget by this host's latency over the profile's (measured on the
    answered requests) before the controller decides (--no_calibrate: decide on it as is)."""
    warmup: int = 3
    """Warm-up answers at start-up (they also measure the cheapest config's latency)."""
    drain_s: float = 30.0
    """On shutdown, how long queued requests may still be answered."""

    def __post_init__(self) -> None:
        cli.need_at_least(
            self,
            1,
            "max_batch",
            "max_queue",
            "default_max_tokens",
            "max_tokens_limit",
            "max_images",
            "max_prompt_chars",
            "port",
        )
        cli.need_at_least(self, 0, "threads", "warmup", "drain_s")
        if self.default_budget_ms is not None:
            cli.need_positive(self, "default_budget_ms")
        if (
            self.allowed_local_media_path is not None
            and not Path(self.allowed_local_media_path).is_dir()
        ):
            raise ValueError(
                f"--allowed_local_media_path {self.allowed_local_media_path}: not a directory"
            )


def build_state(args: ServeArgs):  # -> ServerState (imports kept off the CLI's start)
    """Load the model, controller and profile; warm up; the server's state."""
    import torch

    from ..policy.loading import load_policy
    from ..policy.lookup_table import LookupTablePolicy
    from ..profile.table import Profile
    from ..runtime.registry import builtin_controller, builtin_profile
    from .app import ServerState
    from .media import MediaLimits
    from .runner import Job, LatencyCalibration, ModelRunner, StaticTable
    from .scheduler import Scheduler
    from .telemetry import Telemetry

    if args.threads:
        torch.set_num_threads(args.threads)
    model_name = args.loading.model
    ctrl_dir = (
        builtin_controller(model_name) if args.controller == "auto" else Path(args.controller)
    )
    controller, table = None, None
    if args.policy == "controller":
        if ctrl_dir is None:
            raise ValueError(f"--controller auto: {model_name} ships no controller; give one")
        policy = load_policy(ctrl_dir)
        if isinstance(policy, LookupTablePolicy):
            table = policy
        else:
            controller = policy
    prof_path = builtin_profile(model_name) if args.profile == "auto" else args.profile
    profile = Profile.load(prof_path) if prof_path is not None else None
    if args.policy == "static" and profile is None:
        raise ValueError("--policy static needs --profile (its configs are chosen on it)")
    model, processor = args.loading.load(seed=0)
    if controller is not None:
        space = controller.space
    elif table is not None:
        space = table.space
    elif profile is not None:
        space = profile.space
    else:
        raise ValueError(f"--policy {args.policy} needs --profile (its grid) for this model")
    static = StaticTable(profile) if profile is not None and args.policy == "static" else None
    runner = ModelRunner(
        model,
        processor,
        space,
        controller=controller,
        policy="table" if table is not None else args.policy,
        batching=args.batching,
        static=static,
        engine=args.engine,
        calibration=LatencyCalibration(profile) if profile is not None and args.calibrate else None,
        table=table,
    )
    if args.guardrail and profile is not None and controller is not None:
        from ..model_hook.guardrail import LatencyGuardrail

        runner.handle.guardrail = LatencyGuardrail.fit(profile)
    budget = args.default_budget_ms
    if budget is None:
        if profile is None:
            raise ValueError("--default_budget_ms is needed without a profile")
        from ..evaluate.live import reference_latency_ms

        budget = reference_latency_ms(profile)
    cheapest = warm_up(runner, Job, args.warmup)
    if runner.calibration is not None:
        runner.calibration.scale = 1.0  # warm-up answers (one token, a blank image) say nothing
    if profile is not None:  # a real request's cheapest answer, as profiled
        cheapest = max(cheapest, float(profile.mean_latency[:, profile.cheapest_index].mean()))
    telemetry = Telemetry()
    scheduler = Scheduler(
        runner,
        telemetry,
        max_batch=args.max_batch,
        max_queue=args.max_queue,
        on_infeasible=args.on_infeasible,
        cheapest_ms=cheapest,
    )
    return ServerState(
        scheduler=scheduler,
        telemetry=telemetry,
        model_name=model_name,
        default_budget_ms=float(budget),
        default_max_tokens=args.default_max_tokens,
        max_tokens_limit=args.max_tokens_limit,
        max_images=args.max_images,
        max_prompt_chars=args.max_prompt_chars,
        media=MediaLimits(
            allowed_local_media_path=Path(args.allowed_local_media_path)
            if args.allowed_local_media_path
            else None
        ),
        task_types=task_types(controller, table),
        task_required=table is not None,
        api_key=args.api_key,
        drain_s=args.drain_s,
        request_log=request_log(args.output_dir),
    )


def task_types(controller, table) -> tuple[str, ...] | None:
    """The task types a request may name: the lookup table's (one is required), or the
    controller's (optional); None: any."""
    if table is not None:
        return tuple(table.tasks)
    if controller is not None and controller.config.task_types:
        return tuple(controller.config.task_types)
    return None


def request_log(output_dir: str | None):  # -> TextIO | None
    """The JSON-lines log of answered requests, appended to (line-buffered)."""
    if output_dir is None:
        return None
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    return open(Path(output_dir) / "requests.jsonl", "a", buffering=1)  # noqa: SIM115


def warm_up(runner, job_cls, n: int) -> float:
    """Answer ``n`` blank requests at the full config and ``n`` at the cheapest; the
    cheapest's median latency (ms), what admission control compares budgets with."""
    import statistics

    from PIL import Image

    text = runner.processor.render_chat(
        [{"role": "user", "content": [{"type": "text", "text": "warm up"}, {"type": "image"}]}]
    )
    image = Image.new("RGB", (64, 64), (128, 128, 128))
    cheapest = []
    for i in range(max(n, 1)):
        for force in (False, True):
            task = runner.table.tasks[0] if runner.table is not None else None
            job = job_cls(f"warmup-{i}", text, [image], 1e6, task, 1, time.perf_counter(), force)
            a = runner.run([job])[0]
            if force:
                cheapest.append(a.model_ms)
    return statistics.median(cheapest)


def run(args: ServeArgs) -> int:
    require_serve_extra("fastapi", "uvicorn", "prometheus_client")
    import uvicorn

    from .app import create_app

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    state = build_state(args)
    log.info(
        "serving %s on http://%s:%d (policy %s, batching %s, max_batch %d)",
        state.model_name,
        args.host,
        args.port,
        args.policy,
        args.batching,
        args.max_batch,
    )
    uvicorn.run(create_app(state), host=args.host, port=args.port, log_level="warning")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = cli.parse(ServeArgs, argv, prog="python -m fastctrl.serve")
    return cli.execute(run, args)
