"""The profile table: what happened when request r ran under config c.

On disk (Parquet or CSV) a profile is a long table, one row per (request, config):

=================  =======================================================================
column             meaning
=================  =======================================================================
request_id         str; the request (an image + prompt)
task_type          str; e.g. ``ocr``; constant within a request
split              optional ``train`` / ``val`` / ``test``; empty -> assigned by seed at load
<knob>             one int column per knob, holding the grid VALUE (e.g. ``max_crops=4``)
quality            float in [0, 1] (accuracy of this request under this config, as measured)
quality_expected   optional float in [0, 1]: the expected accuracy behind a noisy measured
                   ``quality`` (simulators know it); for judging only, never shown to a learner
latency_ms_0..     one column per measured repeat, in ms (a single ``latency_ms`` also works)
=================  =======================================================================

A request may lack some configs of the grid (the grid is the set of values seen per knob),
e.g. when the profiler measured a random or Latin-hypercube sample of configs per request.
Loading then either refuses (``missing_configs="raise"``, the default), drops such requests
(``"drop"``) or fills the missing cells by one documented rule (``"impute"``, see
:func:`impute_missing`); :attr:`Profile.measured` marks what was measured, evaluation reports
the share of imputed cells a policy stepped on, and saving writes measured rows only.
Per-request features live beside the table in a :class:`FeatureStore`
(``<table stem>.features.safetensors``).

In memory a :class:`Profile` is dense: ``quality[R, C]`` and ``latency[R, C, S]`` with configs
in :meth:`ActionSpace.all_configs` order, which is what makes the bandit environment fast.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..space import DEFAULT_GRIDS, ActionSpace

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_LATENCY_RE = re.compile(r"^latency_ms(?:_(\d+))?$")
FEATURES_SUFFIX = ".features.safetensors"


class ProfileError(ValueError):
    """A profile table or feature store is malformed; the message says where and how."""


# ---------------------------------------------------------------------------- feature store
@dataclass
class FeatureStore:
    """Pooled per-request features, keyed by request id (row i belongs to request_ids[i])."""

    request_ids: list[str]
    image: np.ndarray
    text: np.ndarray

    def __post_init__(self) -> None:
        self.request_ids = [str(r) for r in self.request_ids]
        self.image = np.ascontiguousarray(self.image, dtype=np.float32)
        self.text = np.ascontiguousarray(self.text, dtype=np.float32)
        n = len(self.request_ids)
        for name, arr in (("image", self.image), ("text", self.text)):
            if arr.ndim != 2 or arr.shape[0] != n:
                raise ProfileError(
                    f"feature store: {name} features must be [n_requests={n}, dim], got "
                    f"shape {list(arr.shape)}"
                )
            if not np.isfinite(arr).all():
                bad = int((~np.isfinite(arr).all(1)).sum())
                raise ProfileError(
                    f"feature store: {name} features of {bad} requests contain NaN or inf"
                )
        dup = [r for r, c in Counter(self.request_ids).items() if c > 1]
        if dup:
            raise ProfileError(f"feature store: duplicate request ids {dup[:5]}")
        self._index = {r: i for i, r in enumerate(self.request_ids)}

    @classmethod
    def from_rows(cls, rows: dict[str, tuple[np.ndarray, np.ndarray]]) -> FeatureStore:
        """Build from ``{request_id: (image_vec, text_vec)}``; all dims must agree."""
        if not rows:
            raise ProfileError("feature store: no requests given")
        ids = list(rows)
        dims_img = {np.asarray(v[0]).shape for v in rows.values()}
        dims_txt = {np.asarray(v[1]).shape for v in rows.values()}
        for name, dims in (("image", dims_img), ("text", dims_txt)):
            if len(dims) != 1:
                by_dim: dict[tuple, list[str]] = {}
                for r, v in rows.items():
                    by_dim.setdefault(np.asarray(v[0 if name == "image" else 1]).shape, []).append(
                        r
                    )
                detail = "; ".join(f"{list(d)}: e.g. {rs[:3]}" for d, rs in by_dim.items())
                raise ProfileError(
                    f"feature store: {name} feature dims differ between requests ({detail})"
                )
        return cls(
            ids,
            np.stack([np.asarray(rows[r][0]).reshape(-1) for r in ids]),
            np.stack([np.asarray(rows[r][1]).reshape(-1) for r in ids]),
        )

    @property
    def image_dim(self) -> int:
        return int(self.image.shape[1])

    @property
    def text_dim(self) -> int:
        return int(self.text.shape[1])

    def take(self, request_ids: Sequence[str]) -> FeatureStore:
        missing = [r for r in request_ids if r not in self._index]
        if missing:
            raise ProfileError(
                f"feature store has no features for requests {missing[:5]} ({len(missing)} missing)"
            )
        idx = np.array([self._index[r] for r in request_ids], dtype=np.int64)
        return FeatureStore(list(request_ids), self.image[idx], self.text[idx])

    def has(self, request_id: str) -> bool:
        return request_id in self._index

    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save_file

        meta = {"request_ids": json.dumps(self.request_ids), "format": "fastctrl-features"}
        tensors = {"image": self.image, "text": self.text}
        io.write_with(path, lambda p: save_file(tensors, str(p), metadata=meta))

    @classmethod
    def load(cls, path: str | Path) -> FeatureStore:
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"feature store not found: {path}")
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                keys = set(f.keys())
                if not {"image", "text"} <= keys:
                    raise ProfileError(
                        f"feature store {path} must hold tensors 'image' and "
                        f"'text', found {sorted(keys)}"
                    )
                image, text = f.get_tensor("image"), f.get_tensor("text")
        except (SafetensorError, OSError) as e:
            raise ProfileError(f"feature store {path} is corrupt or unreadable: {e}") from e
        try:
            ids = json.loads(meta["request_ids"])
        except (KeyError, json.JSONDecodeError) as e:
            raise ProfileError(
                f"feature store {path}: metadata 'request_ids' missing or not a JSON list"
            ) from e
        return cls(ids, image, text)


#: the table a profile directory holds (``fastctrl profile --output_dir DIR``), first found wins
PROFILE_TABLE_NAMES = ("profile.parquet", "profile.csv")


def features_path_for(table_path: str | Path) -> Path:
    p = Path(table_path)
    return p.with_name(
        p.name[: -len(p.suffix)] + FEATURES_SUFFIX if p.suffix else p.name + FEATURES_SUFFIX
    )


# ---------------------------------------------------------------------------- validation report
@dataclass
class ValidationReport:
    """What loading dropped (only with ``on_invalid='drop'``), by reason; never silent."""

    rows_in: int = 0
    rows_kept: int = 0
    dropped_rows: dict[str, int] = field(default_factory=dict)
    dropped_requests: dict[str, int] = field(default_factory=dict)
    imputed_cells: int = 0
    """(request, config) cells filled by :func:`impute_missing` (``missing_configs="impute"``)."""

    def add_rows(self, reason: str, n: int) -> None:
        if n:
            self.dropped_rows[reason] = self.dropped_rows.get(reason, 0) + int(n)

    def add_requests(self, reason: str, n: int) -> None:
        if n:
            self.dropped_requests[reason] = self.dropped_requests.get(reason, 0) + int(n)

    @property
    def clean(self) -> bool:
        return not self.dropped_rows and not self.dropped_requests

    def summary(self) -> str:
        imputed = (
            f"; {self.imputed_cells} missing (request, config) cells imputed"
            if self.imputed_cells
            else ""
        )
        if self.clean:
            return f"profile: {self.rows_kept} rows, nothing dropped{imputed}"
        rows = ", ".join(f"{k}: {v}" for k, v in self.dropped_rows.items()) or "none"
        reqs = ", ".join(f"{k}: {v}" for k, v in self.dropped_requests.items()) or "none"
        return (
            f"profile: kept {self.rows_kept} of {self.rows_in} rows; dropped rows ({rows}); "
            f"dropped requests ({reqs}){imputed}"
        )

    def to_dict(self) -> dict:
        return {
            "rows_in": self.rows_in,
            "rows_kept": self.rows_kept,
            "imputed_cells": self.imputed_cells,
            "dropped_rows": dict(self.dropped_rows),
            "dropped_requests": dict(self.dropped_requests),
        }


# ---------------------------------------------------------------------------- profile
class Profile:
    """A dense profile: R requests x C configs (x S latency repeats), plus features."""

    def __init__(
        self,
        space: ActionSpace,
        request_ids: Sequence[str],
        task_types: Sequence[str],
        splits: Sequence[str],
        quality: np.ndarray,
        latency: np.ndarray,
        features: FeatureStore | None = None,
        report: ValidationReport | None = None,
        *,
        quality_expected: np.ndarray | None = None,
        measured: np.ndarray | None = None,
    ) -> None:
        self.space = space
        self.request_ids = np.asarray([str(r) for r in request_ids], dtype=object)
        self.task_types = np.asarray([str(t) for t in task_types], dtype=object)
        self.splits = np.asarray([str(s) for s in splits], dtype=object)
        self.quality = np.ascontiguousarray(quality, dtype=np.float32)
        self.latency = np.ascontiguousarray(latency, dtype=np.float32)
        r, c = len(self.request_ids), space.n_configs
        if self.quality.shape != (r, c):
            raise ProfileError(f"quality must be [{r}, {c}], got {list(self.quality.shape)}")
        if self.latency.ndim != 3 or self.latency.shape[:2] != (r, c) or self.latency.shape[2] < 1:
            raise ProfileError(
                f"latency must be [{r}, {c}, repeats>=1], got {list(self.latency.shape)}"
            )
        #: [R, C] expected quality behind the measured one, or None: judging only (the env
        #: hands learners the measured ``quality``)
        self.quality_expected: np.ndarray | None = None
        if quality_expected is not None:
            qe = np.ascontiguousarray(quality_expected, dtype=np.float32)
            if qe.shape != (r, c):
                raise ProfileError(f"quality_expected must be [{r}, {c}], got {list(qe.shape)}")
            if not np.isfinite(qe).all() or (qe < 0).any() or (qe > 1).any():
                raise ProfileError("quality_expected must be finite and in [0, 1]")
            self.quality_expected = qe
        #: [R, C] bool, True where the cell was measured; None: every cell was
        self.measured: np.ndarray | None = None
        if measured is not None:
            m = np.asarray(measured, dtype=bool)
            if m.shape != (r, c):
                raise ProfileError(f"measured must be [{r}, {c}], got {list(m.shape)}")
            self.measured = None if m.all() else np.ascontiguousarray(m)
        bad_split = sorted(set(self.splits) - set(SPLITS))
        if bad_split:
            raise ProfileError(f"split values must be one of {SPLITS}, got {bad_split}")
        if features is not None and list(features.request_ids) != list(self.request_ids):
            features = features.take(list(self.request_ids))
        self.features = features
        #: the simulator's hidden factors per request (synthetic profiles only), for analysis
        self.hidden: dict[str, np.ndarray] | None = None
        #: which simulator drew ``hidden`` (its module name), so readers apply its formulas
        self.simulator: str | None = None
        self.report = report or ValidationReport(rows_in=r * c, rows_kept=r * c)
        # config table [C, n_knobs] of indices and of values, in flat order
        self.config_indices = np.array([c.indices for c in space.all_configs()], dtype=np.int64)
        self.config_values = np.array(
            [
                [k.values[i] for k, i in zip(space.knobs, idx, strict=True)]
                for idx in self.config_indices
            ],
            dtype=np.int64,
        )

    # ---- shape
    @property
    def n_requests(self) -> int:
        return len(self.request_ids)

    @property
    def n_configs(self) -> int:
        return self.space.n_configs

    @property
    def n_repeats(self) -> int:
        return int(self.latency.shape[2])

    @property
    def mean_latency(self) -> np.ndarray:
        """[R, C] mean latency over repeats (ms)."""
        return self.latency.mean(axis=2)

    @property
    def full_index(self) -> int:
        return self.space.flat_index(self.space.full().indices)

    @property
    def cheapest_index(self) -> int:
        return self.space.flat_index(self.space.cheapest().indices)

    def split_indices(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return np.flatnonzero(self.splits == split)

    @property
    def has_expected_quality(self) -> bool:
        return self.quality_expected is not None

    def subset(self, idx: np.ndarray) -> Profile:
        idx = np.asarray(idx, dtype=np.int64)
        feats = self.features.take(list(self.request_ids[idx])) if self.features else None
        qe = self.quality_expected[idx] if self.quality_expected is not None else None
        meas = self.measured[idx] if self.measured is not None else None
        out = Profile(
            self.space,
            self.request_ids[idx],
            self.task_types[idx],
            self.splits[idx],
            self.quality[idx],
            self.latency[idx],
            feats,
            self.report,
            quality_expected=qe,
            measured=meas,
        )
        if self.hidden is not None:
            out.hidden = {k: v[idx] for k, v in self.hidden.items()}
        out.simulator = self.simulator
        return out

    def __repr__(self) -> str:
        counts = {s: int((self.splits == s).sum()) for s in SPLITS}
        return (
            f"Profile({self.n_requests} requests x {self.n_configs} configs x "
            f"{self.n_repeats} repeats, splits={counts}, "
            f"features={'yes' if self.features else 'no'}"
            f"{', expected quality' if self.quality_expected is not None else ''}"
            f"{f', {self.imputed_share:.1%} imputed' if self.measured is not None else ''})"
        )

    @property
    def imputed_share(self) -> float:
        """Share of (request, config) cells that were imputed, not measured."""
        return 0.0 if self.measured is None else float(1.0 - self.measured.mean())

    # ---- conversion
    def to_frame(self) -> pd.DataFrame:
        r, c, s = self.latency.shape
        df = pd.DataFrame(
            {
                "request_id": np.repeat(self.request_ids, c),
                "task_type": np.repeat(self.task_types, c),
                "split": np.repeat(self.splits, c),
            }
        )
        for k, name in enumerate(self.space.names):
            df[name] = np.tile(self.config_values[:, k], r)
        df["quality"] = self.quality.reshape(-1)
        if self.quality_expected is not None:
            df["quality_expected"] = self.quality_expected.reshape(-1)
        lat = self.latency.reshape(r * c, s)
        for j in range(s):
            df[f"latency_ms_{j}"] = lat[:, j]
        if self.measured is not None:  # imputed cells are not data: they are never written
            df = df.loc[self.measured.reshape(-1)].reset_index(drop=True)
        return df

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        space: ActionSpace | None = None,
        *,
        features: FeatureStore | None = None,
        on_invalid: str = "raise",
        seed: int = 0,
        train_split: float = 0.8,
        test_fraction: float = 0.2,
        source: str = "profile table",
        missing_configs: str | None = None,
    ) -> Profile:
        """Validate a long table and densify it.

        ``on_invalid='raise'`` stops at the first problem with a message naming it;
        ``'drop'`` drops bad rows (then requests left without every config, or without
        features) and records every drop in :attr:`report`.
        ``space``: the grid; inferred from the knob columns (default knob names) if None.
        Requests without a split are assigned one by ``seed`` (:func:`assign_splits`).
        ``missing_configs``: what to do with requests that lack some configs: ``"raise"``,
        ``"drop"`` (recorded in the report) or ``"impute"`` (:func:`impute_missing`; every
        filled cell counted, :attr:`measured` marks the real ones); ``None`` follows
        ``on_invalid``.
        """
        if on_invalid not in ("raise", "drop"):
            raise ValueError(f"on_invalid must be 'raise' or 'drop', got {on_invalid!r}")
        missing_configs = on_invalid if missing_configs is None else missing_configs
        if missing_configs not in MISSING_CONFIGS:
            raise ValueError(
                f"missing_configs must be one of {MISSING_CONFIGS}, got {missing_configs!r}"
            )
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
        # without a grid (a CSV carries none) the knobs are the default knob columns present
        knob_names = (
            space.names
            if space is not None
            else tuple(n for n in DEFAULT_GRIDS if n in df.columns) or tuple(DEFAULT_GRIDS)
        )
        lat_cols = sorted(
            (c for c in df.columns if _LATENCY_RE.match(str(c))),
            key=lambda c: int(_LATENCY_RE.match(c).group(1) or -1),
        )
        required = ["request_id", "task_type", *knob_names, "quality"]
        missing = [c for c in required if c not in df.columns]
        if missing or not lat_cols:
            raise ProfileError(
                f"{source}: missing columns {missing + ([] if lat_cols else ['latency_ms_0'])}; "
                f"required: {required} and latency repeats latency_ms_0, latency_ms_1, ... "
                f"(or latency_ms); found {list(df.columns)}"
            )
        report = ValidationReport(rows_in=len(df))
        df = df.copy()
        df["request_id"] = df["request_id"].astype(str)
        df["task_type"] = df["task_type"].astype(str)
        if "split" not in df.columns:
            df["split"] = ""
        df["split"] = df["split"].fillna("").astype(str)

        def reject(mask: np.ndarray, reason: str) -> None:
            nonlocal df
            n = int(mask.sum())
            if n == 0:
                return
            if on_invalid == "raise":
                first = df.index[np.flatnonzero(mask)[0]]
                raise ProfileError(
                    f"{source}: {n} rows with {reason} (first at row {first}: "
                    f"{df.loc[first].to_dict()})"
                )
            report.add_rows(reason, n)
            df = df.loc[~mask]

        for name in knob_names:
            vals = pd.to_numeric(df[name], errors="coerce")
            reject((vals.isna() | (vals != vals.round())).to_numpy(), f"non-integer {name!r}")
            df[name] = pd.to_numeric(df[name]).astype(np.int64)
        q = pd.to_numeric(df["quality"], errors="coerce").to_numpy(dtype=np.float64)
        reject(~np.isfinite(q), "NaN or non-numeric quality")
        q = df["quality"].astype(np.float64).to_numpy()
        reject((q < 0) | (q > 1), "quality outside [0, 1]")
        has_expected = "quality_expected" in df.columns
        if has_expected:
            qe = pd.to_numeric(df["quality_expected"], errors="coerce").to_numpy(np.float64)
            reject(~np.isfinite(qe), "NaN or non-numeric quality_expected")
            qe = df["quality_expected"].astype(np.float64).to_numpy()
            reject((qe < 0) | (qe > 1), "quality_expected outside [0, 1]")
        lat = df[lat_cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        reject(~np.isfinite(lat).all(1), "NaN, inf or non-numeric latency")
        lat = df[lat_cols].astype(np.float64).to_numpy()
        reject((lat <= 0).any(1), "non-positive latency")
        reject(~df["split"].isin(["", *SPLITS]).to_numpy(), f"split not in {SPLITS} or empty")
        reject(
            df.duplicated(subset=["request_id", *knob_names], keep="first").to_numpy(),
            "duplicate (request_id, config)",
        )

        if space is None:
            space = ActionSpace({n: sorted(df[n].unique().tolist()) for n in knob_names})
        for k in space.knobs:
            reject(
                ~df[k.name].isin(k.values).to_numpy(),
                f"{k.name!r} value off the grid {list(k.values)}",
            )

        # per-request consistency
        for col in ("task_type", "split"):
            n_vals = df.groupby("request_id")[col].nunique()
            bad = n_vals.index[n_vals > 1]
            if len(bad):
                if on_invalid == "raise":
                    raise ProfileError(f"{source}: {col} differs within requests {list(bad[:5])}")
                report.add_requests(f"inconsistent {col}", len(bad))
                df = df[~df["request_id"].isin(bad)]
        counts = df.groupby("request_id").size()
        incomplete = counts.index[counts != space.n_configs]
        if len(incomplete) and missing_configs != "impute":
            if missing_configs == "raise":
                rid = incomplete[0]
                have = df[df["request_id"] == rid][list(space.names)].to_numpy().tolist()
                raise ProfileError(
                    f"{source}: {len(incomplete)} requests miss configs of the "
                    f"{space.n_configs}-config grid (e.g. {rid!r} has {len(have)}); load with "
                    "missing_configs='impute' (--missing_configs impute) to fill them by the "
                    "documented rule, or 'drop' to leave those requests out"
                )
            report.add_requests("missing configs", len(incomplete))
            df = df[~df["request_id"].isin(incomplete)]
        if features is not None:
            no_feat = [r for r in df["request_id"].unique() if not features.has(r)]
            if no_feat:
                if on_invalid == "raise":
                    raise ProfileError(
                        f"{source}: no features for requests {no_feat[:5]} ({len(no_feat)} missing)"
                    )
                report.add_requests("missing features", len(no_feat))
                df = df[~df["request_id"].isin(no_feat)]
        if len(df) == 0:
            raise ProfileError(f"{source}: no usable rows left ({report.summary()})")

        # densify: request order sorted, configs in flat order; unmeasured cells stay NaN
        idx = np.stack(
            [
                df[k.name].map({v: i for i, v in enumerate(k.values)}).to_numpy(np.int64)
                for k in space.knobs
            ],
            1,
        )
        flat = space.flat_index(idx)
        df = df.assign(_flat=flat).sort_values(["request_id", "_flat"], kind="stable")
        first = df.drop_duplicates("request_id", keep="first")
        rids = first["request_id"].to_numpy()
        r, c = len(rids), space.n_configs
        row = np.searchsorted(rids, df["request_id"].to_numpy())
        col = df["_flat"].to_numpy()
        measured = np.zeros((r, c), dtype=bool)
        measured[row, col] = True
        quality = np.full((r, c), np.nan, np.float32)
        quality[row, col] = df["quality"].to_numpy(np.float32)
        quality_expected = None
        if has_expected:
            quality_expected = np.full((r, c), np.nan, np.float32)
            quality_expected[row, col] = df["quality_expected"].to_numpy(np.float32)
        latency = np.full((r, c, len(lat_cols)), np.nan, np.float32)
        latency[row, col] = df[lat_cols].to_numpy(np.float32)
        if not measured.all():
            keep = impute_missing(
                space, measured, quality, latency, quality_expected, report, source
            )
            rids, first, measured = rids[keep], first.iloc[keep], measured[keep]
            quality, latency = quality[keep], latency[keep]
            if quality_expected is not None:
                quality_expected = quality_expected[keep]
            if len(rids) == 0:
                raise ProfileError(f"{source}: no usable rows left ({report.summary()})")
        splits = first["split"].to_numpy()
        if (splits == "").any():
            splits = assign_splits(
                rids,
                seed=seed,
                train_split=train_split,
                test_fraction=test_fraction,
                existing=splits,
            )
        report.rows_kept = len(df)
        if not report.clean:
            log.warning(report.summary())
        return cls(
            space,
            rids,
            first["task_type"].to_numpy(),
            splits,
            quality,
            latency,
            features,
            report,
            quality_expected=quality_expected,
            measured=measured,
        )

    # ---- files
    def save(self, path: str | Path) -> None:
        """Write the table (``.parquet`` or ``.csv``) and, if present, its feature store."""
        write_table(self.to_frame(), self.space, path)
        if self.features is not None:
            self.features.save(features_path_for(path))

    @staticmethod
    def resolve_path(path: str | Path) -> Path:
        """The table file a profile argument names: a built-in profile name
        (:mod:`fastctrl.runtime.registry`, e.g. ``fastctrl-digits``, the measured profile of
        the shipped digits VLM), a directory holding ``profile.parquet`` or ``profile.csv``
        (the ``--output_dir`` of ``fastctrl profile``), anything else the table file."""
        from ..runtime.registry import builtin_profile

        builtin = builtin_profile(str(path))
        if builtin is not None:
            return builtin
        p = Path(path)
        if p.is_dir():
            for name in PROFILE_TABLE_NAMES:
                if (p / name).is_file():
                    return p / name
            return p / PROFILE_TABLE_NAMES[0]  # not found: the error names what was looked for
        return p

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        on_invalid: str = "raise",
        seed: int = 0,
        train_split: float = 0.8,
        test_fraction: float = 0.2,
        require_features: bool = False,
        missing_configs: str | None = None,
    ) -> Profile:
        """Read a table written by :meth:`save` (or by hand / the profiler) and validate it.
        ``fastctrl-digits`` names the measured profile of the shipped digits VLM."""
        given, path = path, cls.resolve_path(path)
        if not path.is_file():
            if Path(given).is_dir():
                raise FileNotFoundError(
                    f"profile table not found: {given} holds no " + " or ".join(PROFILE_TABLE_NAMES)
                )
            raise FileNotFoundError(f"profile table not found: {path}")
        space = None
        try:
            if path.suffix == ".parquet":
                import pyarrow.parquet as pq

                table = pq.read_table(path)
                meta = table.schema.metadata or {}
                if b"fastctrl.grids" in meta:
                    space = ActionSpace(json.loads(meta[b"fastctrl.grids"]))
                df = table.to_pandas()
            elif path.suffix == ".csv":
                df = pd.read_csv(path, dtype={"request_id": str, "task_type": str, "split": str})
            else:
                raise ValueError(f"profile path must end in .parquet or .csv, got {path}")
        except (OSError, ValueError, pd.errors.ParserError) as e:
            if isinstance(e, ValueError) and "must end in" in str(e):
                raise
            raise ProfileError(f"profile table {path} is corrupt or unreadable: {e}") from e
        fpath = features_path_for(path)
        features = FeatureStore.load(fpath) if fpath.is_file() else None
        if features is None and require_features:
            raise FileNotFoundError(f"feature store not found beside the profile: {fpath}")
        return cls.from_frame(
            df,
            space,
            features=features,
            on_invalid=on_invalid,
            seed=seed,
            train_split=train_split,
            test_fraction=test_fraction,
            source=str(path),
            missing_configs=missing_configs,
        )


def write_table(df: pd.DataFrame, space: ActionSpace, path: str | Path) -> None:
    """Write a long profile table atomically (Parquet keeps the grid in its metadata)."""
    path = Path(path)
    if path.suffix == ".parquet":
        meta = {"fastctrl.grids": json.dumps(space.to_dict())}
        io.write_with(path, lambda p: _write_parquet(df, p, meta))
    elif path.suffix == ".csv":
        io.write_with(path, lambda p: df.to_csv(p, index=False))
    else:
        raise ValueError(f"profile path must end in .parquet or .csv, got {path}")


MISSING_CONFIGS = ("raise", "drop", "impute")


def impute_missing(
    space: ActionSpace,
    measured: np.ndarray,
    quality: np.ndarray,
    latency: np.ndarray,
    quality_expected: np.ndarray | None,
    report: ValidationReport,
    source: str,
) -> np.ndarray:
    """Fill a profile's unmeasured cells in place, by one rule; returns the requests kept.

    The rule, for request r and an unmeasured config c:

    - quality (and expected quality): the best measured quality of r among the configs that c
      dominates knob by knob (every knob's value <= c's). Quality rises with every knob in
      these models, so this is a lower bound, never an optimistic guess;
    - latency (every repeat): r's latency at the full config times the median, over the
      requests where both were measured, of mean latency at c / mean latency at the full
      config (latency is multiplicative in what a request costs).

    It needs, per request, the full and the cheapest config measured (the profiler always
    measures both) and every config measured for at least one request; a request without
    those is dropped and counted in ``report``; a config measured nowhere is an error.
    """
    r, c = measured.shape
    full, cheapest = space.flat_index(space.full().indices), 0
    nowhere = np.flatnonzero(~measured.any(0))
    if len(nowhere):
        cfg = list(space.all_configs())[int(nowhere[0])].values
        raise ProfileError(
            f"{source}: {len(nowhere)} configs were measured for no request "
            f"(e.g. {cfg}): nothing to impute them from; sweep them at least "
            "once or shrink the grid"
        )
    keep = measured[:, full] & measured[:, cheapest]
    report.add_requests("missing configs, full or cheapest unmeasured", int((~keep).sum()))
    both = measured & measured[:, [full]]
    mean = np.where(measured, np.where(measured[..., None], latency, 1.0).mean(2), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(both, mean / mean[:, [full]], np.nan)
    scale = (
        np.nanmedian(np.where(both[keep], ratio[keep], np.nan), axis=0)
        if keep.any()
        else np.full(c, np.nan)
    )
    idx = np.array([cfg.indices for cfg in space.all_configs()])  # [C, K]
    dominated = (idx[None, :, :] <= idx[:, None, :]).all(-1)  # [c, c']: c' <= c
    filled = 0
    for i in np.flatnonzero(keep & ~measured.all(1)):
        miss = np.flatnonzero(~measured[i])
        ok = dominated[miss] & measured[i][None]  # [m, C]
        for arr in (quality, quality_expected):
            if arr is not None:
                arr[i, miss] = np.where(ok, arr[i][None], -np.inf).max(1)
        latency[i, miss] = latency[i, full][None] * scale[miss][:, None]
        filled += len(miss)
    report.imputed_cells += filled
    if filled:
        log.warning(
            "%s: %d unmeasured (request, config) cells imputed (%.1f%% of the kept "
            "requests' cells); see fastctrl.profile.table.impute_missing",
            source,
            filled,
            100.0 * filled / max(1, int(keep.sum()) * c),
        )
    return np.flatnonzero(keep)


def _write_parquet(df: pd.DataFrame, path: Path, meta: dict[str, str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), **{k.encode(): v.encode() for k, v in meta.items()}}
    )
    pq.write_table(table, path)


def assign_splits(
    request_ids: Sequence[str],
    *,
    seed: int = 0,
    train_split: float = 0.8,
    test_fraction: float = 0.2,
    existing: Sequence[str] | None = None,
) -> np.ndarray:
    """Split by request, deterministically: ``test_fraction`` of requests go to test, then
    ``train_split`` of the rest to train and the remainder to val (the guide's --train_split).

    Requests that already have a split keep it. The permutation depends only on the seed and
    the sorted request ids, so the same request lands in the same split on every load.
    """
    if not 0 < train_split <= 1:
        raise ValueError(f"train_split must be in (0, 1], got {train_split}")
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    ids = np.asarray([str(r) for r in request_ids], dtype=object)
    out = np.asarray(existing if existing is not None else [""] * len(ids), dtype=object).copy()
    todo = np.flatnonzero(out == "")
    order = todo[np.argsort(ids[todo], kind="stable")]
    perm = order[np.random.default_rng(seed).permutation(len(order))]
    n_test = int(round(test_fraction * len(perm)))
    n_train = int(round(train_split * (len(perm) - n_test)))
    out[perm[:n_test]] = "test"
    out[perm[n_test : n_test + n_train]] = "train"
    out[perm[n_test + n_train :]] = "val"
    return out
