"""``python -m fastctrl.digits.report``: accuracy per question type x config and latency p50,
read from a measured profile of the digits VLM (its ``test`` split by default).

Rows: the full config, every knob lowered alone (the others at full), and the cheapest config.
Accuracy is the profile's exact-match quality; latency the median over the split's requests and
repeats of the measured request (prefill + answer) at batch 1. Markdown to stdout; with
``--output_dir DIR`` also ``DIR/knob_table.md`` and ``DIR/knob_table.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import cli, io
from ..profile.table import Profile
from ..space import ActionSpace, Config
from .pages import TASK_TYPES


def knob_rows(space: ActionSpace) -> list[tuple[str, Config]]:
    """``(label, config)``: full, each knob alone at each lower value, cheapest."""
    full = space.full()
    rows = [("full", full)]
    for name in space.names:
        for v in reversed(space[name].values[:-1]):
            rows.append((f"{name}={v}", space.config_from_values(**{**full.values, name: v})))
    rows.append(("cheapest", space.cheapest()))
    return rows


def knob_table(profile: Profile, split: str = "test") -> dict[str, Any]:
    idx = profile.split_indices(split)
    if len(idx) == 0:
        raise ValueError(f"the profile has no {split!r} requests")
    tasks = [t for t in TASK_TYPES if (profile.task_types[idx] == t).any()]
    lat = profile.latency[idx]  # [R, C, S]
    out = []
    for label, config in knob_rows(profile.space):
        c = profile.space.flat_index(config.indices)
        row = {
            "config": label,
            **config.values,
            "accuracy": float(profile.quality[idx, c].mean()),
            "latency_p50_ms": float(np.median(lat[:, c, :])),
        }
        for t in tasks:
            sel = idx[profile.task_types[idx] == t]
            row[f"acc_{t}"] = float(profile.quality[sel, c].mean())
        out.append(row)
    full = out[0]["latency_p50_ms"]
    for row in out:
        row["latency_ratio"] = row["latency_p50_ms"] / full
    counts = {t: int((profile.task_types[idx] == t).sum()) for t in tasks}
    # per question type: answers differ in length, and decode steps with them
    f, ch = profile.full_index, profile.space.flat_index(profile.space.cheapest().indices)
    per_task = {}
    for t in tasks:
        sel = idx[profile.task_types[idx] == t]
        hi, lo = (float(np.median(profile.latency[sel, c, :])) for c in (f, ch))
        per_task[t] = {"full_p50_ms": hi, "cheapest_p50_ms": lo, "span": hi / lo}
    return {
        "split": split,
        "requests": len(idx),
        "requests_per_task": counts,
        "rows": out,
        "latency_span": full / min(r["latency_p50_ms"] for r in out),
        "latency_span_per_task": per_task,
    }


def to_markdown(table: dict[str, Any]) -> str:
    tasks = list(table["requests_per_task"])
    head = [
        "config",
        "accuracy",
        *[f"{t} (n={table['requests_per_task'][t]})" for t in tasks],
        "latency p50 ms",
        "x full",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table["rows"]:
        cells = [
            r["config"],
            f"{r['accuracy']:.3f}",
            *[f"{r[f'acc_{t}']:.3f}" for t in tasks],
            f"{r['latency_p50_ms']:.2f}",
            f"{r['latency_ratio']:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        f"\n{table['requests']} {table['split']} requests; latency span full / "
        f"cheapest: {table['latency_span']:.2f}x"
    )
    spans = table.get("latency_span_per_task")
    if spans:
        lines.append(
            "full / cheapest per question type: "
            + ", ".join(
                f"{t} {v['span']:.2f}x ({v['full_p50_ms']:.2f} / {v['cheapest_p50_ms']:.2f} ms)"
                for t, v in spans.items()
            )
        )
    return "\n".join(lines)


def print_and_write(md: str, data: Any, output_dir: str | None, name: str) -> None:
    """Print a report's markdown; with ``output_dir``, also write it there as ``<name>.md``
    and its JSON as ``<name>.json``, each atomically."""
    print(md)
    if output_dir:
        io.write_text(Path(output_dir) / f"{name}.md", md + "\n")
        io.write_json(Path(output_dir) / f"{name}.json", data)


@dataclass
class DigitsReportArgs:
    """Accuracy per question type x config, and latency, from a digits profile."""

    profile: str
    """The digits profile: its table, the --output_dir of `fastctrl profile`, or
    fastctrl-digits (the shipped one)."""
    split: str = "test"
    """Profile split the table is read on (train, val or test)."""
    output_dir: str | None = None
    """Also write the table there: knob_table.md and knob_table.json (default: print only)."""


def main(argv: list[str] | None = None) -> int:
    args = cli.parse(DigitsReportArgs, argv, prog="python -m fastctrl.digits.report")
    return cli.execute(run, args)


def run(args: DigitsReportArgs) -> int:
    """Print (and write) the table (the parsed command line of ``fastctrl digits report``)."""
    table = knob_table(Profile.load(args.profile), args.split)
    print_and_write(to_markdown(table), table, args.output_dir, "knob_table")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
