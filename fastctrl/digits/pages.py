"""Digit pages: scikit-learn's handwritten digits composed into small images with questions.

The scans are the 1,797 real 8x8 digits shipped inside scikit-learn (``load_digits``; UCI
"optical recognition of handwritten digits", 16 grey levels); nothing is downloaded. They are
split once, by a fixed permutation, into disjoint ``train`` / ``val`` / ``test`` pools
(60 / 20 / 20 %): a page of a split only ever shows scans of that split's pool.

A page is a ``PAGE x PAGE`` grey image (white ink on black, like the scans) holding a grid of
``rows x cols`` cells (1..4 each) in its top-left corner. Cells are ``CELL`` pixels square, one
vision patch of the digits model each, so that dropping vision tokens drops whole cells; the
digits are drawn at a per-page size of ``MIN_SIZE..CELL`` pixels (1.25x to 2x their scanned
size) at a random offset inside their cell. Each cell holds a digit with a per-page
probability; every row and every column holds at least one, so the grid's extent is readable
from the image. 1 to 16 digits per page.

Questions, by ``task_type`` (graded: one digit; one digit among many; all digits; one row or
column of digits), each with exactly one answer, a single word:

- ``read``: "digit at row R column C ?" (a filled cell) -> "0".."9"
- ``exists``: "is there a D ?" -> "yes" / "no" (balanced)
- ``count``: "how many D ?" -> "0".."16"
- ``largest``: "largest digit ?" -> "0".."9"
- ``sum``: "sum of row R ?" / "sum of column C ?" -> "0".."36"
- ``list``: "digits of row R ?" / "digits of column C ?" -> the digits of that row's (column's)
  filled cells in order, one word each ("3 0 7"): 1 to 4 answer tokens, so that a request's
  answer length, and with it its decode cost, varies, as it does in serving

Everything is a pure function of ``(split, seed, index)``: page ``i`` of a split and seed is
the same whatever else is generated.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import io

PAGE = 64
MAX_GRID = 4
#: a cell's side in pixels (the digits model's patch size)
CELL = PAGE // MAX_GRID
#: the smallest drawn digit size in pixels (the scans are 8x8)
MIN_SIZE = 10
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
#: the fixed permutation that assigns scans to splits (never changes with a run's seed)
SCAN_SPLIT_SEED = 20261201
TASK_TYPES = ("read", "exists", "count", "largest", "sum", "list")
#: how often each question type is asked
TASK_WEIGHTS = (0.3, 0.12, 0.16, 0.12, 0.12, 0.18)
#: every answer word (the answer vocabulary of the tokenizer); a ``list`` answer is several
ANSWERS = tuple(str(i) for i in range(37)) + ("yes", "no")
#: the most words an answer has (a ``list`` of a full row or column)
MAX_ANSWER_WORDS = MAX_GRID


@dataclass(frozen=True)
class Page:
    """One request: the page image and one question about it."""

    request_id: str
    split: str
    image: np.ndarray  # [PAGE, PAGE] uint8
    digits: tuple[tuple[int, ...], ...]  # rows x cols, -1 = empty cell
    task_type: str
    question: str
    answer: str

    @property
    def n_digits(self) -> int:
        return int(sum(d >= 0 for row in self.digits for d in row))

    @property
    def rgb(self) -> np.ndarray:
        """The page as the ``[PAGE, PAGE, 3]`` uint8 RGB image the processor takes."""
        return grey_to_rgb(self.image)


def grey_to_rgb(image: np.ndarray) -> np.ndarray:
    """``[H, W]`` grey -> ``[H, W, 3]`` RGB, the channel repeated (the processor wants RGB)."""
    return np.repeat(image[..., None], 3, -1)


def load_scans() -> tuple[np.ndarray, np.ndarray]:
    """The scans as ``[1797, 8, 8]`` uint8 (0..255) and their labels ``[1797]``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError(
            "the digits benchmark needs scikit-learn: pip install scikit-learn"
        ) from e
    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return images, d.target.astype(np.int64)


