"""Print the share of the best-static -> oracle gap each method closes, from an E5 output.

The numbers are the ``gap_closed`` and ``gap_closed@<budget>`` metrics of the directory's
``e5_statistics.json`` (IQM over seeds with its 95% stratified-bootstrap CI, test split; the
gap is measured against ``oracle_expected`` on profiles with expected quality).

    python -m fastctrl.compare.gap_closed runs/e5_noisy_600k
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from .. import cli, io
from .stats import Estimate


def gap_closed(output_dir: Path) -> dict[str, tuple[Estimate, dict[str, Estimate]]]:
    """Per method: the IQM [CI] of ``gap_closed`` overall, and per budget."""
    stats = io.read_json(
        Path(output_dir) / "e5_statistics.json",
        "output_dir: e5_statistics.json (written by python -m fastctrl.compare)",
    )
    metrics = stats["statistics"]["metrics"]
    if "gap_closed" not in metrics:
        raise ValueError(
            f"output_dir: {output_dir}/e5_statistics.json has no gap_closed "
            "(written before it was a metric: rerun python -m fastctrl.compare "
            "with the same --output_dir; finished runs are reused)"
        )
    prefix = "gap_closed@"
    budgets = [k[len(prefix) :] for k in metrics if k.startswith(prefix)]
    return {
        m: (
            Estimate.from_dict(block),
            {b: Estimate.from_dict(metrics[prefix + b]["methods"][m]) for b in budgets},
        )
        for m, block in metrics["gap_closed"]["methods"].items()
    }


def main(output_dir: Annotated[Path, tyro.conf.Positional]) -> None:
    """Print each method's share of the best-static -> oracle gap closed.

    Args:
        output_dir: the --output_dir of a finished python -m fastctrl.compare.
    """
    try:
        out = gap_closed(output_dir)
    except (FileNotFoundError, ValueError) as e:
        cli.fail(str(e))
    for method, (overall, per) in out.items():
        print(
            f"{method}: {overall.fmt()} (n={overall.n}); per budget {' / '.join(per)}: "
            f"{' / '.join(f'{e.point:.3f}' for e in per.values())}"
        )


@dataclass
class GapClosedArgs:
    """Print each method's share of the best-static -> oracle gap closed (also `fastctrl compare --summary gap-closed`)."""

    output_dir: Annotated[str, tyro.conf.Positional]
    """The --output_dir of a finished `fastctrl compare`."""


def cli_main(argv: Sequence[str] | None = None) -> int:
    """``python -m fastctrl.compare.gap_closed OUTPUT_DIR``."""
    args = cli.parse(GapClosedArgs, argv, prog="python -m fastctrl.compare.gap_closed")
    main(Path(args.output_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main())
