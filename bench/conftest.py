"""Benchmark collection and the int8-vs-torch ratio report.

``pytest bench/ --benchmark-only`` collects ``bench_*.py`` here (the project's ``python_files``
only names ``test_*.py``), and at the end prints, from the same run, each provider's median
relative to torch eager fp32 and to torch dynamic int8 per batch; the same table goes into
``--benchmark-json`` output as ``fastctrl_ratios``.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import pytest

BASELINES = ("torch-eager", "torch-dynamic-int8")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if file_path.suffix != ".py" or not fnmatch.fnmatch(file_path.name, "bench_*.py"):
        return None
    patterns = parent.config.getini("python_files")
    if parent.session.isinitpath(file_path) or any(
            fnmatch.fnmatch(file_path.name, p) for p in patterns):
        return None  # named on the command line or matched by python_files: pytest collects it
    return pytest.Module.from_parent(parent, path=file_path)


def _medians(config: pytest.Config) -> dict[tuple[str, int, str], float]:
    session = getattr(config, "_benchmarksession", None)
    out: dict[tuple[str, int, str], float] = {}
    for bench in getattr(session, "benchmarks", None) or []:
        info = bench.extra_info
        if "provider" in info and bench.stats is not None and bench.stats.rounds:
            out[(info["provider"], int(info["batch"]), info.get("cache", "warm"))] = (
                bench.stats.median)
    return out


def ratios(config: pytest.Config) -> list[dict[str, Any]]:
    """One row per (provider, batch, cache): median and speedup over each torch baseline."""
    med = _medians(config)
    rows = []
    for (provider, batch, cache), m in sorted(med.items(), key=lambda kv: (kv[0][2], kv[0][1])):
        row: dict[str, Any] = {"provider": provider, "batch": batch, "cache": cache,
                               "median_us": m * 1e6}
        for base in BASELINES:
            b = med.get((base, batch, cache))
            row[f"speedup_vs_{base}"] = b / m if b else None
        rows.append(row)
    return rows


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any,
                                 output_json: dict[str, Any]) -> None:
    output_json["fastctrl_ratios"] = ratios(config)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rows = ratios(config)
    if not rows:
        return
    tr = terminalreporter
    tr.section("decide() medians and speedups (same run)")
    tr.write_line(f"{'provider':32s} {'batch':>5s} {'cache':>5s} {'median us':>11s} "
                  f"{'x eager':>8s} {'x dyn-int8':>10s}")
    for r in rows:
        fmt = [f"{v:8.2f}" if v else f"{'-':>8s}" for v in
               (r["speedup_vs_torch-eager"], r["speedup_vs_torch-dynamic-int8"])]
        tr.write_line(f"{r['provider']:32s} {r['batch']:5d} {r['cache']:>5s} "
                      f"{r['median_us']:11.1f} {fmt[0]} {fmt[1]:>10s}")
