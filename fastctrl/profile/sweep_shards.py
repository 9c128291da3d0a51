"""The finished shards of a distributed sweep, on disk: what makes it resumable.

``<out>.shards/`` holds ``manifest.json`` (the sweep's fingerprint and the request ids of every
shard, fixed when the sweep starts, so a rerun with another worker count hands out the same
shards) and one ``shard-NNNNN.json`` per finished shard (its rows, features and cost), each
written atomically (:mod:`fastctrl.io`: a temporary file, then ``os.replace``). A shard is
either there whole or not at all: one a worker was measuring when it or the driver died is
simply measured again. :meth:`ShardStore.merge` reads them back in plan order, keeps one row
per (request, config) and checks that every request has its features and exactly the configs
its batch measures, so a profile is never written with a row lost or counted twice.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import io
from .sweep import SweepSetup

log = logging.getLogger(__name__)

SHARDS_SUFFIX = ".shards"
MANIFEST = "manifest.json"
FORMAT = "fastctrl-profile-shards"


class ShardError(ValueError):
    """The shards on disk do not make up the planned sweep."""


def shard_dir_for(out_path: Path) -> Path:
    return out_path.with_name(out_path.name + SHARDS_SUFFIX)


def plan_shards(request_ids: Sequence[str], shard_size: int, batch_size: int) -> list[list[str]]:
    """Consecutive shards of ``shard_size`` requests rounded up to a multiple of
    ``batch_size``: shard edges are batch edges, so every batch is the one the local sweep
    runs (a batch measures the union of its requests' sampled configs)."""
    if shard_size < 1:
        raise ValueError(f"--shard_size must be >= 1, got {shard_size}")
    size = -(-shard_size // batch_size) * batch_size
    return [list(request_ids[i : i + size]) for i in range(0, len(request_ids), size)]


def expected_configs(setup: SweepSetup, shard: Sequence[str]) -> dict[str, set[tuple]]:
    """Request id -> the config keys (knob values) its batch measures."""
    names, out = setup.space.names, {}
    for i in range(0, len(shard), setup.batch_size):
        batch = list(shard[i : i + setup.batch_size])
        keys = {tuple(c.values[n] for n in names) for c in setup.batch_configs(batch)}
        out.update({r: keys for r in batch})
    return out


class ShardStore:
    """``<out>.shards/`` of one sweep (see the module doc)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.manifest: dict[str, Any] = {}

    @property
    def plan(self) -> list[list[str]]:
        return self.manifest["shards"]

    @property
    def wall_s(self) -> float:
        """Driver wall time over every run of this sweep so far."""
        return float(self.manifest.get("wall_s", 0.0))

    def path(self, shard_id: int) -> Path:
        return self.directory / f"shard-{shard_id:05d}.json"

    def open(
        self,
        fingerprint: str,
        request_ids: Sequence[str],
        *,
        shard_size: int,
        batch_size: int,
        resume: bool,
    ) -> list[list[str]]:
        """The shard plan: the saved one when ``resume`` and it belongs to this sweep (same
        fingerprint, same requests in the same order), else a new one (earlier shards
        removed)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for tmp in self.directory.glob(".*.tmp"):  # a write cut short by a killed driver
            tmp.unlink(missing_ok=True)
        saved = self._read(self.directory / MANIFEST, "shard manifest")
        if (
            resume
            and saved
            and saved.get("fingerprint") == fingerprint
            and [r for s in saved.get("shards", []) for r in s] == list(request_ids)
        ):
            self.manifest = saved
            log.info("resuming %s: %d shards planned", self.directory, len(self.plan))
            return self.plan
        if saved:
            log.warning(
                "%s belongs to %s; starting over",
                self.directory,
                "another sweep" if resume else "an earlier run (--no_resume)",
            )
        for old in self.directory.glob("shard-*.json"):
            old.unlink()
        self.manifest = {
            "format": FORMAT,
            "fingerprint": fingerprint,
            "wall_s": 0.0,
            "shards": plan_shards(request_ids, shard_size, batch_size),
        }
        io.write_json(self.directory / MANIFEST, self.manifest)
        return self.plan

    def finished(self) -> set[int]:
        """Shards on disk that belong to the plan; any other shard file is removed (it is
        measured again)."""
        done = set()
        for sid in range(len(self.plan)):
            if self.load(sid) is not None:
                done.add(sid)
            else:
                self.path(sid).unlink(missing_ok=True)
        return done

    def load(self, shard_id: int) -> dict[str, Any] | None:
        """A finished shard, or None when it is absent or not this plan's."""
        shard = self._read(self.path(shard_id), f"shard {shard_id}")
        if shard is None:
            return None
        if (
            shard.get("fingerprint") != self.manifest["fingerprint"]
            or shard.get("shard") != shard_id
            or shard.get("request_ids") != self.plan[shard_id]
        ):
            log.warning(
                "%s is not shard %d of this sweep; measuring it again",
                self.path(shard_id),
                shard_id,
            )
            return None
        return shard

    def write(self, result: dict[str, Any]) -> None:
        """A worker's shard result, atomically."""
        sid = int(result["shard"])
        io.write_json(
            self.path(sid),
            {"format": FORMAT, "fingerprint": self.manifest["fingerprint"], **result},
        )

    def add_wall(self, seconds: float) -> None:
        self.manifest["wall_s"] = self.wall_s + seconds
        io.write_json(self.directory / MANIFEST, self.manifest)

    def merge(
        self, setup: SweepSetup
    ) -> tuple[list[dict[str, Any]], dict[str, tuple[list[float], list[float]]], dict[str, float]]:
        """(rows, features, cost) of every shard in plan order; :class:`ShardError` when a
        shard is missing or a request lacks its features or any config of its batch."""
        names = setup.space.names
        rows: list[dict[str, Any]] = []
        features: dict[str, tuple[list[float], list[float]]] = {}
        seen: set[tuple] = set()
        duplicates = 0
        cost = {"answer_calls": 0, "timed_s": 0.0, "worker_s": 0.0}
        for sid, ids in enumerate(self.plan):
            shard = self.load(sid)
            if shard is None:
                raise ShardError(
                    f"shard {sid} ({ids[0]} .. {ids[-1]}) is missing from "
                    f"{self.directory}: rerun the sweep to measure it"
                )
            expected = expected_configs(setup, ids)
            got: dict[str, set[tuple]] = {r: set() for r in ids}
            for row in shard["rows"]:
                rid = row["request_id"]
                if rid not in expected:
                    raise ShardError(
                        f"{self.path(sid)} holds a row of request {rid!r}, which "
                        "is not one of its requests"
                    )
                key = (rid, *(row[n] for n in names))
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                got[rid].add(key[1:])
                rows.append(row)
            for rid in ids:
                if rid not in shard["features"] or got[rid] != expected[rid]:
                    raise ShardError(
                        f"{self.path(sid)}: request {rid!r} has {len(got[rid])} of its "
                        f"{len(expected[rid])} configs"
                        + ("" if rid in shard["features"] else " and no features")
                    )
                features[rid] = tuple(shard["features"][rid])
            cost["answer_calls"] += int(shard["cost"]["answer_calls"])
            cost["timed_s"] += float(shard["cost"]["timed_s"])
            cost["worker_s"] += float(shard["wall_s"])
        if duplicates:
            log.warning(
                "%s: %d duplicate (request, config) rows dropped", self.directory, duplicates
            )
        return rows, features, cost

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    @staticmethod
    def _read(path: Path, what: str) -> dict[str, Any] | None:
        if not path.is_file():
            return None
        try:
            data = io.read_json(path, what)
        except ValueError as e:  # not written by io.write_json (or damaged since)
            log.warning("%s; measuring it again", e)
            return None
        return data if isinstance(data, dict) else None
