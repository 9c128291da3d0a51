"""What result files record about how they were made (fastctrl.sysinfo.provenance)."""

from __future__ import annotations

import re
import sys

import pytest

from fastctrl.sysinfo import command_line, git_commit, provenance


@pytest.mark.parametrize(
    ("argv", "module", "want"),
    [
        (
            ["/x/fastctrl/compare/__main__.py", "--seeds", "5"],
            "fastctrl.compare",
            "python -m fastctrl.compare --seeds 5",
        ),
        (
            ["/x/fastctrl/compare/ship.py", "runs/e5"],
            "fastctrl.compare.ship",
            "python -m fastctrl.compare.ship runs/e5",
        ),
        (
            ["/venv/bin/fastctrl", "compare", "--quick"],
            "fastctrl.compare",
            "fastctrl compare --quick",
        ),
        (["bench/b.py", "--json", "a b.json"], "bench/b.py", "python bench/b.py --json 'a b.json'"),
    ],
)
def test_command_line_is_what_a_user_types(monkeypatch, argv, module, want):
    monkeypatch.setattr(sys, "argv", argv)
    assert command_line(module) == want


def test_provenance_names_command_date_commit_and_cpu():
    p = provenance("fastctrl x")
    assert p["command"] == "fastctrl x"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", p["date"])
    assert p["machine"]["cpu"] and p["machine"]["cpu_count"] >= 1
    # this test runs in the repository's checkout: a commit, maybe with uncommitted changes
    commit = git_commit()
    assert commit is None or re.fullmatch(r"[0-9a-f]{12}(\+dirty)?", commit)
    assert p["commit"] == commit
