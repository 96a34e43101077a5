"""A study as its folder and storage hold it: find it, read its config, its state, its budget. No Ray, no torch.

Layout of a study folder: `msup.search.state.layout`. The writer of a study is
`msup.search.driver` (launch, resume); this module only reads, so
``msup study status``, ``msup study list`` and the notebook `Study` start fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from msup.analysis.table import PAUSED, REJECTED
from msup.errors import InputError, first_line
from msup.folder import Folder, is_uri
from msup.search.config.study import StudyConfig, TrainCheck, parse_study_text
from msup.search.config.study_file import NAME_PATTERN
from msup.search.state.account import budget_account, fraction_used, progress
from msup.search.state.driver_lock import Holder, running_driver
from msup.search.state.keys import VALUES_ATTR
from msup.search.state.layout import STUDY_FILE
from msup.search.state.ledger import StudyLedger, curve_of, is_paused, outcome
from msup.search.state.storage import load_stored_study, study_storage_url
from msup.search.state.table import trials_table

FINISHED = (TrialState.COMPLETE.name, TrialState.PRUNED.name, TrialState.FAIL.name)  # what uses the trial budget
RUNS_ENV = "MSUP_RUNS"
def runs_dir(explicit: str | Path | None = None) -> Folder:
    """The folder of study folders: ``explicit``, else ``$MSUP_RUNS``, else ``./runs``; a path or an ``s3://`` URI."""
    return Folder(explicit or os.environ.get(RUNS_ENV) or "runs")


def find_study_dir(name_or_dir: str, runs: str | Path | None = None) -> Folder:
    """The folder of an existing study: by path or URI, or by name under the runs folder."""
    if is_uri(name_or_dir):
        folder = Folder(name_or_dir)
        if not folder.is_file(STUDY_FILE):
            raise InputError(f"no study at {folder.shown}: it holds no {STUDY_FILE}")
        return folder
    given = Path(name_or_dir)
    if (given / STUDY_FILE).is_file():
        return Folder(given.resolve())
    if not NAME_PATTERN.match(name_or_dir):
        raise InputError(f"{name_or_dir!r} is neither a study folder nor a valid study name")
    folder = runs_dir(runs) / name_or_dir
    if not folder.is_file(STUDY_FILE):
        raise InputError(f"no study {name_or_dir!r}: {folder.shown}/{STUDY_FILE} does not exist "
                         "(start one with `msup study launch`)")
    return folder


def load_study_folder(folder: Folder, train_problems: TrainCheck | None = None) -> StudyConfig:
    """The resolved study a folder was launched with, its keys checked again (the file may have been edited);
    ``train_problems`` checks its training config too, which imports torch."""
    source = f"{folder.shown}/{STUDY_FILE}"
    try:
        text = folder.read_text(STUDY_FILE)
    except FileNotFoundError:
        raise InputError(f"study file {source!r} does not exist") from None
    return parse_study_text(text, folder.local or Path.cwd(), source, train_problems)


def status(folder: Folder) -> dict[str, Any]:
    """Counts by state, the current front, elapsed time and whether (and where) a driver runs."""
    config = load_study_folder(folder)
    storage_url = study_storage_url(folder, config.storage)
    study = load_stored_study(storage_url, config.name)
    trials = study.get_trials(deepcopy=False)
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete] or starts
    table = trials_table(study, config.accuracy)
    front = sorted(study.best_trials, key=lambda t: t.values[1])
    elapsed = (max(ends) - min(starts)).total_seconds() if starts else 0.0
    done = finished_count(study, config)
    budget = budget_progress(study, config, done)
    used = fraction_used(budget)
    return {
        "study": config.name,
        "folder": folder.shown,
        "trials": config.trials,
        "budget": budget,
        "counts": trial_counts(study, with_running=True),
        "done": done,  # trials of the budget used
        "elapsed_s": elapsed,
        "eta_s": elapsed * (1 - used) / used if 0 < used < 1 else None,
        **_driver_fields(folder, storage_url),
        "running": [_progress(t, config) for t in trials
                    if t.state == TrialState.RUNNING and curve_of(t.user_attrs) and not is_paused(t.user_attrs)],
        "front": [{"trial": t.number, config.accuracy: t.values[0], config.size: t.values[1]} for t in front],
        "table": table,
    }


