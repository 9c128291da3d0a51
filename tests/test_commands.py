"""The ``fastctrl`` command and every ``python -m fastctrl.<stage>`` form: reachable, every flag
documented, one output flag (``--output_dir``), one exit-code policy (2 and one ``error:`` line
for bad input, 1 for a failure at run time, never a traceback for bad input)."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import os
import runpy
import shutil
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest
import tyro

from fastctrl import cli, commands
from fastctrl.commands import COMMANDS, Group, iter_commands, load
from fastctrl.train.methods import METHOD_NAMES

ROOT = Path(__file__).resolve().parent.parent
PATHS = [path for path, _ in iter_commands()]

#: the flags a command needs before anything else is checked
REQUIRED: dict[tuple[str, ...], list[str]] = {
    ("evaluate",): ["--controller", "runs/none", "--budgets_ms", "5"],
    ("tune",): ["--method", "lut"],
    ("digits", "report"): ["--profile", "none.parquet"],
    ("digits", "headroom"): ["--profile", "none.parquet"],
}

#: every ``fastctrl`` subcommand's ``python -m`` form: module, its main, extra argv
MODULE_OF: dict[tuple[str, ...], tuple[str, list[str]]] = {
    ("profile",): ("fastctrl.profile.cli", []),
    **{("train", m): ("fastctrl.train.cli", ["--method", m]) for m in METHOD_NAMES},
    ("evaluate",): ("fastctrl.evaluate.cli", []),
    ("compare",): ("fastctrl.compare.cli", []),
    ("tune",): ("fastctrl.tune.cli", []),
    ("serve",): ("fastctrl.serve.cli", []),
    ("loadtest",): ("fastctrl.serve.loadtest", []),
    ("digits", "data"): ("fastctrl.digits.data", []),
    ("digits", "train"): ("fastctrl.digits.train", []),
    ("digits", "report"): ("fastctrl.digits.report", []),
    ("digits", "headroom"): ("fastctrl.digits.headroom", []),
    ("lqr", "pipeline"): ("fastctrl.recursive_control.pipeline", []),
    ("lqr", "generate"): ("fastctrl.recursive_control.generate", []),
    ("lqr", "train"): ("fastctrl.recursive_control.supervised_training", []),
    ("lqr", "finetune"): ("fastctrl.recursive_control.finetune", []),
    ("lqr", "evaluate"): ("fastctrl.recursive_control.optimality_gap", []),
    ("lqr", "compare"): ("fastctrl.recursive_control.baseline_comparison", []),
    ("lqr", "generalize"): ("fastctrl.recursive_control.generalize", []),
    ("lqr", "export"): ("fastctrl.recursive_control.onnx_export", []),
    ("lqr", "ablation"): ("fastctrl.recursive_control.ablation", []),
}

#: every ``python -m`` entry point and the ``prog`` its usage line names
ENTRY_POINTS = {
    "fastctrl": "fastctrl",
    "fastctrl.profile": "python -m fastctrl.profile",
    "fastctrl.train": "python -m fastctrl.train",
    "fastctrl.evaluate": "python -m fastctrl.evaluate",
    "fastctrl.compare": "python -m fastctrl.compare",
    "fastctrl.compare.length_blind": "python -m fastctrl.compare.length_blind",
    "fastctrl.compare.gap_closed": "python -m fastctrl.compare.gap_closed",
    "fastctrl.tune": "python -m fastctrl.tune",
    "fastctrl.serve": "python -m fastctrl.serve",
    "fastctrl.serve.loadtest": "python -m fastctrl.serve.loadtest",
    "fastctrl.digits.data": "python -m fastctrl.digits.data",
    "fastctrl.digits.train": "python -m fastctrl.digits.train",
    "fastctrl.digits.report": "python -m fastctrl.digits.report",
    "fastctrl.digits.headroom": "python -m fastctrl.digits.headroom",
    "fastctrl.recursive_control": "python -m fastctrl.recursive_control",
    **{
        f"fastctrl.recursive_control.{m}": f"python -m fastctrl.recursive_control.{m}"
        for m in (
            "pipeline",
            "generate",
            "supervised_training",
            "finetune",
            "optimality_gap",
            "baseline_comparison",
            "generalize",
            "onnx_export",
            "ablation",
        )
    },
}


def _flat(text: str) -> str:
    """Help text without its box and line breaks (tyro wraps it to the terminal)."""
    return " ".join(text.replace("│", " ").split())


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def _code(fn, argv) -> int:
    try:
        return fn(argv)
    except SystemExit as e:  # a parse error or --help exits; a run returns its status
        return e.code


def _subprocess(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


# ------------------------------------------------------------------------- the command tree
def test_the_tree_has_every_stage():
    assert PATHS == sorted(MODULE_OF, key=PATHS.index) and set(PATHS) == set(MODULE_OF)
    assert list(COMMANDS) == [
        "profile",
        "train",
        "evaluate",
        "compare",
        "tune",
        "serve",
        "loadtest",
        "digits",
        "lqr",
    ]
    groups = {k: list(v.members()) for k, v in COMMANDS.items() if isinstance(v, Group)}
    assert groups == {
        "train": ["lut", "supervised", "ppo", "dpo", "grpo"],
        "digits": ["data", "train", "report", "headroom"],
        "lqr": [
            "pipeline",
            "generate",
            "train",
            "finetune",
            "evaluate",
            "compare",
            "generalize",
            "export",
            "ablation",
        ],
    }


@pytest.mark.parametrize("group", [(), ("train",), ("digits",), ("lqr",)])
def test_help_lists_the_subcommands(group, capsys):
    assert commands.main([*group, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {' '.join(('fastctrl', *group))} ")
    names = COMMANDS if not group else COMMANDS[group[0]].members()
    for name, c in names.items():
        assert f"• {name}" in out and _flat(c.help)[:30] in _flat(out)


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_every_subcommand_is_reachable(path, capsys):
    assert commands.main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: fastctrl {' '.join(path)} ") and "--output_dir" in out


def test_only_the_named_subcommand_is_imported():
    """`fastctrl --help` lists every stage without importing it (startup stays short)."""
    code = (
        "import sys; from fastctrl import commands; commands.command_line(['--help']);"
        "print(sorted(m for m in sys.modules if m.startswith(('fastctrl.train',"
        "'fastctrl.compare', 'fastctrl.tune', 'fastctrl.recursive_control', 'fastctrl.digits',"
        "'fastctrl.evaluate', 'fastctrl.profile.options'))))"
    )
    res = _subprocess(sys.executable, "-c", code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_the_train_methods_are_subcommands_with_their_own_flags(capsys):
    assert commands.main(["train", "ppo", "--help"]) == 0
    ppo = _flat(capsys.readouterr().out)
    assert "--clip_coef" in ppo and "--group_size" not in ppo and "--method" not in ppo
    assert commands.main(["train", "grpo", "--help"]) == 0
    assert "--group_size" in capsys.readouterr().out
    assert commands.main(["train", "lut", "--group_size", "4"]) == 2
    _one_error_line(capsys.readouterr().err, "error: Unrecognized options: --group_size, 4")
    # the same config from both forms, the method's own loop defaults included
    from fastctrl.train.cli import as_train_config, parse_train_args, train_args_class

    tree, leaves = commands.command_line(["train", "ppo"])
    parsed = cli.parse(tree, ["train", "ppo", "--seed", "3"], prog="fastctrl")
    via_subcommand = as_train_config(commands.resolve(parsed, leaves)[0])
    via_flag = parse_train_args(["--method", "ppo", "--seed", "3"])
    assert via_subcommand.to_dict() == via_flag.to_dict()
    assert via_flag.method == "ppo" and via_flag.seed == 3
    assert train_args_class("supervised")().loop.lr == 1e-3  # its own default
    assert train_args_class("supervised")().loop.lr != train_args_class("grpo")().loop.lr


def test_python_m_fastctrl_train_keeps_method(capsys):
    from fastctrl.train.cli import parse_train_args

    assert parse_train_args([]).method == "grpo"
    assert parse_train_args(["--method=dpo"]).method == "dpo"
    with pytest.raises(SystemExit) as e:
        parse_train_args(["--method", "ppo", "--help"])
    assert e.value.code == 0
    out = _flat(capsys.readouterr().out)
    assert "--method {lut,supervised,ppo,dpo,grpo}" in out and "--clip_coef" in out
    assert "(default: ppo)" in out
    with pytest.raises(SystemExit) as e:
        parse_train_args(["--method", "sgd"])
    assert e.value.code == 2
    assert _error_lines(capsys.readouterr().err)[0].startswith("error: invalid choice 'sgd'")


def test_the_console_script_and_python_m_fastctrl(tmp_path):
    """The installed ``fastctrl`` (``pip install -e .`` registers it) runs a tiny job."""
    script = Path(sys.executable).with_name("fastctrl")
    exe = str(script) if script.is_file() else shutil.which("fastctrl")
    assert exe, "no fastctrl console script: pip install -e . registers it"
    res = _subprocess(exe, "--help", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: fastctrl ") and "lqr" in res.stdout
    out = tmp_path / "lqr"
    res = _subprocess(
        exe, "lqr", "generate", "--num_samples", "4", "--output_dir", str(out), cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    assert (out / "lqr_dataset.npz").is_file() and "wrote" in res.stdout
    res = _subprocess(sys.executable, "-m", "fastctrl", "digits", "--help", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: fastctrl digits ")
    # a bad flag: tyro's error box (UTF-8 here, ASCII under pytest's capture) as one line
    res = _subprocess(exe, "lqr", "export", "--bogus", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr == "error: Unrecognized options: --bogus (see fastctrl --help)\n"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # runpy: the module is imported already
@pytest.mark.parametrize("module", sorted(ENTRY_POINTS))
def test_every_python_m_form_is_reachable(module, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [module, "--help"])
    with pytest.raises(SystemExit) as e:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    assert e.value.code in (0, None)
    assert capsys.readouterr().out.startswith(f"usage: {ENTRY_POINTS[module]} ")


def test_python_m_fastctrl_train_method_grpo_runs(tmp_path):
    """The README's main job, exactly as written there (a tiny budget)."""
    out = tmp_path / "run"
    res = _subprocess(
        sys.executable,
        "-m",
        "fastctrl.train",
        "--method",
        "grpo",
        "--synthetic_requests",
        "60",
        "--max_env_steps",
        "400",
        "--eval_every_steps",
        "200",
        "--output_dir",
        str(out),
        "--quiet",
    )
    assert res.returncode == 0, res.stderr
    assert (out / "eval_results.json").is_file()


