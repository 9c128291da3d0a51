"""The docs site: it builds strictly and offline, and its numbers are its result files'.

``docs/render.py --check`` must pass (every rendered block equals what its committed source
renders, every source exists), every table outside a rendered block must be declared a
reference table, the site must build with ``mkdocs build --strict``, and the README must stay
short with its two set-up commands as ``.ci/run`` runs them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "<!-- reference table: no measured numbers -->"
#: pages other engineers own: in the nav and the strict build, but not held to the table rule here
NOT_OURS = {"docs/metrics.md", "docs/vllm.md"}


def _load_render():
    spec = importlib.util.spec_from_file_location("docs_render", ROOT / "docs" / "render.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["docs_render"] = mod  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


render = _load_render()


def test_every_rendered_block_matches_its_result_file():
    problems = render.run(check=True)
    assert not problems, "\n".join(problems)


def test_every_table_is_rendered_or_a_reference_table():
    """0 hand-typed result tables: each table is inside a rendered block (whose source file the
    registry names and which exists) or is declared a reference table on the line above it."""
    bad = []
    for page in render.pages():
        rel = str(page.relative_to(ROOT))
        if rel in NOT_OURS:
            continue
        text = page.read_text()
        inside = [(m.start(), m.end(), m.group("name")) for m in render.BLOCK.finditer(text)]
        lines = text.splitlines(keepends=True)
        pos, prev_nonblank, in_table = 0, "", False
        for line in lines:
            is_row = line.lstrip().startswith("|") and line.rstrip().endswith("|")
            if is_row and not in_table:
                block = next((n for a, b, n in inside if a <= pos < b), None)
                if block is not None:
                    for s in render.REGISTRY[block].sources:
                        assert (ROOT / s).is_file(), f"{rel}: block {block}'s source {s} is missing"
                elif prev_nonblank.strip() != REFERENCE:
                    bad.append(f"{rel}: table at {line.strip()[:60]!r}")
            in_table = is_row
            if line.strip() and not is_row:
                prev_nonblank = line
            pos += len(line)
    assert not bad, "tables that are neither rendered nor declared reference tables:\n" + "\n".join(
        bad
    )


def test_check_fails_when_a_page_drifts_from_its_file(tmp_path):
    (tmp_path / "docs").mkdir()
    src = tmp_path / "bench" / "r.json"
    src.parent.mkdir()
    src.write_text(json.dumps({"x": 1.5}))
    reg = {"t.x": render.Block(("bench/r.json",), lambda p: f"x = {render.read_json(p[0])['x']}")}
    page = tmp_path / "docs" / "p.md"
    page.write_text("# p\n\n<!-- render:t.x -->\n<!-- /render:t.x -->\n")
    assert render.run(check=False, registry=reg, root=tmp_path) == []
    assert "x = 1.5" in page.read_text()
    assert render.run(check=True, registry=reg, root=tmp_path) == []
    page.write_text(page.read_text().replace("x = 1.5", "x = 1.6"))  # a hand edit
    problems = render.run(check=True, registry=reg, root=tmp_path)
    assert len(problems) == 1 and "'t.x' differs" in problems[0] and "bench/r.json" in problems[0]
    src.write_text(json.dumps({"x": 1.6}))  # a re-run changes the file: the page follows
    assert render.run(check=True, registry=reg, root=tmp_path) == []


def test_a_missing_source_file_is_named(tmp_path):
    (tmp_path / "docs").mkdir()
    reg = {"t.y": render.Block(("bench/results/gone.json",), lambda p: "never")}
    (tmp_path / "docs" / "p.md").write_text("<!-- render:t.y -->\n<!-- /render:t.y -->\n")
    for check in (True, False):
        problems = render.run(check=check, registry=reg, root=tmp_path)
        assert any("source file missing: bench/results/gone.json" in p for p in problems)


def test_unknown_and_unused_blocks_are_errors(tmp_path):
    (tmp_path / "docs").mkdir()
    reg = {"t.used": render.Block((), lambda p: "a"), "t.unused": render.Block((), lambda p: "b")}
    (tmp_path / "docs" / "p.md").write_text(
        "<!-- render:t.used -->\n<!-- /render:t.used -->\n<!-- render:t.nope -->\n"
        "<!-- /render:t.nope -->\n<!-- render:t.open -->\n"
    )
    problems = "\n".join(render.run(check=True, registry=reg, root=tmp_path))
    assert "'t.nope' is not in" in problems
    assert "'t.unused' of the REGISTRY is on no page" in problems
    assert "'t.open' has no closing marker" in problems


def test_e5_table_renders_from_compare_statistics():
    """The E5 renderer against what ``fastctrl compare --quick`` wrote (a committed fixture)."""
    path = ROOT / "tests" / "fixtures" / "e5_quick" / "e5_statistics.json"
    doc = json.loads(path.read_text())
    md = render.render_e5_statistics(doc, ["tests/fixtures/e5_quick/e5_statistics.json"])
    util = doc["statistics"]["metrics"]["final_utility"]["methods"]
    for method, e in util.items():
        row = next(line for line in md.splitlines() if line.startswith(f"| {method} |"))
        assert f"{e['point']:.3f} [{e['low']:.3f}, {e['high']:.3f}]" in row
    oracle = doc["statistics"]["baselines"]["oracle"]["final_utility"]["value"]
    assert any(
        line.startswith("| oracle |") and f"{oracle:.3f}" in line for line in md.splitlines()
    )
    # the compare meta records no machine, date or commit: the caption says so, invents none
    assert "machine: not recorded in the file" in md and "commit: not recorded in the file" in md


def test_captions_name_source_command_machine_date_and_commit():
    for name in render.REGISTRY:
        if not all((ROOT / s).is_file() for s in render.REGISTRY[name].sources):
            continue  # reported by the check test, naming the file
        if name.startswith("readme."):
            continue  # one-line headlines: they name their file; the page's table has the caption
        body = render.render_block(name)
        cap = body.strip().splitlines()[-1]
        for part in ("Source: ", "command", "machine: ", "date: ", "commit: "):
            assert part in cap, f"{name}: caption lacks {part!r}: {cap}"


def test_mkdocs_builds_strictly_offline(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 0, f"mkdocs build --strict failed:\n{r.stdout}\n{r.stderr}"
    assert (tmp_path / "site" / "api" / "engines" / "index.html").is_file()
    html = (tmp_path / "site" / "api" / "compare" / "index.html").read_text()
    assert ":func:" not in html and ":mod:" not in html  # Sphinx roles rewritten


def test_every_docs_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    listed = set(re.findall(r":\s*([\w/.-]+\.md)\s*$", nav, re.M))
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert pages - listed == set(), f"pages missing from mkdocs.yml's nav: {pages - listed}"
    assert listed - pages == set(), f"nav entries without a page: {listed - pages}"


def test_readme_is_short_and_keeps_the_ci_command():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    test_cmd = next(line for line in ci if line.startswith("python3 -m venv"))
    assert f"    {test_cmd}\n" in readme, "README's 'Run the tests' line must equal .ci/run's"
    main_job = test_cmd.replace('pip install -e ".[test]" && python -m pytest tests -q', "")
    assert f"    {main_job}pip install -e . && python -m fastctrl.train --method grpo\n" in readme


@pytest.mark.parametrize("role", [":func:`~a.b.c`", ":mod:`.stats`", ":class:`x.Y`"])
def test_sphinx_roles_become_code_spans(role):
    spec = importlib.util.spec_from_file_location("roles", ROOT / "docs" / "griffe_sphinx_roles.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.rewrite(f"see {role} here")
    assert ":" not in out.replace("see ", "") and out.count("`") == 2
    assert (
        out
        == "see `" + {"~a.b.c": "c", ".stats": "stats", "x.Y": "x.Y"}[role.split("`")[1]] + "` here"
    )
