"""Vision-tower time per ``max_crops`` value on the tile-splitting tiny models (Idefics3,
SmolVLM), where ``max_crops`` drops crops before the vision encoder.

    pytest bench/bench_vision.py --benchmark-only
    python bench/bench_vision.py [--rounds 30] [--vision-hidden 32] [--vision-layers 2] [--json vision.json]

One prefill forward (batch 1, one image split 2x2 + a global tile = 5 tiles of 32x32, a short
prompt), one torch thread, CPU. The vision tower's CPU time (``time.thread_time`` around every
call of ``adapter.vision_tower``, summed per forward) and the whole forward's are measured;
variants (unhooked, hooked pinned at max_crops 1 / 2 / 4, every other knob at its top) are
interleaved round-robin so that load drift on a shared CPU hits all alike; medians.

pytest-benchmark groups ``vision-<family>``: the whole forward per variant, with the vision
tower's median ms and the tiles it encoded in ``extra_info``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch

from fastctrl import ActionSpace
from fastctrl.model_hook import find_adapter, hook
from fastctrl.testing.tiny_models import build_tiny, tiny_inputs

FAMILIES = ("idefics3", "smolvlm")
VALUES = (1, 2, 4)
_MODELS: dict[tuple[str, int, int], Any] = {}
#: the tests' tiny vision encoder (32 wide, 2 layers); the script can widen it
VISION_HIDDEN, VISION_LAYERS = 32, 2


def setup(
    family: str, vision_hidden: int = VISION_HIDDEN, vision_layers: int = VISION_LAYERS
) -> tuple[Any, dict[str, torch.Tensor]]:
    torch.set_num_threads(1)
    key = (family, vision_hidden, vision_layers)
    if key not in _MODELS:
        model = build_tiny(family, seed=0, vision_hidden=vision_hidden, vision_layers=vision_layers)
        _MODELS[key] = (model, tiny_inputs(model, batch=1, seed=0))
    return _MODELS[key]


def grids(model: Any) -> dict[str, list[int]]:
    return {
        "max_crops": list(VALUES),
        "num_active_blocks": list(range(1, find_adapter(model).num_layers + 1)),
    }


class TowerClock:
    """CPU time inside the vision tower and the tiles it was called on, per forward."""

    def __init__(self, tower: torch.nn.Module) -> None:
        self.ms = 0.0
        self.tiles = 0
        self._t0 = 0.0
        self._h = [
            tower.register_forward_pre_hook(self._pre, with_kwargs=True),
            tower.register_forward_hook(self._post),
        ]

    def _pre(self, mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        pix = kwargs.get("pixel_values", args[0] if args else None)
        self.tiles += int(pix.shape[0])
        self._t0 = time.thread_time()

    def _post(self, *a: Any) -> None:
        self.ms += (time.thread_time() - self._t0) * 1e3

    def take(self) -> tuple[float, int]:
        out = (self.ms, self.tiles)
        self.ms, self.tiles = 0.0, 0
        return out

    def close(self) -> None:
        for h in self._h:
            h.remove()


def variants(model: Any) -> list[tuple[str, dict[str, int] | None]]:
    g = grids(model)
    full = {n: v[-1] for n, v in g.items()}
    return [("unhooked", None)] + [(f"max_crops={v}", {**full, "max_crops": v}) for v in VALUES]


def forward_fn(model: Any, inputs: dict[str, torch.Tensor]) -> Callable[[], Any]:
    def run() -> Any:
        with torch.inference_mode():
            return model(**inputs)

    return run


# ---------------------------------------------------------------------------- pytest-benchmark
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("variant", ["unhooked"] + [f"max_crops={v}" for v in VALUES])
def test_vision_time(benchmark: Any, family: str, variant: str) -> None:
    model, inputs = setup(family)
    cfg = dict(variants(model))[variant]
    benchmark.group = f"vision-{family}"
    clock = TowerClock(find_adapter(model).vision_tower)
    h = None
    if cfg is not None:
        h = hook(model, space=ActionSpace(grids(model)))
        h.pin(cfg)
    tower: list[float] = []
    tiles: list[int] = []
    run = forward_fn(model, inputs)

    def timed() -> Any:
        out = run()
        ms, n = clock.take()
        tower.append(ms)
        tiles.append(n)
        return out

    try:
        benchmark.pedantic(timed, rounds=30, warmup_rounds=3)
    finally:
        clock.close()
        if h is not None:
            h.remove()
    benchmark.extra_info.update(
        vision_tower_ms_p50=statistics.median(tower), tiles_encoded=tiles[-1], family=family
    )


# ---------------------------------------------------------------------------- script report
def measure(
    family: str,
    rounds: int,
    warmup: int = 3,
    vision_hidden: int = VISION_HIDDEN,
    vision_layers: int = VISION_LAYERS,
) -> dict[str, Any]:
    model, inputs = setup(family, vision_hidden, vision_layers)
    run = forward_fn(model, inputs)
    clock = TowerClock(find_adapter(model).vision_tower)
    space = ActionSpace(grids(model))
    vs = variants(model)
    tower: dict[str, list[float]] = {n: [] for n, _ in vs}
    total: dict[str, list[float]] = {n: [] for n, _ in vs}
    tiles: dict[str, int] = {}
    for r in range(warmup + rounds):
        for name, cfg in vs:
            h = None
            if cfg is not None:
                h = hook(model, space=space)
                h.pin(cfg)
            clock.take()
            t0 = time.thread_time()
            run()
            dt = (time.thread_time() - t0) * 1e3
            ms, n = clock.take()
            if h is not None:
                h.remove()
            if r >= warmup:
                tower[name].append(ms)
                total[name].append(dt)
                tiles[name] = n
    clock.close()
    return {
        name: {
            "vision_tower_ms": statistics.median(tower[name]),
            "forward_ms": statistics.median(total[name]),
            "tiles": tiles[name],
        }
        for name, _ in vs
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--vision-hidden", type=int, default=VISION_HIDDEN)
    p.add_argument("--vision-layers", type=int, default=VISION_LAYERS)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = {
        "threads": 1,
        "torch": torch.__version__,
        "rounds": args.rounds,
        "vision_hidden": args.vision_hidden,
        "vision_layers": args.vision_layers,
        "families": {},
    }
    print(f"vision encoder: hidden {args.vision_hidden}, {args.vision_layers} layers")
    print(
        f"{'family':10s} {'variant':12s} {'tiles':>5s} {'vision ms':>10s} {'x unhooked':>10s} "
        f"{'forward ms':>10s}"
    )
    for family in FAMILIES:
        res = out["families"][family] = measure(
            family, args.rounds, 3, args.vision_hidden, args.vision_layers
        )
        base = res["unhooked"]["vision_tower_ms"]
        for name, r in res.items():
            print(
                f"{family:10s} {name:12s} {r['tiles']:5d} {r['vision_tower_ms']:10.3f} "
                f"{r['vision_tower_ms'] / base:10.2f} {r['forward_ms']:10.3f}"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
