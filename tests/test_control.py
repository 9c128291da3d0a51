"""fastctrl.recursive_control: double integrator, LQR oracle, datasets, TinyRecursiveControl, training,
evaluation, comparison and ONNX export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
import torch

from fastctrl.policy.recursive import RecursiveRefiner
from fastctrl.recursive_control import generalize, lqr, lqr_dataset, reference
from fastctrl.recursive_control.baseline_comparison import CompareArgs, compare
from fastctrl.recursive_control.finetune import FinetuneArgs, finetune
from fastctrl.recursive_control.finetune import main as finetune_main
from fastctrl.recursive_control.generate import main as generate_main
from fastctrl.recursive_control.model import (
    MODEL_SIZES,
    TinyRecursiveControl,
    TRCConfig,
    load_checkpoint,
)
from fastctrl.recursive_control.optimality_gap import EvaluateArgs, evaluate
from fastctrl.recursive_control.supervised_training import TRCTrainConfig, train
from fastctrl.recursive_control.supervised_training import main as train_main
from fastctrl.recursive_control.system import DoubleIntegrator, final_state_torch

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
        Phi[2 * k : 2 * k + 2] = np.linalg.matrix_power(A, k)
        for j in range(k):
            Gam[2 * k : 2 * k + 2, j] = (np.linalg.matrix_power(A, k - 1 - j) @ B)[:, 0]
    Qbar = scipy.linalg.block_diag(*([sys_.Q] * N + [sys_.Qf]))
    H = Gam.T @ Qbar @ Gam + sys_.r * np.eye(N)
    return -np.linalg.solve(H, Gam.T @ Qbar @ Phi @ x0.T).T


def test_lqr_rollout_is_the_optimum_of_the_quadratic_program() -> None:
    sys_ = DoubleIntegrator()
    x0 = np.random.default_rng(0).uniform(-2, 2, size=(64, 2))
    u, traj, costs = lqr.rollout(sys_, x0)
    np.testing.assert_allclose(u[..., 0], _batch_lqr(sys_, x0), rtol=1e-9, atol=1e-12)
    sol = lqr.solve(sys_)
    np.testing.assert_allclose(
        costs, np.einsum("ni,ij,nj->n", x0, sol.cost_to_go[0], x0), rtol=1e-10
    )
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


@pytest.mark.parametrize(
    "kwargs,flag",
    [
        ({"time_horizon": 0.0}, "--time_horizon"),
        ({"time_horizon": -5.0}, "--time_horizon"),
        ({"num_steps": 0}, "--num_steps"),
        ({"r": 0.0}, "--r"),
        ({"control_bound": -1.0}, "--control_bound"),
    ],
)
def test_system_refuses_bad_parameters(kwargs: dict, flag: str) -> None:
    with pytest.raises(ValueError, match=flag):
        DoubleIntegrator(**kwargs)


# ---------------------------------------------------------------- data generation


def _gen(out: Path, n: int, seed: int, *extra: str) -> Path:
    code = generate_main(
        [
            "--num_samples",
            str(n),
            "--num_steps",
            "15",
            "--time_horizon",
            "5.0",
            "--seed",
            str(seed),
            "--output_dir",
            str(out),
            "--quiet",
            *extra,
        ]
    )
    if code:  # bad input (2) or a failure (1), reported on stderr
        raise SystemExit(code)
    return out / "lqr_dataset.npz"


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("lqr")
    return _gen(root / "train", 600, 42), _gen(root / "test", 200, 123)


def test_generated_dataset_is_consistent_and_reproducible(
    datasets: tuple[Path, Path], tmp_path: Path
) -> None:
    train_path, test_path = datasets
    with np.load(train_path) as z:
        assert z["initial_states"].shape == (600, 2)
        assert z["control_sequences"].shape == (600, 15, 1)
        assert z["state_trajectories"].shape == (600, 16, 2)
        assert z["costs"].shape == (600,)
        stored = {k: z[k] for k in z.files}
    ds = lqr_dataset.load(train_path)
    sys_ = ds.system
    assert (sys_.num_steps, sys_.time_horizon) == (15, 5.0)
    # costs are the quadratic cost of the stored trajectories, which simulate the stored controls
    np.testing.assert_allclose(
        sys_.simulate(ds.initial_states, ds.control_sequences),
        ds.state_trajectories,
        rtol=0,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        sys_.cost(ds.state_trajectories, ds.control_sequences), ds.costs, rtol=1e-12
    )
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
    assert not np.allclose(lqr_dataset.load(test_path).initial_states[:10], ds.initial_states[:10])


def test_generate_refuses_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        _gen(tmp_path, 10, 0, "--time_horizon", "0")
    assert e.value.code == 2
    assert "--time_horizon must be > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        _gen(tmp_path, 0, 0)
    assert "--num_samples" in capsys.readouterr().err
    # the bound would be active for LQR: bad input, status 2, one error line
    with pytest.raises(SystemExit) as e:
        _gen(tmp_path, 10, 0, "--velocity_range", "5")
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and "--control_bound" in err
    assert not (tmp_path / "lqr_dataset.npz").exists()


def test_load_refuses_missing_and_malformed_files(
    datasets: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        lqr_dataset.load(tmp_path / "nope.npz")
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
            lqr_dataset.load(p)
    p = tmp_path / "missing.npz"
    np.savez(p, **{k: v for k, v in good.items() if k != "costs"})
    with pytest.raises(ValueError, match="costs"):
        lqr_dataset.load(p)


# ---------------------------------------------------------------- model


@pytest.mark.parametrize(
    "size,expected", [("small", 106_206), ("medium", 532_110), ("large", 2_598_632)]
)
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
    r = RecursiveRefiner(
        in_dim=7, out_dim=5, latent_dim=16, hidden_dim=24, num_outer_cycles=3, num_inner_cycles=2
    )
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
    return TRCTrainConfig(
        data=str(train_path),
        output_dir=str(out),
        latent_dim=32,
        hidden_dim=64,
        epochs=epochs,
        batch_size=32,
        lr=3e-3,
        seed=3,
        quiet=True,
    )


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


def test_same_seed_gives_the_same_training_run(
    datasets: tuple[Path, Path], trained: Path, tmp_path: Path
) -> None:
    train(_train_cfg(datasets[0], tmp_path, epochs=4))
    a = json.loads((trained / "training_stats.json").read_text())["history"]
    b = json.loads((tmp_path / "training_stats.json").read_text())["history"]
    assert [h["train_loss"] for h in a] == [h["train_loss"] for h in b]
    assert [h["val_loss"] for h in a] == [h["val_loss"] for h in b]


def test_train_cli_refuses_bad_arguments(
    datasets: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    for argv, needle in (
        (["--scheduler", "linear"], "--scheduler"),
        (["--epochs", "0"], "--epochs must be > 0"),
        (["--lr", "-1"], "--lr must be > 0"),
        (["--model_size", "huge"], "--model_size"),
    ):
        with pytest.raises(SystemExit) as e:
            train_main([*argv, "--data", str(datasets[0]), "--output_dir", str(tmp_path)])
        assert e.value.code == 2
        assert needle in capsys.readouterr().err
    code = train_main(
        ["--data", str(tmp_path / "absent.npz"), "--output_dir", str(tmp_path), *TINY]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "absent.npz" in err  # bad input


def test_evaluate_and_compare(datasets: tuple[Path, Path], trained: Path, tmp_path: Path) -> None:
    ev = evaluate(
        EvaluateArgs(
            checkpoint=str(trained / "best_model.pt"),
            test_data=str(datasets[1]),
            output_dir=str(tmp_path),
            timing_batch_size=1000,
            timing_repeats=3,
            **SMALL_SWEEP,
        )
    )
    assert json.loads((tmp_path / "evaluation_results.json").read_text()) == ev
    trc, ref = ev["trc"], ev["lqr"]
    assert ref["success_rate"] == 1.0 and ref["cost_gap_percent"] == 0.0
    assert trc["cost_gap_percent"] >= 0.0  # nothing beats the optimum
    assert trc["inference_batch_size"] == 1000 and trc["inference_ms_per_batch"] > 0
    cmp = compare(
        CompareArgs(
            test_data=str(datasets[1]),
            trc_checkpoint=str(trained / "best_model.pt"),
            output_dir=str(tmp_path),
            timing_repeats=3,
            **SMALL_SWEEP,
        )
    )
    rows = cmp["methods"]
    assert rows["random"]["mean_cost"] > rows["trc"]["mean_cost"] >= rows["lqr"]["mean_cost"]
    assert rows["trc"]["cost_gap_percent"] == pytest.approx(trc["cost_gap_percent"])
    table = (tmp_path / "comparison_table.md").read_text()
    assert "LQR (oracle)" in table and "random controls" in table
    # generalisation beside the in-distribution numbers, in both
    gen = ev["generalization"]
    assert [r["label"] for r in gen["rows"]][:3] == ["x1", "x2", "x4"]
    x1 = gen["rows"][0]["policies"]["trc"]
    assert x1["cost_gap_percent"] >= 0.0 and x1["bound_respected"]
    assert (tmp_path / "evaluation_generalization.md").is_file()
    assert (tmp_path / "evaluation_generalization.png").is_file()
    cgen = cmp["generalization"]["rows"][0]["policies"]
    assert (
        cgen["random controls"]["cost_gap_percent"]
        > cgen["TinyRecursiveControl"]["cost_gap_percent"]
        > cgen["saturated LQR feedback"]["cost_gap_percent"] - 1e-9
    )
    assert (tmp_path / "comparison_generalization.md").is_file()


def test_evaluate_refuses_incompatible_test_data(trained: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    generate_main(
        ["--num_samples", "5", "--num_steps", "10", "--output_dir", str(other), "--quiet"]
    )
    for checkpoint, error, match in (
        (trained / "best_model.pt", ValueError, "num_steps=10"),
        (tmp_path / "missing.pt", FileNotFoundError, "missing.pt"),
    ):
        with pytest.raises(error, match=match):
            evaluate(
                EvaluateArgs(
                    checkpoint=str(checkpoint), test_data=str(other), output_dir=str(tmp_path / "x")
                )
            )


def test_onnx_export_matches_torch(trained: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from fastctrl.recursive_control.onnx_export import export_onnx, run_onnx

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


# ---------------------------------------------------------------- bounded optimum (issue 17)


def test_reference_is_lqr_where_the_bound_does_not_bind() -> None:
    sys_ = DoubleIntegrator()
    x0 = np.random.default_rng(0).uniform(-2, 2, size=(200, 2))
    opt = reference.optimum(sys_, x0)
    assert not opt.constrained.any() and opt.method == "lqr"
    u, _, costs = lqr.rollout(sys_, x0)
    np.testing.assert_allclose(opt.controls, u[..., 0], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(opt.costs, costs, rtol=1e-10)


def test_reference_solves_the_box_constrained_qp() -> None:
    sys_ = DoubleIntegrator()
    x0 = np.random.default_rng(1).uniform(-10, 10, size=(40, 2))
    opt = reference.optimum(sys_, x0)
    assert opt.constrained.mean() > 0.5 and opt.method == "lqr+qp"
    assert np.abs(opt.controls).max() <= sys_.control_bound
    assert opt.kkt_residual.max() < 1e-9
    np.testing.assert_allclose(
        opt.costs, sys_.cost(sys_.simulate(x0, opt.controls), opt.controls), rtol=1e-12
    )
    # the unconstrained LQR optimum is cheaper but infeasible; clipping it is feasible but worse
    u_lqr, _, lqr_costs = lqr.rollout(sys_, x0)
    c = opt.constrained
    assert np.all(lqr_costs[c] < opt.costs[c])
    clipped = np.clip(u_lqr[..., 0], -10, 10)
    assert np.all(sys_.cost(sys_.simulate(x0, clipped), clipped)[c] > opt.costs[c])
    p = reference.stacked(sys_)
    assert reference.kkt_residual(p, x0[c], clipped[c]).min() > 1e-3  # KKT catches it
    # no feasible perturbation improves on the optimum
    rng = np.random.default_rng(2)
    for _ in range(20):
        trial = np.clip(opt.controls + rng.normal(scale=0.3, size=opt.controls.shape), -10, 10)
        assert np.all(p.cost(x0, trial) >= opt.costs - 1e-9 * opt.costs)
    # an independent solver (L-BFGS-B on the same convex quadratic) finds the same optimum
    H = p.hessian
    for i in np.flatnonzero(c)[:4]:
        f = p.linear_term(x0[i : i + 1])[0]
        r = scipy.optimize.minimize(
            lambda u, f=f: u @ H @ u + 2 * f @ u,
            np.zeros(15),
            jac=lambda u, f=f: 2 * (H @ u + f),
            method="L-BFGS-B",
            bounds=[(-10, 10)] * 15,
            options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10000},
        )
        np.testing.assert_allclose(r.x, opt.controls[i], atol=1e-3)
        assert p.cost(x0[i : i + 1], r.x[None])[0] >= opt.costs[i] - 1e-9


def test_reference_refuses_bad_states() -> None:
    with pytest.raises(ValueError, match=r"\[n, 2\]"):
        reference.optimum(DoubleIntegrator(), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        reference.optimum(DoubleIntegrator(), np.array([[np.nan, 0.0]]))


# ---------------------------------------------------------------- generalising model


def _eq_model(**kw: object) -> TinyRecursiveControl:
    torch.manual_seed(0)
    cfg = TRCConfig(latent_dim=16, hidden_dim=24, scale_equivariant=True, **kw)  # type: ignore[arg-type]
    return TinyRecursiveControl(cfg).eval()


def test_equivariant_model_is_homogeneous_until_the_bound_and_bounded_beyond() -> None:
    m = _eq_model().double()
    x = torch.tensor(np.random.default_rng(3).uniform(-2, 2, size=(64, 2)))
    with torch.no_grad():
        a, b = m(x * 1e-2), m(x * 0.05)
        big = m(x * 1e3)
        zero = m(torch.zeros(2, 2, dtype=torch.float64))
    assert b.abs().max() < 10.0  # nothing clips at these scales...
    torch.testing.assert_close(a / 1e-2, b / 0.05, rtol=1e-9, atol=1e-12)  # so u(s x) = s u(x)
    assert big.abs().max() == 10.0  # clipped: at the bound, never beyond
    assert zero.abs().max() < 1e-4


def test_step_conditioned_model_serves_other_step_counts() -> None:
    m = _eq_model(max_num_steps=20)
    x = torch.randn(5, 2)
    for n in (10, 15, 20):
        u = m(x, num_steps=n)
        assert u.shape == (5, n)
    assert m(x).shape == (5, 15)  # its default N
    assert m(x, num_steps=12, time_horizon=4.0).shape == (5, 12)
    for bad in (0, 21, 2.5):
        with pytest.raises(ValueError, match="num_steps must be an int in"):
            m(x, num_steps=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="time_horizon"):
        m(x, time_horizon=-1.0)
    plain = TinyRecursiveControl(TRCConfig(latent_dim=16, hidden_dim=24))
    with pytest.raises(ValueError, match="serves only num_steps=15"):
        plain(x, num_steps=10)
    with pytest.raises(ValueError, match="--max_num_steps"):
        TRCConfig(max_num_steps=10)  # below num_steps


def test_version_1_checkpoints_still_load(trained: Path, tmp_path: Path) -> None:
    ckpt = torch.load(trained / "best_model.pt", weights_only=True)
    old = {
        **ckpt,
        "version": 1,
        "model_config": {
            k: v
            for k, v in ckpt["model_config"].items()
            if k not in ("scale_equivariant", "max_num_steps")
        },
    }
    torch.save(old, tmp_path / "v1.pt")
    a, _ = load_checkpoint(tmp_path / "v1.pt")
    b, _ = load_checkpoint(trained / "best_model.pt")
    x = torch.randn(4, 2)
    torch.testing.assert_close(a(x), b(x))
    torch.save({**ckpt, "version": 9}, tmp_path / "v9.pt")
    with pytest.raises(ValueError, match="version 9"):
        load_checkpoint(tmp_path / "v9.pt")


@pytest.fixture(scope="module")
def trained_general(datasets: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny equivariant model conditioned on N in {10, 15}, with scaled-up copies."""
    out = tmp_path_factory.mktemp("general")
    cfg = _train_cfg(datasets[0], out, epochs=3)
    cfg.scale_equivariant, cfg.scale_max, cfg.train_num_steps = True, 3.0, (10, 15)
    train(cfg)
    return out


