"""``python -m fastctrl.tune --method M --trials N``: tune one method's hyper-parameters.

The protocol, the same for every method: Optuna's TPE sampler, seeded; each trial trains one
run (:func:`~.runner.run_trial`) with the trial's overrides on the shared env-step budget and
scores it by its best validation utility; the test split is never read. Trial 0 of a new study
is the method's defaults, the others are TPE's suggestions. ``--trials`` is the
study's size, so every method gets the same number of trials, and rerunning with a larger
number continues the study (its SQLite storage is in ``output_dir``). The sampler is re-seeded
from ``(--seed, trials finished)`` before each trial, so a resumed study suggests exactly what an
uninterrupted one would.

``--parallel_trials P`` runs P trials at once: each batch is asked from the same finished
history, trial ``i`` of it with the sampler seeded from ``(--seed, trials finished + i)``
(P=1 is the sequential study above), so the same seed and P give the same study on every
backend: this process / a process pool (``--backend local``) or Ray tasks (``--backend ray``,
each reserving ``--cpus_per_task``). The study stays in the driver's SQLite file; a trial
needs no filesystem shared with the driver.

Outputs in ``output_dir`` (each written atomically after every trial):
  study.db           the Optuna study (SQLite; what a rerun continues)
  trials.json        every trial: state, params, value, duration, env_steps, best metrics
  best_params.json   the best trial's params (``python -m fastctrl.compare --tuned_dir`` reads
                     them) and the ``python -m fastctrl.train`` flags that set them
  search_space.json  the distributions sampled: the shared loop part and the method's own
  tune_summary.md    the setup, the search space, the best parameters and every trial
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import tyro
from optuna.trial import TrialState

from .. import cli, io
from ..cli import need, need_at_least, need_positive
from ..distributed.backend import BackendArgs, map_jobs
from ..train.config import ProfileSource, RunBudget, RunConfig, TrainConfig, diff_configs
from ..train.methods import METHODS, MethodName
from .runner import run_trial_job
from .search_space import default_params, describe, suggest

log = logging.getLogger(__name__)

STUDY_FILE = "study.db"


@dataclass
class TuneArgs:
    """Tune one method's hyper-parameters with Optuna on the validation split."""

    method: MethodName  # type: ignore[valid-type]
    """The method to tune."""
    trials: int = 20
    """Trials in the study, the same for every method; a rerun with more continues it."""
    output_dir: str | None = None
    """Where the study and its outputs go; None: runs/tune/<method>."""
    seed: int = 0
    """Seeds the TPE sampler and every trial's training."""
    data_seed: int = 0
    """Seed of the data (the synthetic profile and the splits), as in the E5 comparison."""
    data: tyro.conf.OmitArgPrefixes[ProfileSource] = field(default_factory=ProfileSource)
    """The profile every trial trains on (as `fastctrl train`)."""
    budget: tyro.conf.OmitArgPrefixes[RunBudget] = field(default_factory=RunBudget)
    """The env-step budget and validation interval of every trial (as `fastctrl train`; the E5
    comparison's defaults)."""
    quiet: bool = False
    """Warnings only."""
    parallel_trials: int = 1
    """Trials run at once, each batch asked from the same finished trials (1: sequential);
    the same value gives the same study on every --backend."""
    cpus_per_task: float = 1.0
    """With --backend ray: CPUs each trial reserves (a trial trains on one torch thread)."""
    execution: tyro.conf.OmitArgPrefixes[BackendArgs] = field(default_factory=BackendArgs)
    """Where trials run: this process / a process pool, or a Ray cluster."""

    def __post_init__(self) -> None:
        need(
            self.method in METHODS, f"--method must be one of {tuple(METHODS)}, got {self.method!r}"
        )
        need_at_least(self, 1, "trials", "parallel_trials")
        need_positive(self, "cpus_per_task")
        if self.output_dir is None:
            self.output_dir = str(Path("runs") / "tune" / self.method)

    def base_config(self) -> TrainConfig:
        """What every trial trains before its overrides."""
        return TrainConfig.for_experiment(
            self.method, self.seed, self.data, self.data_seed, self.budget, RunConfig(quiet=True)
        )


def _settings(base: TrainConfig) -> dict[str, Any]:
    """What a study is bound to (a rerun must match): the base config, less where it runs."""
    d = base.to_dict()
    d["run"] = {k: v for k, v in d["run"].items() if k not in ("output_dir", "resume", "quiet")}
    return d


