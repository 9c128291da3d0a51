"""Files: atomic writes (a reader never sees a half-written file) and typed records as JSON.

Every file fastctrl writes goes to a temporary file in the same directory and is moved into
place with :func:`os.replace`, which is atomic on POSIX and Windows. The file gets the mode a
plain ``open(path, "w")`` would give it: ``0o666 & ~umask`` for a new file (``tempfile.mkstemp``
creates its file ``0o600``, so the mode is set before the move), an existing file's permission
bits when it is replaced. Directories are made with :meth:`Path.mkdir`'s default, ``0o777 &
~umask``.

Saved artifacts (a controller, a lookup table) are a ``config.json`` that names its format
and version (:func:`read_format_header`) beside safetensors weights (:func:`write_tensors`,
:func:`read_tensors`: no pickle).

Records (what one stage writes and the next reads) are dataclasses defined once, beside their
writer (:mod:`fastctrl.env.evaluation`, :mod:`fastctrl.train.records`). :func:`to_json` turns
one into plain JSON values (non-finite floats become ``null``); :func:`from_json` rebuilds it
from them, guided by the type hints, and raises ``ValueError`` naming the field that is missing
or malformed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import stat
import tempfile
import threading
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

if typing.TYPE_CHECKING:
    import torch

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where Linux says it (``Umask:`` in
    ``/proc/self/status``, kernel >= 4.7); elsewhere set and restored at once, under a lock
    (the umask is process-wide: another thread creating a file in that instant would get
    the temporary mask)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def _final_mode(path: Path) -> int:
    """The permission bits ``open(path, "w")`` would leave: the existing file's, or
    ``0o666 & ~umask`` for a new one."""
    try:
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode):
            return stat.S_IMODE(st.st_mode)
    except OSError:
        pass
    return 0o666 & ~current_umask()


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    The written file gets the mode a plain write would give it (see the module docstring).
    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _final_mode(path))
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def write_with(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> None:
    """Atomically write ``path`` with a function that writes to a given path
    (``torch.save``, ``safetensors.save_file``, ``fig.savefig``, ``df.to_parquet``...)."""
    with atomic_path(path) as tmp:
        writer(tmp)


def read_json(path: str | os.PathLike[str], what: str = "file") -> Any:
    """Read JSON with an error that names the file and what it was supposed to be."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{what} {path} is not valid JSON: {e}") from e


def read_format_header(
    path: str | os.PathLike[str], what: str, format_name: str, version: int
) -> dict[str, Any]:
    """The JSON object a saved fastctrl artifact describes itself with: it must say
    ``"format": format_name`` and ``"format_version": version`` (else a ``ValueError`` that
    names what was expected)."""
    meta = read_json(path, what=what)
    if not isinstance(meta, dict) or meta.get("format") != format_name:
        raise ValueError(f'{path} is not a fastctrl {what} (expected "format": "{format_name}")')
    if meta.get("format_version") != version:
        raise ValueError(
            f"{path}: format_version {meta.get('format_version')!r} is not supported (this "
            f"fastctrl reads version {version})"
        )
    return meta


def write_tensors(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor]) -> None:
    """Write ``tensors`` as a safetensors file, atomically."""
    from safetensors.torch import save_file

    write_with(path, lambda p: save_file(tensors, str(p)))


def read_tensors(
    path: str | os.PathLike[str], what: str, device: str = "cpu"
) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (no pickle), on ``device``; a missing file is a
    ``FileNotFoundError`` and an unreadable one a ``ValueError``, each naming ``what``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{what} {path} is corrupt or unreadable: {e}") from e


T = TypeVar("T")


def to_json(x: Any) -> Any:
    """Plain JSON values of a record; NaN / inf become ``None``."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: to_json(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {str(k): to_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_json(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if hasattr(x, "tolist"):  # numpy arrays, torch tensors
        return to_json(x.tolist())
    raise TypeError(f"to_json: cannot serialise {type(x).__name__}")


def from_json(cls: type[T], data: Any, where: str = "") -> T:
    """Rebuild a ``cls`` record from :func:`to_json` output (``where`` names it in errors)."""
    return _build(cls, data, where or cls.__name__)


def _build(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _build(inner[0], value, where)
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(
                f"{where}: expected an object for {tp.__name__}, got {type(value).__name__}"
            )
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = _build(hints[f.name], value[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{where}: missing field {f.name!r}")
        return tp(**kwargs)
    if origin is dict:
        _, vt = typing.get_args(tp) or (Any, Any)
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {type(value).__name__}")
        return {k: _build(vt, v, f"{where}[{k!r}]") for k, v in value.items()}
    if origin in (list, tuple):
        args = typing.get_args(tp)
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
        vt = args[0] if args else Any
        out = [_build(vt, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if tp is float:
        if value is None:
            return math.nan
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is str and not isinstance(value, str):
        raise ValueError(f"{where}: expected a string, got {value!r}")
    return value
