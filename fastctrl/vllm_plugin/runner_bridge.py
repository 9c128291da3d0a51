"""Where the per-step batch layout reaches the model: around the runner's ``_model_forward``.

vLLM's V1 runner documents ``GPUModelRunner._model_forward`` (inherited by ``CPUModelRunner``)
as the one call into the model, "overridable for model execution". The runner instance is
built by vLLM, not by the plugin, so the wrap goes on that method of the runner class, once
per worker process and only when a fastctrl model is built there; for any other model it
calls the original straight through. Around a fastctrl model's forward it hands the model's
:class:`~.forward.FastctrlState` the runner (request ids, ``query_start_loc``, each request's
``SamplingParams.extra_args`` and prompt) for that step.
"""

from __future__ import annotations

import functools
from typing import Any

_WRAPPED = "_fastctrl_wrapped"


def install_runner_bridge() -> None:
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner

    original = GPUModelRunner._model_forward
    if getattr(original, _WRAPPED, False):
        return

    @functools.wraps(original)
    def _model_forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        state = getattr(self.get_model(), "fastctrl_state", None)
        if state is None:
            return original(self, *args, **kwargs)
        state.begin_step(self)
        try:
            return original(self, *args, **kwargs)
        finally:
            state.end_step()

    setattr(_model_forward, _WRAPPED, True)
    GPUModelRunner._model_forward = _model_forward
