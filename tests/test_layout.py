"""The package's layout rules (docs/architecture.md): import circles, who imports Ray and torch, module sizes."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("msup", "analysis")
RAY_IMPORTERS = ("msup.search.execution", "msup.search.driver")
MAX_MODULE_LINES = 400


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at its top or inside a function: ``from a import b`` is ``a.b`` where b is one."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        imported = _imports(path)
        # `from msup import x` imports the module msup.x; the package itself only where nothing more specific is meant
        specific = {m for m in imported if m in modules}
        graph[name] = {m for m in specific if not any(other.startswith(m + ".") for other in specific)} - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_circles() -> None:
    assert _cycles(_graph()) == []


def test_the_circle_finder_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_the_execution_layer_imports_ray() -> None:
    importers = sorted(name for name, path in _modules().items()
                       if any(m == "ray" or m.startswith("ray.") for m in _imports(path))
                       and not name.startswith(RAY_IMPORTERS))
    assert importers == []


def test_no_module_is_over_400_lines() -> None:
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


@pytest.mark.parametrize("modules", [
    "msup.search.study, msup.search.config.study, msup.search.state.table, msup.search.state.account",
    "msup.notebook, msup.cli, msup.cli.study, msup.cli.pareto, msup.cli.artifact, msup.analysis.command, msup.analysis.report",
])
def test_reading_a_study_imports_neither_ray_nor_torch(modules: str) -> None:
    code = f"import sys, {modules}\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & {{'ray', 'torch'}}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_checking_a_study_files_keys_and_training_config_imports_no_torch() -> None:
    """Model and data-set names are checked against `msup.catalog`, not against the torch registry."""
    code = (
        "import sys\n"
        "from msup.config import TrainConfig\n"
        "from msup.search.config.study import read_study_file\n"
        "from msup.search.config.schema import schema_text\n"
        "for path in ('studies/digits.yaml', 'studies/mnist5k-conv.yaml', 'studies/cluster/cifar10-resnet18.yaml'):\n"
        "    read_study_file(path, TrainConfig.problems)\n"
        "assert TrainConfig.problems({'model': {'name': 'resnet5'}, 'data': {'name': 'mnist'}})\n"
        "schema_text('study')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'torch'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_torch_free_catalog_names_every_registered_model() -> None:
    from msup.catalog import BUILTIN_MODELS, model_names
    from msup.models import list_models

    assert sorted(BUILTIN_MODELS) == list_models() == model_names()
