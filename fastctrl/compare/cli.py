"""``python -m fastctrl.compare``: the E5 experiment — every method x seeds, JSON + figures + report.

All methods share the observation space, action space, reward, latency measurements, budgets
and an env-step budget; each (method, seed) is an independent ``fastctrl.train`` run in its own
directory under ``<output_dir>/runs``, executed in parallel over ``--jobs`` processes, or as Ray
tasks of ``--cpus_per_task`` CPUs each with ``--backend ray`` (:func:`fastctrl.distributed.
map_jobs`; the runs write into ``--output_dir``, so on a multi-node cluster it must be a
filesystem every node sees). Finished runs are reused (an interrupted compare picks them up;
a run killed mid-way resumes from its last checkpoint), so rerunning the command completes
what is missing.

Every run shares one dataset (``--data_seed``), so the spread across training seeds is
training variation only. ``e5_statistics.json`` holds the IQM and 95% stratified-bootstrap CI
over seeds of every metric and the probability of improvement between methods
(:mod:`.stats`); ``e5_report.md`` answers from it and checks the expected findings, which are
data (``--expected_findings``, :mod:`.findings`).

``--summary length-blind`` / ``--summary gap-closed`` print a summary of the finished
comparison in ``--output_dir`` instead of running one (:mod:`.length_blind`,
:mod:`.gap_closed`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from .. import cli, io
from ..cli import need, need_at_least, need_positive
from ..distributed.backend import BackendArgs, map_jobs, parallel_slots
from ..sysinfo import command_line, provenance
from ..train.checkpoint import load_checkpoint
from ..train.config import ProfileSource, RunBudget, RunConfig, TrainConfig, diff_configs
from ..train.loop import RESUME_FREE, STATE_FORMAT
from ..train.methods import METHOD_NAMES, METHODS, MethodName
from ..train.records import EVAL_FILE, STATS_FILE
from . import analysis, report
from .findings import check_findings, load_findings
from .plots import (
    plot_e5_final_utility,
    plot_e5_frontiers,
    plot_e5_learning_curves,
    plot_e5_overhead,
    plot_e5_sample_efficiency,
    plot_e5_stability,
)

log = logging.getLogger(__name__)

#: TrainConfig fields that do not change a run's results (a finished run is reused when all
#: the others match)
RUN_ONLY_FIELDS = ("resume", "quiet")


def _method_names(args: list[str]) -> tuple[str, ...]:
    """``--methods lut grpo`` or ``--methods lut,grpo`` (both forms)."""
    names = tuple(m for a in args for m in a.split(",") if m)
    bad = [m for m in names if m not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {bad}: choose from {METHOD_NAMES}")
    return names


#: a tuple of method names, given space- or comma-separated
MethodList = Annotated[
    tuple[MethodName, ...],  # type: ignore[valid-type]
    tyro.constructors.PrimitiveConstructorSpec(
        nargs="*",
        metavar="{" + ",".join(METHOD_NAMES) + "}",
        instance_from_str=_method_names,
        is_instance=lambda x: isinstance(x, tuple) and all(m in METHODS for m in x),
        str_from_instance=list,
    ),
]


@dataclass
class CompareArgs:
    """The E5 experiment: every method x seeds, JSON + figures + report."""

    methods: MethodList = field(default_factory=lambda: METHOD_NAMES)
    """Methods to compare (space- or comma-separated)."""
    seeds: int = 5
    """Training seeds per method (0..seeds-1)."""
    data_seed: int = 0
    """Seed of the data (the synthetic profile and the splits), the same for every run: the
    seeds vary training only."""
    jobs: int = 2
    """Runs executed in parallel on this machine (1: in this process); with --backend ray the
    cluster's CPUs / --cpus_per_task bound it instead."""
    cpus_per_task: float = 1.0
    """With --backend ray: CPUs each run reserves (a run trains on one torch thread)."""
    execution: tyro.conf.OmitArgPrefixes[BackendArgs] = field(default_factory=BackendArgs)
    """Where the runs execute: processes on this machine, or Ray tasks on a cluster."""
    output_dir: str = "runs/e5"
    """Where the runs, the JSON, the figures and e5_report.md go."""
    data: tyro.conf.OmitArgPrefixes[ProfileSource] = field(default_factory=ProfileSource)
    """The profile every run trains on (as `fastctrl train`)."""
    budget: tyro.conf.OmitArgPrefixes[RunBudget] = field(default_factory=RunBudget)
    """The env-step budget and validation interval of every run (as `fastctrl train`)."""
    tuned_dir: str | None = None
    """Train each method with the hyper-parameters `python -m fastctrl.tune` picked, read from
    DIR/<method>/best_params.json; None: the methods' defaults."""
    slo_threshold: float = 0.05
    """Sample efficiency: SLO violation rate to reach."""
    quality_fraction: float = 0.9
    """Sample efficiency: quality to reach, as a fraction of the full model's."""
    expected_findings: str | None = None
    """A JSON file of expected findings for the report to check; None: the one shipped in
    fastctrl/compare/expected_findings.json."""
    bootstrap_reps: int = 2000
    """Bootstrap resamples per confidence interval."""
    stats_seed: int = 0
    """Seed of the bootstrap (the same runs give the same intervals)."""
    quick: bool = False
    """Smoke test: 400 requests, 2 seeds, 20k env-step budget, validation every 2.5k."""
    quiet: bool = False
    """Warnings only."""
    summary: Literal["none", "length-blind", "gap-closed"] = "none"
    """Instead of running the comparison, print a summary of the finished one in --output_dir:
    length-blind (each method's gap to the length-blind oracle, default synthetic profile) or
    gap-closed (each method's share of the best-static -> oracle gap closed)."""

    def __post_init__(self) -> None:
        need(bool(self.methods), f"--methods must name some of {METHOD_NAMES}")
        need_at_least(self, 1, "seeds", "jobs", "bootstrap_reps")
        need_positive(self, "cpus_per_task")
        need(
            0 <= self.slo_threshold <= 1,
            f"--slo_threshold must be in [0, 1], got {self.slo_threshold}",
        )
        need(
            0 < self.quality_fraction <= 1,
            f"--quality_fraction must be in (0, 1], got {self.quality_fraction}",
        )
        if self.quick:
            self.data.synthetic_requests, self.seeds = 400, 2
            self.budget.max_env_steps, self.budget.eval_every_steps = 20_000, 2_500

    def tuned(self, method: str) -> dict[str, Any]:
        """``best_params.json`` of ``method`` under --tuned_dir ({} without it)."""
        if self.tuned_dir is None:
            return {}
        path = Path(self.tuned_dir) / method / "best_params.json"
        if not path.is_file():
            raise ValueError(
                f"--tuned_dir: no {path} (run python -m fastctrl.tune --method "
                f"{method} --output_dir {Path(self.tuned_dir) / method})"
            )
        record = io.read_json(path, "tuned parameters")
        need(
            isinstance(record, dict) and isinstance(record.get("params"), dict),
            f"--tuned_dir: {path} has no 'params' object",
        )
        return record

    def tuned_params(self, method: str) -> dict[str, Any]:
        """The tuner's pick for ``method`` ({} without --tuned_dir)."""
        return dict(self.tuned(method).get("params", {}))

    def train_config(self, method: str, seed: int, out: Path) -> TrainConfig:
        from ..tune.search_space import apply_params

        run = RunConfig(output_dir=str(out / "runs" / f"{method}_seed{seed}"), quiet=True)
        cfg = TrainConfig.for_experiment(method, seed, self.data, self.data_seed, self.budget, run)
        return apply_params(cfg, self.tuned_params(method))


