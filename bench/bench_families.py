"""Every family's tiny model through fastctrl.hook: latency per knob value, the vision tower's
time per ``max_crops`` value, and what renormalising a lowered top_k does.

    python bench/bench_families.py [--rounds 15] [--hidden 128] [--json families.json] [--markdown families.md]
    pytest bench/bench_families.py --benchmark-only

One prefill forward (batch 1, one 32x32 image or the family's tiles, a short prompt), one torch
thread, CPU; the variants of one family are interleaved and timed in this thread's CPU time
(medians over rounds). Ratios are against the same family's full config in the same run.

Renormalisation: on families whose routers have a ``norm_topk_prob`` switch that is off (the
MoE output shrinks when top_k is lowered), for each lowered top_k the logits of the hooked
model with ``renormalize_topk=None`` (the model's rule) and ``True`` are compared with the full
model's: relative L2 error of the logits, and agreement of the next-token argmax over every
position of 8 prompts. Random weights: these say what the option does to the computation,
not to answer quality.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import pytest
import torch

from fastctrl import ActionSpace
from fastctrl.model_hook import find_adapter, hook
from fastctrl.testing.tiny_models import build_tiny, sweep_grids, tiny_families, tiny_inputs


def build(family: str, hidden: int) -> Any:
    """The tiny model at text width ``hidden``, or at its default sizes where they are tied
    together (e.g. rotary sections to the head size) and the wider build does not run."""
    torch.set_num_threads(1)
    try:
        model = build_tiny(family, seed=0, hidden=hidden)
        with torch.inference_mode():
            model(**tiny_inputs(model, batch=1, seed=0))
        return model
    except (TypeError, ValueError, RuntimeError):
        return build_tiny(family, seed=0)


class TowerClock:
    """CPU time spent inside the vision tower (summed over its calls in one forward)."""

    def __init__(self, tower: torch.nn.Module) -> None:
        self.total = 0.0
        self._t0 = 0.0
        self._h = [
            tower.register_forward_pre_hook(self._pre),
            tower.register_forward_hook(self._post),
        ]

    def _pre(self, *a: Any) -> None:
        self._t0 = time.thread_time()

    def _post(self, *a: Any) -> None:
        self.total += time.thread_time() - self._t0

    def take_ms(self) -> float:
        ms, self.total = self.total * 1e3, 0.0
        return ms

    def close(self) -> None:
        for h in self._h:
            h.remove()


@torch.inference_mode()
def knob_latencies(family: str, hidden: int, rounds: int) -> dict[str, Any]:
    model = build(family, hidden)
    a = find_adapter(model)
    g = sweep_grids(model)
    full = {n: v[-1] for n, v in g.items()}
    inp = tiny_inputs(model, batch=1, seed=0)
    variants = [("full", full)] + [
        (f"{n}={v}", {**full, n: v}) for n, vals in g.items() for v in vals[:-1]
    ]
    times: dict[str, list[float]] = {name: [] for name, _ in variants}
    tower: dict[str, list[float]] = {name: [] for name, _ in variants}
    clock = TowerClock(a.vision_tower)
    with hook(model, space=ActionSpace(g)) as h:
        for _ in range(2):  # warm-up
            for _, cfg in variants:
                h.pin(cfg)
                model(**inp)
        clock.take_ms()
        for _ in range(rounds):
            for name, cfg in variants:
                h.pin(cfg)
                t0 = time.thread_time()
                model(**inp)
                times[name].append((time.thread_time() - t0) * 1e3)
                tower[name].append(clock.take_ms())
    clock.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    tow = {k: statistics.median(v) for k, v in tower.items()}
    return {
        "family": family,
        "adapter": a.family,
        "hidden": int(a.text_dim),
        "layers": a.num_layers,
        "moe": a.is_moe,
        "grids": g,
        "full_ms": med["full"],
        "vision_tower_full_ms": tow["full"],
        "ratio": {k: med[k] / med["full"] for k in med if k != "full"},
        "vision_tower_ms": {k: tow[k] for k in tow if k == "full" or k.startswith("max_crops")},
        "vision_saving": type(a).vision_saving,
    }


@torch.inference_mode()
def renormalisation(family: str) -> dict[str, Any] | None:
    model = build_tiny(family, seed=0)
    a = find_adapter(model)
    if not a.is_moe or not all(getattr(r, "norm_topk_prob", True) is False for r in a.routers):
        return None
    g = sweep_grids(model)
    prompts = [
        f"what is shown {w}?"
        for w in ("here", "now", "left", "right", "up", "down", "in the corner", "twice")
    ]
    inp = tiny_inputs(model, batch=len(prompts), seed=5, prompts=prompts)
    full_logits = model(**inp).logits
    mask = inp["attention_mask"].bool()
    ref = full_logits[mask]
    out: dict[str, Any] = {"family": family, "top_k": {}}
    for k in g["top_k"][:-1]:
        row = {}
        for label, renorm in (("model_rule", None), ("renormalised", True)):
            with hook(model, space=ActionSpace(g), renormalize_topk=renorm) as h:
                h.pin({**{n: v[-1] for n, v in g.items()}, "top_k": k})
                x = model(**inp).logits[mask]
            row[label] = {
                "rel_l2": float((x - ref).norm() / ref.norm()),
                "argmax_agreement": float((x.argmax(-1) == ref.argmax(-1)).float().mean()),
            }
        out["top_k"][str(k)] = row
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| family (tiny) | moe | latency vs full: max_crops 1 / 2 | top_k 1 / mid | "
        "blocks 1 / half | vision tower ms: full / max_crops 1 |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["latency"]:
        q = r["ratio"]
        g = r["grids"]

        def f(key: str, q: dict[str, float] = q) -> str:
            return f"{q[key]:.2f}" if key in q else "-"

        half = g["num_active_blocks"][len(g["num_active_blocks"]) // 2 - 1]
        tk = g.get("top_k", [])
        topk = f"{f('top_k=1')} / {f(f'top_k={tk[1]}')}" if len(tk) > 2 else "-"
        vt = r["vision_tower_ms"]
        lines.append(
            f"| {r['family']} | {'yes' if r['moe'] else 'no'} | "
            f"{f('max_crops=1')} / {f('max_crops=2')} | {topk} | "
            f"{f('num_active_blocks=1')} / {f(f'num_active_blocks={half}')} | "
            f"{vt['full']:.2f} / {vt.get('max_crops=1', float('nan')):.2f} |"
        )
    lines += [
        "",
        "| family (tiny) | top_k | model's rule: rel. L2 / argmax agreement | "
        "renormalised: rel. L2 / argmax agreement |",
        "|---|---|---|---|",
    ]
    for r in report["renormalisation"]:
        for k, row in r["top_k"].items():
            m, n = row["model_rule"], row["renormalised"]
            lines.append(
                f"| {r['family']} | {k} | {m['rel_l2']:.3f} / "
                f"{m['argmax_agreement']:.1%} | {n['rel_l2']:.3f} / "
                f"{n['argmax_agreement']:.1%} |"
            )
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("family", tiny_families())
def test_full_config_forward(benchmark: Any, family: str) -> None:
    model = build(family, 128)
    g = sweep_grids(model)
    inp = tiny_inputs(model, batch=1, seed=0)
    with hook(model, space=ActionSpace(g)) as h, torch.inference_mode():
        h.pin({n: v[-1] for n, v in g.items()})
        benchmark.group = f"family-{family}"
        benchmark.extra_info.update({"family": family, "threads": 1, "batch": 1})
        benchmark(lambda: model(**inp))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--families", nargs="*", default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None)
    args = p.parse_args()
    fams = args.families or list(tiny_families())
    report = {
        "rounds": args.rounds,
        "threads": 1,
        "torch": torch.__version__,
        "latency": [],
        "renormalisation": [],
    }
    for fam in fams:
        report["latency"].append(knob_latencies(fam, args.hidden, args.rounds))
        if (r := renormalisation(fam)) is not None:
            report["renormalisation"].append(r)
        print(f"{fam}: done", flush=True)
    md = markdown(report)
    print(md)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md)


if __name__ == "__main__":
    main()
