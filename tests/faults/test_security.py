"""Security defaults: no code runs from files msup reads, study names stay inside runs/, no open dashboard.

The source checks read msup's and analysis' own code (an AST walk, so comments
and strings do not count) and are themselves checked on hostile snippets.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msup.errors import InputError
from msup.search.config.study import parse_study
from msup.search.config.study_file import NAME_PATTERN
from msup.search.execution import runner
from msup.search.study import find_study_dir

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "msup").rglob("*.py"), *(ROOT / "analysis").rglob("*.py")])
# Calls that turn file content into code: pickle and its relatives, and evaluation of text.
UNSAFE_CALLS = {
    "pickle.load", "pickle.loads", "pickle.Unpickler", "dill.load", "dill.loads", "cloudpickle.load",
    "cloudpickle.loads", "joblib.load", "marshal.load", "marshal.loads", "shelve.open", "pd.read_pickle",
    "pandas.read_pickle", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "eval", "exec",
}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _safe_loader_classes(tree: ast.Module) -> set[str]:
    """Classes of this module that derive from a safe YAML loader."""
    return {
        node.name for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and any(_dotted(b).split(".")[-1] in SAFE_YAML_LOADERS for b in node.bases)
    }


def unsafe_loads(source: str) -> list[str]:
    """Each call in ``source`` that may execute what it reads, as 'line N: call'."""
    tree = ast.parse(source)
    safe_loaders = SAFE_YAML_LOADERS | _safe_loader_classes(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        keywords = {k.arg: k.value for k in node.keywords}
        if name in UNSAFE_CALLS:
            found.append(f"line {node.lineno}: {name}")
        elif name == "torch.load":
            flag = keywords.get("weights_only")
            if not (isinstance(flag, ast.Constant) and flag.value is True):
                found.append(f"line {node.lineno}: torch.load without weights_only=True")
        elif name == "yaml.load":
            loader = keywords.get("Loader", node.args[1] if len(node.args) > 1 else None)
            if loader is None or _dotted(loader).split(".")[-1] not in safe_loaders:
                found.append(f"line {node.lineno}: yaml.load without a SafeLoader")
        elif name.endswith("np.load") or name == "numpy.load":
            flag = keywords.get("allow_pickle")
            if isinstance(flag, ast.Constant) and flag.value is True:
                found.append(f"line {node.lineno}: np.load with allow_pickle=True")
    return found


@pytest.mark.parametrize("snippet", [
    "import pickle\npickle.load(open('x', 'rb'))",
    "import torch\ntorch.load('x.pt')",
    "import torch\ntorch.load('x.pt', weights_only=False)",
    "import yaml\nyaml.load(text, Loader=yaml.Loader)",
    "import yaml\nyaml.load(text)",
    "import yaml\nyaml.unsafe_load(text)",
    "import numpy as np\nnp.load('x.npy', allow_pickle=True)",
    "import pandas as pd\npd.read_pickle('x.pkl')",
    "eval(open('x').read())",
])
def test_the_source_check_catches_unsafe_loading(snippet):
    assert unsafe_loads(snippet)


@pytest.mark.parametrize("snippet", [
    "import torch\ntorch.load(path, map_location='cpu', weights_only=True)",
    "import yaml\nyaml.safe_load(text)",
    "import yaml\nclass L(yaml.SafeLoader): pass\nyaml.load(text, Loader=L)",
])
def test_the_source_check_accepts_safe_loading(snippet):
    assert unsafe_loads(snippet) == []


def test_nothing_msup_reads_from_disk_is_unpickled_or_evaluated():
    assert len(SOURCES) > 20
    found = {str(p.relative_to(ROOT)): hits for p in SOURCES if (hits := unsafe_loads(p.read_text(encoding="utf-8")))}
    assert found == {}


HOSTILE_NAMES = ["..", "../escape", "../../etc", "/tmp/escape", "a/../../b", "a/b", ".hidden", "~root", "", " ", "x" * 65,
                 "name\x00", "name\n", "C:\\evil", "runs/../../x"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_study_name_cannot_leave_the_runs_folder(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="name: "):
        parse_study({"name": name, "search_space": {"parameters": {"lr": 0.1}}}, base_dir=tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(InputError, match="neither a study folder nor a valid study name|no study"):
        find_study_dir(name, tmp_path / "runs")


@given(st.text(min_size=1, max_size=70))
def test_every_accepted_name_is_a_folder_directly_inside_runs(name):
    runs = Path("/srv/runs")
    if NAME_PATTERN.match(name):
        assert (runs / name).resolve().parent == runs and (runs / name).name == name


def test_a_local_ray_instance_starts_without_dashboard(monkeypatch):
    calls = []
    monkeypatch.setattr(runner.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(runner.ray, "init", lambda **kwargs: calls.append(kwargs))
    runner.connect(None)
    runner.connect("ray://head:10001")
    local, cluster = calls
    assert local["include_dashboard"] is False
    assert "include_dashboard" not in cluster  # joining a cluster starts nothing; its dashboard is the cluster's
