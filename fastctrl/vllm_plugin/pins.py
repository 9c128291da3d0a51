"""What the plugin was written against, checked at start-up.

The plugin reaches into vLLM below its public API (the V1 model runner's batch layout, the
MoE router, the decoder layers' structure), so it is pinned to one vLLM minor version and one
model runner; anything else fails at start-up with this module's message instead of giving
wrong tokens.
"""

from __future__ import annotations

from typing import Any

#: vLLM versions the plugin was written and tested for (``vllm.__version__`` prefix)
SUPPORTED_VLLM = "0.32."
#: the model runner it reads the batch from: V1's ``GPUModelRunner`` (``CPUModelRunner`` on CPU)
SUPPORTED_RUNNER = "vllm.v1.worker.gpu_model_runner.GPUModelRunner (model runner V1)"
#: the runner attributes the batch mapping reads (checked on the first forward)
RUNNER_ATTRS = ("input_batch", "query_start_loc", "requests", "get_model")


class UnsupportedVllmError(RuntimeError):
    """The installed vLLM (or its configuration) is not what the plugin was written for."""


def check_vllm_version(version: str) -> None:
    """Raise unless ``version`` (``vllm.__version__``) is a supported release."""
    if not version.startswith(SUPPORTED_VLLM):
        raise UnsupportedVllmError(
            f"fastctrl vLLM plugin: written for vLLM {SUPPORTED_VLLM}x, found vLLM {version}. "
            "Install the pinned version (pip install 'fastctrl[vllm]'), or turn the plugin off "
            "(unset FASTCTRL_CONTROLLER and FASTCTRL_VLLM, or set VLLM_PLUGINS to a list "
            "without 'fastctrl')."
        )


def check_engine_config(vllm_config: Any) -> None:
    """Raise for engine settings under which per-request configs would be wrong or unread."""
    if getattr(vllm_config, "use_v2_model_runner", False):
        raise UnsupportedVllmError(
            f"fastctrl vLLM plugin: written for {SUPPORTED_RUNNER}; this engine uses Model "
            "Runner V2. Start it with VLLM_USE_V2_MODEL_RUNNER=0."
        )
    if vllm_config.cache_config.enable_prefix_caching:
        raise UnsupportedVllmError(
            "fastctrl vLLM plugin: requests at different configs must not share prefix-cache "
            "blocks (their KV differs with top_k and depth); start vLLM with "
            "enable_prefix_caching=False (vllm serve --no-enable-prefix-caching)."
        )
    if vllm_config.parallel_config.pipeline_parallel_size != 1:
        raise UnsupportedVllmError(
            "fastctrl vLLM plugin: pipeline parallelism is not supported (depth is decided "
            f"per request across all blocks); got pipeline_parallel_size="
            f"{vllm_config.parallel_config.pipeline_parallel_size}"
        )
    if vllm_config.speculative_config is not None:
        raise UnsupportedVllmError(
            "fastctrl vLLM plugin: speculative decoding is not supported (a draft model would "
            "run at another config than the request)"
        )


def check_eager(module: Any) -> None:
    """The language model must run its Python forward (no torch.compile graph, no CUDA
    graphs): the per-request depth is data-dependent control flow between blocks."""
    if not getattr(module, "do_not_compile", True):
        raise UnsupportedVllmError(
            "fastctrl vLLM plugin: needs the eager forward; start vLLM with "
            "enforce_eager=True (vllm serve --enforce-eager)"
        )


def check_runner(runner: Any) -> None:
    """The runner has the attributes the batch mapping reads."""
    missing = [a for a in RUNNER_ATTRS if not hasattr(runner, a)]
    if missing:
        raise UnsupportedVllmError(
            f"fastctrl vLLM plugin: the model runner {type(runner).__name__} lacks {missing}; "
            f"the plugin was written for {SUPPORTED_RUNNER} in vLLM {SUPPORTED_VLLM}x"
        )
