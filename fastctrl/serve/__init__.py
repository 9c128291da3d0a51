"""``fastctrl serve``: an OpenAI-compatible server where every request carries its own latency
budget and runs at its own config.

- :mod:`.protocol`: the chat-completions schema and the ``fastctrl`` request / response
  objects (also read from vLLM's ``vllm_xargs``);
- :mod:`.media`: ``image_url`` parts (data URLs; local files under an allowed directory);
- :mod:`.runner`: a batch of requests on the hooked model, each at its own config;
- :mod:`.scheduler`: earliest-deadline-first queue, admission control, the model worker;
- :mod:`.app`: the FastAPI routes and OpenAI-style errors; :mod:`.telemetry`: Prometheus;
- :mod:`.cli`: ``fastctrl serve``; :mod:`.loadtest`: ``fastctrl loadtest``.
"""

from __future__ import annotations

import importlib.util


def require_serve_extra(*modules: str) -> None:
    """Fail with the install hint, not a bare ModuleNotFoundError, where the ``serve`` extra
    (FastAPI, uvicorn, prometheus_client, openai, httpx) is not installed."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(
            f"this command needs {', '.join(missing)}: pip install -e '.[serve]' "
            "(or pip install 'fastctrl[serve]')"
        )
