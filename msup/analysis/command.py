"""The ``pareto`` command line: ``msup pareto`` registers it, ``python -m analysis.pareto`` runs it alone.

The report itself is `msup.analysis.report`. Importing this module costs no
pandas or matplotlib: ``msup`` builds its arguments at start-up.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from msup.analysis.report import (
    DEFAULT_RUNS_DIR,
    RUNS_ENV,
    Study,
    load_study,
    write_report,
)
from msup.analysis.table import (
    ACCURACY_COLUMNS,
    COATS,
    SEED,
    SIZE_COLUMNS,
    SIZE_ENTROPY_MIB,
    TRIAL,
    VAL_ACC,
    TableError,
    format_size,
    size_unit,
)

if TYPE_CHECKING:
    import pandas as pd

EXIT_INPUT = 2
HELP = "Pareto front (accuracy against size), hypervolume and figures of studies"
DESCRIPTION = (
    "Find the trials no other trial beats in both accuracy and model size, draw them over the rest "
    "(log size, accuracy in %), plot hypervolume against compute (trial-epochs, wall-clock) and write the front as CSV. "
    "Only COMPLETE trials count."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments, for both entry points."""
    parser.add_argument("study", metavar="NAME_OR_DIR",
                        help="study folder holding trials.csv (a path or an s3:// URI), or a study name under the "
                             "runs folder")
    parser.add_argument("--out", metavar="FILE",
                        help="Pareto figure path, .png/.svg/.pdf, or .html for an interactive page (hover a point "
                             "for its configuration; needs plotly) (default: <study>/pareto.png); "
                             "hypervolume and pareto.csv go next to it")
    parser.add_argument("--x", choices=SIZE_COLUMNS, default=SIZE_ENTROPY_MIB,
                        help="size column, drawn on a log axis (default: %(default)s)")
    parser.add_argument("--y", choices=ACCURACY_COLUMNS, default=VAL_ACC,
                        help="accuracy column, drawn in %% (default: %(default)s)")
    parser.add_argument("--compare", nargs="+", action="extend", default=[], metavar="OTHER",
                        help="further studies to overlay, each front in its own colour "
                             "(default figure: <study>/pareto-vs-<others>.png)")
    parser.add_argument("--by", choices=[COATS], help="one front per coat count of the study, and where N > 1 "
                        "lies on its overall front (default figure: <study>/pareto-by-coats.png)")
    parser.add_argument("--table", action="store_true",
                        help="also the best accuracy of each study (or coat count) at sizes up to 1x, 1.5x, 2x "
                             "and 3x the smallest size at least half as accurate as the best, printed and written "
                             "as budgets.csv")
    parser.add_argument("--runs-dir", metavar="DIR",
                        help=f"where study names are looked up, a path or s3://bucket/prefix "
                             f"(default: ${RUNS_ENV} or {DEFAULT_RUNS_DIR})")


def run(args: argparse.Namespace) -> int:
    """Load the studies, write the report, print the front and the paths; `TableError` on bad input."""
    studies = [load_study(name, args.runs_dir) for name in [args.study, *args.compare]]
    studies = _distinct_names(studies, [args.study, *args.compare])
    report = write_report(studies, args.x, args.y, args.out, by_coats=args.by == COATS, table=args.table)
    print(f"Pareto front of {studies[0].name}: {len(report.front)} trials")
    print(_front_table(report.front, args.x, args.y))
    if args.by == COATS:
        print(_coats_on_front(report.front, args.x))
    if report.budgets is not None:
        print(f"best {args.y} (%) within a size budget (x the smallest size at least half as accurate as the best):")
        print(_budget_table(report.budgets, args.x))
    print(f"hypervolume: {report.hypervolume:.4g} (accuracy x decades of size; reference: accuracy "
          f"{report.reference[0]:g}, size {format_size(report.reference[1], args.x)})")
    for kind, path in report.paths.items():
        print(f"wrote {kind}: {path}")
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "python -m analysis.pareto") -> int:
    """The command on its own: one-line errors and exit code 2 on bad input."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except TableError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_INPUT


def _front_table(front: pd.DataFrame, x: str, y: str) -> str:
    """The front as a small text table: identity, accuracy in %, size in its unit."""
    columns = [column for column in (TRIAL, COATS, SEED, y, x) if column in front.columns]
    accuracy, size = f"{y} (%)", f"{x} ({size_unit(x)})"
    shown = front[columns].assign(**{y: 100 * front[y]}).rename(columns={y: accuracy, x: size})
    formatters = {accuracy: "{:.2f}".format, size: lambda value: format_size(value, x, with_unit=False)}
    return shown.to_string(index=False, formatters=formatters)


def _coats_on_front(front: pd.DataFrame, x: str) -> str:
    """Where networks with more than one coat sit on the overall front."""
    multi = front[front[COATS] > 1]
    if multi.empty:
        return "N > 1 on the overall front: nowhere (single masks make the whole front)"
    sizes = ", ".join(format_size(size, x) for size in multi[x])
    return f"N > 1 on the overall front: {len(multi)} of {len(front)} points, at {sizes}"


def _budget_table(budgets: pd.DataFrame, x: str) -> str:
    budget = f"{budgets.columns[0]} ({size_unit(x)})"  # `best_within_budgets`: the budget, then its multiple
    shown = budgets.rename(columns={budgets.columns[0]: budget})
    formatters = {budget: lambda value: format_size(value, x, with_unit=False),
                  "multiple": "{:g}x".format}
    formatters.update({name: lambda value: f"{100 * value:.2f}" for name in budgets.columns[2:]})
    return shown.to_string(index=False, formatters=formatters, na_rep="-")


def _distinct_names(studies: list[Study], given: list[str]) -> list[Study]:
    """Legends need distinct names: fall back to the arguments as typed if directory names clash."""
    if len({study.name for study in studies}) == len(studies):
        return studies
    return [Study(text, study.folder, study.trials) for study, text in zip(studies, given)]
