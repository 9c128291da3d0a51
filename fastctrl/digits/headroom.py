"""``python -m fastctrl.digits.headroom``: how much a per-request choice *can* gain over the best
static config on a digits profile, before any controller is trained.

A controller beats the best static config only where requests differ in which config is best
under the same budget. This measures that room directly from the profile, with policies that
know a request attribute perfectly instead of learning it from features:

- ``static``: one config per budget ratio (E5's ``best_static``);
- ``by task``: one config per budget ratio and question type;
- ``by grid``: one config per budget ratio and page grid (rows x cols, read off the page);
- ``by task+grid``: one per budget ratio, question type and grid;
- ``by request`` (in-sample only): one per request and budget, E5's ``oracle``.

Each is chosen on the E5 reward (:class:`~fastctrl.env.reward.E5Reward`, averaged over the
measured latency repeats) twice: on the profile's ``train`` split and read on ``test`` (what a
controller that knew the attribute could at best carry over; a group never seen in train
falls back to the static config), and on ``test`` itself (in-sample: an upper bound that also
fits the test split's noise). Reported per budget ratio: *accuracy within the SLO* (an answer
whose measured latency exceeds the budget counts as wrong, averaged over the repeats) and its
gain over ``static`` in points. Budgets are E5's: ratio x the train-mean full-config latency.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import cli
from ..env.bandit import ProfileEnv
from ..profile.table import Profile
from .pages import PageGenerator
from .report import print_and_write

#: the issue's budget range for the digits loop
HEADROOM_RATIOS: tuple[float, ...] = (0.35, 0.50, 0.70, 0.85)
_PAGE_ID = re.compile(r"^digits-(train|val|test)-(\d+)-(\d+)$")


def page_grids(request_ids: Sequence[str]) -> np.ndarray:
    """``"RxC"`` per request: the page's grid, regenerated from its id (``digits-<pool>-<seed>-<i>``,
    what :class:`~.pages.PageGenerator` names its pages)."""
    gens: dict[tuple[str, int], PageGenerator] = {}
    out = []
    for rid in request_ids:
        m = _PAGE_ID.match(str(rid))
        if m is None:
            raise ValueError(
                f"request_id {rid!r} is not a digits page id "
                "(digits-<pool>-<seed>-<index>): the grid needs digits pages"
            )
        pool, seed, i = m.group(1), int(m.group(2)), int(m.group(3))
        gen = gens.setdefault((pool, seed), PageGenerator(pool, seed))
        digits = gen.page(i).digits
        out.append(f"{len(digits)}x{len(digits[0])}")
    return np.asarray(out, dtype=object)


def _env_rows(env: ProfileEnv, ratio: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(request indices, expected reward [n, C], accuracy within the SLO [n, C])``."""
    ctx = env.all_contexts((ratio,))
    reward = env.expected_rewards(ctx)
    lat = env.profile.latency[ctx.req].astype(np.float64)
    within = (lat <= ctx.budget_ms[:, None, None]).mean(axis=2)
    acc = env.profile.quality[ctx.req].astype(np.float64) * within
    return ctx.req, reward, acc


def group_choice(groups: np.ndarray, reward: np.ndarray) -> dict[Any, int]:
    """Per group, the config with the best mean reward."""
    return {g: int(reward[groups == g].mean(0).argmax()) for g in np.unique(groups)}


def apply_choice(groups: np.ndarray, choice: dict[Any, int], fallback: int) -> np.ndarray:
    return np.asarray([choice.get(g, fallback) for g in groups], dtype=np.int64)


@dataclass
class Headroom:
    ratios: tuple[float, ...]
    baseline_ms: float
    requests: dict[str, int]
    # policy -> "carried" (train -> test) | "in_sample" (test -> test) -> per-ratio accuracy
    accuracy: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def gain_points(self, policy: str, mode: str) -> list[float]:
        base = self.accuracy["static"][mode]
        return [100 * (a - b) for a, b in zip(self.accuracy[policy][mode], base, strict=True)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ratios": list(self.ratios),
            "baseline_ms": self.baseline_ms,
            "requests": self.requests,
            "accuracy_within_slo": self.accuracy,
            "gain_points": {
                p: {m: self.gain_points(p, m) for m in modes} for p, modes in self.accuracy.items()
            },
        }


