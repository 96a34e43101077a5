"""The shipped JSON Schemas equal the generated ones, every shipped YAML file names its schema and validates
against it, and the schema refuses what msup refuses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from msup.cli import main
from msup.safe_yaml import parse_yaml
from msup.search.config.schema import KINDS, schema, schema_text

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = {
    "study": sorted([*ROOT.glob("studies/*.yaml"), ROOT / "studies" / "cluster" / "cifar10-resnet18.yaml"]),
    "train": sorted(ROOT.glob("studies/train/*.yaml")),
    "space": sorted(ROOT.glob("search_spaces/*.yaml")),
}
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")


@pytest.mark.parametrize("kind", KINDS)
def test_the_shipped_schema_is_the_generated_one_and_the_cli_prints_it(kind, capsys):
    assert (ROOT / "schemas" / f"{kind}.schema.json").read_text(encoding="utf-8") == schema_text(kind), (
        f"regenerate it: msup schema {kind} > schemas/{kind}.schema.json")
    assert main(["schema", kind]) == 0
    assert json.loads(capsys.readouterr().out) == schema(kind)
    Draft202012Validator.check_schema(schema(kind))


@pytest.mark.parametrize("kind, path", [(k, p) for k, paths in SHIPPED.items() for p in paths],
                         ids=lambda v: v if isinstance(v, str) else v.relative_to(ROOT).as_posix())
def test_every_shipped_file_names_its_schema_and_validates_against_it(kind, path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    match = MODELINE.match(first)
    assert match, f"{path.name}: its first line should be '# yaml-language-server: $schema=...'"
    assert (path.parent / match.group(1)).resolve() == ROOT / "schemas" / f"{kind}.schema.json"
    errors = list(Draft202012Validator(schema(kind)).iter_errors(parse_yaml(path.read_text(encoding="utf-8"))))
    assert not errors, [e.message for e in errors]


def test_the_installed_default_study_validates_too():
    text = (ROOT / "msup" / "resources" / "digits.yaml").read_text(encoding="utf-8")
    assert not list(Draft202012Validator(schema("study")).iter_errors(parse_yaml(text)))


@pytest.mark.parametrize("kind, document, where", [
    ("train", {"optim": {"lr": "0.1"}}, "optim"),  # a string is not a number
    ("train", {"optim": {"epochs": True}}, "optim"),  # a bool is not an integer
    ("train", {"optm": {}}, ""),  # unknown key
    ("train", {"model": {"name": "mlpp"}}, "model"),
    ("study", {"name": "x", "search_space": "s.yaml", "resources": {"cpu": 0}}, "resources"),
    ("study", {"name": "x", "search_space": "s.yaml", "train": {"optim": {"lrr": 1}}}, "train"),
    ("space", {"parameters": {"lr": {"type": "float", "low": 0.1}}}, "parameters"),  # high missing
])
def test_the_schema_refuses_what_msup_refuses(kind, document, where):
    errors = list(Draft202012Validator(schema(kind)).iter_errors(document))
    assert errors and all(".".join(str(p) for p in e.absolute_path).startswith(where) for e in errors)
