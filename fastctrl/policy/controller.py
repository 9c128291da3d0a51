"""The controller: pooled image + pooled text features + an encoded budget -> one choice per knob.

Architecture (``arch="mlp"``, the one every training method and every decision engine shares)::

    x_img  [B, image_dim] --standardise--> Linear(image_dim, image_proj_dim) -> ReLU -> h_img
    x_txt  [B, text_dim]  --standardise--> Linear(text_dim,  text_proj_dim)  -> ReLU -> h_txt
    budget [B] (ms) -> b = budget / ref_latency_ms
                    -> enc  (sinusoidal: [sin(ln(b) w), cos(ln(b) w)]; linear: [b])
    z = [h_img, h_txt, enc] -> (Linear(., hidden) -> ReLU -> Dropout) x trunk_layers
    logits_k = Linear(hidden, |grid_k|)(z)   for each knob k

The per-feature standardisation (mean/std buffers, fitted on training features) is part of the
model so that deployed engines see exactly what training saw; engines fold it into the first
projection. The sinusoidal encoding works on the log of the normalised budget: latency is
multiplicative in what a request costs, so "budget over this request's cost" becomes a
difference the first layer can form, and budgets from 0.1x to 10x the reference get equal
resolution. With the defaults this is 504,849 parameters.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import io
from ..space import DEFAULT_GRIDS, ActionSpace
from .fallback import FALLBACK_FILE, SafeFallback

FORMAT_NAME = "fastctrl-controller"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class ControllerConfig:
    """Everything needed to rebuild a :class:`Controller`; stored as ``config.json``."""

    image_dim: int = 768
    """Pooled image feature size (vision CLS / mean of vision tokens)."""
    text_dim: int = 2048
    """Pooled text feature size (mean of the text embeddings)."""
    grids: dict[str, list[int]] = field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_GRIDS.items()}
    )
    """Knob name -> ascending grid of values; the order fixes the decision columns."""
    budget_encoding: str = "sinusoidal"
    """``sinusoidal`` (``budget_dim`` features of ln(budget/ref)) or ``linear`` (one feature:
    budget/ref)."""
    budget_dim: int = 32
    """Size of the sinusoidal budget encoding (even). Ignored for ``linear``."""
    ref_latency_ms: float = 100.0
    """Budgets are divided by this before encoding; set it to the full model's latency."""
    budget_min_freq: float = 0.1
    """Lowest angular frequency of the sinusoidal encoding (radians per unit of ln budget):
    0.1 keeps sin() near-linear over budgets from 0.05x to 20x the reference."""
    budget_max_freq: float = 10.0
    """Highest angular frequency (radians per unit of ln budget): a 5% budget change turns
    it by 0.5 rad."""
    image_proj_dim: int = 128
    """Width of the light image projection."""
    text_proj_dim: int = 128
    """Width of the light text projection."""
    hidden_dim: int = 256
    """Trunk width."""
    trunk_layers: int = 2
    """Number of Linear+ReLU trunk layers."""
    dropout: float = 0.1
    """Dropout after each trunk layer (training only)."""
    arch: str = "mlp"
    """Controller body: ``mlp`` (what the fused engines implement) or ``recursive`` (the
    TinyRecursiveControl core refining the logits over cycles; torch engine only)."""
    recursive_outer_cycles: int = 3
    """``recursive``: answer refinements (each re-reads the current logits)."""
    recursive_inner_cycles: int = 2
    """``recursive``: latent updates per outer cycle."""
    task_types: list[str] = field(default_factory=list)
    """Task types the controller takes as an input (e.g. ``["chart", "ocr", ...]``): a learned
    vector per task added to the text projection (slot 0 is "unknown", for a request whose task
    is not known or not in this list); empty: no task input."""

    def __post_init__(self) -> None:
        for name in (
            "image_dim",
            "text_dim",
            "image_proj_dim",
            "text_proj_dim",
            "hidden_dim",
            "trunk_layers",
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"ControllerConfig.{name} must be a positive int, got {v!r}")
        if self.budget_encoding not in ("sinusoidal", "linear"):
            raise ValueError(
                "ControllerConfig.budget_encoding must be 'sinusoidal' or 'linear', "
                f"got {self.budget_encoding!r}"
            )
        if self.budget_encoding == "sinusoidal" and (
            self.budget_dim < 2 or self.budget_dim % 2 != 0
        ):
            raise ValueError(
                f"ControllerConfig.budget_dim must be an even int >= 2, got {self.budget_dim!r}"
            )
        if not (math.isfinite(self.ref_latency_ms) and self.ref_latency_ms > 0):
            raise ValueError(
                f"ControllerConfig.ref_latency_ms must be a positive finite number of ms, "
                f"got {self.ref_latency_ms!r}"
            )
        if not 0 < self.budget_min_freq <= self.budget_max_freq:
            raise ValueError(
                "ControllerConfig needs 0 < budget_min_freq <= budget_max_freq, got "
                f"{self.budget_min_freq!r}, {self.budget_max_freq!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ControllerConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.arch not in ("mlp", "recursive"):
            raise ValueError(
                f"ControllerConfig.arch must be 'mlp' or 'recursive', got {self.arch!r}"
            )
        for name in ("recursive_outer_cycles", "recursive_inner_cycles"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"ControllerConfig.{name} must be a positive int, got {v!r}")
        ActionSpace(self.grids)  # validates the grids
        if len(set(self.task_types)) != len(self.task_types) or not all(
            isinstance(t, str) and t for t in self.task_types
        ):
            raise ValueError(
                "ControllerConfig.task_types must be distinct non-empty strings, "
                f"got {self.task_types!r}"
            )

    @property
    def space(self) -> ActionSpace:
        return ActionSpace(self.grids)

    @property
    def n_task_slots(self) -> int:
        """Task inputs: "unknown" + each known task type (0 without task input)."""
        return len(self.task_types) + 1 if self.task_types else 0

    def task_index(self, task_types: Any) -> np.ndarray:
        """int64 slots of task names (a name or a sequence; ``None`` or an unknown name -> 0)."""
        if task_types is None or isinstance(task_types, str):
            task_types = [task_types]
        lookup = {t: i + 1 for i, t in enumerate(self.task_types)}
        return np.asarray(
            [lookup.get(t, 0) if isinstance(t, str) else 0 for t in task_types], dtype=np.int64
        )

    @property
    def encoding_dim(self) -> int:
        return self.budget_dim if self.budget_encoding == "sinusoidal" else 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ControllerConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(
                f"unknown ControllerConfig fields {sorted(unknown)}; known fields are "
                f"{sorted(known)}"
            )
        return cls(**d)


def budget_frequencies(cfg: ControllerConfig) -> torch.Tensor:
    """Angular frequencies of the sinusoidal encoding, geometric from min to max."""
    half = cfg.budget_dim // 2
    if half == 1:
        return torch.tensor([cfg.budget_min_freq], dtype=torch.float32)
    return torch.logspace(
        math.log10(cfg.budget_min_freq),
        math.log10(cfg.budget_max_freq),
        half,
        dtype=torch.float64,
    ).to(torch.float32)


def encode_budget(
    budget_ms: torch.Tensor, cfg: ControllerConfig, freqs: torch.Tensor | None = None
) -> torch.Tensor:
    """``[B]`` budgets in ms -> ``[B, encoding_dim]`` features (see module docstring)."""
    b = budget_ms.to(torch.float32) / cfg.ref_latency_ms
    if cfg.budget_encoding == "linear":
        return b[:, None]
    if freqs is None:
        freqs = budget_frequencies(cfg).to(b.device)
    angles = torch.log(b)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def _as_batch(x: Any, name: str, dim: int, device: torch.device) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape [B, {dim}], got {list(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return x.to(device=device, dtype=torch.float32)


def _as_budget(budget_ms: Any, batch: int, device: torch.device) -> torch.Tensor:
    if isinstance(budget_ms, (int, float)) and not isinstance(budget_ms, bool):
        b = torch.full((batch,), float(budget_ms), dtype=torch.float32, device=device)
    else:
        if isinstance(budget_ms, np.ndarray):
            budget_ms = torch.from_numpy(budget_ms)
        if not isinstance(budget_ms, torch.Tensor):
            raise TypeError(
                f"budget_ms must be a number, numpy array or tensor, got {type(budget_ms).__name__}"
            )
        b = budget_ms.to(device=device, dtype=torch.float32).reshape(-1)
        if b.numel() == 1 and batch != 1:
            b = b.expand(batch)
        if b.numel() != batch:
            raise ValueError(
                f"budget_ms must be a scalar or have one entry per request ({batch}), "
                f"got {b.numel()} entries"
            )
    if not torch.isfinite(b).all() or (b <= 0).any():
        raise ValueError("budget_ms must be finite and > 0 (milliseconds)")
    return b


def _as_task(task: Any, batch: int, n_slots: int, device: torch.device) -> torch.Tensor:
    if task is None:
        return torch.zeros(batch, dtype=torch.long, device=device)
    t = torch.as_tensor(task, device=device).reshape(-1)
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise TypeError(f"task must hold integer task slots, got {t.dtype}")
    if t.numel() == 1 and batch != 1:
        t = t.expand(batch)
    if t.numel() != batch:
        raise ValueError(f"task must be one slot or one per request ({batch}), got {t.numel()}")
    if (t < 0).any() or (t >= n_slots).any():
        raise ValueError(f"task slots must be in [0, {n_slots}) (0: unknown)")
    return t.long()


class Controller(nn.Module):
    """Three-head (one head per knob) MLP policy shared by every training method."""

    def __init__(self, config: ControllerConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ControllerConfig()
        self.space = config.space
        self.image_proj = nn.Linear(config.image_dim, config.image_proj_dim)
        self.text_proj = nn.Linear(config.text_dim, config.text_proj_dim)
        in_dim = config.image_proj_dim + config.text_proj_dim + config.encoding_dim
        if config.arch == "recursive":
            from .recursive import RecursiveRefiner

            self.refiner = RecursiveRefiner(
                in_dim,
                sum(self.space.sizes),
                latent_dim=config.hidden_dim // 2,
                hidden_dim=config.hidden_dim,
                num_outer_cycles=config.recursive_outer_cycles,
                num_inner_cycles=config.recursive_inner_cycles,
            )
        else:
            layers: list[nn.Module] = []
            for _ in range(config.trunk_layers):
                layers += [
                    nn.Linear(in_dim, config.hidden_dim),
                    nn.ReLU(),
                    nn.Dropout(config.dropout),
                ]
                in_dim = config.hidden_dim
            self.trunk = nn.Sequential(*layers)
            self.heads = nn.ModuleDict(
                {k.name: nn.Linear(config.hidden_dim, len(k)) for k in self.space.knobs}
            )
        if config.n_task_slots:
            # zero-initialised: an untrained controller ignores the task, as without it
            self.task_embed = nn.Embedding(config.n_task_slots, config.text_proj_dim)
            nn.init.zeros_(self.task_embed.weight)
        self.register_buffer("image_mean", torch.zeros(config.image_dim))
        self.register_buffer("image_std", torch.ones(config.image_dim))
        self.register_buffer("text_mean", torch.zeros(config.text_dim))
        self.register_buffer("text_std", torch.ones(config.text_dim))
        freqs = (
            budget_frequencies(config)
            if config.budget_encoding == "sinusoidal"
            else (torch.zeros(0))
        )
        self.register_buffer("budget_freqs", freqs)
        self.fallback: SafeFallback | None = None
        """The safe-fallback table every engine applies after its argmax (fitted after
        training, :mod:`fastctrl.policy.fallback`); ``None``: the raw decisions."""

    def set_fallback(self, fallback: SafeFallback | None) -> None:
        """Attach (or with ``None`` remove) the safe-fallback table; it must name this
        controller's knobs and task types."""
        if fallback is not None:
            fallback.check_matches(self.knob_names, tuple(self.config.task_types))
        self.fallback = fallback

    # ------------------------------------------------------------------ structure
    @property
    def knob_names(self) -> tuple[str, ...]:
        return self.space.names

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def trunk_linears(self) -> list[nn.Linear]:
        if self.config.arch != "mlp":
            raise ValueError(f"arch={self.config.arch!r} has no MLP trunk")
        return [m for m in self.trunk if isinstance(m, nn.Linear)]

    @torch.no_grad()
    def fit_input_normalization(self, image_feat: Any, lang_feat: Any, eps: float = 1e-6) -> None:
        """Set the standardisation buffers from training features (one row per request)."""
        dev = self.image_mean.device
        img = _as_batch(image_feat, "image_feat", self.config.image_dim, dev)
        txt = _as_batch(lang_feat, "lang_feat", self.config.text_dim, dev)
        for name, x in (("image_feat", img), ("lang_feat", txt)):
            if not torch.isfinite(x).all():
                raise ValueError(f"{name} contains NaN or inf")
        self.image_mean.copy_(img.mean(0))
        self.image_std.copy_(img.std(0, unbiased=False).clamp_min(eps))
        self.text_mean.copy_(txt.mean(0))
        self.text_std.copy_(txt.std(0, unbiased=False).clamp_min(eps))

    # ------------------------------------------------------------------ forward
    def encode_inputs(
        self, image_feat: Any, lang_feat: Any, budget_ms: Any, task: Any = None
    ) -> torch.Tensor:
        """``[h_img, h_txt, enc]``: the projected features and the encoded budget.

        ``task``: per-request task slots (int ``[B]``, see :meth:`ControllerConfig.task_index`;
        ``None``: unknown), used when the controller has task types.
        """
        dev = self.image_mean.device
        img = _as_batch(image_feat, "image_feat", self.config.image_dim, dev)
        txt = _as_batch(lang_feat, "lang_feat", self.config.text_dim, dev)
        if img.shape[0] != txt.shape[0]:
            raise ValueError(
                f"image_feat and lang_feat must have the same batch size, got "
                f"{img.shape[0]} and {txt.shape[0]}"
            )
        b = _as_budget(budget_ms, img.shape[0], dev)
        h_img = torch.relu(self.image_proj((img - self.image_mean) / self.image_std))
        pre_txt = self.text_proj((txt - self.text_mean) / self.text_std)
        if self.config.n_task_slots:
            pre_txt = pre_txt + self.task_embed(
                _as_task(task, img.shape[0], self.config.n_task_slots, dev)
            )
        h_txt = torch.relu(pre_txt)
        enc = encode_budget(b, self.config, self.budget_freqs)
        return torch.cat([h_img, h_txt, enc], dim=1)

    def forward(
        self, image_feat: Any, lang_feat: Any, budget_ms: Any, task: Any = None
    ) -> dict[str, torch.Tensor]:
        """Logits per knob: ``{name: [B, |grid|]}`` (``task``: see :meth:`encode_inputs`)."""
        x = self.encode_inputs(image_feat, lang_feat, budget_ms, task)
        if self.config.arch == "recursive":
            flat = self.refiner(x)
            return dict(
                zip(self.knob_names, flat.split(list(self.space.sizes), dim=1), strict=True)
            )
        z = self.trunk(x)
        return {name: head(z) for name, head in self.heads.items()}

    # ------------------------------------------------------------------ policy helpers
    @staticmethod
    def sample_actions(
        logits: dict[str, torch.Tensor],
        deterministic: bool = True,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Index per knob: argmax when ``deterministic`` else a sample from the softmax."""
        out = {}
        for name, lg in logits.items():
            if deterministic:
                out[name] = lg.argmax(dim=-1)
            else:
                probs = torch.softmax(lg.float(), dim=-1)
                out[name] = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        return out

    @staticmethod
    def log_prob(logits: dict[str, torch.Tensor], actions: dict[str, torch.Tensor]) -> torch.Tensor:
        """Joint log-probability ``[B]``: the sum over heads (heads are independent)."""
        total = None
        for name, lg in logits.items():
            lp = torch.log_softmax(lg.float(), dim=-1).gather(-1, actions[name][:, None].long())
            total = lp[:, 0] if total is None else total + lp[:, 0]
        assert total is not None
        return total

    @staticmethod
    def entropy(logits: dict[str, torch.Tensor]) -> torch.Tensor:
        """Joint entropy ``[B]``: the sum of per-head entropies."""
        total = None
        for lg in logits.values():
            logp = torch.log_softmax(lg.float(), dim=-1)
            h = -(logp.exp() * logp).sum(-1)
            total = h if total is None else total + h
        assert total is not None
        return total

    def actions_to_indices(self, actions: dict[str, torch.Tensor]) -> torch.Tensor:
        """``{name: [B]}`` -> ``[B, n_knobs]`` in knob order."""
        return torch.stack([actions[n].long() for n in self.knob_names], dim=1)

    def indices_to_actions(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: indices[:, i] for i, n in enumerate(self.knob_names)}

    @torch.no_grad()
    def decide(
        self, image_feat: Any, lang_feat: Any, budget_ms: Any, task: Any = None
    ) -> torch.Tensor:
        """Deterministic decisions ``[B, n_knobs]`` (the torch reference of every engine)."""
        was_training = self.training
        self.eval()
        try:
            logits = self(image_feat, lang_feat, budget_ms, task)
        finally:
            self.train(was_training)
        return torch.stack([logits[n].argmax(-1) for n in self.knob_names], dim=1)

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` (each atomically)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        io.write_tensors(directory / WEIGHTS_FILE, tensors)
        io.write_json(
            directory / CONFIG_FILE,
            {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "num_parameters": self.num_parameters(),
                "config": self.config.to_dict(),
            },
        )
        stale = directory / FALLBACK_FILE
        if self.fallback is not None:
            self.fallback.save(directory)
        elif stale.exists():  # a raw controller saved over a guarded one
            stale.unlink()

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str = "cpu") -> Controller:
        """Load what :meth:`save_pretrained` wrote; refuse mismatched or corrupt files."""
        directory = Path(directory)
        meta = io.read_format_header(
            directory / CONFIG_FILE, "controller config", FORMAT_NAME, FORMAT_VERSION
        )
        config = ControllerConfig.from_dict(meta.get("config", {}))
        model = cls(config)
        weights = directory / WEIGHTS_FILE
        state = io.read_tensors(weights, "controller weights", device=map_location)
        load_state_checked(model, state, source=str(weights))
        model.set_fallback(SafeFallback.load(directory))
        return model


def load_state_checked(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` with an error that lists every missing, extra or mis-shaped tensor."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: file {list(state[k].shape)} vs model {list(expected[k].shape)}"
        for k in sorted(set(expected) & set(state))
        if state[k].shape != expected[k].shape
    ]
    if missing or extra or shapes:
        raise ValueError(
            f"{source} does not match the controller config: missing {missing}, "
            f"unexpected {extra}, shape mismatches {shapes}"
        )
    for k, v in state.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ValueError(f"{source}: tensor {k!r} contains NaN or inf")
    model.load_state_dict(state)