def headroom(profile: Profile, ratios: Sequence[float] = HEADROOM_RATIOS) -> Headroom:
    """The table of :mod:`this module <fastctrl.digits.headroom>` for ``profile``."""
    ratios = tuple(float(r) for r in ratios)
    train, test = (
        ProfileEnv(profile, "train", budget_ratios=ratios),
        ProfileEnv(profile, "test", budget_ratios=ratios),
    )
    grid = page_grids(profile.request_ids)
    task = profile.task_types
    keys: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "static": lambda idx: np.zeros(len(idx), dtype=np.int64),
        "by task": lambda idx: task[idx],
        "by grid": lambda idx: grid[idx],
        "by task+grid": lambda idx: np.asarray(
            [f"{t}|{g}" for t, g in zip(task[idx], grid[idx], strict=True)], dtype=object
        ),
    }
    res = Headroom(
        ratios,
        float(train.baseline_ms[0]),
        {"train": len(train.requests), "test": len(test.requests)},
    )
    for name in [*keys, "by request"]:
        res.accuracy[name] = (
            {"carried": [], "in_sample": []} if name != "by request" else {"in_sample": []}
        )
    for ratio in ratios:
        tr_req, tr_reward, _ = _env_rows(train, ratio)
        te_req, te_reward, te_acc = _env_rows(test, ratio)
        rows = np.arange(len(te_req))
        static_tr = int(tr_reward.mean(0).argmax())
        static_te = int(te_reward.mean(0).argmax())
        for name, key in keys.items():
            carried = apply_choice(key(te_req), group_choice(key(tr_req), tr_reward), static_tr)
            fitted = apply_choice(key(te_req), group_choice(key(te_req), te_reward), static_te)
            res.accuracy[name]["carried"].append(float(te_acc[rows, carried].mean()))
            res.accuracy[name]["in_sample"].append(float(te_acc[rows, fitted].mean()))
        best = te_reward.argmax(1)
        res.accuracy["by request"]["in_sample"].append(float(te_acc[rows, best].mean()))
    return res


def to_markdown(h: Headroom) -> str:
    budgets = " / ".join(f"{r:.2f}" for r in h.ratios)
    head = [
        "policy",
        "chosen on -> read on",
        f"accuracy within SLO at {budgets}",
        "gain over static, points",
        "mean gain",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for mode, label in (("carried", "train -> test"), ("in_sample", "test -> test")):
        for name, modes in h.accuracy.items():
            if mode not in modes:
                continue
            gain = h.gain_points(name, mode)
            lines.append(
                f"| {name} | {label} | "
                + " / ".join(f"{a:.3f}" for a in modes[mode])
                + " | "
                + " / ".join(f"{g:+.1f}" for g in gain)
                + f" | {np.mean(gain):+.1f} |"
            )
    lines.append(
        f"\n{h.requests['train']} train / {h.requests['test']} test requests; budgets "
        f"= ratio x {h.baseline_ms:.2f} ms (the train-mean full-config latency)"
    )
    return "\n".join(lines)


@dataclass
class DigitsHeadroomArgs:
    """How much a per-request config choice can gain over the best static one, on a digits
    profile, with the question type and page grid known perfectly."""

    profile: str
    """The digits profile: its table, the --output_dir of `fastctrl profile`, or
    fastctrl-digits (the shipped one)."""
    budget_ratios: tuple[float, ...] = HEADROOM_RATIOS
    """Budgets as ratios of the train-mean full-config latency (E5's budgets)."""
    output_dir: str | None = None
    """Also write the table there: headroom.md and headroom.json (default: print only)."""


def main(argv: list[str] | None = None) -> int:
    args = cli.parse(DigitsHeadroomArgs, argv, prog="python -m fastctrl.digits.headroom")
    return cli.execute(run, args)


def run(args: DigitsHeadroomArgs) -> int:
    """Print (and write) the headroom table (the parsed command line of
    ``fastctrl digits headroom``)."""
    h = headroom(Profile.load(args.profile), args.budget_ratios)
    print_and_write(to_markdown(h), h.to_dict(), args.output_dir, "headroom")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