# ------------------------------------------------------------------------- every flag has help
def _declared_help(cls: type, name: str) -> bool | None:
    """Whether ``cls`` (itself, not a base) gives field ``name`` a docstring; None when it does
    not declare the field or has no source (a class made at run time)."""
    if name not in cls.__dict__.get("__annotations__", {}):
        return None
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return None
    body = tree.body[0].body  # type: ignore[attr-defined]
    for i, node in enumerate(body):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == name:
            nxt = body[i + 1] if i + 1 < len(body) else None
            return (
                isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
                and bool(nxt.value.value.strip())
            )
    return None


def undocumented(cls: type, seen: set[type] | None = None) -> list[str]:
    """``Class.field`` for every field of a CLI dataclass (nested groups included) that has no
    help: no docstring under it and no ``tyro.conf.arg(help=...)``. A ``#`` comment is no help
    (tyro shows it, under every field that follows it)."""
    seen = set() if seen is None else seen
    if cls in seen:
        return []
    seen.add(cls)
    hints = typing.get_type_hints(cls, include_extras=True)
    missing: list[str] = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        meta = getattr(hint, "__metadata__", ())
        if any(m is tyro.conf.Suppress for m in meta):
            continue
        has = any(getattr(m, "help", None) for m in meta)
        if not has:
            for klass in cls.__mro__:
                found = _declared_help(klass, f.name)
                if found is not None:
                    has = found
                    break
        if not has:
            missing.append(f"{cls.__name__}.{f.name}")
        inner = typing.get_args(hint)[0] if meta else hint
        if dataclasses.is_dataclass(inner):
            missing += undocumented(inner, seen)
    return missing


