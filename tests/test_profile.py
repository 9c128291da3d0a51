"""Profile table: schema, Parquet/CSV round trip, validation, the exp5/exp6 importer."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fastctrl.profile import FeatureStore, Profile, ProfileError, synthetic_profile
from fastctrl.profile.importers import import_profile, read_exp5_exp6
from fastctrl.space import ActionSpace

FIXTURES = Path(__file__).parent / "fixtures"
SPACE = ActionSpace({"max_crops": [1, 4], "top_k": [2], "num_active_blocks": [8, 16]})


def small_frame() -> pd.DataFrame:
    rows = []
    for i, rid in enumerate(["a", "b", "c"]):
        for c in SPACE.all_configs():
            v = c.values
            rows.append(
                {
                    "request_id": rid,
                    "task_type": "vqa",
                    **v,
                    "quality": 0.1 * i + 0.01 * v["max_crops"],
                    "latency_ms_0": 10.0 * v["max_crops"] + v["num_active_blocks"],
                    "latency_ms_1": 11.0 * v["max_crops"] + v["num_active_blocks"],
                }
            )
    return pd.DataFrame(rows)


def test_from_frame_is_dense_and_ordered():
    prof = Profile.from_frame(small_frame(), SPACE)
    assert prof.quality.shape == (3, 4) and prof.latency.shape == (3, 4, 2)
    # config order is ActionSpace.all_configs(): (crops 1, blocks 8) first, full last
    assert prof.full_index == 3
    np.testing.assert_allclose(prof.latency[0, 3], [56.0, 60.0])
    assert set(prof.splits) <= {"train", "val", "test"}


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_save_load_round_trip(tmp_path, suffix):
    prof = synthetic_profile(40, seed=3, n_repeats=2)
    path = tmp_path / f"profile{suffix}"
    prof.save(path)
    assert (tmp_path / "profile.features.safetensors").is_file()
    back = Profile.load(path)
    assert list(back.request_ids) == sorted(prof.request_ids)
    order = np.argsort(prof.request_ids)
    np.testing.assert_array_equal(back.quality, prof.quality[order])
    np.testing.assert_array_equal(back.latency, prof.latency[order])
    np.testing.assert_array_equal(back.splits, prof.splits[order])
    np.testing.assert_array_equal(back.features.image, prof.features.image[order])
    assert back.space == prof.space


def expected_frame() -> pd.DataFrame:
    """small_frame with a measured quality of 0 / 1 and a separate expected quality."""
    df = small_frame()
    return df.assign(quality_expected=df.quality, quality=(df.index % 2).astype(float))


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_expected_quality_round_trips(tmp_path, suffix):
    prof = Profile.from_frame(expected_frame(), SPACE)
    assert prof.has_expected_quality
    assert not np.array_equal(prof.quality, prof.quality_expected)
    path = tmp_path / f"p{suffix}"
    prof.save(path)
    back = Profile.load(path)
    np.testing.assert_array_equal(back.quality_expected, prof.quality_expected)
    np.testing.assert_array_equal(back.quality, prof.quality)
    # subsets keep it, row for row
    sub = back.subset(np.array([2, 0]))
    np.testing.assert_array_equal(sub.quality_expected, back.quality_expected[[2, 0]])


def test_profile_without_expected_quality_is_unchanged(tmp_path):
    prof = Profile.from_frame(small_frame(), SPACE)
    assert prof.quality_expected is None and not prof.has_expected_quality
    assert "quality_expected" not in prof.to_frame().columns
    prof.save(tmp_path / "p.csv")
    assert "quality_expected" not in pd.read_csv(tmp_path / "p.csv").columns
    assert Profile.load(tmp_path / "p.csv").quality_expected is None


@pytest.mark.parametrize(
    "value, match",
    [
        (1.2, r"quality_expected outside \[0, 1\]"),
        (-0.1, r"quality_expected outside \[0, 1\]"),
        (np.nan, "NaN or non-numeric quality_expected"),
        ("high", "NaN or non-numeric quality_expected"),
    ],
)
def test_expected_quality_is_validated(value, match):
    df = expected_frame().astype({"quality_expected": object})
    df.loc[3, "quality_expected"] = value
    with pytest.raises(ProfileError, match=match):
        Profile.from_frame(df, SPACE)
    # drop mode drops that row, then its request (now missing a config), and says so
    prof = Profile.from_frame(df, SPACE, on_invalid="drop")
    assert list(prof.request_ids) == ["b", "c"]
    assert sum(prof.report.dropped_rows.values()) == 1


def test_expected_quality_array_is_validated():
    prof = Profile.from_frame(small_frame(), SPACE)
    args = (prof.space, prof.request_ids, prof.task_types, prof.splits, prof.quality, prof.latency)
    with pytest.raises(ProfileError, match=r"quality_expected must be \[3, 4\]"):
        Profile(*args, quality_expected=np.zeros((3, 5)))
    with pytest.raises(ProfileError, match="finite and in"):
        Profile(*args, quality_expected=np.full((3, 4), np.inf))
    with pytest.raises(ProfileError, match="finite and in"):
        Profile(*args, quality_expected=np.full((3, 4), 1.5))


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda df: df.drop(index=5), "miss configs"),
        (
            lambda df: df.assign(latency_ms_0=df.latency_ms_0.where(df.index != 2, np.nan)),
            "NaN, inf or non-numeric latency",
        ),
        (
            lambda df: df.assign(latency_ms_1=df.latency_ms_1.where(df.index != 2, -1.0)),
            "non-positive latency",
        ),
        (lambda df: df.assign(quality=df.quality.where(df.index != 1, 1.5)), r"quality outside"),
        (lambda df: pd.concat([df, df.iloc[[0]]]), "duplicate"),
        (lambda df: df.drop(columns=["quality"]), "missing columns"),
        (lambda df: df.assign(split="holdout"), "split"),
        (
            lambda df: df.assign(task_type=np.where(df.index == 0, "ocr", "vqa")),
            "task_type differs",
        ),
    ],
)
def test_validation_raises_clear_errors(mutate, match):
    with pytest.raises(ProfileError, match=match):
        Profile.from_frame(mutate(small_frame()), SPACE)


def test_drop_mode_counts_everything_it_drops():
    df = small_frame()
    df.loc[1, "quality"] = 2.0  # one bad row -> request "a" then misses a config
    df = pd.concat([df, df.iloc[[6]]])  # one duplicate row of request "b"
    prof = Profile.from_frame(df, SPACE, on_invalid="drop")
    assert list(prof.request_ids) == ["b", "c"]
    rep = prof.report
    assert rep.dropped_rows == {"quality outside [0, 1]": 1, "duplicate (request_id, config)": 1}
    assert rep.dropped_requests == {"missing configs": 1}
    assert rep.rows_in == 13 and rep.rows_kept == 8
    assert "dropped" in rep.summary()


def test_corrupt_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="profile table not found"):
        Profile.load(tmp_path / "nope.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(ProfileError, match="corrupt or unreadable"):
        Profile.load(bad)
    with pytest.raises(ValueError, match=".parquet or .csv"):
        Profile.load(FIXTURES / "exp5" / "crops1_k2_blocks8.json")
    feats = tmp_path / "x.features.safetensors"
    feats.write_bytes(b"\x01\x02")
    with pytest.raises(ProfileError, match="corrupt"):
        FeatureStore.load(feats)


def test_feature_dims_must_agree():
    with pytest.raises(ProfileError, match="image feature dims differ"):
        FeatureStore.from_rows({"a": (np.zeros(4), np.zeros(3)), "b": (np.zeros(5), np.zeros(3))})
    with pytest.raises(ProfileError, match="NaN or inf"):
        FeatureStore(["a"], np.full((1, 2), np.nan), np.zeros((1, 2)))


def _fixture_dirs(tmp_path: Path) -> tuple[Path, Path]:
    exp5 = tmp_path / "exp5"
    exp6 = tmp_path / "exp6"
    shutil.copytree(FIXTURES / "exp5", exp5)
    shutil.copytree(FIXTURES / "exp6", exp6)
    (exp5 / "features").mkdir()
    rng = np.random.default_rng(0)
    for sid in ("q1", "q2", "q3"):
        np.savez(
            exp5 / "features" / f"{sid}.npz", image=rng.normal(size=6), text=rng.normal(size=9)
        )
    return exp5, exp6


def test_import_exp5_exp6_fixtures(tmp_path):
    exp5, exp6 = _fixture_dirs(tmp_path)
    df = read_exp5_exp6(exp5, exp6, dataset_name="text_vqa")
    assert len(df) == 12
    out = tmp_path / "prepared" / "profile.parquet"
    prof = import_profile(exp5, exp6, dataset_name="text_vqa", output_path=out)
    assert prof.space == SPACE
    assert list(prof.task_types) == ["text_vqa", "text_vqa", "ocr"]
    q2 = list(prof.request_ids).index("q2")
    # per-config latency applies to every sample; per-sample latency to its own sample
    np.testing.assert_allclose(prof.latency[q2, 0], [40.0, 41.0])
    np.testing.assert_allclose(prof.latency[q2, 3], [160.0, 158.0])
    np.testing.assert_allclose(prof.quality[q2], [0.3, 0.6, 0.3, 1.0])
    assert prof.features.image.shape == (3, 6)
    assert out.is_file() and out.with_name("profile.features.safetensors").is_file()
    # cached: a second import reads the prepared table, even if the sources are gone
    shutil.rmtree(exp5)
    again = import_profile(exp5, exp6, output_path=out)
    np.testing.assert_array_equal(again.quality, prof.quality)
    with pytest.raises(FileNotFoundError, match="exp5"):
        import_profile(exp5, exp6, output_path=out, force_recompute=True)


def test_importer_refuses_bad_files(tmp_path):
    exp5, exp6 = _fixture_dirs(tmp_path)
    (exp6 / "crops1_k2_blocks8.json").unlink()
    with pytest.raises(ProfileError, match="no exp6 latency"):
        read_exp5_exp6(exp5, exp6)
    exp5, exp6 = _fixture_dirs(tmp_path / "2")
    (exp5 / "broken.json").write_text("{oops")
    with pytest.raises(ProfileError, match="not valid JSON"):
        read_exp5_exp6(exp5, exp6)
    exp5, exp6 = _fixture_dirs(tmp_path / "3")
    (exp5 / "crops1_k2_blocks8.json").unlink()
    with pytest.raises(ProfileError, match="miss configs"):
        import_profile(exp5, exp6)
