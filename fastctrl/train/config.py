"""What a training run is configured by: a shared base (data, reward, loop, controller, run)
plus one small config per method, defined beside the method (``fastctrl.train.methods.<m>``).

``python -m fastctrl.train`` builds its CLI from these dataclasses with tyro: every field is one
flag (``--lr``, ``--group_size``...; groups add no prefix), its docstring is the help text and a
``Literal`` type is its list of choices. The method's own flags are the ones of the config its
``--method`` names (``python -m fastctrl.train --method ppo --help`` lists PPO's).
Validation errors name the flag.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import tyro

from ..cli import need, need_at_least
from ..engines import EngineKind
from ..env.bandit import BudgetBaseline
from ..env.reward import Reward, RewardKind, make_reward
from .methods import METHODS, MethodName
from .schedules import SchedulerKind

SyntheticFamily = Literal["default", "noisy"]


@dataclass
class ProfileSource:
    """The profile runs train on: a measured one, or a built-in synthetic one."""

    profile: str | None = None
    """A profile table (.parquet/.csv) with its feature store beside it, or the --output_dir
    of `fastctrl profile` (holding profile.parquet); default: the synthetic profile."""
    synthetic_requests: int = 3500
    """Number of requests of the built-in synthetic profile (when no data is given)."""
    synthetic_family: SyntheticFamily = "default"
    """Which built-in profile: `default` (fastctrl.profile.synthetic) or `noisy` (measured
    quality = the mean of 3 Bernoulli answers, its expected quality kept for judging; another
    grid and other feature dims: fastctrl.profile.synthetic_noisy)."""

    def __post_init__(self) -> None:
        need_at_least(self, 1, "synthetic_requests")


@dataclass
class DataConfig(ProfileSource):
    """Where the profile comes from and how it is split and budgeted."""

    exp5_dir: str | None = None
    """Accuracy directory of the GRPO guide's layout (one JSON per config); needs --exp6_dir."""
    exp6_dir: str | None = None
    """Latency directory of the GRPO guide's layout (one JSON per config)."""
    dataset_name: str = "default"
    """Task type recorded for exp5 samples that do not name one (e.g. text_vqa)."""
    model_path: str | None = None
    """Where the exp5 features come from: a directory of <sample_id>.npz feature files (image,
    text), e.g. written by `python -m fastctrl.profile`; default: <exp5_dir>/features."""
    output_data_path: str | None = None
    """Where the prepared profile (table + feature store) is cached; reused unless
    --force_recompute."""
    force_recompute: bool = False
    """Rebuild the prepared profile and feature store even if a cached one exists."""
    train_split: float = 0.8
    """Share of the non-test requests used for training (the rest validates)."""
    data_seed: int | None = None
    """Seed of the data: the synthetic profile's generation and the train/val/test split of a
    profile without one (default: --seed). Fixed across training seeds, the seeds of a
    comparison measure training variation only."""
    budget_baseline: BudgetBaseline = "global"
    """Budgets are ratio x the full config's latency: `global` (train mean, an absolute SLO as
    a server sees it) or per `request`."""
    missing_configs: Literal["raise", "drop", "impute"] = "raise"
    """A --profile whose requests lack some configs (a sampled sweep): refuse it, drop those
    requests, or impute the missing cells (fastctrl.profile.table.impute_missing: quality = the
    best measured among dominated configs, latency = full-config latency x the median ratio;
    every imputed cell counted and reported)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        need(0 < self.train_split <= 1, f"--train_split must be in (0, 1], got {self.train_split}")
        need(
            (self.exp5_dir is None) == (self.exp6_dir is None),
            "--exp5_dir and --exp6_dir go together",
        )
        need(
            not (self.profile and self.exp5_dir),
            "give --profile or --exp5_dir/--exp6_dir, not both",
        )


@dataclass
class RewardConfig:
    """The reward every method is trained and judged on."""

    kind: Annotated[RewardKind, tyro.conf.arg(name="reward")] = "e5"
    """Training and evaluation reward: e5 (quality - lambda*overshoot) or shaped (GRPO design)."""
    reward_lambda: float = 10.0
    """E5 reward: penalty per unit of relative budget overshoot."""
    reward_alpha: float = 1.0
    """Shaped reward: weight of accuracy."""
    reward_beta: float = 0.5
    """Shaped reward: weight of the sigmoid-smoothed latency penalty."""
    reward_gamma: float = 10.0
    """Shaped reward: weight of the hard budget-violation penalty."""
    reward_delta: float = 0.1
    """Shaped reward: weight of the efficiency bonus."""
    reward_epsilon: float = 0.05
    """Shaped reward: weight of the complexity penalty."""

    def build(self) -> Reward:
        if self.kind == "e5":
            return make_reward("e5", lam=self.reward_lambda)
        return make_reward(
            "shaped",
            alpha=self.reward_alpha,
            beta=self.reward_beta,
            gamma=self.reward_gamma,
            delta=self.reward_delta,
            epsilon=self.reward_epsilon,
        )


@dataclass
class RunBudget:
    """How long a run trains and how often it is validated: the same for every method."""

    max_env_steps: int = 1_000_000
    """The env-step budget: every run ends here (configurations evaluated or profile
    measurements read; the last update may pass it by less than one update's worth)."""
    eval_every_steps: int = 25_000
    """Validation points every this many env_steps, from 0 (the untrained policy): one grid for
    every method."""
    num_epochs: int = 0
    """Optional cap on data passes (one epoch = one pass of updates over the train requests;
    0: none, the env-step budget ends the run)."""

    def __post_init__(self) -> None:
        need_at_least(self, 1, "max_env_steps", "eval_every_steps")
        need_at_least(self, 0, "num_epochs")


@dataclass
class LoopConfig(RunBudget):
    """The optimisation loop every trained method shares."""

    batch_size: int = 64
    """Contexts (request, budget) per update."""
    lr: float = 1e-4
    """Adam learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    max_grad_norm: float = 0.5
    """Gradient clipping (global L2 norm)."""
    scheduler: SchedulerKind = "cosine"
    """Learning-rate schedule: cosine / step follow the env-step budget; plateau halves the rate
    after 3 validation points without a better utility."""
    patience_steps: int = 0
    """Early stopping: end the run after this many env_steps without a validation utility
    min_delta above the best (0: off, every run spends its whole budget)."""
    min_delta: float = 0.002
    """Early stopping: the improvement of validation utility that counts as progress."""
    eval_requests: int = 0
    """Validation requests used at each evaluation point (0: all)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        need_at_least(self, 1, "batch_size")
        need_at_least(self, 0, "patience_steps", "eval_requests")
        need(self.lr > 0, f"--lr must be > 0, got {self.lr}")
        need(self.min_delta >= 0, f"--min_delta must be >= 0, got {self.min_delta}")


def diff_configs(
    a: Any,
    b: Any,
    names: tuple[str, str] = ("a", "b"),
    *,
    skip: tuple[str, ...] = (),
    prefix: str = "",
) -> list[str]:
    """Where two config dicts differ, one ``"key.path: <a> X, <b> Y"`` line per leaf;
    ``skip`` lists dotted paths left out (a group or one field)."""
    if prefix.rstrip(".") in skip:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            x
            for k in sorted(set(a) | set(b))
            for x in diff_configs(a.get(k), b.get(k), names, skip=skip, prefix=f"{prefix}{k}.")
        ]
    return [] if a == b else [f"{prefix.rstrip('.')}: {names[0]} {a!r}, {names[1]} {b!r}"]


