"""fastctrl.control: double integrator, LQR oracle, datasets, TinyRecursiveControl, training,
evaluation, comparison and ONNX export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from fastctrl.control import data, lqr
from fastctrl.control.compare import CompareArgs, compare
from fastctrl.control.evaluate import EvaluateArgs, evaluate
from fastctrl.control.generate import main as generate_main
from fastctrl.control.model import MODEL_SIZES, TinyRecursiveControl, TRCConfig, load_checkpoint
from fastctrl.control.system import DoubleIntegrator, final_state_torch
from fastctrl.control.train import TRCTrainConfig, train
from fastctrl.control.train import main as train_main
from fastctrl.policy.recursive import RecursiveRefiner

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


# ---------------------------------------------------------------- system and LQR oracle


@pytest.mark.parametrize("qf", [0.0, 10.0, 1000.0])
def test_riccati_converges_to_dare_in_the_long_horizon_limit(qf: float) -> None:
    dt = 5.0 / 15
    n = 300
    sys_ = DoubleIntegrator(num_steps=n, time_horizon=n * dt, qf_position=qf, qf_velocity=qf)
    sol = lqr.solve(sys_)
    P = scipy.linalg.solve_discrete_are(sys_.A, sys_.B, sys_.Q, sys_.R)
    K = np.linalg.solve(sys_.R + sys_.B.T @ P @ sys_.B, sys_.B.T @ P @ sys_.A)
    np.testing.assert_allclose(sol.cost_to_go[0], P, rtol=1e-9)
    np.testing.assert_allclose(sol.gains[0], K, rtol=1e-9)


def _batch_lqr(sys_: DoubleIntegrator, x0: np.ndarray) -> np.ndarray:
    """Optimal controls from the stacked (non-recursive) least-squares form of the problem."""
    N, A, B = sys_.num_steps, sys_.A, sys_.B
    Phi = np.zeros((2 * (N + 1), 2))
    Gam = np.zeros((2 * (N + 1), N))
    for k in range(N + 1):
        Phi[2 * k:2 * k + 2] = np.linalg.matrix_power(A, k)
        for j in range(k):
            Gam[2 * k:2 * k + 2, j] = (np.linalg.matrix_power(A, k - 1 - j) @ B)[:, 0]
    Qbar = scipy.linalg.block_diag(*([sys_.Q] * N + [sys_.Qf]))
    H = Gam.T @ Qbar @ Gam + sys_.r * np.eye(N)
    return -np.linalg.solve(H, Gam.T @ Qbar @ Phi @ x0.T).T


def test_lqr_rollout_is_the_optimum_of_the_quadratic_program() -> None:
    sys_ = DoubleIntegrator()
    x0 = np.random.default_rng(0).uniform(-2, 2, size=(64, 2))
    u, traj, costs = lqr.rollout(sys_, x0)
    np.testing.assert_allclose(u[..., 0], _batch_lqr(sys_, x0), rtol=1e-9, atol=1e-12)
    sol = lqr.solve(sys_)
    np.testing.assert_allclose(costs, np.einsum("ni,ij,nj->n", x0, sol.cost_to_go[0], x0),
                               rtol=1e-10)
    np.testing.assert_allclose(costs, sys_.cost(sys_.simulate(x0, u), u), rtol=1e-12)
    # any perturbation costs more
    du = np.random.default_rng(1).normal(scale=0.05, size=u.shape)
    worse = sys_.cost(sys_.simulate(x0, u + du), u + du)
    assert np.all(worse > costs)


def test_simulation_matches_closed_form_final_state_in_numpy_and_torch() -> None:
    sys_ = DoubleIntegrator(num_steps=9, time_horizon=2.0)
    rng = np.random.default_rng(2)
    x0, u = rng.normal(size=(5, 2)), rng.normal(size=(5, 9))
    traj = sys_.simulate(x0, u)
    an, g = sys_.final_state_maps()
    np.testing.assert_allclose(traj[:, -1], x0 @ an.T + u @ g.T, rtol=1e-12, atol=1e-12)
    # one step by hand: p' = p + v dt + u dt^2 / 2, v' = v + u dt
    dt = 2.0 / 9
    np.testing.assert_allclose(traj[:, 1, 0], x0[:, 0] + x0[:, 1] * dt + u[:, 0] * dt**2 / 2)
    np.testing.assert_allclose(traj[:, 1, 1], x0[:, 1] + u[:, 0] * dt)
    xt = final_state_torch(torch.tensor(x0), torch.tensor(u), torch.tensor(an), torch.tensor(g))
    np.testing.assert_allclose(xt.numpy(), traj[:, -1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kwargs,flag", [({"time_horizon": 0.0}, "--time_horizon"),
                                         ({"time_horizon": -5.0}, "--time_horizon"),
                                         ({"num_steps": 0}, "--num_steps"),
                                         ({"r": 0.0}, "--r"),
                                         ({"control_bound": -1.0}, "--control_bound")])
def test_system_refuses_bad_parameters(kwargs: dict, flag: str) -> None:
    with pytest.raises(ValueError, match=flag):
        DoubleIntegrator(**kwargs)


# ---------------------------------------------------------------- data generation


def _gen(out: Path, n: int, seed: int, *extra: str) -> Path:
    generate_main(["--num_samples", str(n), "--num_steps", "15", "--time_horizon", "5.0",
                   "--seed", str(seed), "--output_dir", str(out), "--quiet", *extra])
    return out / "lqr_dataset.npz"


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("lqr")
    return _gen(root / "train", 600, 42), _gen(root / "test", 200, 123)


def test_generated_dataset_is_consistent_and_reproducible(datasets: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    train_path, test_path = datasets
    with np.load(train_path) as z:
        assert z["initial_states"].shape == (600, 2)
        assert z["control_sequences"].shape == (600, 15, 1)
        assert z["state_trajectories"].shape == (600, 16, 2)
        assert z["costs"].shape == (600,)
        stored = {k: z[k] for k in z.files}
    ds = data.load(train_path)
    sys_ = ds.system
    assert (sys_.num_steps, sys_.time_horizon) == (15, 5.0)
    # costs are the quadratic cost of the stored trajectories, which simulate the stored controls
    np.testing.assert_allclose(sys_.simulate(ds.initial_states, ds.control_sequences),
                               ds.state_trajectories, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sys_.cost(ds.state_trajectories, ds.control_sequences), ds.costs,
                               rtol=1e-12)
    # and equal the LQR optimum recomputed independently (stacked least squares)
    u_star = _batch_lqr(sys_, ds.initial_states)
    np.testing.assert_allclose(ds.control_sequences[..., 0], u_star, rtol=1e-8, atol=1e-10)
    assert np.abs(ds.control_sequences).max() <= sys_.control_bound
    assert np.abs(ds.initial_states).max() <= 2.0
    # same seed -> same bytes; other seed -> other states
    again = _gen(tmp_path / "again", 600, 42)
    with np.load(again) as z:
        for k in stored:
            np.testing.assert_array_equal(z[k], stored[k])
    assert not np.allclose(data.load(test_path).initial_states[:10], ds.initial_states[:10])


def test_generate_refuses_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        _gen(tmp_path, 10, 0, "--time_horizon", "0")
    assert e.value.code == 2
    assert "--time_horizon must be > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        _gen(tmp_path, 0, 0)
    assert "--num_samples" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--control_bound"):  # bound would be active for LQR
        _gen(tmp_path, 10, 0, "--velocity_range", "5")
    assert not (tmp_path / "lqr_dataset.npz").exists()


def test_load_refuses_missing_and_malformed_files(datasets: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        data.load(tmp_path / "nope.npz")
    with np.load(datasets[1]) as z:
        good = {k: z[k] for k in z.files}
    cases = {
        "control_sequences": good["control_sequences"][:, :14],
        "initial_states": good["initial_states"][:, :1],
        "costs": good["costs"] * 1.01,
        "state_trajectories": good["state_trajectories"] + 1e-3,
    }
    for key, bad in cases.items():
        p = tmp_path / f"bad_{key}.npz"
        np.savez(p, **{**good, key: bad})
        with pytest.raises(ValueError, match=rf"bad_{key}\.npz"):
            data.load(p)
    p = tmp_path / "missing.npz"
    np.savez(p, **{k: v for k, v in good.items() if k != "costs"})
    with pytest.raises(ValueError, match="costs"):
        data.load(p)


# ---------------------------------------------------------------- model


@pytest.mark.parametrize("size,expected", [("small", 106_206), ("medium", 532_110),
                                           ("large", 2_598_632)])
def test_model_sizes_shapes_and_bound(size: str, expected: int) -> None:
    torch.manual_seed(0)
    m = TinyRecursiveControl(TRCConfig.for_size(size, DoubleIntegrator()))
    assert m.num_parameters() == expected
    x = torch.randn(7, 2) * 50  # far outside the training box: still bounded
    u = m(x)
    assert u.shape == (7, 15)
    assert u.abs().max() <= 10.0
    outs = m(x, return_all=True)
    assert len(outs) == MODEL_SIZES[size]["num_outer_cycles"] + 1
    torch.testing.assert_close(outs[-1], u)


def test_model_overrides_and_bad_inputs() -> None:
    cfg = TRCConfig.for_size("small", DoubleIntegrator(), latent_dim=256, num_outer_cycles=5)
    assert (cfg.latent_dim, cfg.num_outer_cycles, cfg.hidden_dim) == (256, 5, 320)
    with pytest.raises(ValueError, match="--model_size"):
        TRCConfig.for_size("huge", DoubleIntegrator())
    with pytest.raises(ValueError, match="--latent_dim"):
        TRCConfig(latent_dim=0)
    with pytest.raises(ValueError, match=r"\[B, 2\]"):
        TinyRecursiveControl(TRCConfig())(torch.zeros(3, 4))


def test_recursive_refiner_interface() -> None:
    torch.manual_seed(0)
    r = RecursiveRefiner(in_dim=7, out_dim=5, latent_dim=16, hidden_dim=24, num_outer_cycles=3,
                         num_inner_cycles=2)
    x = torch.randn(4, 7)
    y = r(x)
    assert y.shape == (4, 5)
    assert len(r(x, return_all=True)) == 4
    y.sum().backward()
    assert r.core[1].weight.grad is not None and r.core[1].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\[B, 7\]"):
        r(torch.randn(4, 6))
    with pytest.raises(ValueError, match="feedback"):
        r(x, feedback=lambda y: y)
    fb = RecursiveRefiner(in_dim=3, out_dim=2, latent_dim=8, hidden_dim=8, feedback_dim=1)
    assert fb(torch.randn(2, 3), feedback=lambda y: y.sum(-1, keepdim=True)).shape == (2, 2)
    with pytest.raises(ValueError, match="in_dim"):
        RecursiveRefiner(in_dim=0, out_dim=2)


# ---------------------------------------------------------------- training and evaluation

TINY = ["--latent_dim", "32", "--hidden_dim", "64"]


def _train_cfg(train_path: Path, out: Path, epochs: int = 4) -> TRCTrainConfig:
    return TRCTrainConfig(data=str(train_path), output_dir=str(out), latent_dim=32,
                          hidden_dim=64, epochs=epochs, batch_size=32, lr=3e-3, seed=3,
                          quiet=True)


@pytest.fixture(scope="module")
def trained(datasets: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train(_train_cfg(datasets[0], out))
    return out


def test_short_training_reduces_loss_and_writes_loadable_outputs(trained: Path) -> None:
    for name in ("best_model.pt", "last_model.pt", "training_stats.json", "training_curves.png"):
        assert (trained / name).is_file(), name
    stats = json.loads((trained / "training_stats.json").read_text())
    hist = stats["history"]
    assert len(hist) == 4
    assert hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]
    assert stats["best_val_loss"] < hist[0]["val_loss"]
    ckpt = torch.load(trained / "best_model.pt", weights_only=True)
    assert ckpt["epoch"] == stats["best_epoch"]
    model, _ = load_checkpoint(trained / "best_model.pt")
    assert model.config.latent_dim == 32


def test_same_seed_gives_the_same_training_run(datasets: tuple[Path, Path], trained: Path,
                                               tmp_path: Path) -> None:
    train(_train_cfg(datasets[0], tmp_path, epochs=4))
    a = json.loads((trained / "training_stats.json").read_text())["history"]
    b = json.loads((tmp_path / "training_stats.json").read_text())["history"]
    assert [h["train_loss"] for h in a] == [h["train_loss"] for h in b]
    assert [h["val_loss"] for h in a] == [h["val_loss"] for h in b]


def test_train_cli_refuses_bad_arguments(datasets: tuple[Path, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    for argv, needle in ((["--scheduler", "linear"], "--scheduler"),
                         (["--epochs", "0"], "--epochs must be > 0"),
                         (["--lr", "-1"], "--lr must be > 0"),
                         (["--model_size", "huge"], "--model_size")):
        with pytest.raises(SystemExit) as e:
            train_main([*argv, "--data", str(datasets[0]), "--output_dir", str(tmp_path)])
        assert e.value.code == 2
        assert needle in capsys.readouterr().err
    with pytest.raises(SystemExit, match="absent.npz"):
        train_main(["--data", str(tmp_path / "absent.npz"), "--output_dir", str(tmp_path),
                    *TINY])


def test_evaluate_and_compare(datasets: tuple[Path, Path], trained: Path, tmp_path: Path) -> None:
    ev = evaluate(EvaluateArgs(checkpoint=str(trained / "best_model.pt"),
                               test_data=str(datasets[1]), output=str(tmp_path / "ev.json"),
                               timing_batch_size=1000, timing_repeats=3))
    assert json.loads((tmp_path / "ev.json").read_text()) == ev
    trc, ref = ev["trc"], ev["lqr"]
    assert ref["success_rate"] == 1.0 and ref["cost_gap_percent"] == 0.0
    assert trc["cost_gap_percent"] >= 0.0  # nothing beats the optimum
    assert trc["inference_batch_size"] == 1000 and trc["inference_ms_per_batch"] > 0
    cmp = compare(CompareArgs(test_data=str(datasets[1]),
                              trc_checkpoint=str(trained / "best_model.pt"),
                              output=str(tmp_path / "cmp.json"), timing_repeats=3))
    rows = cmp["methods"]
    assert rows["random"]["mean_cost"] > rows["trc"]["mean_cost"] >= rows["lqr"]["mean_cost"]
    assert rows["trc"]["cost_gap_percent"] == pytest.approx(trc["cost_gap_percent"])
    table = (tmp_path / "comparison_table.md").read_text()
    assert "LQR (oracle)" in table and "random controls" in table


def test_evaluate_refuses_incompatible_test_data(trained: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    generate_main(["--num_samples", "5", "--num_steps", "10", "--output_dir", str(other),
                   "--quiet"])
    with pytest.raises(ValueError, match="num_steps=10"):
        evaluate(EvaluateArgs(checkpoint=str(trained / "best_model.pt"), test_data=str(other),
                              output=str(tmp_path / "x.json")))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        evaluate(EvaluateArgs(checkpoint=str(tmp_path / "missing.pt"), test_data=str(other),
                              output=str(tmp_path / "x.json")))


def test_onnx_export_matches_torch(trained: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from fastctrl.control.export import export_onnx, run_onnx

    model, _ = load_checkpoint(trained / "best_model.pt")
    path = export_onnx(model, tmp_path / "model.onnx")
    x = np.random.default_rng(5).uniform(-2, 2, size=(37, 2)).astype(np.float32)
    got = run_onnx(path, x)
    with torch.no_grad():
        ours = model(torch.from_numpy(x)).numpy()
        ref = model.double()(torch.from_numpy(x).double()).numpy()
    assert got.shape == (37, 15)
    # flash-attention rule: ONNX error vs the fp64 reference at most twice torch fp32's + atol
    bound = 2 * np.abs(ours - ref).max() + 1e-5
    assert np.abs(got - ref).max() <= bound
