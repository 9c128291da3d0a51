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