def loop_for(method: str, **overrides: Any) -> LoopConfig:
    """The loop config of ``method``: the method's own defaults for shared fields
    (``Method.loop_defaults``, e.g. its learning rate) under explicit ``overrides``."""
    need(method in METHODS, f"--method must be one of {tuple(METHODS)}, got {method!r}")
    return LoopConfig(**{**METHODS[method].loop_defaults, **overrides})


@dataclass
class ControllerArgs:
    """The controller's body (one architecture for every method)."""

    arch: Literal["mlp", "recursive"] = "mlp"
    """Controller body: mlp (served by every engine) or recursive (TinyRecursiveControl core,
    torch engine)."""
    dropout: float = 0.0
    """Dropout in the controller trunk (0 by default: dropout noise between the sampled and the
    updated log-probs slows GRPO on validation)."""

    def __post_init__(self) -> None:
        need(0 <= self.dropout < 1, f"--dropout must be in [0, 1), got {self.dropout}")


@dataclass
class RunConfig:
    """Where a run writes and what it runs on."""

    output_dir: str = "runs/train"
    """Where checkpoints, curves and eval_results.json are written."""
    device: str = "cpu"
    """Torch device for training."""
    threads: int = 1
    """Torch CPU threads (the controller is tiny: one thread is as fast and reproducible)."""
    engine: EngineKind = "auto"
    """Decision engine for the final evaluation."""
    safe_fallback: bool = True
    """After training, keep the controller only at the (task type, budget) cells where
    validation shows it beats the best static config (paired-bootstrap 95% lower bound > 0)
    and serve the static config elsewhere; the table is saved with the controller and every
    engine applies it (needs --budget_baseline global)."""
    fallback_cells: Literal["hierarchical", "task_budget", "budget"] = "hierarchical"
    """Cells of the safe fallback: hierarchical (a (task type, budget) cell keeps the
    controller when its own requests, or the pooled budget's, show the gain and its own do not
    show a loss), task_budget (its own requests only), budget (the task types pooled)."""
    resume: str | None = None
    """A last_checkpoint.pt (or its output_dir) to continue from."""
    quiet: bool = False
    """No progress bar or summary."""

    def __post_init__(self) -> None:
        need_at_least(self, 1, "threads")


