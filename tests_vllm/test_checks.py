"""Start-up checks, request fields and the plugin switch (no engine started)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from fastctrl import vllm_plugin
from fastctrl.vllm_plugin import pins
from fastctrl.vllm_plugin.request_args import parse_pin, parse_request_args


def test_an_unsupported_vllm_fails_at_start_up_with_the_pin(monkeypatch) -> None:
    import vllm

    pins.check_vllm_version(vllm.__version__)  # the installed one is the pinned one
    monkeypatch.setenv("FASTCTRL_VLLM", "1")
    monkeypatch.setattr(vllm, "__version__", "0.33.0")
    with pytest.raises(pins.UnsupportedVllmError, match=r"written for vLLM 0\.32\.x, found"):
        vllm_plugin.register()


def test_the_plugin_off_registers_nothing(monkeypatch) -> None:
    from vllm import ModelRegistry

    monkeypatch.delenv("FASTCTRL_CONTROLLER", raising=False)
    monkeypatch.delenv("FASTCTRL_VLLM", raising=False)
    before = {a: ModelRegistry.models[a] for a in vllm_plugin.MODELS}
    vllm_plugin.register()
    assert {a: ModelRegistry.models[a] for a in vllm_plugin.MODELS} == before
    assert not vllm_plugin.enabled()


def _config(**over) -> SimpleNamespace:
    cfg = SimpleNamespace(
        use_v2_model_runner=False,
        cache_config=SimpleNamespace(enable_prefix_caching=False),
        parallel_config=SimpleNamespace(pipeline_parallel_size=1),
        speculative_config=None,
    )
    for k, v in over.items():
        setattr(cfg, k, v)
    return cfg


def test_engine_settings_the_plugin_cannot_serve_are_refused() -> None:
    pins.check_engine_config(_config())
    with pytest.raises(pins.UnsupportedVllmError, match="VLLM_USE_V2_MODEL_RUNNER=0"):
        pins.check_engine_config(_config(use_v2_model_runner=True))
    with pytest.raises(pins.UnsupportedVllmError, match="no-enable-prefix-caching"):
        pins.check_engine_config(_config(cache_config=SimpleNamespace(enable_prefix_caching=True)))
    with pytest.raises(pins.UnsupportedVllmError, match="enforce_eager"):
        pins.check_eager(SimpleNamespace(do_not_compile=False))


def test_request_fields() -> None:
    args = parse_request_args(
        {"fastctrl_budget_ms": "250", "fastctrl_task_type": "ocr", "other": 1}
    )
    assert (args.budget_ms, args.task_type, args.pin) == (250.0, "ocr", None)
    assert parse_pin("top_k=2, num_active_blocks=3") == {"top_k": 2, "num_active_blocks": 3}
    assert parse_pin({"top_k": 1}) == {"top_k": 1}
    for bad, match in [
        ({"fastctrl_budget_ms": -1}, "fastctrl_budget_ms must be finite and > 0"),
        ({"fastctrl_budget_ms": "soon"}, "fastctrl_budget_ms must be a number"),
        ({"fastctrl_task_type": 3}, "fastctrl_task_type must be a string"),
        ({"fastctrl_pin": "max_crops=2"}, "unknown knob 'max_crops'"),
        ({"fastctrl_pin": "top_k=two"}, "top_k must be an integer"),
        ({"fastctrl_pin": "top_k"}, "expected 'knob=value' pairs"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_request_args(bad)
