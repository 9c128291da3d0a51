"""``python -m fastctrl.digits.data``: write the digits benchmark's datasets.

- ``<output_dir>/profile/questions.jsonl``: the pages to profile (``--profile ...
  --dataset``): ``--val_pages`` pages of the ``val`` scan pool as the profile's train and val
  requests (``--train_share`` of them train) and ``--test_pages`` of the ``test`` pool as its
  test requests (column ``profile_split``);
- ``<output_dir>/live/questions.jsonl``: ``--live_pages`` other pages of the ``test`` scan pool
  (another page seed) for the live evaluation through the hook.

The model was trained on the ``train`` pool only: neither file shows a scan it saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import cli
from .pages import PageGenerator, profile_pages, write_dataset

#: the page seed of the live set: pages other than the profiled ones (same scan pool)
LIVE_SEED_OFFSET = 1000


@dataclass
class DigitsDataArgs:
    """Write the digits benchmark's profiling and live-evaluation datasets (PNG + JSONL)."""

    output_dir: str = "data/digits"
    """Where profile/questions.jsonl and live/questions.jsonl (and their PNG pages) go."""
    val_pages: int = 320
    """Pages of the `val` scan pool in the profile set: its train and val requests (320 +
    --test_pages 160, x 54 configs: the shipped profile, about 14 minutes to sweep on 2
    cores)."""
    test_pages: int = 160
    """Pages of the `test` scan pool in the profile set: its test requests."""
    live_pages: int = 240
    """Pages of the live set: other pages of the `test` scan pool (another page seed), for the
    live evaluation through the hook."""
    train_share: float = 0.75
    """Share of the --val_pages that are the profile's train requests (the rest: val)."""
    seed: int = 0
    """Page seed of the profile set (the live set uses seed + 1000)."""

    def __post_init__(self) -> None:
        cli.need_at_least(self, 2, "val_pages")
        cli.need_at_least(self, 1, "test_pages", "live_pages")
        if not 0.0 < self.train_share < 1.0:
            raise ValueError(f"--train_share must be in (0, 1), got {self.train_share}")


def write(args: DigitsDataArgs) -> tuple[Path, Path]:
    out = Path(args.output_dir)
    profile = write_dataset(
        out / "profile", profile_pages(args.val_pages, args.test_pages, args.seed, args.train_share)
    )
    live_gen = PageGenerator("test", args.seed + LIVE_SEED_OFFSET)
    live = write_dataset(out / "live", [(live_gen.page(i), "test") for i in range(args.live_pages)])
    return profile, live


def main(argv: list[str] | None = None) -> int:
    return cli.execute(run, cli.parse(DigitsDataArgs, argv, prog="python -m fastctrl.digits.data"))


def run(args: DigitsDataArgs) -> int:
    """Write both datasets (the parsed command line of ``fastctrl digits data``)."""
    profile, live = write(args)
    print(
        f"wrote {profile} ({args.val_pages + args.test_pages} pages) and {live} "
        f"({args.live_pages} pages)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