def _sampler(seed: int, finished: int) -> optuna.samplers.TPESampler:
    # a fresh, seeded sampler per trial: its suggestion depends only on (seed, the trials so
    # far), so a resumed study continues exactly as an uninterrupted one
    s = int(np.random.SeedSequence([seed, finished]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=s)


def _counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that count towards --trials: finished (complete or failed), not interrupted."""
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state in (TrialState.COMPLETE, TrialState.FAIL) and t.user_attrs.get("counted")
    ]


def _trial_record(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    rec = {
        "number": t.number,
        "state": t.state.name,
        "params": dict(t.params),
        "value": t.value,
        "interrupted": not t.user_attrs.get("counted", False),
    }
    rec.update({k: v for k, v in t.user_attrs.items() if k != "counted"})
    return rec


def _flag(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"--{name}" if value else f"--no_{name}"
    return f"--{name} {value!r}" if isinstance(value, float) else f"--{name} {value}"


def write_outputs(study: optuna.Study, args: TuneArgs) -> dict[str, Any] | None:
    """trials.json, search_space.json, best_params.json and tune_summary.md from the study."""
    out = Path(str(args.output_dir))
    counted = _counted(study)
    trials = [
        _trial_record(t) for t in study.get_trials(deepcopy=False) if t.state != TrialState.RUNNING
    ]
    space = describe(counted)
    settings = study.user_attrs["settings"]
    io.write_json(
        out / "trials.json",
        {
            "method": args.method,
            "study": study.study_name,
            "objective": "best validation utility (maximised)",
            "settings": settings,
            "trials": trials,
        },
    )
    io.write_json(out / "search_space.json", {"method": args.method, **space})
    complete = [t for t in counted if t.state == TrialState.COMPLETE]
    best = None
    if complete:
        bt = max(complete, key=lambda t: (t.value, -t.number))
        flags = " ".join(_flag(k, v) for k, v in bt.params.items())
        best = {
            "method": args.method,
            "trial": bt.number,
            "value": bt.value,
            "params": dict(bt.params),
            "train_flags": flags,
            "train_command": f"python -m fastctrl.train --method {args.method} "
            f"--max_env_steps {args.budget.max_env_steps} {flags}".rstrip(),
            "trials": len(counted),
            "settings": settings,
        }
        io.write_json(out / "best_params.json", best)
    io.write_text(out / "tune_summary.md", summary(args, counted, space, best))
    return best


def summary(
    args: TuneArgs,
    counted: list[optuna.trial.FrozenTrial],
    space: dict[str, dict[str, Any]],
    best: dict[str, Any] | None,
) -> str:
    """tune_summary.md: what was tuned, how, and what every trial scored."""
    d, b = args.data, args.budget
    data = d.profile or f"{d.synthetic_family} synthetic profile, {d.synthetic_requests} requests"
    lines = [
        f"# Tuning {args.method}",
        "",
        f"Command: `python -m fastctrl.tune --method {args.method} --trials {args.trials} "
        f"--max_env_steps {b.max_env_steps} --eval_every_steps {b.eval_every_steps} "
        f"--seed {args.seed} --data_seed {args.data_seed}`"
        + (
            f" `--profile {d.profile}`"
            if d.profile
            else f" `--synthetic_requests {d.synthetic_requests}`"
            + (
                f" `--synthetic_family {d.synthetic_family}`"
                if d.synthetic_family != "default"
                else ""
            )
        ),
        "",
        f"Protocol: Optuna TPE (seeded from {args.seed}), {len(counted)} trials finished "
        f"of {args.trials}; each trial trains one run on {data} (data seed "
        f"{args.data_seed}, training seed {args.seed}) for {b.max_env_steps:,} env_steps "
        f"with validation every {b.eval_every_steps:,}, and scores its best validation "
        "utility. The test split is never read.",
        "",
        "## Search space",
        "",
        "| part | parameter | distribution |",
        "|---|---|---|",
    ]
    parts = {"loop": "shared (loop)", "own": f"{args.method}'s own"}
    for part, params in space.items():
        for name, dist in params.items():
            lines.append(f"| {parts[part]} | {name} | {dist['text']} |")
    lines += ["", "## Best", ""]
    if best is None:
        lines.append("No trial completed.")
    else:
        lines += [
            f"Trial {best['trial']}: best validation utility {best['value']:.4f}.",
            "",
            "| parameter | value |",
            "|---|---|",
        ]
        lines += [f"| {k} | {v!r} |" for k, v in best["params"].items()]
        lines += ["", f"Train with them: `{best['train_command']}`"]
    lines += [
        "",
        "## Trials",
        "",
        "| trial | state | validation utility | best at env_steps | duration s | params |",
        "|---|---|---|---|---|---|",
    ]
    for t in counted:
        a = t.user_attrs
        value = (
            f"{t.value:.4f}"
            if t.value is not None
            else "failed: " + str(a.get("error", "?"))[:80].replace("|", "/")
        )
        lines.append(
            f"| {t.number} | {t.state.name.lower()} | {value} | "
            f"{a.get('best_env_steps', '-')} | {a.get('duration_s', 0.0):.1f} | "
            + ", ".join(f"{k}={v!r}" for k, v in t.params.items())
            + " |"
        )
    return "\n".join(lines) + "\n"


def tune(args: TuneArgs) -> dict[str, Any] | None:
    """Run the study up to ``args.trials`` finished trials; returns best_params.json's content
    (None when no trial completed)."""
    out = Path(str(args.output_dir))
    out.mkdir(parents=True, exist_ok=True)
    base = args.base_config()
    settings = _settings(base)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=f"fastctrl-{args.method}",
        storage=f"sqlite:///{out / STUDY_FILE}",
        direction="maximize",
        load_if_exists=True,
        sampler=_sampler(args.seed, 0),
    )
    saved = study.user_attrs.get("settings")
    if saved is None:
        study.set_user_attr("settings", settings)
    elif saved != settings:
        raise ValueError(
            f"--output_dir {out} holds a study with other settings ("
            + "; ".join(diff_configs(saved, settings, ("study", "now")))
            + "): use another --output_dir"
        )
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)  # interrupted: not counted, not reused
    if not study.trials:  # a new study: trial 0 is the method's defaults
        study.enqueue_trial(default_params(base))
    base_dict = base.to_dict()
    ex = args.execution
    with ex.session():  # one cluster connection for every batch
        while (done := len(_counted(study))) < args.trials:
            batch = []
            for i in range(min(args.parallel_trials, args.trials - done)):
                study.sampler = _sampler(args.seed, done + i)
                trial = study.ask()
                batch.append((trial, suggest(trial, args.method)))
            jobs = [(base_dict, params, str(out)) for _, params in batch]
            for r in map_jobs(
                run_trial_job,
                jobs,
                backend=ex.backend,
                jobs=len(jobs),
                num_cpus=args.cpus_per_task,
                ray_address=ex.ray_address,
            ):
                _tell(study, *batch[r.index], r.value, r.error)
                write_outputs(study, args)
    return write_outputs(study, args)


def _tell(
    study: optuna.Study,
    trial: optuna.Trial,
    params: dict[str, Any],
    res: dict[str, Any] | None,
    error: BaseException | None,
) -> None:
    """Record a finished trial; a failed one is recorded and counted, the study goes on."""
    trial.set_user_attr("counted", True)
    if error is not None:
        log.error("trial %d failed: %r", trial.number, error)
        trial.set_user_attr("error", repr(error))
        study.tell(trial, state=TrialState.FAIL)
        return
    assert res is not None
    for k in ("best_env_steps", "env_steps", "train_time_s", "duration_s", "metrics"):
        trial.set_user_attr(k, res[k])
    study.tell(trial, res["value"])
    log.info(
        "trial %d: validation utility %.4f (%.0f s) %s",
        trial.number,
        res["value"],
        res["duration_s"],
        params,
    )


PROG = "python -m fastctrl.tune"


def main(argv: Sequence[str] | None = None) -> int:
    return cli.execute(run, cli.parse(TuneArgs, argv, prog=PROG))


def run(args: TuneArgs) -> int:
    """Run the study (the parsed command line of ``fastctrl tune``)."""
    cli.setup_logging(args.quiet)
    best = tune(args)  # ValueError: a study of other settings there, bad files (status 2)
    if best is None:
        return cli.failure(
            f"no trial of {args.method} completed (see {args.output_dir}/trials.json)"
        )
    if not args.quiet:
        print(
            f"best validation utility {best['value']:.4f} (trial {best['trial']}): "
            f"{best['params']}\n{Path(str(args.output_dir)) / 'tune_summary.md'}"
        )
    return 0
