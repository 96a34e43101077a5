"""`msup pareto`: Pareto front, hypervolume and figures of studies.

The command lives in `msup.analysis.command` (torch-free, so it also runs as
``python -m analysis.pareto``); this module only registers it and turns its
`TableError` into msup's one-line input error (exit code 2).
"""

from __future__ import annotations

import argparse

from msup.analysis.command import DESCRIPTION, HELP, add_arguments, run
from msup.analysis.table import TableError
from msup.errors import InputError


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("pareto", help=HELP, description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        return run(args)
    except TableError as exc:
        raise InputError(str(exc)) from None