def _progress(trial: optuna.trial.FrozenTrial, config: StudyConfig) -> dict[str, Any]:
    """Where a running trial stands: its last reported epoch and accuracy (of how many epochs, if known)."""
    curve = curve_of(trial.user_attrs)
    epochs = config.planned_epochs(trial.user_attrs.get(VALUES_ATTR, {}))
    return {"trial": trial.number, "epoch": max(curve), "epochs": epochs, config.accuracy: curve[max(curve)]}


def list_studies(runs: str | Path | None = None) -> list[dict[str, Any]]:
    """Every study under the runs folder: counts, budget, whether a driver runs, last activity.

    A study whose storage cannot be read (a database that is down, say) is listed
    with the reason instead of its counts, so one bad study hides no other.
    """
    root, rows = runs_dir(runs), []
    for folder in (root / name for name in root.children()):
        if not folder.is_file(STUDY_FILE):
            continue
        row: dict[str, Any] = {"study": folder.name, "folder": folder.shown,
                               "driver_running": running_driver(folder.name, folder.local, "") is not None}
        try:
            config = load_study_folder(folder)
            storage_url = study_storage_url(folder, config.storage)
            row.update(_driver_fields(folder, storage_url))
            study = load_stored_study(storage_url, config.name)
            trials = study.get_trials(deepcopy=False)
        except Exception as exc:  # a list must not stop at one unreadable study
            rows.append({**row, "error": first_line(exc)})
            continue
        stamps = [t.datetime_complete or t.datetime_start for t in trials if t.datetime_start]
        rows.append({**row, "trials": config.trials, "budget": budget_progress(study, config),
                     "counts": trial_counts(study, with_running=True),
                     "last_activity": max(stamps).isoformat(timespec="seconds") if stamps else None})
    return rows


def budget_progress(study: optuna.Study, config: StudyConfig, done: int | None = None) -> dict[str, dict[str, float]]:
    """Each limit of the study (trials, compute) with what is spent and left, as its storage has it; ``done``:
    the trials of the budget used, where the caller counted them already."""
    spent = budget_account(config, StudyLedger(study, config.size)).spent()
    return progress(config.budget, config.trials, finished_count(study, config) if done is None else done, spent)


def _driver_fields(folder: Folder, storage_url: str) -> dict[str, Any]:
    holder = running_driver(folder.name, folder.local, storage_url)
    return {"driver_running": holder is not None, **({"driver": str(holder)} if isinstance(holder, Holder) else {})}


def trial_counts(study: optuna.Study, with_running: bool = False) -> dict[str, int]:
    """Trials per outcome: COMPLETE, PRUNED, FAIL, then REJECTED (never trained), RUNNING and PAUSED where there are any."""
    outcomes = [outcome(t.state, t.user_attrs) for t in study.get_trials(deepcopy=False)]
    counts = {name: outcomes.count(name) for name in FINISHED}
    if REJECTED in outcomes:
        counts[REJECTED] = outcomes.count(REJECTED)
    if with_running:
        counts[TrialState.RUNNING.name] = outcomes.count(TrialState.RUNNING.name)
        if PAUSED in outcomes:
            counts[PAUSED] = outcomes.count(PAUSED)
    return counts


def finished_count(study: optuna.Study, config: StudyConfig) -> int:
    """Trials that used the budget: a rejected configuration uses none, unless ``size_budget.count_rejected``."""
    counts = trial_counts(study)
    return sum(counts[name] for name in FINISHED) + (counts.get(REJECTED, 0) if config.counts_rejected else 0)
