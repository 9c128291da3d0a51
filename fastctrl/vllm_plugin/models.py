"""The model classes the plugin registers in place of vLLM's (same weights, same names).

Each is vLLM's own class with the per-request forward installed on the built instance
(:func:`.forward.install`): OLMoE (``OlmoeForCausalLM``) and Qwen3-MoE
(``Qwen3MoeForCausalLM``). Qwen3-VL-MoE and LLaVA classes are not registered: on this CPU
build vLLM's VLM classes import torchvision (not installable beside the CPU torch), so they
could not be run or tested here.
"""

from __future__ import annotations

from typing import Any

from vllm.model_executor.models.olmoe import OlmoeForCausalLM
from vllm.model_executor.models.qwen3_moe import Qwen3MoeForCausalLM

from .decisions import Decider, ModelLimits
from .forward import install
from .pins import check_engine_config
from .runner_bridge import install_runner_bridge


def _setup(model: Any, vllm_config: Any) -> None:
    check_engine_config(vllm_config)
    cfg = vllm_config.model_config.hf_text_config
    limits = ModelLimits(
        top_k=int(cfg.num_experts_per_tok),
        num_layers=int(cfg.num_hidden_layers),
        hidden_size=int(cfg.hidden_size),
    )
    decider = Decider.from_env(limits)
    # a plain attribute (not a submodule): nothing is added to the state dict
    object.__setattr__(model, "fastctrl_state", install(model, limits, decider))
    install_runner_bridge()


class FastctrlOlmoeForCausalLM(OlmoeForCausalLM):
    def __init__(self, *, vllm_config: Any, prefix: str = "") -> None:
        super().__init__(vllm_config=vllm_config, prefix=prefix)
        _setup(self, vllm_config)


class FastctrlQwen3MoeForCausalLM(Qwen3MoeForCausalLM):
    def __init__(self, *, vllm_config: Any, prefix: str = "") -> None:
        super().__init__(vllm_config=vllm_config, prefix=prefix)
        _setup(self, vllm_config)
