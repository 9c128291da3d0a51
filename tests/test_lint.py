"""Lint and formatting are part of the suite (CI runs only ``pytest tests``): ``ruff check`` and
``ruff format --check`` over the repository, with the project's ruff config (pyproject.toml).
Fix with ``ruff check --fix FILE`` and ``ruff format FILE``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ruff_is_installed():
    r = _ruff("--version")
    assert r.returncode == 0, f"ruff is in the [test] extra: {r.stderr}"


@pytest.mark.parametrize(
    "args", [("check", "--output-format", "concise", "."), ("format", "--check", ".")]
)
def test_ruff(args):
    r = _ruff(*args)
    assert r.returncode == 0, f"ruff {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
