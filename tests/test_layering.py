"""The package imports down the flow only, and has no import cycle.

Every ``import`` in ``fastctrl/`` (at any depth of a module, lazy ones inside functions
included; ``if TYPE_CHECKING:`` blocks excluded, they never run) is read with ``ast`` and
resolved to the fastctrl module it loads. Each subpackage sits on a layer of :data:`LAYERS`;
an import may reach its own layer or one below, never one above, and the module graph has no
cycle. The layout doc (docs/layout.md, README "Layout") states the same rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fastctrl"

# bottom first; a module may import from its own layer and the layers below it
LAYERS: list[tuple[str, ...]] = [
    ("space", "io", "cli", "sysinfo", "_C", "kernels"),  # the base: no fastctrl imports
    ("policy",),  # the Controller and its saved forms
    ("engines",),  # decision engines: torch reference, int8 C++, Triton
    ("model_hook",),  # fastctrl.hook: a controller inside a model's forward
    ("runtime",),  # model loading, requests, answer paths, timing, metrics, built-in names
    ("testing", "distributed"),  # tiny models (register into runtime); local / Ray backends
    ("profile",),  # profile tables and the profiler
    ("env",),  # the bandit over a profile, reward, baselines
    ("train", "evaluate"),  # methods and the loop; live evaluation through the hook
    ("tune", "digits", "recursive_control"),  # tuning; the digits benchmark; the LQR benchmark
    ("compare", "serve", "vllm_plugin"),  # the E5 experiment; the server; the vLLM plugin
    ("commands",),  # the `fastctrl` command: every stage's CLI under one name
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}
TOP = len(LAYERS)  # fastctrl/__init__.py and __main__.py: the package's face


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return TOP
    if parts[1] not in LAYER_OF:
        raise AssertionError(f"{module}: its subpackage {parts[1]!r} has no layer in LAYERS")
    return LAYER_OF[parts[1]]


def _runtime_imports(tree: ast.AST) -> list[ast.AST]:
    out: list[ast.AST] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def imports_of(module: str, source: str, *, is_package: bool = False) -> set[str]:
    """The fastctrl modules ``module`` imports (a ``from pkg import sub`` counts as ``sub``)."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()
    for node in _runtime_imports(ast.parse(source, module)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "fastctrl"}
            continue
        if node.level:
            base = ".".join(package[: len(package) - node.level + 1] + [node.module or ""])
            base = base.rstrip(".")
        else:
            base = node.module or ""
        if base.split(".")[0] != "fastctrl":
            continue
        for a in node.names:
            sub = f"{base}.{a.name}"
            found.add(sub if sub in MODULES or sub.endswith("._C") else base)
    found.discard(module)
    return found


GRAPH = {
    m: imports_of(m, p.read_text(), is_package=p.name == "__init__.py") for m, p in MODULES.items()
}


def test_every_subpackage_has_a_layer():
    assert {layer(m) for m in MODULES}  # raises for a subpackage LAYERS does not place


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_flow(module):
    up = sorted(t for t in GRAPH[module] if layer(t) > layer(module))
    assert not up, f"{module} (layer {layer(module)}) imports up the flow: {up}"


def test_no_import_cycle():
    # Tarjan-free: repeatedly strip modules that import nothing left; what remains is cyclic
    remaining = {m: {t for t in ts if t in MODULES} for m, ts in GRAPH.items()}
    while True:
        leaves = {m for m, ts in remaining.items() if not ts}
        if not leaves:
            break
        remaining = {m: ts - leaves for m, ts in remaining.items() if m not in leaves}
    assert not remaining, f"import cycle among {sorted(remaining)}"


def test_the_checker_sees_what_it_must_and_skips_type_checking_blocks():
    """The premise of the tests above: lazy, relative and absolute imports are all found."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "from ..space import Config\n"
        "import fastctrl.policy\n"
        "if TYPE_CHECKING:\n"
        "    from ..train.config import TrainConfig\n"
        "def f():\n"
        "    from ..digits import DIGITS_MODEL\n"
        "    from . import registry\n"
    )
    assert imports_of("fastctrl.runtime.loading", source) == {
        "fastctrl.space",
        "fastctrl.policy",
        "fastctrl.digits",
        "fastctrl.runtime.registry",
    }
    assert layer("fastctrl.digits") > layer("fastctrl.runtime.loading")
