"""The built-in handwritten-digits VLM benchmark: a real (small) model trained here on real
scans, so that a controller's effect on real answers under a measured latency budget can be
reproduced on a laptop CPU.

- :mod:`.pages`: scikit-learn's 8x8 digit scans composed into pages with graded questions;
- :mod:`.model`: the model (stock LLaVA + OLMoE classes) and its real processor;
- :mod:`.train`: elastic training from scratch (``python -m fastctrl.digits.train``);
- :mod:`.data`: the profiling / evaluation datasets (``python -m fastctrl.digits.data``);
- :mod:`.report`: accuracy and latency per question type x config from a profile.

The trained model ships in ``fastctrl/digits/pretrained`` (``--model fastctrl-digits`` in the
CLIs) and its measured profile in ``fastctrl/digits/profile`` (``--profile fastctrl-digits``).
"""

from __future__ import annotations

from pathlib import Path

#: the ``--model`` name of the shipped digits VLM
DIGITS_MODEL = "fastctrl-digits"


def pretrained_dir() -> Path:
    """The shipped ``save_pretrained`` directory of the trained digits VLM."""
    d = Path(__file__).resolve().parent / "pretrained"
    if not (d / "config.json").is_file():
        raise FileNotFoundError(
            f"{d} holds no trained digits model (config.json missing); train one with "
            "`python -m fastctrl.digits.train --output_dir fastctrl/digits/pretrained`"
        )
    return d


def shipped_controller() -> Path:
    """The shipped controller of the digits VLM (``Controller.save_pretrained``), served by
    default by ``fastctrl serve --model fastctrl-digits``."""
    d = Path(__file__).resolve().parent / "controller"
    if not (d / "config.json").is_file():
        raise FileNotFoundError(f"{d} holds no controller (config.json missing)")
    return d


def shipped_profile() -> Path:
    """The shipped measured profile of the digits VLM (table; its feature store and sweep
    sidecar, which records the machine it was measured on, beside it)."""
    p = Path(__file__).resolve().parent / "profile" / "digits.parquet"
    if not p.is_file():
        raise FileNotFoundError(
            f"{p} missing: profile the digits model with `python -m "
            "fastctrl.profile --model fastctrl-digits ...` (README)"
        )
    return p
