"""A small built-in synthetic image/question set for the profiler demo and tests.

Each sample is a seeded RGB image (uint8, HxWx3) with one coloured shape and a few dots on a
plain background, a question about it and its answer. Three task types:

- ``color``: "what color is the shape?" -> ``red`` / ``green`` / ``blue`` / ``yellow``
- ``shape``: "what shape is it?"         -> ``square`` / ``circle`` / ``cross``
- ``count``: "how many dots are there?"  -> ``1`` .. ``4``

It is a smoke-test dataset: a random-weight model cannot answer it, so profiling a tiny model
uses agreement with the full configuration as the quality proxy (see ``fastctrl.profile``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 70, 220),
    "yellow": (230, 210, 40),
}
SHAPES = ("square", "circle", "cross")
TASKS = ("color", "shape", "count")
QUESTIONS = {
    "color": "what color is the shape?",
    "shape": "what shape is it?",
    "count": "how many dots are there?",
}


@dataclass(frozen=True)
class VQASample:
    """One request: an image, a prompt, an optional answer, and bookkeeping."""

    request_id: str
    image: np.ndarray
    prompt: str
    answer: str | None
    task_type: str

    def __iter__(self) -> Iterator[object]:  # unpacks as (image, prompt, answer)
        return iter((self.image, self.prompt, self.answer))


def _draw(rng: np.random.Generator, size: int, color: str, shape: str, dots: int) -> np.ndarray:
    img = np.full((size, size, 3), rng.integers(200, 250), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    r = size // 5
    cy, cx = rng.integers(r + 1, size - r - 1, size=2)
    if shape == "square":
        mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
    elif shape == "circle":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    else:
        mask = ((abs(yy - cy) <= r // 3) & (abs(xx - cx) <= r)) | (
            (abs(xx - cx) <= r // 3) & (abs(yy - cy) <= r)
        )
    img[mask] = COLORS[color]
    for _ in range(dots):
        dy, dx = rng.integers(1, size - 2, size=2)
        img[dy : dy + 2, dx : dx + 2] = (20, 20, 20)
    return img


def synthetic_vqa(
    n: int = 16, *, seed: int = 0, size: int = 32, with_answers: bool = True
) -> list[VQASample]:
    """``n`` deterministic samples cycling through the task types."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        color = str(rng.choice(list(COLORS)))
        shape = str(rng.choice(SHAPES))
        dots = int(rng.integers(1, 5))
        task = TASKS[i % len(TASKS)]
        answer = {"color": color, "shape": shape, "count": str(dots)}[task]
        out.append(
            VQASample(
                f"vqa{seed}-{i:05d}",
                _draw(rng, size, color, shape, dots),
                QUESTIONS[task],
                answer if with_answers else None,
                task,
            )
        )
    return out
