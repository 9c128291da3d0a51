"""``python -m fastctrl.compare.ship``: the controller an E5 run recommends is chosen on
validation gains of the deployed policy, copied with its fallback and its statistics."""

from __future__ import annotations

import json
import shutil

import pytest

from fastctrl import Controller
from fastctrl.compare.ship import main

from .train_kit import TINY_TRAINING, training_run


@pytest.fixture(scope="module")
def e5_dir(tmp_path_factory):
    """A fake E5 layout from one real small run, copied per (method, seed) with the
    validation gains edited: supervised wins on the mean, GRPO has the best single seed."""
    root = tmp_path_factory.mktemp("e5")
    base = root / "base"
    training_run(base, "--method", "supervised", *TINY_TRAINING).run()
    gains = {
        ("supervised", 0): (0.010, 0.012),
        ("supervised", 1): (0.030, 0.020),
        ("grpo", 0): (0.040, 0.050),
        ("grpo", 1): (-0.020, -0.030),
        ("lut", 0): (0.9, 0.9),  # trains no controller: never a candidate
    }
    for (method, seed), (deployed, raw) in gains.items():
        run = root / "runs" / f"{method}_seed{seed}"
        shutil.copytree(base, run)
        res = json.loads((run / "eval_results.json").read_text())
        res["method"] = method
        res["safe_fallback"] = {
            **res["safe_fallback"],
            "val_gain_deployed": deployed,
            "val_gain_raw": raw,
        }
        (run / "eval_results.json").write_text(json.dumps(res))
        (run / "controller" / "marker").write_text(f"{method} {seed}")
    stats = {
        "meta": {"command": "fastctrl compare ...", "profile": "synthetic"},
        "statistics": {
            "metrics": {
                "final_utility": {
                    "methods": {
                        m: {"point": 0.5, "low": 0.4, "high": 0.6, "n": 2, "values": [0.4, 0.6]}
                        for m in ("supervised", "grpo", "lut")
                    }
                }
            }
        },
    }
    (root / "e5_statistics.json").write_text(json.dumps(stats))
    return root


def test_ships_the_best_method_on_validation_then_its_best_seed(e5_dir, tmp_path):
    out = tmp_path / "shipped"
    assert main([str(e5_dir), "--output_dir", str(out)]) == 0
    # supervised: mean deployed gain 0.020 > grpo's 0.010, although grpo has the best seed
    assert (out / "marker").read_text() == "supervised 1"
    sel = json.loads((out / "selection.json").read_text())
    assert sel["chosen"]["method"] == "supervised" and sel["chosen"]["seed"] == 1
    assert sel["methods_validation"]["grpo"]["val_gain_deployed"] == pytest.approx(0.01)
    assert {c["method"] for c in sel["candidates"]} == {"supervised", "grpo"}
    assert sel["e5_test_utility"]["supervised"]["point"] == 0.5
    assert Controller.from_pretrained(out).fallback is not None
    # shipping again replaces the directory, nothing half-written is left beside it
    assert main([str(e5_dir), "--output_dir", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shipped"]


def test_refuses_an_e5_without_controllers_or_statistics(tmp_path):
    assert main([str(tmp_path), "--output_dir", str(tmp_path / "x")]) == 2
    (tmp_path / "e5_statistics.json").write_text("{}")
    (tmp_path / "runs").mkdir()
    assert main([str(tmp_path), "--output_dir", str(tmp_path / "x")]) == 2
