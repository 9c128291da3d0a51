"""The load test's tables in markdown, from the JSON ``fastctrl loadtest`` wrote.

    python bench/render_loadtest.py bench/results/loadtest/loadtest.json

One table per run: per variant and offered rate, goodput (answered correctly within the
deadline, req/s), deadline attainment (client clock), accuracy over answered requests,
refusals and end-to-end latency percentiles; then, at the lowest rate, attainment and
accuracy per budget class.
"""

from __future__ import annotations

import json
import sys


def fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def render(doc: dict) -> str:
    res = doc["results"]
    m = doc["machine"]
    lines = [
        f"`{doc['command']}` on {m.get('cpu', '?')} "
        f"({m.get('cpu_count', '?')} vCPU, {'/'.join(m.get('cpu_isa', []))}), "
        f"{doc['date']}, max_batch {doc['args']['max_batch']}; budgets are ratios of "
        f"{next(iter(doc['reference_ms'].values())):.2f} ms (the profile's full-config "
        "train-split mean)",
        "",
        "| variant | req/s | goodput | attainment | accuracy | refused | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for v, runs in res.items():
        for rate, r in runs.items():
            o = r["overall"]
            lat = o["latency_ms"]
            lines.append(
                f"| {v} | {rate} | {fmt(o['goodput_rps'], 1)} | {fmt(o['attainment'], 3)} | "
                f"{fmt(o['accuracy'], 3)} | {o['refused']}/{o['sent']} | {fmt(lat['p50'], 1)} | "
                f"{fmt(lat['p95'], 1)} | {fmt(lat['p99'], 1)} |"
            )
    low = min(next(iter(res.values())), key=float)
    classes = list(next(iter(res.values()))[low]["per_budget_class"])
    lines += [
        "",
        f"Per budget class at {low} req/s (attainment / accuracy):",
        "",
        "| variant | " + " | ".join(f"{c}x" for c in classes) + " |",
        "|---|" + "---|" * len(classes),
    ]
    for v, runs in res.items():
        cells = []
        for c in classes:
            o = runs[low]["per_budget_class"][c]
            cells.append(f"{fmt(o['attainment'], 2)} / {fmt(o['accuracy'], 2)}")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(render(json.load(f)))
