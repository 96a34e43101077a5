"""`msup schema`: the JSON Schema of study files, training configs or search spaces, for YAML editors."""

from __future__ import annotations

import argparse
import sys


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "schema",
        help="print the JSON Schema of a study file, training config or search space",
        description=(
            "Print the JSON Schema of one kind of file msup reads. Point a YAML editor at it (VS Code's YAML "
            "extension reads a first line '# yaml-language-server: $schema=PATH') to complete and check keys "
            "as you type; the repository's schemas/ folder holds all three."
        ),
    )
    p.add_argument("kind", choices=("study", "train", "space"), help="study file, training config or search space")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from msup.search.config.schema import schema_text

    sys.stdout.write(schema_text(args.kind))
    return 0
