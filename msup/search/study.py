"""Launch, resume and inspect studies: the folder ``runs/<name>/`` and the Ray Tune runs in it.

Layout of a study folder: ``study.yaml`` (the resolved config), ``optuna.db``
(or the configured storage), ``ray/run-<k>/`` (one Ray Tune experiment per
launch or extension), ``artifacts/<trial>.msup``, ``trials.csv`` (+ Parquet),
``pareto.png`` / ``pareto.csv``, and ``driver.lock`` (held while a driver runs).
The folder may be a prefix in object storage (``s3://bucket/runs/<name>``): then
the storage must be a database every machine reaches, which also holds the
driver's lease (`msup.search.driver_lock`), and no file system is shared.

One name keys everything: the folder, the Optuna study and the Ray runs. The
Optuna storage is the source of truth for what was tried; Ray's experiment
folders let a crashed run continue its unfinished trials from checkpoints.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from analysis.files import Folder, is_uri
from analysis.table import REJECTED
from msup import failpoints
from msup.errors import InputError, RunError
from msup.search.budget import ComputeBudget, Gate, fraction_used, progress
from msup.search.driver_lock import Holder, hold_driver_lock, running_driver
from msup.search.layout import RAY_DIR, STUDY_FILE
from msup.search.ledger import VALUES_ATTR, StudyLedger, curve_of, outcome, release_ledgers, start_driver_clock
from msup.search.study_config import NAME_PATTERN, StudyConfig, parse_study_text
from msup.search.storage import load_or_create, open_storage, study_storage_url

FINISHED = (TrialState.COMPLETE.name, TrialState.PRUNED.name, TrialState.FAIL.name)  # what uses the trial budget
RUNS_ENV = "MSUP_RUNS"
RUN_NAME = re.compile(r"^run-[0-9]+$")


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


def load_study_folder(folder: Folder) -> StudyConfig:
    """The resolved study a folder was launched with (validated again: the file may have been edited)."""
    source = f"{folder.shown}/{STUDY_FILE}"
    try:
        text = folder.read_text(STUDY_FILE)
    except FileNotFoundError:
        raise InputError(f"study file {source!r} does not exist") from None
    return parse_study_text(text, folder.local or Path.cwd(), source)


@contextmanager
def driver_lock(folder: Folder, storage_url: str = "") -> Iterator[None]:
    """Exclusive hold of a study for its one driver (`msup.search.driver_lock`)."""
    with hold_driver_lock(folder.name, folder.local, storage_url):
        start_driver_clock()
        try:
            yield
        finally:
            release_ledgers()  # the driver's in-memory view of the study is valid only while it holds the lock


@dataclass(frozen=True)
class StudyOutcome:
    folder: Folder
    counts: dict[str, int]
    paths: dict[str, Path | str]  # what was written: local paths, or URIs in object storage


def launch(config: StudyConfig, runs: str | Path | None = None, address: str | None = None) -> StudyOutcome:
    """Create ``<runs>/<name>/`` and run the study's whole budget (trials, compute); refuses an existing name.

    The runs folder is ``runs``, else the study file's ``runs_dir``, else ``$MSUP_RUNS``, else ``./runs``.
    """
    folder = runs_dir(runs or config.runs_dir) / config.name
    if folder.exists(STUDY_FILE):
        raise InputError(f"study {config.name!r} already exists in {folder.shown}; "
                         f"continue it with `msup study resume {config.name}`")
    storage_url = study_storage_url(folder, config.storage)
    if config.storage:  # a bad URL or path must fail before anything is written
        open_storage(storage_url)
    folder.make()
    with driver_lock(folder, storage_url):
        study = _open_study(config, storage_url)  # tables first: readers find the study by its study.yaml
        study.set_user_attr("sampler", config.sampler)
        study.set_user_attr("pruner", config.pruner.raw)
        _write_study_file(folder, {**config.to_dict(), "storage": storage_url, "ray_address": address or config.ray_address})
        _run(config, folder, storage_url, address or config.ray_address, config.trials or -1, restore=None,
             total=config.trials)
        return _finish(config, folder, storage_url)


def resume(
    folder: Folder, num_samples: int | None = None, address: str | None = None, budget: ComputeBudget | None = None,
) -> StudyOutcome:
    """Continue a study after a crash or interrupt, or extend it: to ``num_samples`` trials in total, or to
    the limits ``budget`` sets (each no lower than the study's own). An extension is written to the study
    file before anything runs, so an interrupted extension continues as one."""
    config = load_study_folder(folder)
    storage_url = study_storage_url(folder, config.storage)
    if num_samples is not None and config.trials is not None and num_samples < config.trials:
        raise InputError(f"--num-samples {num_samples} is below the study's budget of {config.trials} trials")
    extended = replace(config, trials=num_samples or config.trials,
                       budget=config.budget if budget is None else (config.budget or ComputeBudget()).extended(budget))
    with driver_lock(folder, storage_url):
        if extended != config:
            _write_study_file(folder, {**_read_study_file(folder), "trials": extended.trials,
                                       **({"budget": extended.budget.to_dict()} if extended.budget else {})})
        config, address = extended, address or config.ray_address
        study = _open_study(config, storage_url)
        latest = _latest_run(folder)
        if latest is not None and _restorable(latest) and _has_work(study, config):
            if _run(config, folder, storage_url, address, 0, restore=latest):  # Ctrl-C: the rest waits for the next resume
                return _finish(config, folder, storage_url)
        remaining = -1 if config.trials is None else max(0, config.trials - _finished(study, config))
        if remaining != 0 and _has_work(study, config):
            _run(config, folder, storage_url, address, remaining, restore=None, total=config.trials)
        return _finish(config, folder, storage_url)


def _has_work(study: optuna.Study, config: StudyConfig) -> bool:
    """Unfinished trials to continue, or trials and compute left to start new ones (one read of the study)."""
    ledger = StudyLedger(study, config.size)
    if ledger.unfinished:
        return True
    trials_left = config.trials is None or _finished(study, config) < config.trials
    return trials_left and config.budget_account(ledger).gate() is not Gate.FINISHED


def status(folder: Folder) -> dict[str, Any]:
    """Counts by state, the current front, elapsed time and whether (and where) a driver runs."""
    from msup.search.results import trials_table

    config = load_study_folder(folder)
    storage_url = study_storage_url(folder, config.storage)
    study = optuna.load_study(study_name=config.name, storage=open_storage(storage_url))
    trials = study.get_trials(deepcopy=False)
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete] or starts
    table = trials_table(study, config.accuracy)
    front = sorted(study.best_trials, key=lambda t: t.values[1])
    elapsed = (max(ends) - min(starts)).total_seconds() if starts else 0.0
    done = _finished(study, config)
    budget = budget_progress(study, config, done)
    used = fraction_used(budget)
    return {
        "study": config.name,
        "folder": folder.shown,
        "trials": config.trials,
        "budget": budget,
        "counts": _counts(study, with_running=True),
        "done": done,  # trials of the budget used
        "elapsed_s": elapsed,
        "eta_s": elapsed * (1 - used) / used if 0 < used < 1 else None,
        **_driver_fields(folder, storage_url),
        "running": [_progress(t, config) for t in trials if t.state == TrialState.RUNNING and curve_of(t.user_attrs)],
        "front": [{"trial": t.number, config.accuracy: t.values[0], config.size: t.values[1]} for t in front],
        "table": table,
    }


def _progress(trial: optuna.trial.FrozenTrial, config: StudyConfig) -> dict[str, Any]:
    """Where a running trial stands: its last reported epoch and accuracy (of how many epochs, if known)."""
    curve = curve_of(trial.user_attrs)
    try:
        epochs = config.train_config(trial.user_attrs.get(VALUES_ATTR, {})).optim.epochs
    except InputError:
        epochs = None
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
            study = optuna.load_study(study_name=config.name, storage=open_storage(storage_url))
            trials = study.get_trials(deepcopy=False)
        except Exception as exc:  # a list must not stop at one unreadable study
            rows.append({**row, "error": (str(exc).strip().splitlines() or [type(exc).__name__])[0]})
            continue
        stamps = [t.datetime_complete or t.datetime_start for t in trials if t.datetime_start]
        rows.append({**row, "trials": config.trials, "budget": budget_progress(study, config),
                     "counts": _counts(study, with_running=True),
                     "last_activity": max(stamps).isoformat(timespec="seconds") if stamps else None})
    return rows


def budget_progress(study: optuna.Study, config: StudyConfig, done: int | None = None) -> dict[str, dict[str, float]]:
    """Each limit of the study (trials, compute) with what is spent and left, as its storage has it; ``done``:
    the trials of the budget used, where the caller counted them already."""
    spent = config.budget_account(StudyLedger(study, config.size)).spent()
    return progress(config.budget, config.trials, _finished(study, config) if done is None else done, spent)


# --- internals ---------------------------------------------------------------------------


def _driver_fields(folder: Folder, storage_url: str) -> dict[str, Any]:
    holder = running_driver(folder.name, folder.local, storage_url)
    return {"driver_running": holder is not None, **({"driver": str(holder)} if isinstance(holder, Holder) else {})}


def _write_study_file(folder: Folder, resolved: dict[str, Any]) -> None:
    folder.write_text(STUDY_FILE, yaml.safe_dump(resolved, sort_keys=False))


def _read_study_file(folder: Folder) -> dict[str, Any]:
    """The resolved study as written (storage and Ray address included), to change a key of it."""
    return dict(yaml.safe_load(folder.read_text(STUDY_FILE)))


def _open_study(config: StudyConfig, storage_url: str) -> optuna.Study:
    return load_or_create(open_storage(storage_url), config.name, [config.accuracy, config.size], config.build_sampler())


def _counts(study: optuna.Study, with_running: bool = False) -> dict[str, int]:
    """Trials per outcome: COMPLETE, PRUNED, FAIL, then REJECTED (never trained) and RUNNING where there are any."""
    outcomes = [outcome(t.state, t.user_attrs) for t in study.get_trials(deepcopy=False)]
    counts = {name: outcomes.count(name) for name in FINISHED}
    if REJECTED in outcomes:
        counts[REJECTED] = outcomes.count(REJECTED)
    if with_running:
        counts[TrialState.RUNNING.name] = outcomes.count(TrialState.RUNNING.name)
    return counts


def _finished(study: optuna.Study, config: StudyConfig) -> int:
    """Trials that used the budget: a rejected configuration uses none, unless ``size_budget.count_rejected``."""
    counts = _counts(study)
    return sum(counts[name] for name in FINISHED) + (counts.get(REJECTED, 0) if config.counts_rejected else 0)


def _latest_run(folder: Folder) -> Folder | None:
    runs = [name for name in (folder / RAY_DIR).children() if RUN_NAME.match(name)]
    return folder / RAY_DIR / max(runs, key=lambda name: int(name.split("-")[1])) if runs else None


def _restorable(run: Folder) -> bool:
    from ray import tune

    return tune.Tuner.can_restore(run.uri)


def _next_run_label(folder: Folder) -> str:
    latest = _latest_run(folder)
    return f"run-{1 if latest is None else int(latest.name.split('-')[1]) + 1}"


def _run(
    config: StudyConfig, folder: Folder, storage_url: str, address: str | None, num_samples: int, restore: Folder | None,
    total: int | None = None,
) -> bool:
    """One Ray Tune run: a fresh experiment of ``num_samples`` trials, or a restored one; True if Ctrl-C interrupted it.

    ``total`` is the study's whole trial budget (None: none), where rejected configurations use it too;
    ``num_samples`` -1 leaves the end to the compute budget.

    An experiment that cannot be restored is reported and skipped: the next fresh run
    adopts its unfinished trials from the Optuna storage.
    """
    from msup.search.runner import restore_tuner, start_tuner

    if restore is not None:
        start = time.time()
        try:
            interrupted = restore_tuner(config, restore, storage_url, address)
        except RunError:  # preempted, a full disk, no Ray: not a damaged experiment
            raise
        except Exception as exc:  # Ray raises many kinds for a damaged experiment; the Optuna storage still holds
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            print(f"msup: cannot restore Ray experiment {restore.name} ({reason}); "
                  "continuing from the Optuna storage and the trials' last checkpoints")
            return False
        print(f"msup: restored {restore.name} ({time.time() - start:.0f} s)")
        return interrupted
    return start_tuner(config, folder, _next_run_label(folder), storage_url, address, num_samples,
                       trial_cap=total if config.counts_rejected else None)


def _finish(config: StudyConfig, folder: Folder, storage_url: str) -> StudyOutcome:
    from msup.search.results import write_tables

    study = optuna.load_study(study_name=config.name, storage=open_storage(storage_url))
    failpoints.reach("study.before_tables")
    paths = {"trials": write_tables(study, folder, config.accuracy)}
    try:
        from analysis.report import write_study_report

        paths.update(write_study_report(folder.uri))
    except ValueError as exc:  # no COMPLETE trial yet: no front to draw
        print(f"msup: no Pareto report: {exc}")
    counts = _counts(study, with_running=True)
    unfinished = counts.pop(TrialState.RUNNING.name)
    if unfinished:  # the run was interrupted (Ctrl-C): Ray saved its state for a resume
        print(f"msup: {unfinished} trial(s) unfinished; `msup study resume {config.name}` continues them")
    elif sum(counts[name] for name in FINISHED) == 0:
        raise RunError(f"study {config.name!r} finished no trial; see {(folder / RAY_DIR).shown}")
    return StudyOutcome(folder, counts, paths)
