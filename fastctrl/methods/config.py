"""Hyper-parameters of every training method, in one dataclass; the CLI is generated from it."""

from __future__ import annotations

from dataclasses import dataclass

METHOD_NAMES = ("lut", "supervised", "ppo", "dpo", "grpo")
SCHEDULERS = ("cosine", "step", "plateau", "none")


@dataclass
class TrainConfig:
    method: str = "grpo"
    """Training method: lut | supervised | ppo | dpo | grpo."""
    seed: int = 0
    """Seeds everything (torch, numpy, python, data splits, env sampling)."""

    # ---- data
    profile: str | None = None
    """A profile table (.parquet/.csv) with its feature store beside it; default: synthetic."""
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
    synthetic_requests: int = 3500
    """Number of requests of the built-in synthetic profile (when no data is given)."""
    train_split: float = 0.8
    """Share of the non-test requests used for training (the rest validates)."""
    budget_baseline: str = "global"
    """Budgets are ratio x the full config's latency: per `request` or `global` (train mean)."""

    # ---- reward
    reward: str = "e5"
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

    # ---- controller
    arch: str = "mlp"
    """Controller body: mlp (served by every engine) or recursive (TinyRecursiveControl core,
    torch engine)."""

    # ---- optimisation (shared)
    batch_size: int = 64
    """Contexts (request, budget) per update."""
    num_epochs: int = 100
    """Epochs; one epoch = one pass of batch_size-context updates over the train requests."""
    lr: float = 1e-4
    """Adam learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    dropout: float = 0.0
    """Dropout in the controller trunk (0 by default: dropout noise between the sampled and the
    updated log-probs slowed GRPO, validation utility 0.712 with 0.1 vs 0.724 with 0 after
    ~1500 updates on the synthetic profile)."""
    max_grad_norm: float = 0.5
    """Gradient clipping (global L2 norm)."""
    scheduler: str = "cosine"
    """Learning-rate schedule over epochs: cosine | step | plateau | none."""
    patience: int = 10
    """Early stopping: evaluations without a validation utility min_delta above the best
    before stopping."""
    min_delta: float = 0.002
    """Early stopping: the improvement of validation utility that counts as progress."""
    eval_every_steps: int = 0
    """Evaluate on validation every this many env_steps (0: once per epoch)."""
    max_env_steps: int = 0
    """Stop once this many configurations have been evaluated (0: no limit)."""
    eval_requests: int = 0
    """Validation requests used at each evaluation point (0: all)."""

    # ---- GRPO
    group_size: int = 8
    """GRPO: configs sampled per (request, budget) group."""
    grpo_std_scaling: bool = False
    """GRPO: divide group advantages by the group std. Off by default (R - mean, as in the GRPO
    design): with the E5 reward's unbounded overshoot penalty, per-group std scaling prefers
    configs that usually win by a little and sometimes overshoot by a lot (default synthetic
    run, test split: 9.0% SLO violation and utility 0.661 with it, 1.1% and 0.740 without)."""
    clip_coef: float = 0.2
    """PPO/GRPO: clipping of the probability ratio."""
    kl_coef: float = 0.0
    """GRPO: weight of the KL penalty to the reference (initial) policy."""
    grpo_ent_coef: float = 0.03
    """GRPO: entropy bonus. Without it the three factorised heads collapse onto one config
    within a few hundred updates and groups stop carrying signal (zero reward spread)."""
    update_epochs: int = 4
    """GRPO/DPO: optimisation passes over each batch of samples."""

    # ---- PPO
    ent_coef: float = 0.01
    """PPO: entropy bonus (CleanRL default)."""
    vf_coef: float = 0.5
    """PPO: value-loss weight (CleanRL default)."""
    num_minibatches: int = 4
    """PPO: minibatches per rollout (CleanRL default)."""
    rollout_contexts: int = 256
    """PPO: contexts per rollout (one sampled config each)."""
    ppo_update_epochs: int = 4
    """PPO: optimisation passes over each rollout (CleanRL default)."""

    # ---- DPO
    dpo_beta: float = 0.1
    """DPO: inverse temperature of the preference loss."""
    dpo_samples: int = 4
    """DPO: configs sampled per (request, budget); the best and worst form a pair."""
    dpo_reference: str = "initial"
    """DPO: frozen reference policy: initial | supervised (a warm start on oracle labels)."""

    # ---- supervised
    class_balance: str = "weighted_loss"
    """Supervised: none | weighted_loss (inverse label frequency) | weighted_sampling."""
    label_requests: int = 0
    """Supervised/LUT: train requests whose whole profile row is read (0: all)."""

    # ---- LUT
    lut_mode: str = "table"
    """LUT: table ((task_type, budget bin) -> config) or knn (nearest requests in feature
    space)."""
    lut_budget_bins: int = 16
    """LUT: number of log-spaced budget bins."""
    lut_neighbors: int = 16
    """LUT (knn): neighbours averaged per decision."""

    # ---- infrastructure
    output_dir: str = "runs/train"
    """Where checkpoints, curves and eval_results.json are written."""
    device: str = "cpu"
    """Torch device for training."""
    threads: int = 1
    """Torch CPU threads (the controller is tiny: one thread is as fast and reproducible)."""
    engine: str = "auto"
    """Decision engine for the final evaluation: auto | torch | triton | int8."""
    resume: str | None = None
    """A last_checkpoint.pt (or its output_dir) to continue from."""
    quiet: bool = False
    """No progress bar or summary."""

    def validate(self) -> None:
        from ..engines import ENGINE_KINDS

        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(msg)

        need(self.method in METHOD_NAMES, f"--method must be one of {METHOD_NAMES}, got "
                                          f"{self.method!r}")
        need(self.scheduler in SCHEDULERS, f"--scheduler must be one of {SCHEDULERS}")
        need(self.reward in ("e5", "shaped"), "--reward must be e5 or shaped")
        need(self.budget_baseline in ("request", "global"),
             "--budget_baseline must be request or global")
        need(self.engine in ENGINE_KINDS, f"--engine must be one of {ENGINE_KINDS}")
        need(self.class_balance in ("none", "weighted_loss", "weighted_sampling"),
             "--class_balance must be none, weighted_loss or weighted_sampling")
        need(self.lut_mode in ("table", "knn"), "--lut_mode must be table or knn")
        need(self.arch in ("mlp", "recursive"), "--arch must be mlp or recursive")
        need(self.dpo_reference in ("initial", "supervised"),
             "--dpo_reference must be initial or supervised")
        for name in ("batch_size", "num_epochs", "group_size", "update_epochs", "dpo_samples",
                     "num_minibatches", "rollout_contexts", "ppo_update_epochs", "synthetic_requests",
                     "lut_budget_bins", "lut_neighbors", "patience", "threads"):
            need(getattr(self, name) >= 1, f"--{name} must be >= 1, got {getattr(self, name)}")
        for name in ("eval_every_steps", "max_env_steps", "eval_requests", "label_requests"):
            need(getattr(self, name) >= 0, f"--{name} must be >= 0")
        need(self.lr > 0, f"--lr must be > 0, got {self.lr}")
        need(self.min_delta >= 0, f"--min_delta must be >= 0, got {self.min_delta}")
        need(0 < self.train_split <= 1, "--train_split must be in (0, 1]")
        need(0 <= self.dropout < 1, "--dropout must be in [0, 1)")
        need(self.group_size >= 2 or self.method != "grpo", "--group_size must be >= 2")
        need(self.dpo_samples >= 2 or self.method != "dpo", "--dpo_samples must be >= 2")
        need((self.exp5_dir is None) == (self.exp6_dir is None),
             "--exp5_dir and --exp6_dir go together")
        need(not (self.profile and self.exp5_dir), "give --profile or --exp5_dir/--exp6_dir, "
                                                   "not both")
