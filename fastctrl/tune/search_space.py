"""What a tuning trial varies: the training loop's shared part (defined once, here) and the
method's own hyper-parameters (``Method.search_space``, beside each method's ``Config``)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import optuna

from ..train.config import LoopConfig, TrainConfig
from ..train.methods import METHODS

#: the loop fields the shared space varies (for every method that trains the controller)
LOOP_PARAMS = ("lr", "batch_size")


def loop_space(trial: optuna.Trial) -> dict[str, Any]:
    """The shared part: the optimiser's learning rate (log-uniform around the 1e-4 default)
    and the contexts per update."""
    return {
        "lr": trial.suggest_float("lr", 1e-5, 3e-3, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
    }


def suggest(trial: optuna.Trial, method: str) -> dict[str, Any]:
    """One trial's overrides for ``method``: the shared loop part (methods that train the
    controller; the lookup table trains nothing) plus the method's own space."""
    if method not in METHODS:
        raise ValueError(f"--method must be one of {tuple(METHODS)}, got {method!r}")
    cls = METHODS[method]
    own = getattr(cls, "search_space", None)
    if own is None:
        raise ValueError(
            f"--method {method}: {cls.__name__} has no search_space(trial) "
            "staticmethod (add one beside its Config)"
        )
    params = loop_space(trial) if cls.trains_controller else {}
    mine = own(trial)
    clash = set(params) & set(mine)
    if clash:
        raise ValueError(f"{cls.__name__}.search_space redefines shared parameters {clash}")
    return {**params, **mine}


def default_params(base: TrainConfig) -> dict[str, Any]:
    """What ``base`` trains with, by parameter name: the first trial of a new study is these
    (a search that tries the defaults first never picks below them on validation). Names the
    space never suggests (``label_requests``...) are ignored by Optuna."""
    own = dataclasses.asdict(base.method_args)
    if not METHODS[base.method].trains_controller:
        return own
    return {**{k: getattr(base.loop, k) for k in LOOP_PARAMS}, **own}


def apply_params(cfg: TrainConfig, params: dict[str, Any]) -> TrainConfig:
    """``cfg`` with ``params`` set: each name is a field of the method's Config or of the loop
    (LoopConfig); the configs' own checks validate the values."""
    if not params:
        return cfg
    own = {f.name for f in dataclasses.fields(cfg.method_args)}
    loop = {f.name for f in dataclasses.fields(LoopConfig)}
    m_over = {k: v for k, v in params.items() if k in own}
    l_over = {k: v for k, v in params.items() if k in loop and k not in own}
    unknown = set(params) - set(m_over) - set(l_over)
    if unknown:
        raise ValueError(
            f"unknown hyper-parameters {sorted(unknown)} for --method "
            f"{cfg.method}: not fields of {type(cfg.method_args).__name__} or "
            "LoopConfig"
        )
    return dataclasses.replace(
        cfg,
        method_args=dataclasses.replace(cfg.method_args, **m_over),
        loop=dataclasses.replace(cfg.loop, **l_over),
    )


def _text(d: optuna.distributions.BaseDistribution) -> str:
    if isinstance(d, optuna.distributions.CategoricalDistribution):
        return f"one of {list(d.choices)}"
    if isinstance(
        d, (optuna.distributions.IntDistribution, optuna.distributions.FloatDistribution)
    ):
        kind = "integer" if isinstance(d, optuna.distributions.IntDistribution) else "float"
        return f"{kind} in [{d.low:g}, {d.high:g}]" + (", log scale" if d.log else "")
    return repr(d)


def describe(trials: list[optuna.trial.FrozenTrial]) -> dict[str, dict[str, Any]]:
    """The search space the trials sampled: ``{"loop": {name: {"text", "distribution"}},
    "own": {...}}`` (the shared loop part and the method's own; ``distribution`` is Optuna's
    JSON; a conditional parameter appears once a trial drew it)."""
    out: dict[str, dict[str, Any]] = {"loop": {}, "own": {}}
    for t in trials:
        for name, dist in t.distributions.items():
            part = "loop" if name in LOOP_PARAMS else "own"
            out[part].setdefault(
                name,
                {
                    "text": _text(dist),
                    "distribution": json.loads(optuna.distributions.distribution_to_json(dist)),
                },
            )
    return {k: dict(sorted(v.items())) for k, v in out.items()}
