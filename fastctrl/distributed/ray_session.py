"""Ray, optional: import it with the install hint, and connect to a cluster for the length of a
``with`` block.

Ray is an extra (``pip install "fastctrl[ray]"``); nothing outside ``--backend ray`` imports it.
A connection this process already holds (a test's ``ray.init``, a second stage in the same
script) is reused and left open; one opened here is closed at the end of the block.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

RAY_MISSING = '--backend ray needs Ray: pip install "fastctrl[ray]"'
#: how long a cluster address may take to accept a TCP connection (Ray itself retries a dead
#: address without end)
CONNECT_TIMEOUT_S = 5.0


class RayUnavailableError(ValueError):
    """Ray is asked for but not installed (a ValueError: every CLI reports it as a usage
    error, exit status 2)."""


def require_ray() -> ModuleType:
    """The ``ray`` module, or :class:`RayUnavailableError` with the install command."""
    try:
        import ray
    except ImportError as e:
        raise RayUnavailableError(RAY_MISSING) from e
    return ray


@contextmanager
def ray_session(address: str | None = None) -> Iterator[ModuleType]:
    """``ray``, connected. ``address``: ``None`` (a cluster this machine already runs, e.g.
    under ``ray job submit``, else a new local one), ``"auto"`` (an existing cluster only),
    ``"local"`` (always a new local one), ``host:port`` of a head node or ``ray://host:port``
    (Ray Client)."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    if address is None:
        address = _default_address()
    check_reachable(address)
    try:
        ray.init(address=address)
    except ConnectionError as e:
        raise ValueError(f"--ray_address {address}: {e}") from e
    try:
        yield ray
    finally:
        ray.shutdown()


def check_reachable(address: str | None) -> None:
    """Fail fast, naming ``--ray_address``, when its cluster does not answer (for ``auto``:
    the one ``RAY_ADDRESS`` or the last ``ray start`` here names)."""
    target = _recorded_address() if address == "auto" else address
    if target is None or target in ("auto", "local"):
        return
    error = _probe(target)
    if error is not None:
        where = "" if target == address else f" ({target})"
        raise ValueError(
            f"--ray_address {address}{where}: no Ray cluster answers ({error}); "
            "start one with `ray start --head` or pass its head's address"
        )


def _probe(address: str) -> OSError | None:
    """None when ``host:port`` (or ``ray://host:port``) accepts a TCP connection."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(
            f"--ray_address must be auto, local, host:port or ray://host:port, got {address!r}"
        )
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        return e
    return None


def _default_address() -> str | None:
    """What ``ray.init()`` would attach to: ``RAY_ADDRESS`` (checked like --ray_address), else
    the cluster the last ``ray start`` here recorded, if it still answers; otherwise ``local``
    (a new cluster: Ray would wait without end for a recorded one that is gone)."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    recorded = _recorded_address()
    if recorded is None or _probe(recorded) is None:
        return None
    log.warning(
        "the Ray cluster recorded in %s (%s) does not answer; starting a new local one",
        _record_file(),
        recorded,
    )
    return "local"


def _recorded_address() -> str | None:
    """``RAY_ADDRESS``, else the address the last ``ray start`` on this machine wrote."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    try:
        return _record_file().read_text().strip() or None
    except OSError:
        return None


def _record_file() -> Path:
    return (
        Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    )
