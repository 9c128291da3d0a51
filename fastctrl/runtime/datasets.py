"""Load VQA-style datasets from where users keep them, as :class:`~fastctrl.profile.sweep.Request`
sequences for the profiler (``--dataset``) and the live evaluator.

One entry point, :func:`load_vqa_dataset`. ``source`` is tried in this order:

1. an existing ``.jsonl`` file: one JSON object per line (blank lines ignored);
2. an existing ``.json`` file: a JSON list of objects;
3. an existing ``.csv`` file (header row, UTF-8). Every cell is read as a string; the answers
   cell is either a JSON list (``["two", "2"]``) or a ``|``-separated string (``two|2``; pieces
   are stripped). Use the JSON form when an answer itself contains ``|``. An empty cell means
   "no answer";
4. a directory written by ``datasets.save_to_disk`` (a ``Dataset`` or a ``DatasetDict``; with
   several splits ``split`` must name one, the error lists them);
5. an image folder: a directory holding exactly one of ``questions.jsonl`` /
   ``questions.json`` / ``questions.csv`` (same formats as above);
6. anything else is treated as a Hugging Face Hub dataset name and passed to
   ``datasets.load_dataset(source, split=split)``. A source that looks like a path (a known
   suffix, or starting with ``/``, ``.``, ``~``) but does not exist raises
   :class:`FileNotFoundError` instead.

Image paths in files are relative to the data file's directory (for an image folder: the
folder; for ``save_to_disk``: that directory; for the hub: the working directory); absolute
paths and ``~`` work too. An image value may also be a Hugging Face ``Image`` feature value
(``{"bytes": ..., "path": ...}``), raw encoded bytes, a PIL image or an ``HxW[x3]`` uint8 array.

Columns (see :class:`ColumnMap`; an explicitly named column must exist, an unset one is looked
up under these names, first match wins):

- image: ``image``, ``image_path``, ``img``, ``file_name``, ``image_file``;
- question (-> ``Request.prompt``): ``question``, ``query``, ``prompt``;
- answers: ``answers``, ``answer``, ``label``. A list of reference strings, or one string
  (-> ``[string]``); numbers become strings; lists of ``{"answer": ...}`` / ``{"text": ...}``
  dicts (VQAv2-style) and ``ClassLabel`` ints are unpacked. ``Request.answer`` is always a
  ``list[str]`` (or ``None`` when ``require_answers=False`` and the row has none);
- task_type (optional, default ``"vqa"``): ``task_type``, ``task``;
- split (optional): the profile split of the request, ``train`` / ``val`` / ``test`` (e.g. to
  keep a benchmark's own test requests out of training); empty -> assigned by seed when the
  profile is loaded: ``profile_split``;
- request_id (optional, default ``<source stem>-<row index>``, the row index being the row's
  position in the source, so ids do not change with ``shuffle``/``max_samples``):
  ``request_id``, ``question_id``, ``id``.

Validation happens at load time, for every row that is selected: the question must be a
non-empty string, the answers a non-empty list of non-empty strings (a missing answer is only
allowed with ``require_answers=False``; an empty list never is), the image must exist and pass
PIL's ``verify()`` (header and, for PNG, chunk CRCs: catches truncated and non-image files), and
request ids must be unique. A bad row raises :class:`ValueError` naming the row index, request id,
column and what was expected; with ``on_error="skip"`` it is skipped and recorded in
``VQADataset.skipped`` (see :meth:`VQADataset.summary`). Nothing is dropped silently.

Images are loaded **lazily**: only the reference is kept, and each ``dataset[i]`` (or iteration
step) decodes the image afresh into a PIL RGB image (no cache, so memory stays flat on large
sets). A decode failure that ``verify()`` could not foresee raises a ``ValueError`` naming the
row at access time.

Row selection is deterministic: rows are visited in source order, or in the order of a
``numpy.random.default_rng(seed)`` permutation with ``shuffle=True``; the first ``max_samples``
*valid* rows are kept (skipped rows do not count towards ``max_samples``).

``datasets`` (Hugging Face) is optional and imported only for sources 4 and 6.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from .requests import Request

log = logging.getLogger(__name__)

__all__ = ["ColumnMap", "HubDatasetError", "VQADataset", "load_vqa_dataset", "LOCAL_FORMATS"]

LOCAL_FORMATS = (
    "a .jsonl file (one JSON object per line)",
    "a .json file (a JSON list of objects)",
    "a .csv file (answers as a JSON list or a '|'-separated string)",
    "a directory written by datasets.save_to_disk (Dataset or DatasetDict)",
    "an image folder containing questions.jsonl, questions.json or questions.csv",
)
QUESTIONS_FILES = ("questions.jsonl", "questions.json", "questions.csv")
FILE_SUFFIXES = (".jsonl", ".json", ".csv")

ALIASES: dict[str, tuple[str, ...]] = {
    "image": ("image", "image_path", "img", "file_name", "image_file"),
    "question": ("question", "query", "prompt"),
    "answers": ("answers", "answer", "label"),
    "task_type": ("task_type", "task"),
    "split": ("profile_split",),
    "request_id": ("request_id", "question_id", "id"),
}


@dataclass(frozen=True)
class ColumnMap:
    """Which source column holds each field. ``None`` (the default) = look the field up under
    its usual names (:data:`ALIASES`); a name given here must exist in the source."""

    image: str | None = None
    question: str | None = None
    answers: str | None = None
    task_type: str | None = None
    split: str | None = None
    request_id: str | None = None


class HubDatasetError(RuntimeError):
    """A source that is no local file or directory was treated as a Hub dataset name and
    ``datasets.load_dataset`` failed (typically: no network)."""


class _RowError(Exception):
    def __init__(self, column: str | None, message: str):
        super().__init__(message)
        self.column = column
        self.message = message


# --------------------------------------------------------------------------- images


@dataclass(frozen=True)
class _HFImage:
    """Re-fetches an image cell from a (memory-mapped) HF dataset at access time."""

    dataset: Any
    index: int
    column: str
    base_dir: Path | None

    def fetch(self) -> Any:
        return _image_ref(self.dataset[self.index][self.column], self.base_dir, check=False)


def _image_ref(value: Any, base_dir: Path | None, *, check: bool = True) -> Any:
    """Normalise an image cell to a Path, bytes, a PIL image or an ndarray; raise _RowError."""
    from PIL import Image

    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise _RowError(None, "missing image: expected a file path, image bytes or an image")
    if isinstance(value, dict):
        if value.get("bytes"):
            value = value["bytes"]
        elif value.get("path"):
            value = value["path"]
        else:
            raise _RowError(None, "image dict has neither 'bytes' nor 'path'")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (str, os.PathLike)):
        if not str(value).strip():
            raise _RowError(None, "missing image: empty path")
        p = Path(value).expanduser()
        if not p.is_absolute() and base_dir is not None:
            p = base_dir / p
        if check and not p.is_file():
            raise _RowError(None, f"image file not found: {p}")
        return p
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, np.ndarray):
        if value.ndim not in (2, 3) or (value.ndim == 3 and value.shape[-1] not in (1, 3, 4)):
            raise _RowError(None, f"image array must be HxW or HxWx{{1,3,4}}, got {value.shape}")
        return value
    raise _RowError(
        None,
        "expected a file path, an HF Image dict {'bytes', 'path'}, image "
        f"bytes, a PIL image or an array, got {type(value).__name__}",
    )


def _verify(ref: Any) -> None:
    from PIL import Image

    if isinstance(ref, (Path, bytes)):
        src = ref if isinstance(ref, Path) else io.BytesIO(ref)
        what = str(ref) if isinstance(ref, Path) else f"{len(ref)} image bytes"
        try:
            with Image.open(src) as im:
                im.verify()
        except Exception as e:  # UnidentifiedImageError, OSError, SyntaxError, ...
            raise _RowError(
                None, f"unreadable or corrupt image ({what}): {type(e).__name__}: {e}"
            ) from None


def _decode(ref: Any) -> Any:
    from PIL import Image

    if isinstance(ref, _HFImage):
        ref = ref.fetch()
    if isinstance(ref, Path):
        with Image.open(ref) as im:
            return im.convert("RGB")
    if isinstance(ref, bytes):
        with Image.open(io.BytesIO(ref)) as im:
            return im.convert("RGB")
    if isinstance(ref, np.ndarray):
        arr = ref[..., 0] if ref.ndim == 3 and ref.shape[-1] == 1 else ref
        return Image.fromarray(np.asarray(arr, dtype=np.uint8)).convert("RGB")
    return ref.convert("RGB")


# --------------------------------------------------------------------------- fields


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _one_answer(v: Any, where: str) -> str:
    if isinstance(v, dict):
        key = next((k for k in ("answer", "text") if k in v), None)
        if key is None:
            raise _RowError(
                None,
                f"{where}: a dict answer needs an 'answer' or 'text' key, got keys {sorted(v)}",
            )
        v = v[key]
    if isinstance(v, bool) or not isinstance(v, (str, int, float, np.integer, np.floating)):
        raise _RowError(None, f"{where}: expected a string, got {type(v).__name__}")
    s = v if isinstance(v, str) else str(v)
    if not s.strip():
        raise _RowError(None, f"{where}: empty answer string")
    return s


def _parse_answers(
    v: Any, *, from_csv: bool, int2str: Callable[[int], str] | None
) -> list[str] | None:
    """A list of reference strings, or None when the row has no answer."""
    if _is_missing(v):
        return None
    if isinstance(v, str) and from_csv:
        s = v.strip()
        if not s:
            return None
        if s.startswith("["):
            try:
                v = json.loads(s)
            except json.JSONDecodeError as e:
                raise _RowError(
                    None,
                    f"answers cell starts with '[' but is not a valid JSON "
                    f"list ({e}); expected a JSON list or a '|'-separated "
                    "string",
                ) from None
            if not isinstance(v, list):
                raise _RowError(None, "answers cell is JSON but not a list")
        else:
            parts = [p.strip() for p in s.split("|")]
            if any(not p for p in parts):
                raise _RowError(None, f"empty answer in '|'-separated answers {v!r}")
            return parts
    if int2str is not None and isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return [int2str(int(v))]
    if isinstance(v, dict) and any(k in v for k in ("answer", "text")):
        inner = v["answer" if "answer" in v else "text"]
        v = inner if isinstance(inner, (list, tuple, np.ndarray)) else [inner]
    if isinstance(v, (list, tuple, np.ndarray)):
        items = list(v)
        if not items:
            raise _RowError(None, "empty answers list: expected at least one reference answer")
        return [_one_answer(a, f"answers[{k}]") for k, a in enumerate(items)]
    return [_one_answer(v, "answer")]


# --------------------------------------------------------------------------- tables


@dataclass
class _Table:
    """Uniform row access over every source kind."""

    name: str
    stem: str
    kind: str
    columns: list[str]
    n: int
    get: Callable[[int], dict[str, Any]]
    base_dir: Path | None
    from_csv: bool = False
    hf: Any = None  # the HF Dataset, for lazy image refs
    int2str: dict[str, Callable[[int], str]] | None = None
    where: Callable[[int], str] = lambda i: ""  # noqa: E731
    split: str | None = None


class _BadRecord:
    def __init__(self, message: str):
        self.message = message


def _file_table(path: Path, *, name: str | None = None, base_dir: Path | None = None) -> _Table:
    suffix = path.suffix.lower()
    records: list[Any] = []
    lines: list[int] = []
    if suffix == ".jsonl":
        with open(path, encoding="utf-8-sig") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                lines.append(lineno)
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    records.append(_BadRecord(f"invalid JSON: {e}"))
                    continue
                records.append(
                    rec
                    if isinstance(rec, dict)
                    else _BadRecord(f"expected a JSON object, got {type(rec).__name__}")
                )
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{path}: invalid JSON ({e}); a .json source must be a list of "
                "objects (use .jsonl for one object per line)"
            ) from None
        if not isinstance(data, list):
            raise ValueError(
                f"{path}: a .json source must be a JSON list of objects, got {type(data).__name__}"
            )
        records = [
            r
            if isinstance(r, dict)
            else _BadRecord(f"expected a JSON object, got {type(r).__name__}")
            for r in data
        ]
    elif suffix == ".csv":
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                raise ValueError(f"{path}: empty CSV file (expected a header row)")
            for rec in reader:
                extra = rec.pop(None, None)  # type: ignore[call-overload]
                records.append(
                    _BadRecord(f"{len(extra)} more cells than header columns") if extra else rec
                )
            header = list(reader.fieldnames)
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(f"unsupported file type {suffix!r}")
    if not records:
        raise ValueError(f"{path}: the dataset has no rows")
    if suffix == ".csv":
        columns = header
    else:
        seen: dict[str, None] = {}
        for r in records:
            if isinstance(r, dict):
                seen.update(dict.fromkeys(r))
        columns = list(seen)
    return _Table(
        name=name or path.stem,
        stem=name or path.stem,
        kind=suffix[1:],
        columns=columns,
        n=len(records),
        get=records.__getitem__,
        base_dir=base_dir or path.parent,
        from_csv=suffix == ".csv",
        where=(lambda i: f" (line {lines[i]})") if lines else (lambda i: ""),
    )


def _import_datasets(why: str) -> Any:
    try:
        import datasets
    except ImportError as e:
        raise ImportError(
            f"{why} needs the optional Hugging Face 'datasets' package: pip install datasets"
        ) from e
    return datasets


def _pick_split(
    obj: Any, split: str | None, what: str, *, applied: bool = False
) -> tuple[Any, str | None]:
    """``obj``: a Dataset or a DatasetDict-like mapping; ``applied``: ``split`` was already
    applied by ``load_dataset`` (it may be a slice such as ``test[:100]``)."""
    if isinstance(obj, Mapping):  # DatasetDict is a dict
        splits = list(obj.keys())
        if split is None:
            if len(splits) == 1:
                return obj[splits[0]], splits[0]
            raise ValueError(f"{what} has splits {splits}; choose one with split=...")
        if split not in splits:
            raise ValueError(f"{what} has no split {split!r}; available splits: {splits}")
        return obj[split], split
    own = getattr(obj, "split", None)
    if applied:
        return obj, split
    if split is not None and (own is None or str(own) != split):
        raise ValueError(
            f"{what} is a single Dataset without splits (its split is "
            f"{None if own is None else str(own)!r}); pass split=None"
        )
    return obj, (str(own) if own is not None else None)


def _hf_table(
    ds: Any,
    *,
    name: str,
    stem: str,
    kind: str,
    base_dir: Path | None,
    split: str | None,
    cols: dict[str, str | None],
) -> _Table:
    datasets = _import_datasets("reading a Hugging Face dataset")
    if not hasattr(ds, "column_names") or not hasattr(ds, "__len__"):
        raise ValueError(
            f"{name}: expected a map-style datasets.Dataset, got "
            f"{type(ds).__name__} (streaming / IterableDataset is not supported)"
        )
    used = [c for c in cols.values() if c is not None]
    ds = ds.select_columns(used)
    int2str: dict[str, Callable[[int], str]] = {}
    for col, feat in ds.features.items():
        if isinstance(feat, datasets.Image) and feat.decode:
            ds = ds.cast_column(col, datasets.Image(decode=False))
        elif isinstance(feat, datasets.ClassLabel):
            int2str[col] = feat.int2str
    return _Table(
        name=name,
        stem=stem,
        kind=kind,
        columns=list(ds.column_names),
        n=len(ds),
        get=ds.__getitem__,
        base_dir=base_dir,
        hf=ds,
        int2str=int2str,
        split=split,
    )


def _resolve_columns(
    columns: list[str], cmap: ColumnMap, *, require_answers: bool, what: str, n: int | None = None
) -> dict[str, str | None]:
    if n == 0:
        raise ValueError(f"{what}: the dataset has no rows")
    out: dict[str, str | None] = {}
    for f in fields(ColumnMap):
        explicit = getattr(cmap, f.name)
        if explicit is not None:
            if explicit not in columns:
                raise ValueError(
                    f"{what}: ColumnMap.{f.name}={explicit!r} is not a column; "
                    f"columns are {columns}"
                )
            out[f.name] = explicit
            continue
        found = next((c for c in ALIASES[f.name] if c in columns), None)
        if found is None and (
            f.name in ("image", "question") or (f.name == "answers" and require_answers)
        ):
            hint = (
                " (or pass require_answers=False for a dataset without answers)"
                if f.name == "answers"
                else ""
            )
            raise ValueError(
                f"{what}: no {f.name} column; looked for {list(ALIASES[f.name])}, "
                f"columns are {columns}; name it with "
                f"ColumnMap({f.name}=...){hint}"
            )
        out[f.name] = found
    return out


def _looks_like_path(source: str) -> bool:
    s = source.strip()
    return s.lower().endswith(FILE_SUFFIXES) or s.startswith(("/", ".", "~")) or "\\" in s


def _open_source(
    source: str, split: str | None, cmap: ColumnMap, require_answers: bool
) -> tuple[_Table, dict[str, str | None]]:
    path = Path(source).expanduser()

    def no_split(t: _Table) -> _Table:
        if split is not None:
            raise ValueError(
                f"{source}: a {t.kind} source has no splits; pass split=None "
                "(or keep one file per split)"
            )
        return t

    if path.is_file():
        if path.suffix.lower() not in FILE_SUFFIXES:
            raise ValueError(
                f"{source}: unsupported file type {path.suffix!r}; accepted "
                "local formats: " + "; ".join(LOCAL_FORMATS)
            )
        t = no_split(_file_table(path))
        return t, _resolve_columns(
            t.columns, cmap, require_answers=require_answers, what=str(source)
        )
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            datasets = _import_datasets(f"{source} (a datasets.save_to_disk directory)")
            obj = datasets.load_from_disk(str(path))
            ds, chosen = _pick_split(obj, split, str(source))
            cols = _resolve_columns(
                list(ds.column_names),
                cmap,
                n=len(ds),
                require_answers=require_answers,
                what=str(source),
            )
            name = path.resolve().name
            return _hf_table(
                ds,
                name=name,
                stem=name,
                kind="save_to_disk",
                base_dir=path,
                split=chosen,
                cols=cols,
            ), cols
        found = [q for q in QUESTIONS_FILES if (path / q).is_file()]
        if len(found) > 1:
            raise ValueError(
                f"{source}: image folder has several questions files {found}; keep exactly one"
            )
        if found:
            name = path.resolve().name
            t = no_split(_file_table(path / found[0], name=name, base_dir=path))
            t.kind = "image_folder"
            return t, _resolve_columns(
                t.columns, cmap, require_answers=require_answers, what=str(path / found[0])
            )
        raise ValueError(
            f"{source}: directory is neither a datasets.save_to_disk directory nor "
            f"an image folder with one of {list(QUESTIONS_FILES)}; accepted local "
            "formats: " + "; ".join(LOCAL_FORMATS)
        )
    if _looks_like_path(source):
        raise FileNotFoundError(
            f"{source}: no such file or directory (it looks like a local "
            "path, so it was not tried as a Hub dataset name)"
        )
    return _open_hub(source, split, cmap, require_answers)


def _open_hub(
    source: str, split: str | None, cmap: ColumnMap, require_answers: bool
) -> tuple[_Table, dict[str, str | None]]:
    datasets = _import_datasets(
        f"{source!r} is not a local file or directory, so it was "
        "treated as a Hugging Face Hub dataset name; loading it"
    )
    formats = "; ".join(LOCAL_FORMATS)
    try:
        obj = datasets.load_dataset(source, split=split)
    except Exception as e:
        names = " ".join(c.__name__ for c in type(e).__mro__)
        network = isinstance(e, (ConnectionError, TimeoutError, OSError)) or any(
            k in names
            for k in (
                "Connection",
                "Offline",
                "Timeout",
                "HTTP",
                "Http",
                "LocalEntryNotFound",
                "Network",
            )
        )
        why = (
            "it could not be fetched (no network access, or no such dataset on the Hub)"
            if network
            else "datasets.load_dataset failed"
        )
        raise HubDatasetError(
            f"{source!r} is not an existing local file or directory, so it was treated as a "
            f"Hugging Face Hub dataset name, and {why}: {type(e).__name__}: {e}. "
            f"Accepted local formats: {formats}."
        ) from e
    ds, chosen = _pick_split(obj, split, repr(source), applied=split is not None)
    cols = _resolve_columns(
        list(ds.column_names),
        cmap,
        require_answers=require_answers,
        what=source,
        n=len(ds) if hasattr(ds, "__len__") else None,
    )
    stem = source.rstrip("/").rsplit("/", 1)[-1]
    return _hf_table(
        ds, name=source, stem=stem, kind="hub", base_dir=None, split=chosen, cols=cols
    ), cols


# --------------------------------------------------------------------------- dataset


@dataclass(frozen=True)
class _Row:
    index: int
    request_id: str
    prompt: str
    answer: list[str] | None
    task_type: str
    image: Any  # Path | bytes | PIL image | ndarray | _HFImage
    split: str = ""


class VQADataset(Sequence[Request]):
    """A sequence of :class:`Request`; ``dataset[i]`` decodes row ``i``'s image (PIL, RGB).

    Attributes: ``name`` (hub name, file stem or directory name: what picks the metric),
    ``source``, ``kind`` (``jsonl``/``json``/``csv``/``save_to_disk``/``image_folder``/``hub``),
    ``split``, ``columns`` (the resolved column names), ``skipped`` (``(row, reason)`` for each
    row dropped under ``on_error="skip"``), ``has_answers``, ``row_indices`` (each sample's row
    in the source)."""

    def __init__(
        self,
        rows: list[_Row],
        *,
        name: str,
        source: str,
        kind: str,
        split: str | None,
        columns: dict[str, str | None],
        skipped: list[tuple[int, str]],
    ):
        self._rows = rows
        self.name = name
        self.source = source
        self.kind = kind
        self.split = split
        self.columns = columns
        self.skipped = skipped

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, i: int) -> Request: ...
    @overload
    def __getitem__(self, i: slice) -> VQADataset: ...

    def __getitem__(self, i: int | slice) -> Request | VQADataset:
        if isinstance(i, slice):
            return VQADataset(
                self._rows[i],
                name=self.name,
                source=self.source,
                kind=self.kind,
                split=self.split,
                columns=self.columns,
                skipped=self.skipped,
            )
        r = self._rows[i]
        try:
            image = _decode(r.image)
        except Exception as e:
            raise ValueError(
                f"{self.name}: row {r.index} (request_id {r.request_id!r}), column "
                f"{self.columns['image']!r}: could not decode the image: "
                f"{type(e).__name__}: {e}"
            ) from e
        return Request(r.request_id, image, r.prompt, r.answer, r.task_type, r.split)

    def __iter__(self) -> Iterator[Request]:
        for i in range(len(self)):
            yield self[i]

    @property
    def has_answers(self) -> bool:
        """Every sample has reference answers (what answer-based metrics need)."""
        return bool(self._rows) and all(r.answer is not None for r in self._rows)

    @property
    def row_indices(self) -> list[int]:
        return [r.index for r in self._rows]

    @property
    def request_ids(self) -> list[str]:
        return [r.request_id for r in self._rows]

    def summary(self) -> str:
        split = f" split {self.split!r}" if self.split else ""
        answers = "with answers" if self.has_answers else "without answers for every sample"
        lines = [
            f"{self.name} ({self.kind}{split}): {len(self)} samples, {answers}, "
            f"{len(self.skipped)} rows skipped"
        ]
        lines += [f"  row {row}: {reason}" for row, reason in self.skipped]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"VQADataset(name={self.name!r}, kind={self.kind!r}, split={self.split!r}, "
            f"len={len(self)}, skipped={len(self.skipped)})"
        )


def _build_row(
    t: _Table, i: int, cols: dict[str, str | None], require_answers: bool, rid_out: list[str]
) -> _Row:
    rec = t.get(i)
    rid = f"{t.stem}-{i}"
    rid_out[:] = [rid]
    if isinstance(rec, _BadRecord):
        raise _RowError(None, rec.message)

    def cell(field: str) -> Any:
        c = cols[field]
        return None if c is None else rec.get(c)

    raw_id = cell("request_id")
    if not _is_missing(raw_id) and str(raw_id).strip():
        rid = str(raw_id)
        rid_out[:] = [rid]

    q = cell("question")
    if _is_missing(q) or (isinstance(q, str) and not q.strip()):
        raise _RowError(cols["question"], "missing question: expected a non-empty string")
    if not isinstance(q, str):
        raise _RowError(cols["question"], f"expected a non-empty string, got {type(q).__name__}")

    answer: list[str] | None = None
    if cols["answers"] is not None:
        try:
            answer = _parse_answers(
                cell("answers"), from_csv=t.from_csv, int2str=(t.int2str or {}).get(cols["answers"])
            )
        except _RowError as e:
            raise _RowError(cols["answers"], e.message) from None
    if answer is None and require_answers:
        raise _RowError(
            cols["answers"],
            "missing answers: expected a list of reference "
            "strings or one string (require_answers=False allows "
            "rows without answers)",
        )

    tt = cell("task_type")
    task_type = "vqa" if _is_missing(tt) or not str(tt).strip() else str(tt)
    sp = cell("split")
    split = "" if _is_missing(sp) else str(sp).strip()
    if split not in ("", "train", "val", "test"):
        raise _RowError(cols["split"], f"expected train, val, test or empty, got {split!r}")

    try:
        ref = _image_ref(cell("image"), t.base_dir)
        _verify(ref)
    except _RowError as e:
        raise _RowError(cols["image"], e.message) from None
    if t.hf is not None and not isinstance(ref, Path):
        ref = _HFImage(t.hf, i, cols["image"], t.base_dir)  # type: ignore[arg-type]
    return _Row(i, rid, q, answer, task_type, ref, split)


def load_vqa_dataset(
    source: str,
    *,
    split: str | None = None,
    max_samples: int | None = None,
    columns: ColumnMap | None = None,
    seed: int = 0,
    shuffle: bool = False,
    on_error: Literal["raise", "skip"] = "raise",
    require_answers: bool = True,
) -> VQADataset:
    """Load a VQA dataset from ``source`` (see the module docstring for formats, columns and
    validation rules).

    Args:
        source: a ``.jsonl``/``.json``/``.csv`` file, a ``save_to_disk`` directory, an image
            folder with a questions file, or a Hugging Face Hub dataset name.
        split: the split of a ``DatasetDict`` / hub dataset; required when there are several,
            rejected for sources without splits.
        max_samples: keep the first ``max_samples`` valid rows (after shuffling).
        columns: column names overriding the auto-detection.
        seed: the seed of the shuffle's ``default_rng(seed)`` permutation.
        shuffle: ``True`` visits rows in that permutation.
        on_error: ``"raise"`` (default): a bad row raises ``ValueError``; ``"skip"``: it is
            skipped and recorded in ``.skipped``.
        require_answers: ``False`` allows rows without answers (``Request.answer=None``).

    Raises:
        ValueError: a bad row, a missing column, an unknown split, an unsupported local source.
        FileNotFoundError: a path-like source that does not exist.
        HubDatasetError: a hub name that ``datasets.load_dataset`` could not load.
        ImportError: the source needs ``datasets`` and it is not installed.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if max_samples is not None and (isinstance(max_samples, bool) or max_samples < 1):
        raise ValueError(f"max_samples must be a positive int or None, got {max_samples!r}")
    cmap = columns or ColumnMap()
    t, cols = _open_source(str(source), split, cmap, require_answers)

    order = np.random.default_rng(seed).permutation(t.n).tolist() if shuffle else range(t.n)
    rows: list[_Row] = []
    skipped: list[tuple[int, str]] = []
    first_row_of: dict[str, int] = {}
    for i in order:
        rid_box: list[str] = []
        try:
            row = _build_row(t, i, cols, require_answers, rid_box)
            if row.request_id in first_row_of:
                raise _RowError(
                    cols["request_id"] or "request_id",
                    f"duplicate request_id {row.request_id!r}, already used by row "
                    f"{first_row_of[row.request_id]}",
                )
        except _RowError as e:
            rid = rid_box[0] if rid_box else f"{t.stem}-{i}"
            col = f", column {e.column!r}" if e.column else ""
            detail = f"(request_id {rid!r}){col}: {e.message}"
            if on_error == "raise":
                raise ValueError(f"{t.name}: row {i}{t.where(i)} {detail}") from None
            skipped.append((i, f"{t.where(i).strip()} {detail}".strip()))
            continue
        first_row_of[row.request_id] = i
        rows.append(row)
        if max_samples is not None and len(rows) >= max_samples:
            break
    ds = VQADataset(
        rows,
        name=t.name,
        source=str(source),
        kind=t.kind,
        split=t.split,
        columns=cols,
        skipped=skipped,
    )
    if not rows:
        raise ValueError(f"{t.name}: every examined row was skipped\n{ds.summary()}")
    return ds


def load_requests(
    dataset: str, *, split: str | None, samples: int | None, on_error: str
) -> tuple[Any, str]:
    """A --dataset (:func:`fastctrl.runtime.datasets.load_vqa_dataset`) and its name; skipped
    rows are logged with their count."""
    data = load_vqa_dataset(dataset, split=split, max_samples=samples, on_error=on_error)
    if data.skipped:
        log.warning(data.summary())
    return data, data.name
