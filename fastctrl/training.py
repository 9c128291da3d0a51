"""The training loop every method shares: data, seeding, evaluation points, early stopping,
schedules, checkpoints (resumable), and the outputs of ``python -m fastctrl.train``.

Outputs in ``output_dir`` (each written atomically):
  best_checkpoint.pt     controller_state_dict + controller/train config + metrics
                         (``torch.load(..., weights_only=True)`` loads it)
  last_checkpoint.pt     everything needed to ``--resume`` (optimizer, RNG states, history)
  controller/            the best controller via ``save_pretrained`` (config.json + safetensors)
  training_stats.json    the curves: one entry per evaluation point
  training_curves.png    validation utility / SLO violation / quality / p95 vs env_steps
  eval_results.json      test-split metrics per budget and overall, through the decision
                         engine, beside the random / full / best-static / oracle baselines
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from . import io
from .data.profile import Profile
from .env import ProfileEnv
from .evaluate import add_oracle_gap, evaluate_baselines, evaluate_policy
from .methods import METHODS
from .methods.base import Method
from .methods.config import TrainConfig
from .policy import Controller, ControllerConfig
from .reward import E5Reward, Reward, ShapedReward

log = logging.getLogger(__name__)

CURVE_KEYS = ("utility", "quality_mean", "latency_p95", "slo_violation_rate", "reward_std")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_reward_from(cfg: TrainConfig) -> Reward:
    if cfg.reward == "e5":
        return E5Reward(cfg.reward_lambda)
    return ShapedReward(cfg.reward_alpha, cfg.reward_beta, cfg.reward_gamma, cfg.reward_delta,
                        cfg.reward_epsilon)


def load_profile(cfg: TrainConfig) -> Profile:
    """The profile a run trains on: --profile, or exp5/exp6 (+ features), or the synthetic one."""
    if cfg.profile:
        return Profile.load(cfg.profile, seed=cfg.seed, train_split=cfg.train_split,
                            require_features=True)
    if cfg.exp5_dir:
        from .data.importers import import_profile

        prof = import_profile(cfg.exp5_dir, cfg.exp6_dir, dataset_name=cfg.dataset_name,
                              features_dir=cfg.model_path, output_path=cfg.output_data_path,
                              force_recompute=cfg.force_recompute, seed=cfg.seed,
                              train_split=cfg.train_split)
        if prof.features is None:
            raise FileNotFoundError(
                "the exp5/exp6 profile has no features: put <sample_id>.npz files (arrays "
                "'image', 'text') in <exp5_dir>/features or pass --model_path DIR")
        return prof
    from .data.synthetic import synthetic_profile

    return synthetic_profile(cfg.synthetic_requests, seed=cfg.seed,
                             train_split=cfg.train_split)


def build_controller(cfg: TrainConfig, profile: Profile, train_idx: np.ndarray) -> Controller:
    feats = profile.features
    assert feats is not None
    ref = float(profile.mean_latency[train_idx, profile.full_index].mean())
    ccfg = ControllerConfig(image_dim=feats.image_dim, text_dim=feats.text_dim,
                            grids=profile.space.to_dict(), ref_latency_ms=ref,
                            dropout=cfg.dropout, arch=cfg.arch)
    controller = Controller(ccfg).to(cfg.device)
    controller.fit_input_normalization(feats.image[train_idx], feats.text[train_idx])
    return controller


def _scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer | None):
    if optimizer is None or cfg.scheduler == "none":
        return None
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.num_epochs)
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, cfg.num_epochs // 3),
                                               gamma=0.3)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5,
                                                      patience=3)


class Run:
    """One training run; ``run()`` returns eval results. Resumable from last_checkpoint.pt."""

    def __init__(self, cfg: TrainConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
        self.profile = load_profile(cfg)
        if self.profile.features is None:
            raise ValueError("the profile has no feature store; controllers need features")
        self.reward = make_reward_from(cfg)
        kw = dict(reward=self.reward, baseline=cfg.budget_baseline)
        self.train_env = ProfileEnv(self.profile, "train", seed=cfg.seed, **kw)
        self.val_env = ProfileEnv(self.profile, "val", seed=cfg.seed + 1, **kw)
        if cfg.eval_requests:
            self.val_env.requests = self.val_env.requests[: cfg.eval_requests]
        self.test_env = ProfileEnv(self.profile, "test", seed=cfg.seed + 2, **kw)
        controller = build_controller(cfg, self.profile, self.train_env.requests)
        log.info("controller: %s, %d parameters", cfg.arch, controller.num_parameters())
        self.method: Method = METHODS[cfg.method](cfg, self.train_env, controller)
        self.scheduler = _scheduler(cfg, self.method.optimizer)
        self.history: list[dict[str, Any]] = []
        self.epoch = 0
        self.best: dict[str, Any] | None = None  # {"utility", "state", "metrics", ...}
        self.bad_evals = 0
        self.progress_ref = -math.inf  # utility that the next evaluation must beat by min_delta
        self.wall_offset = 0.0
        self.setup_done = False

    # ------------------------------------------------------------------ evaluation points
    def _evaluate(self, train_logs: dict[str, list[float]], t0: float) -> dict[str, Any]:
        m = evaluate_policy(self.method.policy("torch"), self.val_env, measure_overhead=False)
        o = m["overall"]
        entry: dict[str, Any] = {
            "epoch": self.epoch,
            "env_steps": int(self.train_env.env_steps),
            "wall_s": self.wall_offset + time.perf_counter() - t0,
            **{k: o[k] for k in CURVE_KEYS},
            "per_budget": {b: {k: v[k] for k in ("utility", "quality_mean",
                                                  "slo_violation_rate")}
                           for b, v in m["per_budget"].items()},
            **self.method.counters,
            **{k: round(v, 4) for k, v in self.method.timers.items()},
        }
        if self.method.optimizer is not None:
            entry["lr"] = self.method.optimizer.param_groups[0]["lr"]
        for k, vals in train_logs.items():
            finite = [v for v in vals if math.isfinite(v)]
            entry[f"train_{k}"] = float(np.mean(finite)) if finite else None
        self.history.append(entry)
        progress = self.best is None or o["utility"] > self.progress_ref + self.cfg.min_delta
        if self.best is None or o["utility"] > self.best["utility"]:
            self.best = {"utility": o["utility"], "metrics": o, "epoch": self.epoch,
                         "env_steps": entry["env_steps"],
                         "state": copy.deepcopy(self.method.controller.state_dict())}
        if progress:
            self.progress_ref = o["utility"]
            self.bad_evals = 0
        else:
            self.bad_evals += 1
        return entry

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.resume:
            self.load_checkpoint(cfg.resume)
        t0 = time.perf_counter()
        if not self.setup_done:
            self.method.setup()
            self.setup_done = True
        iters = self.method.iterations_per_epoch if self.method.trains_controller else 0
        n_epochs = cfg.num_epochs if self.method.trains_controller else 1
        next_eval = (self.train_env.env_steps // cfg.eval_every_steps + 1) * \
            cfg.eval_every_steps if cfg.eval_every_steps else 0
        bar = tqdm(total=n_epochs, initial=self.epoch, disable=cfg.quiet,
                   desc=f"{cfg.method}", unit="epoch")
        stop = False
        if not self.method.trains_controller and not self.history:
            self._evaluate({}, t0)
        while self.epoch < n_epochs and not stop and self.method.trains_controller:
            logs: dict[str, list[float]] = {}
            evaluated = False
            n_evals = len(self.history)
            for _ in range(iters):
                for k, v in self.method.train_step().items():
                    logs.setdefault(k, []).append(v)
                if cfg.eval_every_steps and self.train_env.env_steps >= next_eval:
                    self._evaluate(logs, t0)
                    evaluated = True
                    logs = {}
                    next_eval += cfg.eval_every_steps * max(
                        1, math.ceil((self.train_env.env_steps - next_eval + 1)
                                     / cfg.eval_every_steps))
                if cfg.max_env_steps and self.train_env.env_steps >= cfg.max_env_steps:
                    stop = True
                    break
            self.epoch += 1
            # offline methods spend their env_steps up front: without new steps they are
            # evaluated once per epoch, like every method without eval_every_steps
            if not cfg.eval_every_steps or stop or not evaluated and self._steps_stalled():
                self._evaluate(logs, t0)
            if self.scheduler is not None:
                if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    if len(self.history) > n_evals:  # only on a new validation result
                        self.scheduler.step(self.history[-1]["utility"])
                else:
                    self.scheduler.step()
            if self.bad_evals >= cfg.patience:
                log.info("early stop at epoch %d: no better validation utility in %d "
                         "evaluations", self.epoch, cfg.patience)
                stop = True
            bar.update(1)
            if self.history:
                bar.set_postfix(utility=f"{self.history[-1]['utility']:.4f}",
                                steps=self.train_env.env_steps)
            self.save_last(t0)
        bar.close()
        if self.method.trains_controller and (not self.history or not self._steps_stalled()):
            self._evaluate({}, t0)  # the curve always ends where training ended
        train_time = self.wall_offset + time.perf_counter() - t0
        if self.best is not None and self.method.trains_controller:
            self.method.controller.load_state_dict(self.best["state"])
        return self.finish(train_time)

    def _steps_stalled(self) -> bool:
        """True before the first evaluation, or when the last one saw the current env_steps."""
        return not self.history or self.history[-1]["env_steps"] == self.train_env.env_steps

    # ------------------------------------------------------------------ outputs
    def finish(self, train_time: float) -> dict[str, Any]:
        cfg = self.cfg
        from .plots import plot_training_curves

        policy = self.method.policy(cfg.engine)
        engine = getattr(policy, "engine", None)
        ctrl = evaluate_policy(policy, self.test_env)
        baselines = evaluate_baselines(self.train_env, self.test_env, seed=cfg.seed)
        add_oracle_gap(ctrl, baselines["oracle"])
        results = {
            "method": cfg.method,
            "engine": engine.kind if engine is not None else "table",
            "split": "test",
            "n_test_requests": int(len(self.test_env.requests)),
            "n_configs": int(self.profile.n_configs),
            "budget_ratios": list(self.test_env.budget_ratios),
            "budget_baseline": cfg.budget_baseline,
            "reward": self.reward.to_dict(),
            "env_steps": int(self.train_env.env_steps),
            "train_time_s": train_time,
            "controller_parameters": self.method.controller.num_parameters(),
            "best_epoch": self.best["epoch"] if self.best else None,
            "controller": ctrl,
            "baselines": baselines,
        }
        val_refs = baselines_val(self)
        stats = {"method": cfg.method, "config": dataclasses.asdict(cfg),
                 "history": self.history, "val_references": val_refs,
                 "timers": self.method.timers,
                 "counters": self.method.counters, "train_time_s": train_time,
                 "profile": repr(self.profile), "profile_report": self.profile.report.to_dict()}
        io.write_json(self.out / "training_stats.json", _jsonable(stats))
        io.write_json(self.out / "eval_results.json", _jsonable(results))
        best = {
            "method": cfg.method,
            "controller_state_dict": self.method.controller.state_dict(),
            "controller_config": self.method.controller.config.to_dict(),
            "train_config": dataclasses.asdict(cfg),
            "metrics": _jsonable(self.best["metrics"]) if self.best else {},
            "env_steps": int(self.train_env.env_steps),
            "extra": self.method.extra_state() if not self.method.trains_controller else {},
        }
        io.write_with(self.out / "best_checkpoint.pt", lambda p: torch.save(best, p))
        if self.method.trains_controller:
            self.method.controller.save_pretrained(self.out / "controller")
        io.write_with(self.out / "training_curves.png",
                      lambda p: plot_training_curves(self.history, val_refs, p,
                                                     title=f"{cfg.method} (validation)"))
        return results

    # ------------------------------------------------------------------ checkpoints
    def save_last(self, t0: float) -> None:
        m = self.method
        state = {
            "format": "fastctrl-train-state",
            "train_config": dataclasses.asdict(self.cfg),
            "epoch": self.epoch,
            "env_steps": {"train": self.train_env.env_steps},
            "controller_state_dict": m.controller.state_dict(),
            "optimizer": m.optimizer.state_dict() if m.optimizer else {},
            "scheduler": self.scheduler.state_dict() if self.scheduler else {},
            "extra": m.extra_state(),
            "counters": dict(m.counters),
            "timers": dict(m.timers),
            "history": _jsonable(self.history),
            "best": self.best,
            "bad_evals": self.bad_evals,
            "progress_ref": self.progress_ref,
            "wall_s": self.wall_offset + time.perf_counter() - t0,
            "rng": {
                "torch": torch.get_rng_state(),
                "generator": m.generator.get_state(),
                "numpy_method": m.rng.bit_generator.state,
                "numpy_env": {"train": self.train_env.rng.bit_generator.state,
                              "val": self.val_env.rng.bit_generator.state,
                              "test": self.test_env.rng.bit_generator.state},
                "python": list(random.getstate()[1]),
            },
        }
        io.write_with(self.out / "last_checkpoint.pt", lambda p: torch.save(state, p))

    def load_checkpoint(self, path: str | Path) -> None:
        p = Path(path)
        if p.is_dir():
            p = p / "last_checkpoint.pt"
        if not p.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {p}")
        try:
            state = torch.load(p, weights_only=True, map_location=self.cfg.device)
        except Exception as e:  # torch raises several types for a bad file
            raise ValueError(f"--resume: {p} is not a readable checkpoint: {e}") from e
        if not isinstance(state, dict) or state.get("format") != "fastctrl-train-state":
            raise ValueError(f"--resume: {p} is not a fastctrl last_checkpoint.pt")
        saved = state["train_config"]
        for key in ("method", "seed", "profile", "synthetic_requests", "batch_size"):
            if saved.get(key) != getattr(self.cfg, key):
                raise ValueError(f"--resume: checkpoint was trained with {key}="
                                 f"{saved.get(key)!r}, this run has {getattr(self.cfg, key)!r}")
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
        self.history = list(state["history"])
        self.best = state["best"]
        self.bad_evals = int(state["bad_evals"])
        self.progress_ref = float(state["progress_ref"])
        self.epoch = int(state["epoch"])
        self.wall_offset = float(state["wall_s"])
        self.train_env.env_steps = int(state["env_steps"]["train"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        m.generator.set_state(rng["generator"])
        m.rng.bit_generator.state = rng["numpy_method"]
        for name, env in (("train", self.train_env), ("val", self.val_env),
                          ("test", self.test_env)):
            env.rng.bit_generator.state = rng["numpy_env"][name]
        random.setstate((3, tuple(rng["python"]), None))


def baselines_val(run: Run) -> dict[str, dict[str, float]]:
    """Validation metrics of the oracle, best-static and full-model baselines (reference lines
    of the curves; the full model's quality is E5's "90% of the full model" yardstick)."""
    res = evaluate_baselines(run.train_env, run.val_env, seed=run.cfg.seed,
                             measure_overhead=False)
    return {k: res[k]["overall"] for k in ("oracle", "best_static", "full")}


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items() if k != "state"}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, torch.Tensor):
        return x.tolist()
    return x


def run_training(cfg: TrainConfig) -> dict[str, Any]:
    return Run(cfg).run()