def _run_one(cfg_dict: dict[str, Any]) -> str:
    from ..train.loop import Run

    Run(TrainConfig.from_dict(cfg_dict)).run()
    return cfg_dict["run"]["output_dir"]


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    return {**cfg, "run": {k: v for k, v in cfg["run"].items() if k not in RUN_ONLY_FIELDS}}


def _reusable(run_dir: Path, cfg: TrainConfig) -> bool:
    if not ((run_dir / STATS_FILE).is_file() and (run_dir / EVAL_FILE).is_file()):
        return False
    try:
        saved = io.read_json(run_dir / STATS_FILE)["config"]
        return _comparable(saved) == _comparable(cfg.to_dict())
    except (ValueError, KeyError, TypeError):
        return False


def _resumable(run_dir: Path, cfg: TrainConfig) -> bool:
    """A last checkpoint trained with ``cfg``'s settings (an interrupted run of this command);
    one of other settings (an earlier command, older defaults) is not resumed: the run starts
    over and overwrites it."""
    path = run_dir / "last_checkpoint.pt"
    if not path.is_file():
        return False
    try:
        saved = load_checkpoint(path, STATE_FORMAT, what="E5 run")["train_config"]
    except (ValueError, KeyError):
        return False
    return not diff_configs(saved, cfg.to_dict(), skip=RESUME_FREE)


