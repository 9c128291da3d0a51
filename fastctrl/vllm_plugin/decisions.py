"""Per-request configs: decided once, at the request's first scheduled step (its prefill), and
held until the request leaves the engine.

The policy is given once per server: ``FASTCTRL_CONTROLLER=DIR`` (a controller saved with
``Controller.save_pretrained``, a lookup table, or a training run holding one; loaded by
:func:`fastctrl.policy.loading.load_policy`). A controller sees, per request:

- text feature: the mean of the model's own token embeddings over the request's whole prompt
  (``embed_input_ids`` on the prompt ids: the same pooling as ``fastctrl.hook``'s text feature,
  independent of how chunked prefill splits the prompt), so ``text_dim`` must equal the
  model's hidden size;
- image feature: zeros of the controller's ``image_dim`` (the supported models are text-only);
- the request's budget (``fastctrl_budget_ms``) and task type (``fastctrl_task_type``).

All requests that start in one step go through ONE engine call. A request without a budget and
without a pin runs the full config. ``FASTCTRL_DECISION_LOG=PATH`` appends one JSON line per
decision (request id, config, who decided), which the tests and the bench read.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..engines import Engine, make_engine
from ..policy import Controller
from ..policy.loading import load_policy
from ..policy.lookup_table import LookupTablePolicy
from .request_args import BLOCKS_KNOB, TOPK_KNOB, RequestArgs

log = logging.getLogger(__name__)

CONTROLLER_ENV = "FASTCTRL_CONTROLLER"
ENGINE_ENV = "FASTCTRL_ENGINE"
DECISION_LOG_ENV = "FASTCTRL_DECISION_LOG"


@dataclass(frozen=True)
class RequestConfig:
    """What one request runs: experts per token and decoder blocks (the first ``depth``)."""

    top_k: int
    depth: int
    decided_by: str  # "full" | "pin" | "controller" | "lookup_table"


@dataclass(frozen=True)
class ModelLimits:
    """The model's own config: its native experts per token and its decoder blocks."""

    top_k: int
    num_layers: int
    hidden_size: int

    def full(self, decided_by: str = "full") -> RequestConfig:
        return RequestConfig(self.top_k, self.num_layers, decided_by)

    def check(self, values: dict[str, int], source: str) -> RequestConfig:
        """Knob values -> a config the model can run (missing knobs at the full value)."""
        k = int(values.get(TOPK_KNOB, self.top_k))
        d = int(values.get(BLOCKS_KNOB, self.num_layers))
        if not 1 <= k <= self.top_k:
            raise ValueError(
                f"{source}: top_k={k} is outside 1..{self.top_k} (the model's experts per "
                "token; the plugin masks the model's own routing, it cannot add experts)"
            )
        if not 1 <= d <= self.num_layers:
            raise ValueError(
                f"{source}: num_active_blocks={d} is outside 1..{self.num_layers} (the "
                "model's decoder blocks)"
            )
        return RequestConfig(k, d, source)


class Decider:
    """The server's policy (or none: pins and the full config only) and the held configs."""

    def __init__(
        self,
        limits: ModelLimits,
        policy: Controller | LookupTablePolicy | None = None,
        engine_kind: str = "auto",
        decision_log: str | Path | None = None,
    ) -> None:
        self.limits = limits
        self.policy = policy
        self.engine: Engine | None = None
        if isinstance(policy, Controller):
            if policy.config.text_dim != limits.hidden_size:
                raise ValueError(
                    f"{CONTROLLER_ENV}: the controller's text_dim {policy.config.text_dim} "
                    f"must equal the model's hidden size {limits.hidden_size} (the text "
                    "feature is the mean of the model's token embeddings)"
                )
            self.engine = make_engine(policy, engine_kind)
        if policy is not None:
            for name in policy.space.names:
                if name in (TOPK_KNOB, BLOCKS_KNOB):
                    limits.check({name: max(policy.space[name].values)}, CONTROLLER_ENV)
        self.held: dict[str, RequestConfig] = {}
        self._log_path = Path(decision_log) if decision_log else None

    @classmethod
    def from_env(cls, limits: ModelLimits) -> Decider:
        path = os.environ.get(CONTROLLER_ENV)
        policy = load_policy(path, flag=CONTROLLER_ENV) if path else None
        return cls(
            limits,
            policy,
            engine_kind=os.environ.get(ENGINE_ENV, "auto"),
            decision_log=os.environ.get(DECISION_LOG_ENV) or None,
        )

    # ------------------------------------------------------------------ decisions
    def decide(
        self, req_ids: list[str], args: list[RequestArgs], text_feat: torch.Tensor | None
    ) -> None:
        """Decide and hold configs for requests seen for the first time.

        ``text_feat``: ``[n, hidden]`` pooled prompt embeddings of the requests that need the
        controller (those with a budget and no pin, in order), or ``None`` when none does.
        """
        by_controller = [i for i, a in enumerate(args) if a.pin is None and a.budget_ms is not None]
        t0 = time.perf_counter()
        chosen: dict[int, RequestConfig] = {}
        if by_controller and isinstance(self.policy, Controller):
            assert self.engine is not None and text_feat is not None
            feats = text_feat.float().cpu().numpy()
            image = np.zeros((len(by_controller), self.policy.config.image_dim), np.float32)
            budget = np.asarray([args[i].budget_ms for i in by_controller], np.float32)
            tasks = [args[i].task_type for i in by_controller]
            idx = self.engine.decide(image, np.ascontiguousarray(feats), budget, tasks)
            for row, i in enumerate(by_controller):
                values = self.policy.space.config(idx[row].tolist()).values
                chosen[i] = self.limits.check(values, "controller")
        elif by_controller and isinstance(self.policy, LookupTablePolicy):
            for i in by_controller:
                cfg = self.policy.decide(args[i].task_type, float(args[i].budget_ms))
                chosen[i] = self.limits.check(cfg.values, "lookup_table")
        decide_ms = (time.perf_counter() - t0) * 1e3
        for i, (rid, a) in enumerate(zip(req_ids, args, strict=True)):
            if a.pin is not None:
                cfg = self.limits.check(a.pin, "pin")
            else:
                cfg = chosen.get(i, self.limits.full())
            self.held[rid] = cfg
            self._write_log(rid, a, cfg, decide_ms if i in chosen else 0.0)

    def needs_features(self, args: RequestArgs) -> bool:
        return isinstance(self.policy, Controller) and args.pin is None and bool(args.budget_ms)

    def forget(self, live: Any) -> None:
        """Drop held configs of requests no longer in the engine (``live``: their ids)."""
        for rid in [r for r in self.held if r not in live]:
            del self.held[rid]

    def _write_log(self, rid: str, args: RequestArgs, cfg: RequestConfig, ms: float) -> None:
        if self._log_path is None:
            return
        rec = {"req_id": rid, **asdict(cfg), **asdict(args), "decision_ms": ms}
        with self._log_path.open("a") as f:
            f.write(json.dumps(rec) + "\n")