def test_training_the_generalising_model(trained_general: Path) -> None:
    stats = json.loads((trained_general / "training_stats.json").read_text())
    assert stats["tasks"] == [
        {"num_steps": 10, "time_horizon": 5.0},
        {"num_steps": 15, "time_horizon": 5.0},
    ]
    assert stats["num_train"] == 2 * 540  # every state and a scaled copy
    hist = stats["history"]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    model, _ = load_checkpoint(trained_general / "best_model.pt")
    assert model.config.scale_equivariant and model.config.max_num_steps == 15
    # context = [x0 / ||x0||, box excess, N, T]: trained at one horizon, T's weights stay zero
    w = model.refiner.context_encoder[0].weight
    assert torch.all(w[:, 4] == 0) and w[:, 2].abs().sum() > 0 and w[:, 3].abs().sum() > 0
    x = torch.randn(3, 2) * 20
    for n in (10, 15):
        u = model(x, num_steps=n)
        assert u.shape == (3, n) and u.abs().max() <= 10.0


def test_training_conditioned_on_the_horizon(datasets: tuple[Path, Path], tmp_path: Path) -> None:
    cfg = _train_cfg(datasets[0], tmp_path, epochs=1)
    cfg.train_time_horizons = (4.0, 5.0)
    res = train(cfg)
    assert res.stats["tasks"] == [
        {"num_steps": 15, "time_horizon": 4.0},
        {"num_steps": 15, "time_horizon": 5.0},
    ]
    assert res.model.config.conditioned and res.model.config.max_num_steps == 15
    assert res.model(torch.randn(3, 2), time_horizon=4.0).shape == (3, 15)
    w = res.model.refiner.context_encoder[0].weight  # plain model: [x0 / scale, N, T]
    assert torch.all(w[:, 2] == 0) and w[:, 3].abs().sum() > 0  # one N: unused; two T: used