def _run_all(
    todo: dict[tuple[str, int], TrainConfig], args: CompareArgs, total: int
) -> tuple[list[tuple[tuple[str, int], str]], int]:
    """Run every config of ``todo`` on the chosen backend: (failures, runs at once)."""
    ex, t0, failures = args.execution, time.perf_counter(), []
    if not todo:
        log.info("E5: all %d runs already done", total)
        return failures, args.jobs
    with ex.session():
        slots = parallel_slots(ex.backend, args.jobs, args.cpus_per_task)
        log.info(
            "E5: %d runs, %d already done, %d to run %s",
            total,
            total - len(todo),
            len(todo),
            f"as Ray tasks ({slots} at once)"
            if ex.backend == "ray"
            else f"on {args.jobs} processes",
        )
        keys = list(todo)
        for r in map_jobs(
            _run_one,
            [todo[k].to_dict() for k in keys],
            backend=ex.backend,
            jobs=args.jobs,
            num_cpus=args.cpus_per_task,
        ):
            if r.error is None:
                log.info("done %s seed %d (%.0f s)", *keys[r.index], time.perf_counter() - t0)
            else:  # one failed run must not lose the others
                failures.append((keys[r.index], repr(r.error)))
                log.error("run %s seed %d failed: %s", *keys[r.index], r.error)
    return failures, slots


PROG = "python -m fastctrl.compare"


def main(argv: Sequence[str] | None = None) -> int:
    return cli.execute(run, cli.parse(CompareArgs, argv, prog=PROG))