def scan_pool(split: str) -> np.ndarray:
    """Indices of the scans of ``split`` (disjoint across splits, fixed)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    n = len(load_scans()[1])
    perm = np.random.default_rng(SCAN_SPLIT_SEED).permutation(n)
    a = int(round(SPLIT_FRACTIONS[0] * n))
    b = a + int(round(SPLIT_FRACTIONS[1] * n))
    return {"train": perm[:a], "val": perm[a:b], "test": perm[b:]}[split]


class PageGenerator:
    """Pages of one split; ``page(i)`` is deterministic in ``(split, seed, i)``."""

    def __init__(self, split: str, seed: int = 0, task_types: Sequence[str] = TASK_TYPES) -> None:
        unknown = sorted(set(task_types) - set(TASK_TYPES))
        if unknown or not task_types:
            raise ValueError(
                f"task_types must be a non-empty subset of {TASK_TYPES}, got {list(task_types)}"
            )
        self.split, self.seed = split, int(seed)
        self.pool = scan_pool(split)
        self.scans, self.labels = load_scans()
        self.task_types = tuple(task_types)
        w = np.array([TASK_WEIGHTS[TASK_TYPES.index(t)] for t in self.task_types])
        self.task_p = w / w.sum()
        # PIL resizes are the slow part: each scan's resize per size is cached
        self._resized: dict[tuple[int, int], np.ndarray] = {}

    def _scan(self, idx: int, size: int) -> np.ndarray:
        key = (idx, size)
        if key not in self._resized:
            from PIL import Image

            img = Image.fromarray(self.scans[idx]).resize((size, size), Image.BILINEAR)
            self._resized[key] = np.asarray(img)
        return self._resized[key]

    def layout(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(digits [rows, cols] with -1 empty, scan index per cell)``."""
        rows, cols = int(rng.integers(1, MAX_GRID + 1)), int(rng.integers(1, MAX_GRID + 1))
        fill = rng.uniform(0.35, 1.0)
        filled = rng.random((rows, cols)) < fill
        # every row and column holds a digit, so positions can be read off the image
        for r in range(rows):
            if not filled[r].any():
                filled[r, rng.integers(cols)] = True
        for c in range(cols):
            if not filled[:, c].any():
                filled[rng.integers(rows), c] = True
        scans = np.where(filled, rng.choice(self.pool, size=(rows, cols)), -1)
        digits = np.where(filled, self.labels[np.maximum(scans, 0)], -1)
        return digits, scans

    def render(self, scans: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The page of a layout: one size per page, one random offset per digit."""
        rows, cols = scans.shape
        size = int(rng.integers(MIN_SIZE, CELL + 1))
        offsets = rng.integers(0, CELL - size + 1, size=(rows, cols, 2))
        page = np.zeros((PAGE, PAGE), np.uint8)
        for r in range(rows):
            for c in range(cols):
                if scans[r, c] >= 0:
                    y, x = r * CELL + offsets[r, c, 0], c * CELL + offsets[r, c, 1]
                    page[y : y + size, x : x + size] = self._scan(int(scans[r, c]), size)
        return page

    def page(self, i: int) -> Page:
        rng = np.random.default_rng([self.seed, SPLITS.index(self.split), int(i)])
        digits, scans = self.layout(rng)
        image = self.render(scans, rng)
        task = str(rng.choice(self.task_types, p=self.task_p))
        question, answer = ask(task, digits, rng)
        return Page(
            request_id=f"digits-{self.split}-{self.seed}-{i}",
            split=self.split,
            image=image,
            digits=tuple(tuple(int(d) for d in row) for row in digits),
            task_type=task,
            question=question,
            answer=answer,
        )

    def conversation(self, i: int, turns: int) -> tuple[Page, list[tuple[str, str, str]]]:
        """Page ``i`` and ``turns`` ``(task_type, question, answer)`` about it: the page's own
        question first, then ``turns - 1`` more drawn for the same layout (a multi-turn
        conversation about one image, as LLaVA's instruction data has)."""
        if turns < 1:
            raise ValueError(f"turns must be >= 1, got {turns}")
        page = self.page(i)
        rng = np.random.default_rng([self.seed, SPLITS.index(self.split), int(i), 1])
        digits = np.asarray(page.digits)
        qa = [(page.task_type, page.question, page.answer)]
        for _ in range(turns - 1):
            task = str(rng.choice(self.task_types, p=self.task_p))
            qa.append((task, *ask(task, digits, rng)))
        return page, qa

    def __iter__(self) -> Iterator[Page]:
        i = 0
        while True:
            yield self.page(i)
            i += 1


#: the patch label of a patch whose centre falls on no digit
NO_DIGIT = 10


def patch_cells(patch: int) -> tuple[np.ndarray, np.ndarray]:
    """The grid row and column of the cell under each ``patch x patch`` patch's centre, raster
    order (flat)."""
    centres = np.arange(patch // 2, PAGE, patch) // CELL
    r, c = np.meshgrid(centres, centres, indexing="ij")
    return r.reshape(-1), c.reshape(-1)


def patch_labels(digits: Sequence[Sequence[int]], patch: int) -> np.ndarray:
    """The digit of the cell under each ``patch x patch`` patch's centre, raster order
    (``NO_DIGIT`` where there is none): the dense target of the trainer's auxiliary vision
    loss."""
    d = np.asarray(digits)
    r, c = patch_cells(patch)
    inside = (r < d.shape[0]) & (c < d.shape[1])
    labels = np.full(r.shape, NO_DIGIT, np.int64)
    labels[inside] = d[r[inside], c[inside]]
    labels[labels < 0] = NO_DIGIT
    return labels


def relevant_patches(question: str, digits: Sequence[Sequence[int]], patch: int) -> np.ndarray:
    """Per ``patch x patch`` patch (raster order), whether the digit under it is one that
    ``question`` is about: the asked cell (``read``), digits equal to the asked one
    (``exists``, ``count``), the largest digits (``largest``), the digits of the asked row or
    column (``sum``, ``list``). The dense target of the trainer's question-to-vision-token match loss."""
    labels = patch_labels(digits, patch)
    rows, cols = patch_cells(patch)
    has = labels < NO_DIGIT
    w = question.split()
    if w[:2] == ["digit", "at"]:  # digit at row R column C ?
        hit = (rows == int(w[3]) - 1) & (cols == int(w[5]) - 1)
    elif w[:3] == ["is", "there", "a"] or w[:2] == ["how", "many"]:
        hit = labels == int(w[-2])
    elif w[:1] == ["largest"]:
        hit = labels == labels[has].max() if has.any() else np.zeros_like(has)
    elif w[:2] in (["sum", "of"], ["digits", "of"]):
        hit = (rows if w[2] == "row" else cols) == int(w[3]) - 1
    else:
        raise ValueError(f"not a digits question: {question!r}")
    return hit & has


def ask(task: str, digits: np.ndarray, rng: np.random.Generator) -> tuple[str, str]:
    """A question of type ``task`` about ``digits`` and its exact answer."""
    present = digits[digits >= 0]
    if task == "read":
        r, c = np.argwhere(digits >= 0)[rng.integers(len(present))]
        return f"digit at row {r + 1} column {c + 1} ?", str(int(digits[r, c]))
    if task == "exists":
        inside = sorted(set(present.tolist()))
        outside = sorted(set(range(10)) - set(inside))
        want = bool(rng.random() < 0.5) if outside else True
        d = int(rng.choice(inside if want else outside))
        return f"is there a {d} ?", "yes" if want else "no"
    if task == "count":
        # mostly a digit on the page (counts >= 1), sometimes one that is not (count 0)
        d = int(rng.choice(present)) if rng.random() < 0.8 else int(rng.integers(10))
        return f"how many {d} ?", str(int((present == d).sum()))
    if task == "largest":
        return "largest digit ?", str(int(present.max()))
    if task == "sum":
        rows, cols = digits.shape
        if rng.random() < 0.5:
            r = int(rng.integers(rows))
            return f"sum of row {r + 1} ?", str(int(np.maximum(digits[r], 0).sum()))
        c = int(rng.integers(cols))
        return f"sum of column {c + 1} ?", str(int(np.maximum(digits[:, c], 0).sum()))
    if task == "list":
        rows, cols = digits.shape
        if rng.random() < 0.5:
            r = int(rng.integers(rows))
            return f"digits of row {r + 1} ?", " ".join(str(int(d)) for d in digits[r] if d >= 0)
        c = int(rng.integers(cols))
        return (
            f"digits of column {c + 1} ?",
            " ".join(str(int(d)) for d in digits[:, c] if d >= 0),
        )
    raise ValueError(f"task must be one of {TASK_TYPES}, got {task!r}")


def profile_pages(
    n_val: int, n_test: int, seed: int = 0, train_share: float = 0.75
) -> list[tuple[Page, str]]:
    """Pages for profiling, each with the profile split it belongs to.

    The model never saw these scans: pages of the ``val`` scan pool become the profile's
    ``train`` (the first ``train_share``) and ``val`` requests, on which controllers learn and
    are tuned; pages of the ``test`` scan pool are its ``test`` requests, read for final numbers
    only.
    """
    if n_val < 2 or n_test < 1 or not 0.0 < train_share < 1.0:
        raise ValueError(
            f"need n_val >= 2, n_test >= 1, 0 < train_share < 1; got {n_val}, "
            f"{n_test}, {train_share}"
        )
    val, test = PageGenerator("val", seed), PageGenerator("test", seed)
    cut = int(round(train_share * n_val))
    return [(val.page(i), "train" if i < cut else "val") for i in range(n_val)] + [
        (test.page(i), "test") for i in range(n_test)
    ]


def write_dataset(
    directory: str | Path, pages: Sequence[tuple[Page, str]], name: str = "questions.jsonl"
) -> Path:
    """Write pages as PNGs plus a JSONL the profiler and the evaluator read (``--dataset``).

    ``pages``: ``(page, split)`` pairs, ``split`` being the ``profile_split`` column written (the
    profile split). Rows: ``request_id, image, question, answer, task_type, profile_split,
    n_digits, digits``. Every file is written atomically, the JSONL last.
    """
    from PIL import Image

    directory = Path(directory)
    (directory / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for page, split in pages:
        rel = f"images/{page.request_id}.png"
        with io.atomic_path(directory / rel) as tmp:
            Image.fromarray(page.image).save(tmp, format="PNG")
        rows.append(
            {
                "request_id": page.request_id,
                "image": rel,
                "question": page.question,
                "answer": page.answer,
                "task_type": page.task_type,
                "profile_split": split,
                "n_digits": page.n_digits,
                "digits": json.dumps(page.digits),
            }
        )
    out = directory / name
    io.write_text(out, "".join(json.dumps(r) + "\n" for r in rows))
    return out
