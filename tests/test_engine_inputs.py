"""Bad input for every engine: a clear exception naming the argument, never a crash."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastctrl import make_engine

from .conftest import random_inputs


def _engines(controller):
    # every engine, none dropped: an engine missing here is a failure (EngineUnavailableError)
    return [make_engine(controller, kind) for kind in ("torch", "int8", "triton")]


def bad_cases(controller):
    img, txt, budget = random_inputs(controller, 4)
    nan_img = img.copy()
    nan_img[1, 3] = np.nan
    inf_txt = txt.copy()
    inf_txt[0, 0] = np.inf
    wide = np.zeros((4, controller.config.image_dim * 2), np.float32)
    return [
        ("wrong dims", (img[:, :-1].copy(), txt, budget), ValueError, "image_feat"),
        ("3-D", (img[None], txt, budget), ValueError, "image_feat"),
        ("int dtype", (img.astype(np.int32), txt, budget), TypeError, "image_feat"),
        ("list", (img.tolist(), txt, budget), TypeError, "image_feat"),
        ("NaN", (nan_img, txt, budget), ValueError, "NaN"),
        ("inf", (img, inf_txt, budget), ValueError, "NaN or inf"),
        ("empty", (img[:0], txt[:0], budget[:0]), ValueError, "empty"),
        ("zero budget", (img, txt, 0.0), ValueError, "budget_ms"),
        ("negative budgets", (img, txt, -budget), ValueError, "budget_ms"),
        ("nan budget", (img, txt, np.full(4, np.nan, np.float32)), ValueError, "budget_ms"),
        ("budget count", (img, txt, budget[:3]), ValueError, "budget_ms"),
        ("batch mismatch", (img, txt[:3], budget), ValueError, "batch size"),
        ("non-contiguous", (np.asfortranarray(img), txt, budget), ValueError, "contiguous"),
        ("strided", (wide[:, ::2], txt, budget), ValueError, "contiguous"),
        ("mixed", (torch.from_numpy(img), txt, budget), TypeError, "both"),
    ]


def test_bad_inputs_raise_clear_errors(small_controller):
    for engine in _engines(small_controller):
        for label, args, exc, match in bad_cases(small_controller):
            with pytest.raises(exc, match=match):
                engine.decide(*args)
            _ = label


def test_numpy_and_torch_inputs_give_same_decisions(small_controller):
    img, txt, budget = random_inputs(small_controller, 17)
    for engine in _engines(small_controller):
        a = engine.decide(img, txt, budget)
        b = engine.decide(torch.from_numpy(img), torch.from_numpy(txt), torch.from_numpy(budget))
        assert isinstance(a, np.ndarray) and a.dtype == np.int64 and a.shape == (17, 3)
        assert isinstance(b, torch.Tensor) and b.dtype == torch.int64
        np.testing.assert_array_equal(a, b.numpy())
        scalar = engine.decide(img, txt, 40.0)
        np.testing.assert_array_equal(scalar, engine.decide(img, txt, np.full(17, 40.0)))


def test_unknown_engine_kind(small_controller):
    with pytest.raises(ValueError, match="engine kind"):
        make_engine(small_controller, "cuda")
