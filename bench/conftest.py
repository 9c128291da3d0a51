"""Benchmark collection and the int8-vs-torch ratio report.

``pytest bench/ --benchmark-only`` collects ``bench_*.py`` here (the project's ``python_files``
only names ``test_*.py``), and at the end prints, from the same run, each provider's median
relative to torch eager fp32, torch dynamic int8 and onnxruntime dynamic int8 per batch, and
the int8 GMAC/s each reaches (``FASTCTRL_PEAK_GMACS``: also the fraction of that peak); the
same table goes into ``--benchmark-json`` output as ``fastctrl_ratios``.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any

import pytest
from speedups import BASELINES, speedup_cells

#: int8 MAC/s peak of the ISA on this core, if known (csrc/tools/avx2_peak.cpp prints it for
#: AVX2): the summary then also prints each provider's fraction of it
PEAK_ENV = "FASTCTRL_PEAK_GMACS"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if file_path.suffix != ".py" or not fnmatch.fnmatch(file_path.name, "bench_*.py"):
        return None
    patterns = parent.config.getini("python_files")
    if parent.session.isinitpath(file_path) or any(
        fnmatch.fnmatch(file_path.name, p) for p in patterns
    ):
        return None  # named on the command line or matched by python_files: pytest collects it
    return pytest.Module.from_parent(parent, path=file_path)


def _medians(config: pytest.Config) -> dict[tuple[str, int, str], tuple[float, float | None]]:
    """(provider, batch, cache) -> (median s, MACs per row of the controller, if recorded)."""
    session = getattr(config, "_benchmarksession", None)
    out: dict[tuple[str, int, str], tuple[float, float | None]] = {}
    for bench in getattr(session, "benchmarks", None) or []:
        info = bench.extra_info
        if (
            "provider" in info
            and "batch" in info
            and bench.stats is not None
            and bench.stats.rounds
            and "mode" not in info
        ):
            out[(info["provider"], int(info["batch"]), info.get("cache", "warm"))] = (
                bench.stats.median,
                info.get("macs_per_row"),
            )
    return out


def ratios(config: pytest.Config) -> list[dict[str, Any]]:
    """One row per (provider, batch, cache): median, speedup over each baseline, int8 GMAC/s
    and (with FASTCTRL_PEAK_GMACS set) the fraction of that peak."""
    med = _medians(config)
    peak = float(os.environ[PEAK_ENV]) if os.environ.get(PEAK_ENV) else None
    rows = []
    for (provider, batch, cache), (m, macs) in sorted(
        med.items(), key=lambda kv: (kv[0][2], kv[0][1])
    ):
        row: dict[str, Any] = {
            "provider": provider,
            "batch": batch,
            "cache": cache,
            "median_us": m * 1e6,
        }
        for base in BASELINES:
            b = med.get((base, batch, cache))
            row[f"speedup_vs_{base}"] = b[0] / m if b else None
        row["gmacs"] = batch * macs / m / 1e9 if macs else None
        row["fraction_of_peak"] = row["gmacs"] / peak if peak and row["gmacs"] else None
        row["peak_gmacs"] = peak
        rows.append(row)
    return rows


def pytest_benchmark_update_json(
    config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]
) -> None:
    output_json["fastctrl_ratios"] = ratios(config)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rows = ratios(config)
    if not rows:
        return
    tr = terminalreporter
    tr.section("decide() medians and speedups (same run)")
    tr.write_line(
        f"{'provider':32s} {'batch':>5s} {'cache':>5s} {'median us':>11s} "
        f"{'x eager':>8s} {'x dyn-int8':>10s} {'x ort':>7s} {'GMAC/s':>7s} "
        f"{'peak':>6s}"
    )
    for r in rows:
        fmt = speedup_cells(r)
        gm = f"{r['gmacs']:.1f}" if r["gmacs"] else "-"
        fr = f"{100 * r['fraction_of_peak']:.0f}%" if r["fraction_of_peak"] else "-"
        tr.write_line(
            f"{r['provider']:32s} {r['batch']:5d} {r['cache']:>5s} "
            f"{r['median_us']:11.1f} {fmt[0]:>8s} {fmt[1]:>10s} {fmt[2]:>7s} "
            f"{gm:>7s} {fr:>6s}"
        )
    if not os.environ.get(PEAK_ENV):
        tr.write_line(f"(set {PEAK_ENV} to the ISA's int8 GMAC/s peak for the fraction column)")