def run(args: CompareArgs) -> int:
    """Run the comparison, or print a summary of a finished one (the parsed command line of
    ``fastctrl compare``)."""
    if args.summary != "none":
        from . import gap_closed, length_blind

        summarize = length_blind.main if args.summary == "length-blind" else gap_closed.main
        summarize(Path(args.output_dir))
        return 0
    cli.setup_logging(args.quiet)
    methods = list(args.methods)
    out = Path(args.output_dir)
    seeds = list(range(args.seeds))
    # bad findings / tuned files are bad input (status 2), found before any run starts
    findings = load_findings(args.expected_findings)
    configs = {(m, s): args.train_config(m, s, out) for m in methods for s in seeds}
    todo = {k: c for k, c in configs.items() if not _reusable(Path(c.run.output_dir), c)}
    for c in todo.values():
        if _resumable(Path(c.run.output_dir), c):
            c.run.resume = c.run.output_dir
    t0 = time.perf_counter()
    failures, slots = _run_all(todo, args, len(configs))  # ValueError: no cluster there
    if failures:
        return cli.failure(f"{len(failures)} runs failed: {failures}")
    runs = analysis.load_runs({k: Path(c.run.output_dir) for k, c in configs.items()})
    any_run = next(iter(next(iter(runs.values())).values()))
    meta = {
        **provenance(command_line("fastctrl.compare")),
        "methods": methods,
        "seeds": seeds,
        "data_seed": args.data_seed,
        "profile": args.data.profile
        or (f"synthetic {args.data.synthetic_family} ({args.data.synthetic_requests} requests)"),
        "profile_detail": any_run.stats.profile,
        "reward": any_run.eval.reward,
        "budget_ratios": any_run.eval.budget_ratios,
        "budget_baseline": any_run.eval.budget_baseline,
        "n_configs": any_run.eval.n_configs,
        "max_env_steps": args.budget.max_env_steps,
        "eval_every_steps": args.budget.eval_every_steps,
        "tuned_dir": args.tuned_dir,
        "tuned": {
            m: {
                "params": args.tuned_params(m),
                "trials": args.tuned(m).get("trials"),
                "max_env_steps": ((args.tuned(m).get("settings") or {}).get("loop") or {}).get(
                    "max_env_steps"
                ),
            }
            for m in methods
        }
        if args.tuned_dir
        else None,
        "expected_findings": str(
            args.expected_findings or "fastctrl/compare/expected_findings.json"
        ),
        "wall_time_s": time.perf_counter() - t0,
        "jobs": slots,
        "backend": args.execution.backend,
        "args": io.to_json(args),
    }
    curves = analysis.training_curves(runs)
    eff = analysis.sample_efficiency(runs, args.slo_threshold, args.quality_fraction)
    fr = analysis.final_frontiers(runs)
    ov = analysis.overhead_analysis(runs)
    st = analysis.stability_analysis(runs)
    stats = analysis.statistics(
        runs,
        args.slo_threshold,
        args.quality_fraction,
        seed=args.stats_seed,
        reps=args.bootstrap_reps,
    )
    # imported here: ``python -m fastctrl.compare.length_blind`` runs that module as __main__
    from .length_blind import length_blind_reference, on_default_simulator

    any_cfg = next(iter(configs.values()))
    if on_default_simulator(any_cfg):  # the reachable reference of the default simulator
        ref = length_blind_reference(
            any_cfg,
            {m: [r.eval.controller.overall.utility for r in runs[m].values()] for m in methods},
            seed=args.stats_seed,
            reps=args.bootstrap_reps,
        )
        stats["length_blind"] = {
            "oracle_length_blind": ref["oracle_length_blind"],
            "methods": {m: e.to_dict() for m, e in ref["methods"].items()},
        }
    checked = check_findings(stats, findings)
    stats["expected_findings"] = {
        "source": findings.source,
        "results": [io.to_json(r) for r in checked],
    }
    for name, obj in (
        ("e5_training_curves", curves),
        ("e5_sample_efficiency", eff),
        ("e5_final_frontiers", fr),
        ("e5_overhead_analysis", ov),
        ("e5_stability_analysis", st),
        ("e5_statistics", stats),
    ):
        io.write_json(out / f"{name}.json", {"meta": meta, name.removeprefix("e5_"): obj})
    figs = out / "figures"
    for name, fn, obj in (
        ("e5_learning_curves", plot_e5_learning_curves, curves),
        ("e5_sample_efficiency", plot_e5_sample_efficiency, stats),
        ("e5_final_frontiers", plot_e5_frontiers, fr),
        ("e5_final_utility", plot_e5_final_utility, stats),
        ("e5_overhead_comparison", plot_e5_overhead, stats),
        ("e5_stability", plot_e5_stability, stats),
    ):
        io.write_with(figs / f"{name}.png", lambda p, fn=fn, obj=obj: fn(obj, p))
    io.write_text(out / "e5_report.md", report.report(meta, stats, checked, findings.source))
    if not args.quiet:
        print(f"E5 done in {meta['wall_time_s']:.0f} s: {out / 'e5_report.md'}")
    return 0
