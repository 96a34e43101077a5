"""YAML text to plain data, safely: numbers as YAML 1.2 reads them, and no alias bombs. Torch-free."""

from __future__ import annotations

import re
from typing import Any

import yaml

from msup.errors import InputError, first_line

# Aliases let a tiny document stand for an enormous tree ("billion laughs"); msup's files
# are small, so a document that expands past this many nodes is refused before use.
MAX_YAML_NODES = 100_000


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-4`` as a number and refuses documents whose aliases explode."""

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        if _expanded_nodes(node, {}) > MAX_YAML_NODES:
            raise InputError(f"not valid YAML: its anchors and aliases expand to more than {MAX_YAML_NODES:,} values")
        return node


def _expanded_nodes(node: yaml.Node, counted: dict[int, int]) -> int:
    """Nodes in ``node`` with every alias expanded; each shared node is visited once (a cycle counts as too many)."""
    if id(node) in counted:
        return counted[id(node)]
    counted[id(node)] = MAX_YAML_NODES + 1  # seen again before it is finished: the document refers to itself
    children: list[yaml.Node] = []
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    counted[id(node)] = 1 + sum(_expanded_nodes(child, counted) for child in children)
    return counted[id(node)]


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str) -> Any:
    """Plain data from YAML text; `InputError` (one line, with the place) for anything else."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: plain data only
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise InputError(f"not valid YAML: {exc.problem or exc.context}{where}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {first_line(exc)}") from None
    except RecursionError:
        raise InputError("not valid YAML: nested too deeply") from None