def test_train_refuses_bad_generalisation_arguments(
    datasets: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    for argv, needle in (
        (["--scale_max", "0.5"], "--scale_max must be a finite number >= 1"),
        (["--train_num_steps", "0", "15"], "--train_num_steps"),
        (["--train_time_horizons", "-1"], "--train_time_horizons"),
    ):
        with pytest.raises(SystemExit) as e:
            train_main([*argv, "--data", str(datasets[0]), "--output_dir", str(tmp_path)])
        assert e.value.code == 2
        assert needle in capsys.readouterr().err


def test_cost_finetuning_lowers_the_gap_and_keeps_the_bound(
    trained_general: Path, tmp_path: Path
) -> None:
    stats = finetune(
        FinetuneArgs(
            checkpoint=str(trained_general / "best_model.pt"),
            output_dir=str(tmp_path),
            scale_max=4.0,
            steps=40,
            batch_size=64,
            lr=1e-3,
            val_states=100,
            eval_every=20,
            quiet=True,
        )
    )
    assert stats["step_counts"] == [10, 15]  # those the model was trained on
    assert stats["val_gap_percent_best"] < stats["val_gap_percent_before"]
    assert stats["val_gap_percent_best"] >= 0.0  # nothing beats the bounded optimum
    for name in ("best_model.pt", "finetune_stats.json", "finetune_curves.png"):
        assert (tmp_path / name).is_file(), name
    model, ckpt = load_checkpoint(tmp_path / "best_model.pt")
    assert ckpt["finetune_step"] == stats["best_step"]
    x = torch.tensor(
        np.random.default_rng(4).uniform(-2, 2, size=(500, 2)) * 50, dtype=torch.float32
    )
    for n in (10, 15):
        assert model(x, num_steps=n).abs().max() <= 10.0


def test_finetune_refuses_bad_arguments(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as e:
        finetune_main(["--checkpoint", str(trained / "best_model.pt"), "--scale_max", "0"])
    assert e.value.code == 2 and "--scale_max must be > 0" in capsys.readouterr().err
    assert (
        finetune_main(
            [
                "--checkpoint",
                str(trained / "best_model.pt"),
                "--num_steps",
                "10",
                "--output_dir",
                str(tmp_path),
                "--steps",
                "1",
                "--quiet",
            ]
        )
        == 2
    )
    assert "serves only N=15" in capsys.readouterr().err
    assert finetune_main(["--checkpoint", str(tmp_path / "absent.pt")]) == 2
    assert "absent.pt" in capsys.readouterr().err


# ---------------------------------------------------------------- generalisation sweep

SMALL_SWEEP = {
    "scales": (1.0, 2.0, 4.0),
    "step_counts": (10, 15, 20),
    "time_horizons": (4.0,),
    "cost_weights": ("r=1.0",),
    "sweep_states": 60,
}


def test_sweep_rows_and_sanity(trained: Path, trained_general: Path, tmp_path: Path) -> None:
    plain, _ = load_checkpoint(trained / "best_model.pt")
    general, _ = load_checkpoint(trained_general / "best_model.pt")
    policies = {
        "plain": generalize.model_policy(plain),
        "general": generalize.model_policy(general),
        "saturated": generalize.saturated_lqr_policy,
    }
    res = generalize.sweep(policies, DoubleIntegrator(), generalize.SweepArgs(**SMALL_SWEEP))
    rows = {r["label"]: r for r in res["rows"]}
    assert list(rows) == ["x1", "x2", "x4", "N=10", "N=15", "N=20", "T=4", "r=1.0"]
    # same states scaled up: the bound binds for more of them, never fewer
    active = [rows[k]["bound_active_fraction"] for k in ("x1", "x2", "x4")]
    assert active[0] == 0.0 and active[0] <= active[1] <= active[2] and active[2] > 0.3
    assert rows["x1"]["reference"] == "lqr" and rows["x4"]["reference"] == "lqr+qp"
    for row in rows.values():
        for name, m in row["policies"].items():
            if m["served"]:
                assert m["cost_gap_percent"] >= -1e-9, (row["label"], name)  # optimum is optimal
                assert m["bound_respected"], (row["label"], name)
    # which policy serves which step count
    assert not rows["N=10"]["policies"]["plain"]["served"]
    assert not rows["N=20"]["policies"]["general"]["served"]  # trained up to N=15 only
    assert rows["N=10"]["policies"]["general"]["served"]
    # the clipped Riccati feedback reaches the QP's optimum on this system (an independent check)
    for k in ("x1", "x2", "x4"):
        assert rows[k]["policies"]["saturated"]["cost_gap_percent"] < 1e-6
    generalize.write(res, tmp_path / "g.json", tmp_path / "g.md", tmp_path / "g.png")
    table = (tmp_path / "g.md").read_text()
    assert "| x4 |" in table and "n/a" in table and (tmp_path / "g.png").stat().st_size > 0


def test_sweep_arguments_are_checked(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError, match="--scales"):
        generalize.SweepArgs(scales=(1.0, -2.0))
    with pytest.raises(ValueError, match="--cost_weights"):
        generalize.SweepArgs(cost_weights=("rho=1",))
    with pytest.raises(ValueError, match="not a number"):
        generalize.SweepArgs(cost_weights=("r=abc",))
    with pytest.raises(SystemExit) as e:
        generalize.main(["--step_counts", "0"])
    assert e.value.code == 2 and "--step_counts" in capsys.readouterr().err


def test_onnx_export_of_the_generalising_model_matches_torch_out_of_the_box(
    trained_general: Path, tmp_path: Path
) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from fastctrl.recursive_control.onnx_export import export_onnx, run_onnx

    model, _ = load_checkpoint(trained_general / "best_model.pt")
    z = np.random.default_rng(6).uniform(-2, 2, size=(50, 2))
    x = np.concatenate([s * z for s in (0.01, 1.0, 3.0, 5.0, 40.0)]).astype(np.float32)
    for n in (None, 10):
        path = export_onnx(model, tmp_path / f"m{n}.onnx", num_steps=n)
        got = run_onnx(path, x)
        with torch.no_grad():
            ref = model(torch.from_numpy(x), num_steps=n).numpy()
        assert got.shape == (250, n or 15)
        assert np.abs(got).max() <= 10.0
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="num_steps must be an int in"):
        export_onnx(model, tmp_path / "m20.onnx", num_steps=20)


def test_evaluate_judges_the_onnx_export_too(
    datasets: tuple[Path, Path], trained_general: Path, tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    from fastctrl.recursive_control.onnx_export import export_onnx

    model, _ = load_checkpoint(trained_general / "best_model.pt")
    onnx = export_onnx(model, tmp_path / "m.onnx")
    ev = evaluate(
        EvaluateArgs(
            checkpoint=str(trained_general / "best_model.pt"),
            test_data=str(datasets[1]),
            output_dir=str(tmp_path),
            onnx=str(onnx),
            timing_repeats=2,
            **SMALL_SWEEP,
        )
    )
    assert ev["onnx"]["max_abs_difference_from_torch"] < 1e-3
    for row in ev["generalization"]["rows"]:
        a, b = row["policies"]["trc"], row["policies"]["trc (onnx)"]
        assert a["served"] == (row["label"] != "N=20")  # torch: any N up to 15
        assert b["served"] == (row["system"]["num_steps"] == 15)  # the graph: its N only
        if a["served"] and row["kind"] == "scale":
            assert b["cost_gap_percent"] == pytest.approx(a["cost_gap_percent"], abs=1e-2)
    with pytest.raises(FileNotFoundError, match="--onnx"):
        evaluate(
            EvaluateArgs(
                checkpoint=str(trained_general / "best_model.pt"),
                test_data=str(datasets[1]),
                output_dir=str(tmp_path / "x"),
                onnx=str(tmp_path / "none.onnx"),
            )
        )


def test_pipeline_end_to_end_and_the_baseline_preset(tmp_path: Path) -> None:
    from fastctrl.recursive_control.pipeline import PipelineArgs, run

    small = {**SMALL_SWEEP, "sweep_states": 30}
    s = run(
        PipelineArgs(
            output_dir=str(tmp_path / "g"),
            num_train=200,
            num_test=50,
            epochs=2,
            train_num_steps=(10, 15),
            scale_max=1.0,
            finetune_steps=5,
            quiet=True,
            **small,
        )
    )
    assert s["final_checkpoint"].endswith("finetuned/best_model.pt")
    assert s["finetune"]["val_gap_percent_best"] <= s["finetune"]["val_gap_percent_before"]
    assert Path(s["final_onnx"]).is_file()
    assert set(s["targets"]) >= {
        "x3_gap_at_most_5_percent_success_at_least_95",
        "steps_10_15_20_within_2_percent",
    }
    assert "| x4 |" in s["generalization_table"]
    b = run(
        PipelineArgs(
            output_dir=str(tmp_path / "b"),
            num_train=200,
            num_test=50,
            epochs=1,
            preset="baseline",
            export_onnx=False,
            quiet=True,
            **small,
        )
    )
    assert b["final_checkpoint"].endswith("supervised/best_model.pt") and b["finetune"] is None
    model, _ = load_checkpoint(b["final_checkpoint"])
    assert not model.config.scale_equivariant and not model.config.conditioned
    assert b["targets"]["steps_10_15_20_within_2_percent"] is False  # serves N=15 only
    with pytest.raises(ValueError, match="--train_num_steps"):
        PipelineArgs(train_num_steps=(10, 20))


@pytest.mark.parametrize(
    "module",
    ["generalize", "finetune", "optimality_gap", "baseline_comparison", "onnx_export", "pipeline"],
)
def test_control_clis_explain_themselves(module: str, capsys: pytest.CaptureFixture) -> None:
    import importlib

    main = importlib.import_module(f"fastctrl.recursive_control.{module}").main
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out and "--" in out
