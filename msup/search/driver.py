"""Launch and resume studies: the one writer of a study folder and its Ray Tune runs.

One name keys everything: the folder, the Optuna study and the Ray runs. The
Optuna storage is the source of truth for what was tried; Ray's experiment
folders let a crashed run continue its unfinished trials from checkpoints.
The folder may be a prefix in object storage (``s3://bucket/runs/<name>``): then
the storage must be a database every machine reaches, which also holds the
driver's lease (`msup.search.state.driver_lock`), and no file system is shared.
"""

from __future__ import annotations

import logging
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
from ray import tune

from msup import failpoints
from msup.analysis.report import write_study_report
from msup.analysis.table import PAUSED
from msup.config import TrainConfig
from msup.errors import InputError, RunError, last_line
from msup.folder import Folder
from msup.search.config.budget import ComputeBudget
from msup.search.config.preflight import check_study
from msup.search.config.study import StudyConfig
from msup.search.execution.runner import restore_tuner, start_tuner
from msup.search.sampling.factory import study_sampler
from msup.search.sampling.warm_start import record_warm_start, with_earlier_front
from msup.search.state.account import Gate, budget_account
from msup.search.state.driver_lock import hold_driver_lock
from msup.search.state.enqueued import enqueue_once
from msup.search.state.layout import RAY_DIR, STUDY_FILE
from msup.search.state.ledger import StudyLedger, release_ledgers, start_driver_clock
from msup.search.state.storage import load_or_create, load_stored_study, open_storage, study_storage_url
from msup.search.state.table import write_tables
from msup.search.study import (
    FINISHED,
    finished_count,
    load_study_folder,
    runs_dir,
    trial_counts,
)

RUN_NAME = re.compile(r"^run-[0-9]+$")
log = logging.getLogger(__name__)


@contextmanager
def driver_lock(folder: Folder, storage_url: str = "") -> Iterator[None]:
    """Exclusive hold of a study for its one driver (`msup.search.state.driver_lock`)."""
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
    config = with_earlier_front(config)  # the earlier study's front in the enqueue list, written with the study
    folder.make()
    with driver_lock(folder, storage_url):
        study = _open_study(config, storage_url)  # tables first: readers find the study by its study.yaml
        enqueue_once(study, config.enqueue)
        _note_warm_start(study)
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
    config = load_study_folder(folder, TrainConfig.problems)
    check_study(config, f"{folder.shown}/{STUDY_FILE}")
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
        enqueue_once(study, config.enqueue)  # where a launch died before its list was all in the storage
        _note_warm_start(study)  # the earlier study may have grown since
        latest = _latest_run(folder)
        if latest is not None and _restorable(latest) and _has_work(study, config):
            if _run(config, folder, storage_url, address, 0, restore=latest):  # Ctrl-C: the rest waits for the next resume
                return _finish(config, folder, storage_url)
        remaining = -1 if config.trials is None else max(0, config.trials - finished_count(study, config))
        if remaining != 0 and _has_work(study, config):
            _run(config, folder, storage_url, address, remaining, restore=None, total=config.trials)
        return _finish(config, folder, storage_url)


def _note_warm_start(study: optuna.Study) -> None:
    if line := record_warm_start(study):
        log.info(line)


def _has_work(study: optuna.Study, config: StudyConfig) -> bool:
    """Unfinished trials to continue, or trials and compute left to start new ones (one read of the study)."""
    ledger = StudyLedger(study, config.size)
    if ledger.unfinished or ledger.paused:
        return True
    trials_left = config.trials is None or finished_count(study, config) < config.trials
    return trials_left and budget_account(config, ledger).gate() is not Gate.FINISHED


def _write_study_file(folder: Folder, resolved: dict[str, Any]) -> None:
    folder.write_text(STUDY_FILE, yaml.safe_dump(resolved, sort_keys=False))


def _read_study_file(folder: Folder) -> dict[str, Any]:
    """The resolved study as written (storage and Ray address included), to change a key of it."""
    return dict(yaml.safe_load(folder.read_text(STUDY_FILE)))


def _open_study(config: StudyConfig, storage_url: str) -> optuna.Study:
    return load_or_create(open_storage(storage_url), config.name, [config.accuracy, config.size], study_sampler(config))


def _latest_run(folder: Folder) -> Folder | None:
    runs = [name for name in (folder / RAY_DIR).children() if RUN_NAME.match(name)]
    return folder / RAY_DIR / max(runs, key=lambda name: int(name.split("-")[1])) if runs else None


def _restorable(run: Folder) -> bool:
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
    if restore is not None:
        start = time.time()
        try:
            interrupted = restore_tuner(config, restore, storage_url, address)
        except RunError:  # preempted, a full disk, no Ray: not a damaged experiment
            raise
        except Exception as exc:  # Ray raises many kinds for a damaged experiment; the Optuna storage still holds
            reason = last_line(exc)
            log.warning(f"msup: cannot restore Ray experiment {restore.name} ({reason}); "
                        "continuing from the Optuna storage and the trials' last checkpoints")
            return False
        log.info(f"msup: restored {restore.name} ({time.time() - start:.0f} s)")
        return interrupted
    pausing = config.pruner.pauses  # a paused trial taken up again is a Ray trial of its own: the searcher counts
    return start_tuner(config, folder, _next_run_label(folder), storage_url, address, -1 if pausing else num_samples,
                       trial_cap=total if config.counts_rejected or pausing else None)


def _finish(config: StudyConfig, folder: Folder, storage_url: str) -> StudyOutcome:
    study = load_stored_study(storage_url, config.name)
    failpoints.reach("study.before_tables")
    paths: dict[str, Path | str] = {"trials": write_tables(study, folder, config.accuracy)}
    try:
        paths.update(write_study_report(folder.uri))
    except ValueError as exc:  # no COMPLETE trial yet: no front to draw
        log.info(f"msup: no Pareto report: {exc}")
    counts = trial_counts(study, with_running=True)
    unfinished = counts.pop(TrialState.RUNNING.name) + counts.pop(PAUSED, 0)
    if unfinished:  # the run was interrupted (Ctrl-C): Ray saved its state for a resume
        log.warning(f"msup: {unfinished} trial(s) unfinished; `msup study resume {config.name}` continues them")
    elif sum(counts[name] for name in FINISHED) == 0:
        raise RunError(f"study {config.name!r} finished no trial; see {(folder / RAY_DIR).shown}")
    return StudyOutcome(folder, counts, paths)