def _cli_classes() -> dict[str, type]:
    from fastctrl.compare.gap_closed import GapClosedArgs
    from fastctrl.compare.length_blind import LengthBlindArgs
    from fastctrl.train.cli import MethodFlag, train_args_class

    found = {" ".join(p): load(c.config) for p, c in iter_commands()}
    found.update(
        {f"python -m fastctrl.train --method {m}": train_args_class(m) for m in "lut ppo".split()}
    )
    found.update(
        {"MethodFlag": MethodFlag, "gap-closed": GapClosedArgs, "length-blind": LengthBlindArgs}
    )
    return found


@pytest.mark.parametrize("name", sorted(_cli_classes()))
def test_every_flag_has_help(name):
    assert undocumented(_cli_classes()[name]) == []


@dataclasses.dataclass
class _Inner:
    """A group."""

    a: int = 1
    """Documented."""
    b: int = 2


@dataclasses.dataclass
class _Outer:
    """A command."""

    # a comment is no help (tyro shows it, under this field and the ones after it)
    x: int = 0
    y: typing.Annotated[int, tyro.conf.arg(help="Given in the type.")] = 0
    z: tyro.conf.Suppress[int] = 0
    inner: tyro.conf.OmitArgPrefixes[_Inner] = dataclasses.field(default_factory=_Inner)
    """The group."""


