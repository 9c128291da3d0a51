"""The decide() providers every other one is compared with, and a row's speedups as printed
(the pytest summary in conftest.py and the script form of bench_engines.py)."""

from __future__ import annotations

from typing import Any

BASELINES = ("torch-eager", "torch-dynamic-int8", "onnxruntime-dynamic-int8")


def speedup_cells(row: dict[str, Any]) -> list[str]:
    """The row's speedup over each of :data:`BASELINES`, two decimals (``-``: not measured)."""
    return [f"{v:.2f}" if v else "-" for v in (row[f"speedup_vs_{b}"] for b in BASELINES)]
