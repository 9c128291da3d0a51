"""The training loop every method shares: data, seeding, evaluation points, early stopping,
schedules, checkpoints (resumable), and the outputs of ``python -m fastctrl.train``.

Outputs in ``output_dir`` (each written atomically):
  best_checkpoint.pt     controller_state_dict + controller/train config + metrics
                         (``torch.load(..., weights_only=True)`` loads it)
  last_checkpoint.pt     everything needed to ``--resume`` (optimizer, RNG states, history)
  controller/            the best controller via ``save_pretrained`` (config.json + safetensors)
  lookup_table/          the lookup table's instead (``lut`` in table mode; config.json +
                         safetensors, :class:`~fastctrl.policy.lookup_table.LookupTablePolicy`)
  training_stats.json    :class:`~fastctrl.train.records.TrainingStats`: the curves, one
                         entry per evaluation point, and the cost of training
  training_curves.png    validation utility / SLO violation / quality / p95 vs env_steps
  eval_results.json      :class:`~fastctrl.train.records.EvalResults`: test-split metrics per
                         budget and overall, through the decision engine, beside the random /
                         full / best-static / oracle baselines
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import io
from ..engines import make_engine
from ..env import (
    Contexts,
    Metrics,
    ProfileEnv,
    add_oracle_gap,
    add_static_gap_closed,
    evaluate_baselines,
    evaluate_policy,
)
from ..env.safe_fallback import fit_fallback
from ..env.safe_fallback import summary as fallback_summary
from ..policy import Controller, ControllerConfig
from ..policy.lookup_table import RUN_SUBDIR as LOOKUP_TABLE_DIR
from ..profile.table import Profile
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig, diff_configs
from .methods import METHODS
from .methods.base import Method
from .records import (
    EVAL_FILE,
    STATS_FILE,
    CurvePoint,
    EvalResults,
    TrainingStats,
    write_record,
)
from .schedules import lr_factor, make_scheduler, step_scheduler
from .seeding import seed_everything

FALLBACK_CONFIDENCE = 0.95
"""The safe fallback keeps the controller where the one-sided paired-bootstrap interval of
its validation gain over the best static config, at this confidence, is above 0."""

log = logging.getLogger(__name__)

STATE_FORMAT = "fastctrl-train-state"
#: settings a resumed run may change: where it writes and what it runs on, not what it learns
RESUME_FREE = ("run",)


def load_profile(cfg: TrainConfig) -> Profile:
    """The profile a run trains on: --profile, or exp5/exp6 (+ features), or the synthetic one."""
    d = cfg.data
    seed = cfg.data_seed
    if d.profile:
        return Profile.load(
            d.profile,
            seed=seed,
            train_split=d.train_split,
            require_features=True,
            missing_configs=d.missing_configs,
        )
    if d.exp5_dir:
        from ..profile.importers import import_profile

        prof = import_profile(
            d.exp5_dir,
            d.exp6_dir,
            dataset_name=d.dataset_name,
            features_dir=d.model_path,
            output_path=d.output_data_path,
            force_recompute=d.force_recompute,
            seed=seed,
            train_split=d.train_split,
        )
        if prof.features is None:
            raise FileNotFoundError(
                "the exp5/exp6 profile has no features: put <sample_id>.npz files (arrays "
                "'image', 'text') in <exp5_dir>/features or pass --model_path DIR"
            )
        return prof
    from ..profile.synthetic import synthetic_profile
    from ..profile.synthetic_noisy import noisy_vqa_profile

    build = noisy_vqa_profile if d.synthetic_family == "noisy" else synthetic_profile
    return build(d.synthetic_requests, seed=seed, train_split=d.train_split)


def build_controller(cfg: TrainConfig, profile: Profile, train_idx: np.ndarray) -> Controller:
    feats = profile.features
    assert feats is not None
    ref = float(profile.mean_latency[train_idx, profile.full_index].mean())
    ccfg = ControllerConfig(
        image_dim=feats.image_dim,
        text_dim=feats.text_dim,
        grids=profile.space.to_dict(),
        ref_latency_ms=ref,
        dropout=cfg.controller.dropout,
        arch=cfg.controller.arch,
        task_types=sorted({str(t) for t in profile.task_types[train_idx]}),
    )
    controller = Controller(ccfg).to(cfg.run.device)
    controller.fit_input_normalization(feats.image[train_idx], feats.text[train_idx])
    return controller


class Run:
    """One training run; ``run()`` returns eval results. Resumable from last_checkpoint.pt."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.run.output_dir)
        torch.set_num_threads(cfg.run.threads)
        seed_everything(cfg.seed)
        self.profile = load_profile(cfg)
        if self.profile.features is None:
            raise ValueError("the profile has no feature store; controllers need features")
        self.reward = cfg.reward.build()
        kw = dict(reward=self.reward, baseline=cfg.data.budget_baseline)
        self.train_env = ProfileEnv(self.profile, "train", seed=cfg.seed, **kw)
        self.val_env = ProfileEnv(self.profile, "val", seed=cfg.seed + 1, **kw)
        if cfg.loop.eval_requests:
            self.val_env.requests = self.val_env.requests[: cfg.loop.eval_requests]
        self.test_env = ProfileEnv(self.profile, "test", seed=cfg.seed + 2, **kw)
        controller = build_controller(cfg, self.profile, self.train_env.requests)
        log.info("controller: %s, %d parameters", cfg.controller.arch, controller.num_parameters())
        self.method: Method = METHODS[cfg.method](cfg, self.train_env, controller)
        # plateau watches validation utility (x0.5 after 3 points without a better one);
        # cosine and step follow the env-step budget (_set_lr)
        self.scheduler = (
            make_scheduler(
                cfg.loop.scheduler,
                self.method.optimizer,
                total_steps=1,
                plateau_mode="max",
                plateau_patience=3,
            )
            if cfg.loop.scheduler == "plateau"
            else None
        )
        self.history: list[CurvePoint] = []
        self.epoch = 0
        self.steps_in_epoch = 0
        self.next_eval = cfg.loop.eval_every_steps
        # best validation point: {"utility", "metrics", "epoch", "env_steps"} + its weights
        self.best: dict[str, Any] | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.progress_ref = -math.inf  # utility that the next evaluation must beat by min_delta
        self.progress_steps = 0  # env_steps of the last validation point that made progress
        self.wall_offset = 0.0
        self.setup_done = False

    # ------------------------------------------------------------------ evaluation points
    def _evaluate(self, train_logs: dict[str, list[float]], t0: float) -> CurvePoint:
        m = evaluate_policy(self.method.policy("torch"), self.val_env, measure_overhead=False)
        o = m.overall
        opt = self.method.optimizer
        entry = CurvePoint.of(
            m,
            epoch=self.epoch,
            env_steps=int(self.train_env.env_steps),
            wall_s=self.wall_offset + time.perf_counter() - t0,
            counters=dict(self.method.counters),
            timers={k: round(v, 4) for k, v in self.method.timers.items()},
            lr=opt.param_groups[0]["lr"] if opt is not None else None,
            train_logs={k: _finite_mean(v) for k, v in train_logs.items()},
        )
        self.history.append(entry)
        progress = self.best is None or o.utility > self.progress_ref + self.cfg.loop.min_delta
        if self.best is None or o.utility > self.best["utility"]:
            self.best = {
                "utility": o.utility,
                "metrics": o,
                "epoch": self.epoch,
                "env_steps": entry.env_steps,
            }
            # every method, the lookup table included, is selected on validation the same way
            self.best_state = self.method.policy_state()
        if progress:
            self.progress_ref, self.progress_steps = o.utility, entry.env_steps
        return entry

    # ------------------------------------------------------------------ the loop
    def run(self) -> EvalResults:
        """Train, then evaluate on the test split and write every output."""
        train_time = self.fit()
        return self.finish(train_time)

    def fit(self) -> float:
        """Train on the train split, selecting on validation; the test split is not read.

        The run ends on its env-step budget (``--max_env_steps``; the last step may pass it by
        less than one update's worth), or earlier when the method can learn nothing more, an
        epoch cap (``--num_epochs``, data passes) is reached or early stopping fires
        (``--patience_steps``). Validation points lie on one env-step grid for every method:
        env_steps 0 (the untrained policy), then every ``--eval_every_steps``, and the end.
        Leaves the best validation point's policy in the method and returns the training wall
        time (s); that point is ``self.best`` (what tuning optimises).
        """
        cfg, loop = self.cfg, self.cfg.loop
        env = self.train_env
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.run.resume:
            self.load_checkpoint(cfg.run.resume)
        t0 = time.perf_counter()
        if not self.setup_done:
            self.method.setup()
            self.setup_done = True
        if not self.history:
            self._evaluate({}, t0)  # env_steps 0: the untrained policy
        iters = self.method.iterations_per_epoch
        bar = tqdm(
            total=loop.max_env_steps,
            initial=min(env.env_steps, loop.max_env_steps),
            disable=cfg.run.quiet,
            desc=cfg.method,
            unit="env_step",
            unit_scale=True,
        )
        logs: dict[str, list[float]] = {}
        while not self._done():
            before = env.env_steps
            self._set_lr()
            for k, v in self.method.train_step().items():
                logs.setdefault(k, []).append(v)
            self.steps_in_epoch += 1
            if self.steps_in_epoch >= iters:
                self.epoch, self.steps_in_epoch = self.epoch + 1, 0
            bar.update(min(env.env_steps, loop.max_env_steps) - min(before, loop.max_env_steps))
            if env.env_steps >= self.next_eval or self._done():
                entry = self._evaluate(logs, t0)
                logs = {}
                self.next_eval = (
                    env.env_steps // loop.eval_every_steps + 1
                ) * loop.eval_every_steps
                step_scheduler(self.scheduler, entry.utility)  # plateau: on validation points
                bar.set_postfix(utility=f"{entry.utility:.4f}")
                self.save_last(t0)
        bar.close()
        train_time = self.wall_offset + time.perf_counter() - t0
        if self.best_state is not None:
            self.method.load_policy_state(self.best_state)
        return train_time

    def _done(self) -> bool:
        loop = self.cfg.loop
        if self.train_env.env_steps >= loop.max_env_steps or self.method.exhausted:
            return True
        if loop.num_epochs and self.epoch >= loop.num_epochs:
            return True
        if (
            loop.patience_steps
            and self.best is not None
            and self.train_env.env_steps - self.progress_steps >= loop.patience_steps
        ):
            log.info(
                "early stop at %d env_steps: no validation utility %g above %.4f for %d env_steps",
                self.train_env.env_steps,
                loop.min_delta,
                self.progress_ref,
                loop.patience_steps,
            )
            return True
        return False

    def _set_lr(self) -> None:
        """cosine / step schedules follow the env-step budget (plateau: ``step_scheduler``)."""
        opt = self.method.optimizer
        if opt is None:
            return
        factor = lr_factor(
            self.cfg.loop.scheduler,
            self.train_env.env_steps / self.cfg.loop.max_env_steps,
            step_gamma=0.3,
        )
        if factor is not None:
            for group in opt.param_groups:
                group["lr"] = self.cfg.loop.lr * factor

    # ------------------------------------------------------------------ outputs
    def finish(self, train_time: float) -> EvalResults:
        cfg = self.cfg
        from .plots import plot_training_curves

        baselines = evaluate_baselines(self.train_env, self.test_env, seed=cfg.seed)
        raw, fallback = None, None
        if self.method.trains_controller and cfg.run.safe_fallback:
            raw = evaluate_policy(self.method.policy(cfg.run.engine), self.test_env)
            fallback = self.fit_fallback()
        policy = self.method.policy(cfg.run.engine)
        engine = getattr(policy, "engine", None)
        ctrl = evaluate_policy(policy, self.test_env)
        for block in (ctrl, raw):
            if block is not None:
                add_oracle_gap(block, baselines["oracle"])
                add_static_gap_closed(block, baselines)
        results = EvalResults(
            method=cfg.method,
            engine=engine.kind if engine is not None else "table",
            split="test",
            n_test_requests=int(len(self.test_env.requests)),
            n_configs=int(self.profile.n_configs),
            budget_ratios=list(self.test_env.budget_ratios),
            budget_baseline=cfg.data.budget_baseline,
            reward=self.reward.to_dict(),
            env_steps=int(self.train_env.env_steps),
            train_time_s=train_time,
            controller_parameters=self.method.controller.num_parameters(),
            best_epoch=self.best["epoch"] if self.best else None,
            controller=ctrl,
            baselines=baselines,
            raw_controller=raw,
            safe_fallback=fallback,
        )
        val_refs = baselines_val(self)
        stats = TrainingStats(
            method=cfg.method,
            config=cfg.to_dict(),
            history=self.history,
            val_references=val_refs,
            cost_timer=self.method.cost_timer,
            timers=dict(self.method.timers),
            counters=dict(self.method.counters),
            train_time_s=train_time,
            profile=repr(self.profile),
            profile_report=self.profile.report.to_dict(),
        )
        write_record(self.out / STATS_FILE, stats)
        write_record(self.out / EVAL_FILE, results)
        best = {
            "method": cfg.method,
            "controller_state_dict": self.method.controller.state_dict(),
            "controller_config": self.method.controller.config.to_dict(),
            "train_config": cfg.to_dict(),
            "metrics": io.to_json(self.best["metrics"]) if self.best else {},
            "env_steps": int(self.train_env.env_steps),
            "extra": self.method.extra_state() if not self.method.trains_controller else {},
        }
        save_checkpoint(best, self.out / "best_checkpoint.pt")
        if self.method.trains_controller:
            self.method.controller.save_pretrained(self.out / "controller")
        elif (served := self.method.serving_policy()) is not None:
            served.save_pretrained(self.out / LOOKUP_TABLE_DIR)
        io.write_with(
            self.out / "training_curves.png",
            lambda p: plot_training_curves(
                self.history, val_refs, p, title=f"{cfg.method} (validation)"
            ),
        )
        return results

    def fit_fallback(self) -> dict[str, Any]:
        """Attach the safe fallback fitted on validation to the controller (after the
        best-checkpoint selection, which judged the raw controller)."""
        ctrl = self.method.controller
        ctrl.set_fallback(None)
        engine = make_engine(ctrl, "torch")

        def decide(ctx: Contexts, tasks: np.ndarray | None) -> np.ndarray:
            image, text = self.val_env.features(ctx)
            return engine.decide(image, text, ctx.budget_ms.astype(np.float32), task=tasks)

        fallback = fit_fallback(
            decide,
            ctrl.knob_names,
            tuple(ctrl.config.task_types),
            self.train_env,
            self.val_env,
            confidence=FALLBACK_CONFIDENCE,
            seed=self.cfg.seed,
            cells=self.cfg.run.fallback_cells,
        )
        ctrl.set_fallback(fallback)
        return fallback_summary(fallback, FALLBACK_CONFIDENCE)

    # ------------------------------------------------------------------ checkpoints
    def save_last(self, t0: float) -> None:
        m = self.method
        state = {
            "format": STATE_FORMAT,
            "train_config": self.cfg.to_dict(),
            "epoch": self.epoch,
            "steps_in_epoch": self.steps_in_epoch,
            "next_eval": self.next_eval,
            "env_steps": {"train": self.train_env.env_steps},
            "controller_state_dict": m.controller.state_dict(),
            "optimizer": m.optimizer.state_dict() if m.optimizer else {},
            "scheduler": self.scheduler.state_dict() if self.scheduler else {},
            "extra": m.extra_state(),
            "counters": dict(m.counters),
            "timers": dict(m.timers),
            "history": io.to_json(self.history),
            "best": io.to_json(self.best),
            "best_state": self.best_state,
            "progress_ref": self.progress_ref,
            "progress_steps": self.progress_steps,
            "wall_s": self.wall_offset + time.perf_counter() - t0,
            "rng": {
                "torch": torch.get_rng_state(),
                "generator": m.generator.get_state(),
                "numpy_method": m.rng.bit_generator.state,
                "numpy_env": {
                    "train": self.train_env.rng.bit_generator.state,
                    "val": self.val_env.rng.bit_generator.state,
                    "test": self.test_env.rng.bit_generator.state,
                },
                "python": list(random.getstate()[1]),
            },
        }
        save_checkpoint(state, self.out / "last_checkpoint.pt")

    def load_checkpoint(self, path: str | Path) -> None:
        p = Path(path)
        if p.is_dir():
            p = p / "last_checkpoint.pt"
        state = load_checkpoint(p, STATE_FORMAT, what="--resume", map_location=self.cfg.run.device)
        diffs = diff_configs(
            state["train_config"], self.cfg.to_dict(), ("checkpoint", "this run"), skip=RESUME_FREE
        )
        if diffs:
            raise ValueError(
                "--resume: the checkpoint was trained with other settings ("
                + "; ".join(diffs)
                + "): resume with the same ones, or train into "
                "a new --output_dir"
            )
        m = self.method
        m.controller.load_state_dict(state["controller_state_dict"])
        if m.optimizer is not None and state["optimizer"]:
            m.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"]:
            self.scheduler.load_state_dict(state["scheduler"])
        m.setup()
        self.setup_done = True
        m.load_extra_state(state["extra"])
        m.counters.update(state["counters"])
        m.timers.update(state["timers"])
        self.history = [io.from_json(CurvePoint, h) for h in state["history"]]
        best = state["best"]
        if best is not None:
            best["metrics"] = io.from_json(Metrics, best["metrics"])
        self.best = best
        self.best_state = state["best_state"]
        self.progress_ref = float(state["progress_ref"])
        self.progress_steps = int(state["progress_steps"])
        self.epoch = int(state["epoch"])
        self.steps_in_epoch = int(state["steps_in_epoch"])
        self.next_eval = int(state["next_eval"])
        self.wall_offset = float(state["wall_s"])
        self.train_env.env_steps = int(state["env_steps"]["train"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        m.generator.set_state(rng["generator"])
        m.rng.bit_generator.state = rng["numpy_method"]
        for name, env in (
            ("train", self.train_env),
            ("val", self.val_env),
            ("test", self.test_env),
        ):
            env.rng.bit_generator.state = rng["numpy_env"][name]
        random.setstate((3, tuple(rng["python"]), None))


def baselines_val(run: Run) -> dict[str, Metrics]:
    """Validation metrics of the oracle, best-static and full-model baselines (reference lines
    of the curves; the full model's quality is E5's "90% of the full model" yardstick)."""
    res = evaluate_baselines(run.train_env, run.val_env, seed=run.cfg.seed, measure_overhead=False)
    return {k: res[k].overall for k in ("oracle", "best_static", "full")}


def _finite_mean(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def run_training(cfg: TrainConfig) -> EvalResults:
    return Run(cfg).run()
