"""The ``pareto`` command and the report a finished study gets.

Shared by ``msup pareto`` (which only registers it) and
``python -m analysis.pareto``. A study is a folder holding ``trials.csv``
(see `analysis.table`), named either by its path or object-store URI, or by its
name under the runs folder (``--runs-dir``, else ``$MSUP_RUNS``, else ``runs``).
The outputs of a study in object storage are drawn locally, then uploaded.

Outputs, all next to the Pareto figure (by default in the study directory):
``pareto.png`` (or ``--out``; PNG, SVG or PDF by suffix), ``hypervolume``
with the same suffix, and ``pareto.csv`` with the front's rows of the first
study; an overlay of ``--compare`` studies defaults to
``pareto-vs-<others>.png`` instead. ``--table`` adds ``budgets.csv``: the best accuracy of every study
within a few size budgets. ``--by coats`` draws one front per coat count of
one study instead (default figure ``pareto-by-coats.png``) and says where
networks with more than one coat lie on its overall front. Everything is
computed before anything is written, so bad input leaves no file behind.

pandas, matplotlib and the front code are imported when a report is written,
not with this module: ``msup`` imports it at start-up to build its arguments.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.files import Folder, FolderError, is_uri
from analysis.table import (
    ACCURACY_COLUMNS, COATS, SEED, SIZE_COLUMNS, SIZE_ENTROPY_MIB, TRIAL, VAL_ACC, TableError,
    format_size, load_trials, size_unit,
)

if TYPE_CHECKING:
    import pandas as pd

TRIALS_CSV, PARETO_FIGURE, HYPERVOLUME_STEM, FRONT_CSV = "trials.csv", "pareto.png", "hypervolume", "pareto.csv"
HTML_SUFFIX = ".html"  # an interactive page (analysis.interactive) instead of a static figure
BY_COATS_FIGURE, BUDGETS_CSV = "pareto-by-coats.png", "budgets.csv"
RUNS_ENV, DEFAULT_RUNS_DIR = "MSUP_RUNS", "runs"
EXIT_INPUT = 2
HELP = "Pareto front (accuracy against size), hypervolume and figures of studies"
DESCRIPTION = (
    "Find the trials no other trial beats in both accuracy and model size, draw them over the rest "
    "(log size, accuracy in %), plot hypervolume against compute (trial-epochs, wall-clock) and write the front as CSV. "
    "Only COMPLETE trials count."
)


@dataclass(frozen=True)
class Report:
    """What `write_report` wrote, the first study's front and its final hypervolume.

    ``hypervolume`` is in accuracy x decades of size against ``reference``
    (accuracy fraction, size in the x column's unit).
    """

    paths: dict[str, Path | str]  # local paths, or URIs of files written into a study in object storage
    front: pd.DataFrame
    hypervolume: float
    reference: tuple[float, float]
    budgets: pd.DataFrame | None = None  # with ``table``: `analysis.pareto.best_within_budgets`


@dataclass(frozen=True)
class Study:
    """A study's name (for legends), folder (a directory, or a prefix in object storage) and validated results table."""

    name: str
    folder: Folder
    trials: pd.DataFrame


def find_study(name_or_dir: str | PathLike[str], runs_dir: str | PathLike[str] | None = None) -> Folder:
    """Folder of a study: ``name_or_dir`` itself if it holds trials.csv, else ``<runs>/<name>``.

    Either may be an object-store URI (``s3://bucket/runs/name``).
    """
    given = Folder(name_or_dir)
    if given.is_file(TRIALS_CSV):
        return given
    runs = Folder(runs_dir or os.environ.get(RUNS_ENV) or DEFAULT_RUNS_DIR)
    if not is_uri(name_or_dir) and (runs / str(name_or_dir)).is_file(TRIALS_CSV):
        return runs / str(name_or_dir)
    if given.exists():
        raise TableError(f"{given}: no {TRIALS_CSV} in this folder")
    raise TableError(f"no study {str(name_or_dir)!r}: not a folder with {TRIALS_CSV}, nor one under {runs}/")


def load_study(name_or_dir: str | PathLike[str], runs_dir: str | PathLike[str] | None = None) -> Study:
    """Find and validate one study; its name is its folder's name."""
    try:
        folder = find_study(name_or_dir, runs_dir)
        data = folder.read_bytes(TRIALS_CSV)
    except FolderError as exc:
        raise TableError(str(exc)) from None
    return Study(folder.name, folder, load_trials(io.BytesIO(data), source=f"{folder}/{TRIALS_CSV}"))


def write_study_report(
    study_dir: str | PathLike[str], x: str = SIZE_ENTROPY_MIB, y: str = VAL_ACC
) -> dict[str, Path | str]:
    """Write pareto.png, hypervolume.png and pareto.csv into a finished study's directory.

    For the study launcher. Returns the paths by kind (``pareto``,
    ``hypervolume``, ``front_csv``); raises `TableError` (nothing written) if
    the table is unusable or has no COMPLETE trial.
    """
    return write_report([load_study(study_dir)], x, y).paths


def write_report(
    studies: Sequence[Study], x: str, y: str, out: str | PathLike[str] | None = None,
    by_coats: bool = False, table: bool = False,
) -> Report:
    """Figures for ``studies`` (one front, or an overlay of several) and the first study's front CSV.

    All studies' hypervolumes share one reference point so they can be
    compared. ``by_coats`` splits the one study into a front per coat count;
    ``table`` also writes the best accuracy of each study (or coat count)
    within size budgets.
    """
    from analysis.plots import check_figure_path

    first = studies[0]
    if by_coats and len(studies) > 1:
        raise TableError("--by coats draws the fronts of one study; leave out --compare")
    if by_coats:
        default_figure = BY_COATS_FIGURE
    elif len(studies) > 1:  # an overlay must not replace the first study's own figure
        default_figure = f"pareto-vs-{'-'.join(study.name for study in studies[1:])}.png"
    else:
        default_figure = PARETO_FIGURE
    with _output_folder(first.folder if out is None else None) as (home, publish):
        wanted = Path(out) if out is not None else home / default_figure
        figure_path = wanted if wanted.suffix.lower() == HTML_SUFFIX else check_figure_path(wanted)
        return _write_outputs(studies, x, y, figure_path, by_coats, table, publish)


def _write_outputs(
    studies: Sequence[Study], x: str, y: str, figure_path: Path, by_coats: bool, table: bool,
    publish: Callable[[Path], Path | str],
) -> Report:
    from analysis.interactive import write_front_html
    from analysis.pareto import HYPERVOLUME, best_within_budgets, hypervolume_history, pareto_front, shared_reference
    from analysis.plots import compare_figure, hypervolume_figure, pareto_figure, save_figure

    first = studies[0]
    front = pareto_front(first.trials, x, y)
    reference = shared_reference([study.trials for study in studies], x)
    histories = {study.name: hypervolume_history(study.trials, x, y, reference) for study in studies}
    groups = _by_coats(first.trials) if by_coats else {study.name: study.trials for study in studies}
    interactive = figure_path.suffix.lower() == HTML_SUFFIX
    if interactive:
        pareto = None
    elif len(groups) == 1 and not by_coats:
        pareto = pareto_figure(first.trials, x, y, name=first.name)
    else:
        pareto = compare_figure(groups, x, y)
    budgets = best_within_budgets(groups, x, y) if table else None
    hypervolume = hypervolume_figure(histories, reference, x)
    paths = {
        "pareto": write_front_html(groups, x, y, figure_path) if pareto is None else save_figure(pareto, figure_path),
        "hypervolume": save_figure(hypervolume, figure_path.with_name(
            HYPERVOLUME_STEM + (".png" if interactive else figure_path.suffix))),
        "front_csv": figure_path.with_name(FRONT_CSV),
    }
    front.to_csv(paths["front_csv"], index=False)
    if budgets is not None:
        paths["budgets_csv"] = figure_path.with_name(BUDGETS_CSV)
        budgets.to_csv(paths["budgets_csv"], index=False)
    published = {kind: publish(path) for kind, path in paths.items()}
    return Report(published, front, float(histories[first.name][HYPERVOLUME].iloc[-1]), reference, budgets)


@contextmanager
def _output_folder(folder: Folder | None) -> Iterator[tuple[Path, Callable[[Path], Path | str]]]:
    """Where a report is drawn and how each file gets to its place: a local study directory takes the files as they
    are; one in object storage gets them from a scratch directory once they are complete."""
    if folder is None or folder.local is not None:
        yield (folder.local if folder is not None else Path.cwd()), lambda path: path
        return
    with tempfile.TemporaryDirectory(prefix="msup-report-") as scratch:
        yield Path(scratch), lambda path: folder.upload(path, path.name)


def _by_coats(trials: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The study's rows per coat count, ``N=1`` first."""
    if trials[COATS].isna().all():
        raise TableError("no coat counts in this table: nothing to split the front by")
    return {f"N={coats:.0f}": group for coats, group in trials.groupby(COATS, sort=True)}


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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m analysis.pareto``: one-line errors and exit code 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m analysis.pareto", description=DESCRIPTION)
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
    from analysis.pareto import BUDGET

    shown = budgets.rename(columns={BUDGET: f"{BUDGET} ({size_unit(x)})"})
    formatters = {f"{BUDGET} ({size_unit(x)})": lambda value: format_size(value, x, with_unit=False),
                  "multiple": "{:g}x".format}
    formatters.update({name: lambda value: f"{100 * value:.2f}" for name in budgets.columns[2:]})
    return shown.to_string(index=False, formatters=formatters, na_rep="-")


def _distinct_names(studies: list[Study], given: list[str]) -> list[Study]:
    """Legends need distinct names: fall back to the arguments as typed if directory names clash."""
    if len({study.name for study in studies}) == len(studies):
        return studies
    return [Study(text, study.folder, study.trials) for study, text in zip(studies, given)]
