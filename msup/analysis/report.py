"""The report a finished study gets: its front, hypervolume and figures (the command line: `msup.analysis.command`).

A study is a folder holding ``trials.csv``
(see `msup.analysis.table`), named either by its path or object-store URI, or by its
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
not with this module: ``msup`` imports it at start-up.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from msup.analysis.table import (
    COATS,
    SIZE_ENTROPY_MIB,
    VAL_ACC,
    TableError,
    load_trials,
)
from msup.folder import Folder, FolderError, is_uri

if TYPE_CHECKING:
    import pandas as pd

TRIALS_CSV, PARETO_FIGURE, HYPERVOLUME_STEM, FRONT_CSV = "trials.csv", "pareto.png", "hypervolume", "pareto.csv"
HTML_SUFFIX = ".html"  # an interactive page (msup.analysis.interactive) instead of a static figure
BY_COATS_FIGURE, BUDGETS_CSV = "pareto-by-coats.png", "budgets.csv"
RUNS_ENV, DEFAULT_RUNS_DIR = "MSUP_RUNS", "runs"


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
    budgets: pd.DataFrame | None = None  # with ``table``: `msup.analysis.pareto.best_within_budgets`


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
    from msup.analysis.plots import check_figure_path

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
    from msup.analysis.interactive import write_front_html
    from msup.analysis.pareto import (
        HYPERVOLUME,
        best_within_budgets,
        hypervolume_history,
        pareto_front,
        shared_reference,
    )
    from msup.analysis.plots import (
        compare_figure,
        hypervolume_figure,
        pareto_figure,
        save_figure,
    )

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
        yield (Path.cwd() if folder is None or folder.local is None else folder.local), lambda path: path
        return
    with tempfile.TemporaryDirectory(prefix="msup-report-") as scratch:
        yield Path(scratch), lambda path: folder.upload(path, path.name)


def _by_coats(trials: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The study's rows per coat count, ``N=1`` first."""
    if trials[COATS].isna().all():
        raise TableError("no coat counts in this table: nothing to split the front by")
    return {f"N={coats:.0f}": group for coats, group in trials.groupby(COATS, sort=True)}

