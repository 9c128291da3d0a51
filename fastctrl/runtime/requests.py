"""A request as every stage that runs a model sees it (image, prompt, answer, task type,
split), and the conversion of dataset items into requests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Request:
    request_id: str
    image: Any
    prompt: str
    answer: str | Sequence[str] | None
    task_type: str
    #: the profile split (``train`` / ``val`` / ``test``) the request belongs to; empty: the
    #: profile assigns one by seed when it is loaded
    split: str = ""


def as_requests(dataset: Iterable[Any]) -> Iterable[Request]:
    """Accept samples with attributes (``request_id``, ``image``, ``prompt``, ``answer``,
    ``task_type``), dicts with those keys, or tuples ``(image, prompt[, answer])``."""
    for i, item in enumerate(dataset):
        yield as_request(item, i)


def as_request(item: Any, i: int) -> Request:
    """Dataset item ``i`` as a :class:`Request` (see :func:`as_requests`)."""
    if isinstance(item, dict):
        get = item.get
    elif hasattr(item, "image") and hasattr(item, "prompt"):

        def get(k: str, default: Any = None, _it: Any = item) -> Any:
            return getattr(_it, k, default)
    elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
        vals = dict(zip(("image", "prompt", "answer"), item, strict=False))
        get = vals.get
    else:
        raise TypeError(
            f"dataset item {i}: expected (image, prompt[, answer]), a dict or a sample "
            f"object with image/prompt attributes, got {type(item).__name__}"
        )
    prompt = get("prompt")
    if not isinstance(prompt, str):
        raise TypeError(f"dataset item {i}: prompt must be a str, got {type(prompt).__name__}")
    return Request(
        str(get("request_id") or f"req-{i:05d}"),
        get("image"),
        prompt,
        get("answer"),
        str(get("task_type") or "vqa"),
        str(get("split") or ""),
    )
