"""fastctrl as a vLLM plugin: per-request ``top_k`` and depth, decided by the controller.

Installed by ``pip install 'fastctrl[vllm]'`` as the ``vllm.general_plugins`` entry point
``fastctrl`` (:func:`register`), which vLLM calls in every process it starts. It is on when
``FASTCTRL_CONTROLLER=DIR`` (the server's policy) or ``FASTCTRL_VLLM=1`` (pins only) is set;
otherwise :func:`register` returns without touching vLLM. On, it checks the vLLM version
(:mod:`.pins`) and registers the fastctrl classes for the supported architectures
(:mod:`.models`); the worker that builds such a model installs the per-request forward
(:mod:`.forward`) and the batch bridge (:mod:`.runner_bridge`).

Per request (``vllm_xargs`` / ``SamplingParams.extra_args``, :mod:`.request_args`):
``fastctrl_budget_ms``, ``fastctrl_task_type``, ``fastctrl_pin``. Decisions: :mod:`.decisions`.
"""

from __future__ import annotations

import logging
import os

from .pins import check_vllm_version

log = logging.getLogger(__name__)

ENABLE_ENV = "FASTCTRL_VLLM"
#: architecture name -> the fastctrl class registered for it (lazy: imported in the worker)
MODELS = {
    "OlmoeForCausalLM": "fastctrl.vllm_plugin.models:FastctrlOlmoeForCausalLM",
    "Qwen3MoeForCausalLM": "fastctrl.vllm_plugin.models:FastctrlQwen3MoeForCausalLM",
}


def enabled() -> bool:
    """Whether the plugin is on in this process (see the module docstring)."""
    return bool(os.environ.get("FASTCTRL_CONTROLLER")) or os.environ.get(ENABLE_ENV) == "1"


def register() -> None:
    """The ``vllm.general_plugins`` entry point (safe to call more than once)."""
    if not enabled():
        return
    import vllm
    from vllm import ModelRegistry

    check_vllm_version(vllm.__version__)
    for arch, target in MODELS.items():
        ModelRegistry.register_model(arch, target)
    log.info("fastctrl vLLM plugin: per-request configs for %s", ", ".join(MODELS))
