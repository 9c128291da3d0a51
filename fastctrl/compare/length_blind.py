"""Each method's gap to the length-blind oracle, from an E5 output on the default synthetic
profile (:mod:`fastctrl.env.length_blind`: every hidden factor known but the answer's
length, a reference a controller can approach, unlike the hindsight oracle).

    python -m fastctrl.compare.length_blind runs/e5_tuned_1m

``python -m fastctrl.compare`` evaluates the oracle on the runs' own profile and test split
(their reward and budgets, :func:`length_blind_reference`) and writes it, with each method's
IQM over seeds [95% stratified-bootstrap CI] of its gap to the oracle in % of the oracle's
utility, into ``e5_statistics.json`` (``length_blind``) and ``e5_report.md``; this prints it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import tyro

from .. import cli, io
from ..env import ProfileEnv, evaluate_policy
from ..env.length_blind import LengthBlindOracle
from ..train.config import TrainConfig
from ..train.loop import load_profile
from . import stats as S


def on_default_simulator(cfg: TrainConfig) -> bool:
    """Whether ``cfg`` trains on the default synthetic profile (where the oracle is defined)."""
    d = cfg.data
    return not (d.profile or d.exp5_dir) and d.synthetic_family == "default"


def length_blind_reference(
    cfg: TrainConfig,
    utilities: dict[str, list[float]],
    *,
    seed: int = 0,
    reps: int = S.DEFAULT_REPS,
) -> dict[str, Any]:
    """``{"oracle_length_blind": test utility, "methods": {m: Estimate}}``: the oracle on the
    test split of ``cfg``'s profile (its reward and budgets), and per method the IQM [CI] over
    seeds of the gap of ``utilities[m]`` (final test utility per seed) to it, in % of its
    utility."""
    d = cfg.data
    if not on_default_simulator(cfg):
        raise ValueError(
            f"the runs were trained on "
            f"{d.profile or d.exp5_dir or 'the ' + d.synthetic_family + ' family'}"
            "; the length-blind oracle is defined for the default synthetic "
            "profile only"
        )
    profile = load_profile(cfg)
    env = ProfileEnv(profile, "test", reward=cfg.reward.build(), baseline=d.budget_baseline)
    u_ref = evaluate_policy(LengthBlindOracle(profile), env, measure_overhead=False).overall.utility
    return {
        "oracle_length_blind": u_ref,
        "methods": {
            m: S.iqm(
                [100.0 * (u_ref - x) / u_ref for x in u],
                key=f"length-blind-gap:{m}",
                seed=seed,
                reps=reps,
            )
            for m, u in utilities.items()
        },
    }


def length_blind_gaps(output_dir: Path) -> dict[str, Any]:
    """What ``python -m fastctrl.compare`` wrote of the length-blind oracle into
    ``output_dir``'s ``e5_statistics.json``: ``{"oracle": the hindsight oracle's test utility,
    "oracle_length_blind": its test utility, "methods": {m: Estimate}}``."""
    out = Path(output_dir)
    stats = io.read_json(
        out / "e5_statistics.json",
        "output_dir: e5_statistics.json (written by python -m fastctrl.compare)",
    )
    st = stats["statistics"]
    lb = st.get("length_blind")
    if lb is None:
        profile = stats.get("meta", {}).get("profile", "?")
        raise ValueError(
            f"output_dir: {out}/e5_statistics.json has no length_blind: the runs "
            f"are on {profile}, and the length-blind oracle is defined for the "
            "default synthetic profile only (a file written before it existed: "
            "rerun python -m fastctrl.compare with the same --output_dir; "
            "finished runs are reused)"
        )
    return {
        "oracle": st["baselines"]["oracle"]["final_utility"]["value"],
        "oracle_length_blind": lb["oracle_length_blind"],
        "methods": {m: S.Estimate.from_dict(e) for m, e in lb["methods"].items()},
    }


def main(output_dir: Annotated[Path, tyro.conf.Positional]) -> None:
    """Print each method's gap to the length-blind oracle.

    Args:
        output_dir: the --output_dir of a finished python -m fastctrl.compare on the default
            synthetic profile.
    """
    try:
        res = length_blind_gaps(output_dir)
    except (FileNotFoundError, ValueError) as e:
        cli.fail(str(e))
    print(
        f"test utility: hindsight oracle {res['oracle']:.3f}, length-blind oracle "
        f"{res['oracle_length_blind']:.3f}"
    )
    for m, e in res["methods"].items():
        print(f"{m}: gap to the length-blind oracle {e.fmt('.1f')}% (n={e.n})")


@dataclass
class LengthBlindArgs:
    """Print each method's gap to the length-blind oracle (also `fastctrl compare --summary length-blind`)."""

    output_dir: Annotated[str, tyro.conf.Positional]
    """The --output_dir of a finished `fastctrl compare`."""


def cli_main(argv: Sequence[str] | None = None) -> int:
    """``python -m fastctrl.compare.length_blind OUTPUT_DIR``."""
    args = cli.parse(LengthBlindArgs, argv, prog="python -m fastctrl.compare.length_blind")
    main(Path(args.output_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main())
