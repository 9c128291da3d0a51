"""Import the GRPO controller guide's layout: an accuracy directory ("exp5") and a latency
directory ("exp6"), plus per-request features.

Accepted formats (every file is JSON; one file per profiled config; file names are free):

exp5_dir/<anything>.json — accuracy of each sample under one config::

    {"config": {"max_crops": 4, "top_k": 2, "num_active_blocks": 12},
     "task_type": "text_vqa",                       # optional; default: --dataset_name
     "samples": [{"sample_id": "q1", "accuracy": 1.0},
                 {"sample_id": "q2", "accuracy": 0.3, "task_type": "ocr"}]}

exp6_dir/<anything>.json — latency of one config, either per config (applies to every
sample; a list is the measured repeats)::

    {"config": {"max_crops": 4, "top_k": 2, "num_active_blocks": 12},
     "latency_ms": [182.1, 185.0, 179.8]}

or per sample (``latency_ms`` a number or a list of repeats)::

    {"config": {...}, "samples": [{"sample_id": "q1", "latency_ms": [181.0, 183.2]}]}

Every config must list the same number of latency repeats. features_dir/<sample_id>.npz —
arrays ``image`` [Di] and ``text`` [Dt] per sample (e.g. written by ``fastctrl.profile``);
they are consolidated into one feature store, cached, and rebuilt only when asked.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..space import ActionSpace
from .table import FeatureStore, Profile, ProfileError, features_path_for

log = logging.getLogger(__name__)


def _read_json_files(directory: Path, what: str) -> list[tuple[Path, dict[str, Any]]]:
    if not directory.is_dir():
        raise FileNotFoundError(f"{what} directory not found: {directory}")
    files = sorted(directory.glob("*.json"))
    if not files:
        raise ProfileError(f"{what} directory {directory} has no *.json files")
    out = []
    for f in files:
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ProfileError(f"{what} file {f} is not valid JSON: {e}") from e
        if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
            raise ProfileError(f'{what} file {f} must be an object with a "config" object')
        out.append((f, doc))
    return out


def _config_key(cfg: dict[str, Any], knob_names: tuple[str, ...], source: Path) -> tuple:
    missing = [k for k in knob_names if k not in cfg]
    if missing:
        raise ProfileError(f"{source}: config lacks knobs {missing} (has {sorted(cfg)})")
    try:
        return tuple(int(cfg[k]) for k in knob_names)
    except (TypeError, ValueError) as e:
        raise ProfileError(f"{source}: config values must be integers, got {cfg}") from e


def _repeats(value: Any, source: Path) -> list[float]:
    vals = value if isinstance(value, list) else [value]
    try:
        out = [float(v) for v in vals]
    except (TypeError, ValueError) as e:
        raise ProfileError(f"{source}: latency_ms must be a number or a list of numbers") from e
    if not out:
        raise ProfileError(f"{source}: latency_ms is an empty list")
    return out


def read_exp5_exp6(
    exp5_dir: str | Path,
    exp6_dir: str | Path,
    dataset_name: str = "default",
    knob_names: tuple[str, ...] = ("max_crops", "top_k", "num_active_blocks"),
) -> pd.DataFrame:
    """Join accuracy and latency files into a long profile table (see module docstring)."""
    exp5_dir, exp6_dir = Path(exp5_dir), Path(exp6_dir)
    latency_cfg: dict[tuple, list[float]] = {}
    latency_sample: dict[tuple, dict[str, list[float]]] = {}
    for f, doc in _read_json_files(exp6_dir, "exp6 (latency)"):
        key = _config_key(doc["config"], knob_names, f)
        if key in latency_cfg or key in latency_sample:
            raise ProfileError(
                f"{f}: config {dict(zip(knob_names, key, strict=True))} appears "
                "in more than one exp6 file"
            )
        if "samples" in doc:
            latency_sample[key] = {
                str(s["sample_id"]): _repeats(s.get("latency_ms"), f) for s in doc["samples"]
            }
        elif "latency_ms" in doc:
            latency_cfg[key] = _repeats(doc["latency_ms"], f)
        else:
            raise ProfileError(f'{f}: exp6 file needs "latency_ms" or "samples"')
    rows = []
    seen: set[tuple] = set()
    for f, doc in _read_json_files(exp5_dir, "exp5 (accuracy)"):
        key = _config_key(doc["config"], knob_names, f)
        if key in seen:
            raise ProfileError(
                f"{f}: config {dict(zip(knob_names, key, strict=True))} appears "
                "in more than one exp5 file"
            )
        seen.add(key)
        samples = doc.get("samples")
        if not isinstance(samples, list):
            raise ProfileError(f'{f}: exp5 file needs a "samples" list')
        default_task = str(doc.get("task_type", dataset_name))
        if key not in latency_cfg and key not in latency_sample:
            raise ProfileError(
                f"{f}: no exp6 latency for config {dict(zip(knob_names, key, strict=True))}"
            )
        for s in samples:
            if "sample_id" not in s or "accuracy" not in s:
                raise ProfileError(f'{f}: every sample needs "sample_id" and "accuracy"')
            sid = str(s["sample_id"])
            if key in latency_cfg:
                lat = latency_cfg[key]
            elif sid in latency_sample[key]:
                lat = latency_sample[key][sid]
            else:
                raise ProfileError(
                    f"no exp6 latency for sample {sid!r} under config "
                    f"{dict(zip(knob_names, key, strict=True))}"
                )
            row = {
                "request_id": sid,
                "task_type": str(s.get("task_type", default_task)),
                **dict(zip(knob_names, key, strict=True)),
                "quality": s["accuracy"],
            }
            row.update({f"latency_ms_{j}": v for j, v in enumerate(lat)})
            rows.append(row)
    df = pd.DataFrame(rows)
    n_rep = {c for c in df.columns if c.startswith("latency_ms_")}
    if df[sorted(n_rep)].isna().any().any():
        raise ProfileError(
            "exp6: configs list different numbers of latency repeats; "
            "every config must have the same number"
        )
    return df


def load_feature_dir(
    features_dir: str | Path, cache: str | Path | None = None, force_recompute: bool = False
) -> FeatureStore:
    """Consolidate ``<sample_id>.npz`` files (arrays ``image``, ``text``) into a FeatureStore.

    With ``cache``, a consolidated store there is reused unless ``force_recompute``.
    """
    if cache is not None and Path(cache).is_file() and not force_recompute:
        log.info("using cached feature store %s", cache)
        return FeatureStore.load(cache)
    features_dir = Path(features_dir)
    if not features_dir.is_dir():
        raise FileNotFoundError(f"features directory not found: {features_dir}")
    rows = {}
    for f in sorted(features_dir.glob("*.npz")):
        try:
            with np.load(f) as z:
                if "image" not in z or "text" not in z:
                    raise ProfileError(
                        f"feature file {f} must hold arrays 'image' and 'text', "
                        f"found {list(z.keys())}"
                    )
                rows[f.stem] = (z["image"].astype(np.float32), z["text"].astype(np.float32))
        except (OSError, ValueError) as e:
            if isinstance(e, ProfileError):
                raise
            raise ProfileError(f"feature file {f} is corrupt or unreadable: {e}") from e
    store = FeatureStore.from_rows(rows)
    if cache is not None:
        store.save(cache)
    return store


def import_profile(
    exp5_dir: str | Path,
    exp6_dir: str | Path,
    *,
    dataset_name: str = "default",
    features_dir: str | Path | None = None,
    output_path: str | Path | None = None,
    force_recompute: bool = False,
    space: ActionSpace | None = None,
    on_invalid: str = "raise",
    seed: int = 0,
    train_split: float = 0.8,
) -> Profile:
    """exp5 + exp6 (+ features) -> a validated Profile; cached at ``output_path`` if given.

    An existing ``output_path`` table is loaded instead of re-importing, unless
    ``force_recompute``. Features come from ``features_dir`` (default ``exp5_dir/features``).
    """
    # the cached table and a fresh import are validated and split alike
    reading = dict(on_invalid=on_invalid, seed=seed, train_split=train_split)
    if output_path is not None and Path(output_path).is_file() and not force_recompute:
        log.info("using cached profile %s (pass force_recompute to rebuild)", output_path)
        return Profile.load(output_path, **reading)
    knob_names = space.names if space else ("max_crops", "top_k", "num_active_blocks")
    df = read_exp5_exp6(exp5_dir, exp6_dir, dataset_name, knob_names)
    fdir = Path(features_dir) if features_dir is not None else Path(exp5_dir) / "features"
    features = None
    if fdir.is_dir():
        cache = features_path_for(output_path) if output_path is not None else None
        features = load_feature_dir(fdir, cache=cache, force_recompute=force_recompute)
    elif features_dir is not None:
        raise FileNotFoundError(f"features directory not found: {fdir}")
    prof = Profile.from_frame(
        df, space, features=features, source=f"{exp5_dir} + {exp6_dir}", **reading
    )
    if output_path is not None:
        prof.save(output_path)
    return prof