@dataclasses.dataclass
class _Derived(_Outer):
    """A subclass documents its own fields."""

    w: int = 0


def test_the_help_check_finds_a_field_without_help():
    assert undocumented(_Outer) == ["_Outer.x", "_Inner.b"]
    assert undocumented(_Derived) == ["_Derived.x", "_Inner.b", "_Derived.w"]


# ------------------------------------------------------------------------- the help-text fixes
def test_digits_data_help_says_what_each_flag_is(capsys):
    from fastctrl.digits.data import main

    with pytest.raises(SystemExit):
        main(["--help"])
    out = _flat(capsys.readouterr().out)
    assert out.count("the shipped profile") == 1  # was repeated under five flags
    for flag in ("--output_dir", "--val_pages", "--test_pages", "--live_pages", "--seed"):
        after = out.split(flag, 1)[1].split("(default")[0]
        assert len(after.split()) > 3, flag


@pytest.mark.parametrize("path", [("profile",), ("evaluate",)])
def test_answer_path_help_names_both_lean_paths(path, capsys):
    assert commands.main([*path, "--help"]) == 0
    out = _flat(capsys.readouterr().out)
    help_ = out.split("--answer_path {auto,generate}", 1)[1].split("(default: auto)")[0]
    assert "prefill forward" in help_ and "GreedyDecode" in help_
    assert "one-token answer (--max_new_tokens 1) from the prefill forward alone" not in out


