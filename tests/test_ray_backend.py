"""--backend ray on a local 2-CPU Ray cluster the module starts: map_jobs, compare, tune and the
profile sweep give what the local backend gives for the same seeds; a sweep whose worker dies
mid-shard, and one resumed after its driver died, end with exactly the rows of an uninterrupted
run; Ray missing or unreachable is a clear command-line error."""

from __future__ import annotations

import json
import socket
import sys

import numpy as np
import pandas as pd
import pytest
import ray  # in the test extra: without Ray this file fails, it is not skipped

from fastctrl import cli
from fastctrl.compare import main as compare_main
from fastctrl.distributed import RAY_MISSING, map_jobs
from fastctrl.distributed.ray_session import _default_address, check_reachable, ray_session
from fastctrl.profile import main as profile_main
from fastctrl.profile.options import ProfileArgs, load_data
from fastctrl.profile.ray_sweep import CRASH_ENV, ProfileWorker
from fastctrl.profile.sweep_shards import ShardError, ShardStore, shard_dir_for
from fastctrl.runtime.requests import as_request
from fastctrl.tune import main as tune_main

from .train_kit import TINY_TRAINING

GRID = json.dumps({"max_crops": [1, 4], "top_k": [2, 4], "num_active_blocks": [2, 4]})
PROFILE = ["--grid", GRID, "--warmup", "0", "--repeats", "1", "--max_new_tokens", "2", "--quiet"]
#: 12 requests in batches of 2, 4 sampled configs each (a batch measures the union)
SAMPLED = [*PROFILE, "--samples", "12", "--batch_size", "2", "--configs", "random 4"]

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def cluster():
    # address="local": a new cluster, even if a stale `ray start` address is on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _code(main, argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # a command-line error (tyro's or fastctrl.cli.fail's)
        return int(e.code)


def _table(path) -> pd.DataFrame:
    """The deterministic columns (latencies are measured, so they differ), in a fixed order."""
    df = pd.read_parquet(path)
    keys = ["request_id", "max_crops", "top_k", "num_active_blocks"]
    return df[[*keys, "task_type", "quality"]].sort_values(keys).reset_index(drop=True)


def _features(path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path.with_suffix("")) + ".features.safetensors")


def _same_profile(a, b) -> None:
    pd.testing.assert_frame_equal(_table(a), _table(b))
    fa, fb = _features(a), _features(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k])
    sa, sb = (json.loads(p.with_suffix(".sweep.json").read_text()) for p in (a, b))
    assert sa.keys() == sb.keys() and sa["grid"] == sb["grid"]
    assert sa["settings"] == sb["settings"] and sa["cells_measured"] == sb["cells_measured"]
    assert sa["cost"]["answer_calls"] == sb["cost"]["answer_calls"]


# ---------------------------------------------------------------------------- map_jobs
def test_map_jobs_same_outcomes_on_both_backends(cluster):
    def outcomes(backend):
        got = {
            r.index: (r.value, type(r.error))
            for r in map_jobs(json.loads, ["1", "x", "[3]"], backend=backend, num_cpus=1)
        }
        return [got[i] for i in range(3)]

    # the job's own exception, not Ray's wrapper
    assert (
        outcomes("ray")
        == outcomes("local")
        == [(1, type(None)), (None, json.JSONDecodeError), ([3], type(None))]
    )
    with pytest.raises(ValueError, match="--cpus_per_task"):
        list(map_jobs(json.loads, ["1"], backend="ray", num_cpus=0))


# ---------------------------------------------------------------------------- compare, tune
def test_compare_same_results_on_ray(cluster, tmp_path):
    args = ["--methods", "supervised", "--seeds", "2", *TINY_TRAINING, "--bootstrap_reps", "200"]
    assert compare_main([*args, "--jobs", "1", "--output_dir", str(tmp_path / "local")]) == 0
    assert compare_main([*args, "--backend", "ray", "--output_dir", str(tmp_path / "ray")]) == 0
    stats = {
        b: json.loads((tmp_path / b / "e5_statistics.json").read_text()) for b in ("local", "ray")
    }
    assert stats["ray"]["meta"]["backend"] == "ray" and stats["ray"]["meta"]["jobs"] == 2
    timed = ("train_s_per_1k_env_steps", "decision_us")  # wall clock: measured, not compared
    metrics = {
        b: {k: v for k, v in s["statistics"]["metrics"].items() if k not in timed}
        for b, s in stats.items()
    }
    assert metrics["ray"] == metrics["local"]
    assert metrics["ray"]["final_utility"]["methods"]["supervised"]["values"]


def test_tune_same_study_on_ray(cluster, tmp_path):
    def study(backend: str) -> list[tuple]:
        out = tmp_path / backend
        assert (
            tune_main(
                [
                    "--method",
                    "lut",
                    "--trials",
                    "2",
                    "--parallel_trials",
                    "2",
                    "--output_dir",
                    str(out),
                    "--backend",
                    backend,
                    *TINY_TRAINING,
                ]
            )
            == 0
        )
        trials = json.loads((out / "trials.json").read_text())["trials"]
        return [(t["number"], t["state"], t["params"], t["value"]) for t in trials]

    ray_study = study("ray")
    assert len(ray_study) == 2 and ray_study[0][2] != ray_study[1][2]  # a seed per trial
    assert ray_study == study("local")


