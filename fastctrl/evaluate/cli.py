"""``python -m fastctrl.evaluate``: a trained controller live through the hook on held-out
requests, beside the best static config (chosen on the profile's train split) and the full
config; JSON plus figures.

    python -m fastctrl.evaluate --model DIR_OR_ID --controller runs/train/controller \\
        --profile runs/profile --dataset heldout.jsonl --budget_ratios 0.5 0.75 1.0

Budgets: ``--budgets_ms`` (absolute), or ``--budget_ratios`` x the profile's mean full-config
latency on train. Outputs in ``--output_dir``: ``live_eval.json`` (per budget and policy:
accuracy, latency p50 / p95, SLO attainment, configs run, the controller's share of the
forward), ``accuracy_vs_budget.png``, ``latency_per_budget.png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import tyro

from .. import cli, io
from ..runtime.answering import ANSWER_PATH_HELP, AnswerPath
from ..runtime.loading import ModelArgs
from ..runtime.metrics import METRICS

MetricName = Literal[("auto", *METRICS)]  # type: ignore[misc]


@dataclass
class EvaluateArgs:
    """Run a trained controller live through fastctrl.hook on held-out requests."""

    controller: str
    """A controller directory (Controller.save_pretrained) or lookup table
    (LookupTablePolicy.save_pretrained), or a training run directory holding one in
    controller/ or lookup_table/ (the lut method)."""
    loading: tyro.conf.OmitArgPrefixes[ModelArgs] = field(default_factory=ModelArgs)
    """The model the controller was trained for, loaded as the profiler loaded it."""
    profile: str | None = None
    """The profile the controller was trained on (its table, or the --output_dir of
    `fastctrl profile`): picks the best static config per budget on its train split, and the
    reference latency of --budget_ratios."""
    dataset: str | None = None
    """Held-out requests (JSONL / CSV / save_to_disk / image folder / hub name); default: the
    built-in synthetic set with --seed 1000 (never the profiled one)."""
    split: str | None = None
    """Dataset split (save_to_disk DatasetDict or hub dataset)."""
    samples: int | None = None
    """At most this many requests (synthetic default: 12)."""
    on_error: Literal["raise", "skip"] = "raise"
    """A bad dataset row (missing image, empty answers): stop, or skip it and count it."""
    budgets_ms: list[float] = field(default_factory=list)
    """Absolute budgets in ms."""
    budget_ratios: list[float] = field(default_factory=list)
    """Budgets as ratios of the profile's mean full-config latency on train (needs
    --profile)."""
    metric: MetricName = "auto"  # type: ignore[valid-type]
    """auto: the dataset's standard metric (exact match when unknown; agreement without
    answers). agreement: each policy's tokens against the full config's for the same request
    and budget (no answers needed)."""
    max_new_tokens: int = 4
    """Tokens generated per request (as profiled)."""
    answer_path: Annotated[AnswerPath, tyro.conf.arg(help=ANSWER_PATH_HELP)] = "auto"
    warmup: int = 1
    """Untimed runs of each policy before the timed ones."""
    engine: Literal["auto", "torch", "int8", "triton"] = "auto"
    """Decision engine that runs the controller inside the forward (auto: Triton on a CUDA
    device, else the int8 C++ engine, else torch)."""
    guardrail: float = 0.0
    """Latency guardrail (needs --profile): a decision whose latency at this quantile on the
    profile's train split (per task type) misses its budget is replaced by the best config
    predicted to meet it (0: off; e.g. 0.9)."""
    seed: int = 1000
    """Tiny model weights are seed 0 (as profiled); this seeds the held-out synthetic set."""
    threads: int = 1
    """Torch CPU threads (0 keeps torch's default)."""
    missing_configs: Literal["raise", "drop", "impute"] = "raise"
    """How to load a sampled --profile (see python -m fastctrl.train --help)."""
    output_dir: str = "runs/evaluate"
    """Where live_eval.json and the figures go."""
    quiet: bool = False
    """No progress bar, warnings only."""

    def __post_init__(self) -> None:
        cli.need(
            bool(self.budgets_ms) != bool(self.budget_ratios),
            "give --budgets_ms or --budget_ratios (one of them)",
        )
        cli.need(
            all(b > 0 for b in self.budgets_ms + self.budget_ratios),
            "budgets and budget ratios must be > 0",
        )
        cli.need(
            not self.budget_ratios or self.profile is not None,
            "--budget_ratios needs --profile (the reference latency is its full config)",
        )
        cli.need_at_least(self, 1, "max_new_tokens")
        cli.need_at_least(self, 0, "warmup", "threads")
        cli.need(0.0 <= self.guardrail <= 1.0, "--guardrail must be a quantile in [0, 1]")
        cli.need(
            not self.guardrail or self.profile is not None,
            "--guardrail needs --profile (it is fitted on the profile's train split)",
        )


PROG = "python -m fastctrl.evaluate"


def main(argv: Sequence[str] | None = None) -> int:
    return cli.execute(
        run, cli.parse(EvaluateArgs, argv, prog=PROG), bad_input=(*cli.BAD_INPUT, TypeError)
    )


def run(args: EvaluateArgs) -> int:
    """Evaluate live and write the results (the parsed command line of ``fastctrl evaluate``)."""
    cli.setup_logging(args.quiet)
    import torch

    from ..policy.loading import load_policy
    from ..profile.table import Profile
    from ..runtime.datasets import load_requests
    from ..runtime.metrics import resolve_metric
    from ..runtime.requests import as_requests
    from ..runtime.synthetic_vqa import synthetic_vqa
    from ..sysinfo import command_line, machine, provenance
    from .host_check import check_host, profile_machine
    from .live import evaluate_live, static_configs
    from .plots import plot_accuracy_vs_budget, plot_latency_per_budget

    if args.threads:
        torch.set_num_threads(args.threads)
    controller = load_policy(args.controller)
    # the model and data, loaded exactly as the profiler loads them (tiny weights: seed 0)
    model, processor = args.loading.load(seed=0)
    if args.dataset is None:
        data, name = synthetic_vqa(args.samples or 12, seed=args.seed), None
    else:
        data, name = load_requests(
            args.dataset, split=args.split, samples=args.samples, on_error=args.on_error
        )
    requests = list(as_requests(data))
    have_answers = all(r.answer is not None for r in requests)
    metric_name, metric = resolve_metric(args.metric, have_answers, name)
    static, ref, profile, recorded = None, None, None, None
    budgets = list(args.budgets_ms)
    if args.profile:
        profile = Profile.load(args.profile, missing_configs=args.missing_configs)
        if profile.space != controller.space:
            raise ValueError(
                f"the profile's grid {profile.space} differs from the "
                f"controller's {controller.space}"
            )
        if not budgets:
            ref = float(
                profile.mean_latency[profile.split_indices("train"), profile.full_index].mean()
            )
            budgets = [r * ref for r in args.budget_ratios]
        static, ref = static_configs(profile, budgets)
        recorded = profile_machine(args.profile)  # unreadable: fails now, not after the run
    guardrail = None
    if args.guardrail:
        from ..model_hook.guardrail import LatencyGuardrail

        guardrail = LatencyGuardrail.fit(profile, quantile=args.guardrail)
    res = evaluate_live(
        model,
        processor,
        controller,
        requests,
        budgets,
        metric,
        metric_name,
        static=static,
        reference_ms=ref,
        max_new_tokens=args.max_new_tokens,
        warmup=args.warmup,
        engine=args.engine,
        answer_path=args.answer_path,
        guardrail=guardrail,
        quiet=args.quiet,
    )
    host = None
    if profile is not None:
        full_ms = [x for row in res.per_budget.values() for x in row["full"].latency_ms]
        here = {
            **machine(next(model.parameters()).device),
            "torch_threads": torch.get_num_threads(),
            "answered_by": res.answered_by,
        }
        host = check_host(profile, recorded, full_ms, here)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    io.write_json(
        out / "live_eval.json",
        {
            **provenance(command_line("fastctrl.evaluate")),
            "args": io.to_json(args),
            **io.to_json(res),
            "host": io.to_json(host),
        },
    )
    plot_accuracy_vs_budget(res, out / "accuracy_vs_budget.png")
    plot_latency_per_budget(res, out / "latency_per_budget.png")
    for b in res.budgets_ms:
        row = res.per_budget[f"{b:g}"]
        parts = [
            f"{n}: acc {r.accuracy:.3f}, p50 {r.latency_p50_ms:.1f} ms, SLO {r.slo_attainment:.0%}"
            for n, r in row.items()
        ]
        print(f"budget {b:.1f} ms | " + " | ".join(parts))
    if host is not None:
        print(
            f"full config here / in the profile: {host.latency_scale:.2f}x "
            f"({host.full_p50_live_ms:.2f} / {host.full_p50_profile_ms:.2f} ms p50)"
            + ("; outside the same-machine band, see the warning" if host.warning else "")
        )
    print(f"wrote {out / 'live_eval.json'} and figures")
    return 0