def test_python_m_recursive_control_names_itself():
    res = _subprocess(sys.executable, "-m", "fastctrl.recursive_control", "--help")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: python -m fastctrl.recursive_control [")


# ------------------------------------------------------------------------- flag groups, once
def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _assert_takes_groups(cls: type, **groups: type) -> None:
    """``cls`` takes each flag group through the field named for it and declares none of the
    group's flags itself."""
    hints = typing.get_type_hints(cls, include_extras=True)
    for name, group in groups.items():
        assert not _field_names(group) & _field_names(cls), cls
        assert typing.get_args(hints[name])[0] is group, (cls, name)


def test_model_loading_flags_are_one_group():
    from fastctrl.evaluate.cli import EvaluateArgs
    from fastctrl.profile.options import ProfileArgs
    from fastctrl.runtime.loading import ModelArgs

    assert _field_names(ModelArgs) == {
        "model",
        "dtype",
        "device",
        "device_map",
        "attn_implementation",
        "trust_remote_code",
    }
    for cls in (ProfileArgs, EvaluateArgs):
        _assert_takes_groups(cls, loading=ModelArgs)
    with pytest.raises(ValueError, match="--device or --device_map"):
        ModelArgs(device="cpu", device_map="auto")


def test_compare_and_tune_take_the_training_flags_from_train_config():
    from fastctrl.compare.cli import CompareArgs
    from fastctrl.train.config import DataConfig, LoopConfig, ProfileSource, RunBudget
    from fastctrl.tune.cli import TuneArgs

    assert issubclass(DataConfig, ProfileSource) and issubclass(LoopConfig, RunBudget)
    assert _field_names(ProfileSource) | _field_names(RunBudget) == {
        "profile",
        "synthetic_requests",
        "synthetic_family",
        "max_env_steps",
        "eval_every_steps",
        "num_epochs",
    }
    for cls in (CompareArgs, TuneArgs):
        _assert_takes_groups(cls, data=ProfileSource, budget=RunBudget)
    args = cli.parse(
        CompareArgs, ["--methods", "lut,grpo", "--max_env_steps", "5000"], prog="fastctrl compare"
    )
    assert args.methods == ("lut", "grpo")
    assert args.train_config("grpo", 0, Path("x")).loop.max_env_steps == 5000
    assert cli.parse(CompareArgs, ["--methods", "lut", "grpo"], prog="x").methods == ("lut", "grpo")


# ------------------------------------------------------------------------- one output flag
def test_profile_paths_take_the_output_dir(tmp_path):
    from fastctrl.profile.options import ProfileArgs
    from fastctrl.profile.synthetic import synthetic_profile
    from fastctrl.profile.table import Profile

    args = cli.parse(ProfileArgs, ["--output_dir", str(tmp_path / "p")], prog="x")
    assert args.table_path == tmp_path / "p" / "profile.parquet"
    csv = cli.parse(ProfileArgs, ["--output_dir", "d", "--table_format", "csv"], prog="x")
    assert csv.table_path == Path("d") / "profile.csv"
    prof = synthetic_profile(40, seed=0, image_dim=8, text_dim=8)
    for name in ("profile.parquet", "profile.csv"):
        d = tmp_path / name.split(".")[1]
        prof.save(d / name)
        assert Profile.resolve_path(d) == d / name
        assert Profile.resolve_path(d / name) == d / name
        assert Profile.load(d).n_requests == prof.n_requests
    with pytest.raises(FileNotFoundError, match="holds no profile.parquet or profile.csv"):
        Profile.load(tmp_path)


def test_no_command_has_another_output_flag():
    for name, cls in _cli_classes().items():
        assert not _field_names(cls) & {"out", "output", "output_path"}, name


# ------------------------------------------------------------------------- exit codes
def _one_error_line(err: str, needle: str) -> None:
    assert "Traceback" not in err
    lines = _error_lines(err)
    assert len(lines) == 1 and needle in lines[0], err


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_bad_flag_is_status_2_with_one_error_line(path, capsys):
    assert commands.main([*path, *REQUIRED.get(path, []), "--no_such_flag", "1"]) == 2
    _one_error_line(capsys.readouterr().err, "--no_such_flag")
    module, extra = MODULE_OF[path]
    main = importlib.import_module(module).main
    assert _code(main, [*extra, *REQUIRED.get(path, []), "--no_such_flag", "1"]) == 2
    _one_error_line(capsys.readouterr().err, "--no_such_flag")


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_output_dir_that_is_a_file_is_status_2(path, tmp_path, capsys):
    file = tmp_path / "a_file"
    file.write_text("not a directory")
    argv = [*REQUIRED.get(path, []), "--output_dir", str(file)]
    assert commands.main([*path, *argv]) == 2
    _one_error_line(capsys.readouterr().err, f"error: --output_dir {file}: is a file")
    module, extra = MODULE_OF[path]
    assert _code(importlib.import_module(module).main, [*extra, *argv]) == 2
    _one_error_line(capsys.readouterr().err, f"error: --output_dir {file}: is a file")
    assert file.read_text() == "not a directory"


def test_output_dir_a_file_in_the_readme_job_has_no_traceback(tmp_path):
    file = tmp_path / "a_file"
    file.write_text("x")
    res = _subprocess(sys.executable, "-m", "fastctrl.train", "--output_dir", str(file))
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: --output_dir {file}: is a file"
    from fastctrl.compare.gap_closed import cli_main

    assert _code(cli_main, [str(file)]) == 2


def test_a_missing_input_file_is_status_2(tmp_path, capsys):
    for argv in (
        ["lqr", "train", "--data", str(tmp_path / "absent.npz")],
        ["lqr", "evaluate", "--checkpoint", str(tmp_path / "absent.pt")],
        ["digits", "report", "--profile", str(tmp_path / "absent.parquet")],
        ["train", "lut", "--profile", str(tmp_path / "absent.parquet")],
        ["compare", "--summary", "gap-closed", "--output_dir", str(tmp_path)],
    ):
        assert commands.main([*argv, "--output_dir", str(tmp_path / "out")]) == 2, argv
        _one_error_line(capsys.readouterr().err, "error: ")
    from fastctrl.recursive_control.supervised_training import main

    assert main(["--data", str(tmp_path / "absent.npz"), "--output_dir", str(tmp_path)]) == 2
    _one_error_line(capsys.readouterr().err, "absent.npz")


def test_a_failure_at_run_time_is_status_1(tmp_path, monkeypatch, capsys):
    import fastctrl.digits.data as data

    def broken(args):
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(data, "write", broken)
    assert commands.main(["digits", "data", "--output_dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err  # a failure, not bad input: whoever reports it needs it
    assert _error_lines(err) == ["error: RuntimeError: the disk is on fire"]
    assert data.main(["--output_dir", str(tmp_path)]) == 1
    capsys.readouterr()

    def bad(args):
        raise ValueError("--x must be > 0")

    assert cli.execute(bad, None) == 2
    assert capsys.readouterr().err == "error: --x must be > 0\n"
    assert cli.execute(lambda a: None, None) == 0
