"""Each method's gap to the length-blind oracle, from an E5 output on the default synthetic
profile (:mod:`fastctrl.profile.length_blind`: every hidden factor known but the answer's
length, a reference a controller can approach, unlike the hindsight oracle).

    python -m fastctrl.compare.length_blind runs/e5_tuned_1m

Rebuilds the runs' profile and test split from their own config, evaluates the length-blind
oracle there with the runs' reward and budgets, and prints its utility beside the hindsight
oracle's and each method's IQM over seeds [95% stratified-bootstrap CI] of its gap to the
length-blind oracle, in % of that oracle's utility. ``python -m fastctrl.compare`` puts the
same numbers in ``e5_statistics.json`` (``length_blind``) and ``e5_report.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import tyro

from .. import io
from ..env import ProfileEnv, evaluate_policy
from ..profile.length_blind import LengthBlindOracle
from ..train.config import TrainConfig
from ..train.loop import load_profile
from ..train.records import EVAL_FILE, STATS_FILE
from . import stats as S


def on_default_simulator(cfg: TrainConfig) -> bool:
    """Whether ``cfg`` trains on the default synthetic profile (where the oracle is defined)."""
    d = cfg.data
    return not (d.profile or d.exp5_dir) and d.synthetic_family == "default"


def length_blind_reference(cfg: TrainConfig, utilities: dict[str, list[float]], *,
                           seed: int = 0, reps: int = S.DEFAULT_REPS) -> dict[str, Any]:
    """``{"oracle_length_blind": test utility, "methods": {m: Estimate}}``: the oracle on the
    test split of ``cfg``'s profile (its reward and budgets), and per method the IQM [CI] over
    seeds of the gap of ``utilities[m]`` (final test utility per seed) to it, in % of its
    utility."""
    d = cfg.data
    if not on_default_simulator(cfg):
        raise ValueError(f"the runs were trained on "
                         f"{d.profile or d.exp5_dir or 'the ' + d.synthetic_family + ' family'}"
                         "; the length-blind oracle is defined for the default synthetic "
                         "profile only")
    profile = load_profile(cfg)
    env = ProfileEnv(profile, "test", reward=cfg.reward.build(), baseline=d.budget_baseline)
    u_ref = evaluate_policy(LengthBlindOracle(profile), env, measure_overhead=False).overall.utility
    return {"oracle_length_blind": u_ref,
            "methods": {m: S.iqm([100.0 * (u_ref - x) / u_ref for x in u],
                                 key=f"length-blind-gap:{m}", seed=seed, reps=reps)
                        for m, u in utilities.items()}}


def length_blind_gaps(output_dir: Path, *, seed: int = 0,
                      reps: int = S.DEFAULT_REPS) -> dict[str, Any]:
    """:func:`length_blind_reference` for the finished runs of an E5 ``output_dir``, plus the
    hindsight oracle's test utility (``"oracle"``)."""
    out = Path(output_dir)
    runs = sorted(p for p in (out / "runs").glob("*_seed*") if (p / EVAL_FILE).is_file())
    if not runs:
        raise FileNotFoundError(f"output_dir: no finished runs in {out / 'runs'} (run python "
                                "-m fastctrl.compare with this --output_dir first)")
    cfg = TrainConfig.from_dict(io.read_json(runs[0] / STATS_FILE)["config"])
    per: dict[str, list[float]] = {}
    hindsight = None
    for run in runs:
        ev = io.read_json(run / EVAL_FILE)
        if TrainConfig.from_dict(io.read_json(run / STATS_FILE)["config"]).data != cfg.data:
            raise ValueError(f"output_dir: {run.name} was trained on other data than "
                             f"{runs[0].name}")
        per.setdefault(ev["method"], []).append(ev["controller"]["overall"]["utility"])
        hindsight = ev["baselines"]["oracle"]["overall"]["utility"]
    try:
        ref = length_blind_reference(cfg, per, seed=seed, reps=reps)
    except ValueError as e:
        raise ValueError(f"output_dir: {out}: {e}") from e
    return {"oracle": hindsight, **ref}


def main(output_dir: Annotated[Path, tyro.conf.Positional]) -> None:
    """Print each method's gap to the length-blind oracle.

    Args:
        output_dir: the --output_dir of a finished python -m fastctrl.compare on the default
            synthetic profile.
    """
    res = length_blind_gaps(output_dir)
    print(f"test utility: hindsight oracle {res['oracle']:.3f}, length-blind oracle "
          f"{res['oracle_length_blind']:.3f}")
    for m, e in res["methods"].items():
        print(f"{m}: gap to the length-blind oracle {e.fmt('.1f')}% (n={e.n})")


if __name__ == "__main__":
    tyro.cli(main, prog="python -m fastctrl.compare.length_blind")