# ---------------------------------------------------------------------------- profile
def test_profile_on_ray_equals_local_after_a_dead_worker_and_driver(cluster, tmp_path, monkeypatch):
    """The rows of an uninterrupted local sweep, from a Ray sweep resumed after its driver died
    (shard 0 written, a half-written file and a damaged shard left behind) in which a worker
    dies after the first batch of a shard."""
    local = tmp_path / "local" / "profile.parquet"
    assert profile_main([*SAMPLED, "--output_dir", str(local.parent)]) == 0
    out = tmp_path / "ray" / "profile.parquet"
    argv = [
        *SAMPLED,
        "--backend",
        "ray",
        "--num_workers",
        "2",
        "--shard_size",
        "4",
        "--output_dir",
        str(out.parent),
    ]
    args = cli.parse(ProfileArgs, argv, prog="test")
    data, _, _ = load_data(args)
    ids = [as_request(x, i).request_id for i, x in enumerate(data)]
    earlier = ProfileWorker(args, have_answers=False, dataset_name=None)  # the dead run's
    store = ShardStore(shard_dir_for(out))
    store.open(earlier.describe()["fingerprint"], ids, shard_size=4, batch_size=2, resume=True)
    store.write(earlier.measure_shard(0, [as_request(x, i) for i, x in enumerate(data[:4])]))
    (store.directory / ".shard-00001.json.abc.tmp").write_text('{"rows": [')
    store.path(2).write_text('{"shard": 2, "rows": [')  # not written by fastctrl.io

    flag = tmp_path / "crashed"
    monkeypatch.setenv(CRASH_ENV, f"2:{flag}")  # exit after 2 of a shard's 4 requests, once
    assert profile_main(argv) == 0
    assert flag.is_file()  # a worker did die mid-shard
    _same_profile(out, local)
    assert len(pd.read_parquet(out)) == len(pd.read_parquet(local))  # no row twice
    side = json.loads(out.with_suffix(".sweep.json").read_text())
    assert side["backend"]["name"] == "ray" and side["backend"]["workers"] == 2
    assert side["backend"]["shards"] == 3
    assert not shard_dir_for(out).exists()  # merged and cleaned up


def test_merge_checks_every_request_and_config(tmp_path):
    args = cli.parse(
        ProfileArgs, [*SAMPLED, "--samples", "4", "--output_dir", str(tmp_path / "m")], prog="test"
    )
    worker = ProfileWorker(args, have_answers=False, dataset_name=None)
    data, _, _ = load_data(args)
    requests = [as_request(x, i) for i, x in enumerate(data)]
    store = ShardStore(tmp_path / "shards")
    store.open(
        worker.describe()["fingerprint"],
        [r.request_id for r in requests],
        shard_size=2,
        batch_size=2,
        resume=True,
    )
    first, second = (worker.measure_shard(i, requests[2 * i : 2 * i + 2]) for i in (0, 1))
    store.write(first)
    with pytest.raises(ShardError, match="shard 1 .* is missing"):
        store.merge(worker.setup)
    store.write({**second, "rows": second["rows"] + second["rows"][:1]})  # a row twice
    rows, features, _ = store.merge(worker.setup)
    assert len(rows) == len(first["rows"]) + len(second["rows"]) and len(features) == 4
    store.write({**second, "rows": second["rows"][1:]})  # a config lost
    with pytest.raises(ShardError, match=r"has \d+ of its \d+ configs"):
        store.merge(worker.setup)


# ---------------------------------------------------------------------------- errors
def test_bad_backend_arguments(tmp_path, capsys):
    out = ["--output_dir", str(tmp_path / "x")]
    assert _code(profile_main, ["--backend", "slurm", *out]) == 2
    assert "--backend" in capsys.readouterr().err
    assert _code(profile_main, ["--backend", "ray", "--num_workers", "0", *out]) == 2
    assert "--num_workers must be >= 1" in capsys.readouterr().err
    assert _code(profile_main, ["--num_workers", "2", *out]) == 2
    assert "--num_workers needs --backend ray" in capsys.readouterr().err
    assert (
        _code(
            tune_main, ["--method", "lut", "--ray_address", "auto", "--output_dir", str(tmp_path)]
        )
        == 2
    )
    assert "--ray_address needs --backend ray" in capsys.readouterr().err
    assert (
        _code(
            compare_main,
            ["--backend", "ray", "--cpus_per_task", "0", "--output_dir", str(tmp_path)],
        )
        == 2
    )
    assert "--cpus_per_task must be > 0" in capsys.readouterr().err


def test_unreachable_ray_address(tmp_path, capsys, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # not the module's cluster
    with pytest.raises(ValueError, match=f"--ray_address 127.0.0.1:{port}: no Ray cluster"):
        with ray_session(f"127.0.0.1:{port}"):
            pass
    with pytest.raises(ValueError, match="--ray_address must be auto, local, host:port"):
        with ray_session("no-port"):
            pass
    assert (
        _code(
            compare_main,
            [
                "--methods",
                "lut",
                "--seeds",
                "1",
                *TINY_TRAINING,
                "--backend",
                "ray",
                "--ray_address",
                f"127.0.0.1:{port}",
                "--output_dir",
                str(tmp_path),
            ],
        )
        == 2
    )
    assert "no Ray cluster answers" in capsys.readouterr().err
    # a cluster `ray start` recorded here that is gone (Ray would wait for it without end):
    # `auto` is an error, the default starts a new local cluster
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}")
    with pytest.raises(ValueError, match=rf"--ray_address auto \(127.0.0.1:{port}\): no Ray"):
        check_reachable("auto")
    assert _default_address() == "local"


@pytest.mark.parametrize(
    "main,argv", [(profile_main, []), (tune_main, ["--method", "lut"]), (compare_main, [])]
)
def test_ray_missing_says_how_to_install(main, argv, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    out = (
        ["--output_dir", str(tmp_path / "p")]
        if main is profile_main
        else ["--output_dir", str(tmp_path)]
    )
    assert _code(main, [*argv, "--backend", "ray", *out]) == 2
    assert RAY_MISSING in capsys.readouterr().err