@dataclass
class TrainConfig:
    """Train (or build) a fastctrl controller with one of five methods and evaluate it through a
    decision engine on the test split."""

    method: MethodName = "grpo"
    """Training method."""
    seed: int = 0
    """Seeds everything (torch, numpy, python, data splits, env sampling)."""
    data: tyro.conf.OmitArgPrefixes[DataConfig] = field(default_factory=DataConfig)
    """Where the profile comes from and how it is split and budgeted."""
    reward: tyro.conf.OmitArgPrefixes[RewardConfig] = field(default_factory=RewardConfig)
    """The reward every method is trained and judged on."""
    loop: tyro.conf.OmitArgPrefixes[LoopConfig] = field(default_factory=LoopConfig)
    """The optimisation loop every trained method shares (defaults: the method's own)."""
    controller: tyro.conf.OmitArgPrefixes[ControllerArgs] = field(default_factory=ControllerArgs)
    """The controller's body (one architecture for every method)."""
    run: tyro.conf.OmitArgPrefixes[RunConfig] = field(default_factory=RunConfig)
    """Where a run writes and what it runs on."""
    method_args: Any = None
    """The method's own hyper-parameters (``METHODS[method].Config``); default: its defaults."""

    def __post_init__(self) -> None:
        need(
            self.method in METHODS, f"--method must be one of {tuple(METHODS)}, got {self.method!r}"
        )
        config_cls = METHODS[self.method].Config
        if self.method_args is None:
            self.method_args = config_cls()
        need(
            isinstance(self.method_args, config_cls),
            f"method_args of --method {self.method} must be a {config_cls.__name__}, got "
            f"{type(self.method_args).__name__}",
        )

    @classmethod
    def for_experiment(
        cls,
        method: str,
        seed: int,
        source: ProfileSource,
        data_seed: int,
        budget: RunBudget,
        run: RunConfig,
    ) -> TrainConfig:
        """One run of a multi-run experiment (the E5 comparison, a tuning study): every run
        reads the same profile, drawn and split with the same ``data_seed``, and trains on the
        same env-step ``budget`` under the method's own loop defaults (e.g. its learning rate)."""
        return cls(
            method=method,
            seed=seed,
            data=DataConfig(**dataclasses.asdict(source), data_seed=data_seed),
            loop=loop_for(method, **dataclasses.asdict(budget)),
            run=run,
        )

    @property
    def data_seed(self) -> int:
        """The seed the data is drawn and split with (``--data_seed``, else ``--seed``)."""
        return self.seed if self.data.data_seed is None else self.data.data_seed

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (checkpoints, E5 run reuse)."""
        from ..io import from_json

        method = d.get("method")
        need(method in METHODS, f"train config names an unknown method {method!r}")
        args = from_json(METHODS[method].Config, d.get("method_args") or {}, "method_args")
        return dataclasses.replace(from_json(cls, {**d, "method_args": None}), method_args=args)
