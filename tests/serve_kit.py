"""A real fastctrl server on 127.0.0.1 for the tests: uvicorn in a thread, a free port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from fastctrl.serve.app import create_app
from fastctrl.serve.cli import ServeArgs, build_state
from fastctrl.serve.media import data_url  # noqa: F401 (the tests' data URLs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(args: ServeArgs) -> Iterator[tuple[str, object]]:
    """``(base_url, state)`` of a server built exactly as ``fastctrl serve`` builds it."""
    state = build_state(args)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    else:
        raise RuntimeError("the test server did not start")
    try:
        yield url, state
    finally:
        server.should_exit = True
        thread.join(60)


def chat_body(question: str, image_url: str, **extra: object) -> dict:
    return {
        "model": "fastctrl-digits",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": question},
                    {"type": "image_url", "image_url": {"url": image_url}},
                ],
            }
        ],
        "max_tokens": 5,
        **extra,
    }
