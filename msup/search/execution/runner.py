"""Ray Tune runs of a study: connect to Ray, build the Tuner, print one line per finished trial."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune import Callback
from ray.tune.schedulers import TrialScheduler

from msup import failpoints
from msup.errors import Preempted, RunError
from msup.folder import Folder
from msup.search.config.study import StudyConfig
from msup.search.execution.scheduler import PruningScheduler
from msup.search.execution.searcher import StudySearcher
from msup.search.execution.trackers import final_state, tracker_callbacks
from msup.search.execution.trainable import DISK_FULL_ATTR, FailureRecorder, run_trial
from msup.search.execution.trial_config import TrialConfig
from msup.search.state.ledger import held_ledger

# A worker that dies (preemption, OOM kill) is restarted from its last checkpoint this often.
MAX_WORKER_FAILURES = 2
log = logging.getLogger(__name__)
TABLES_ENV, TABLES_EVERY_S = "MSUP_TABLES_EVERY_S", 30.0  # trials.csv refreshed at most this often while a study runs


def connect(address: str | None) -> None:
    """Join the Ray cluster at ``address``, or start a private local instance (dashboard off).

    With no address, Ray's own rule would join the last cluster ``ray start`` made on this
    machine, as recorded in its temp folder. After that cluster's head died, the study then
    waits on a dead address. So no address means a new local instance, unless ``RAY_ADDRESS``
    is set (as in a Ray job), which Ray then follows.
    """
    worker_env = failpoints.mark_driver()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # One checkpoint per epoch makes Tune snapshot often; that is intended here, not a warning.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # `tracker_callbacks` names the loggers
    if ray.is_initialized():
        return
    runtime_env = {"env_vars": worker_env} if worker_env else None
    try:
        if address:
            ray.init(address=address, log_to_driver=False, runtime_env=runtime_env)
        else:
            ray.init(address=None if os.environ.get("RAY_ADDRESS") else "local", include_dashboard=False,
                     log_to_driver=False, configure_logging=False, runtime_env=runtime_env)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RunError(f"cannot connect to Ray at {address or 'a new local instance'}: {exc}") from None


def start_tuner(
    config: StudyConfig, folder: Folder | Path, label: str, storage_url: str, address: str | None, num_samples: int,
    trainable: Callable[[dict[str, Any]], None] = run_trial, trial_cap: int | None = None,
) -> bool:
    """A new Ray Tune run of ``num_samples`` trials; True if Ctrl-C interrupted it.

    ``trainable`` is msup's `run_trial`; benchmarks of the driver pass a synthetic one. With ``trial_cap``, the
    run asks for no new configuration once the study holds that many trials (rejected ones included).
    """
    connect(address)
    folder = Folder(folder)
    searcher = StudySearcher(config, storage_url, folder.uri, trial_cap)
    tuner = tune.Tuner(
        tune.with_resources(trainable, config.ray_resources),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=_scheduler(config, storage_url),
            num_samples=num_samples,
            max_concurrent_trials=config.max_concurrent,
            reuse_actors=True,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=label,
            storage_path=(folder / "ray").uri,  # a path, or s3://...: workers upload their checkpoints there
            failure_config=tune.FailureConfig(max_failures=MAX_WORKER_FAILURES),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[
                FailureRecorder(storage_url, config.name, config.size), StopOnFullDisk(),
                TablesRefresh(storage_url, config.name, folder.uri, config.accuracy),
                ProgressLine(config, num_samples, storage_url),
                *tracker_callbacks(config.loggers, config.name),
            ],
            verbose=0,
        ),
    )
    return _fit(tuner, config.name)


def restore_tuner(config: StudyConfig, run: Folder, storage_url: str, address: str | None) -> bool:
    """Continue the Ray Tune run in ``run`` from its saved state; True if Ctrl-C interrupted it."""
    connect(address)
    tuner = tune.Tuner.restore(
        run.uri, tune.with_resources(run_trial, config.ray_resources), resume_unfinished=True,
    )
    return _fit(tuner, config.name)


def _fit(tuner: tune.Tuner, study_name: str) -> bool:
    """Run ``tuner`` to its end; True if Ctrl-C interrupted it. A full disk ends it with a `RunError`."""
    with _stoppable(study_name) as signals:
        grid = tuner.fit()
    for metrics in (grid[i].metrics or {} for i in range(len(grid))):
        if metrics.get(DISK_FULL_ATTR):
            raise RunError(
                f"disk full: {metrics[DISK_FULL_ATTR]}; the study stopped with its trials at their last "
                f"checkpoint: free space, then `msup study resume {study_name}`"
            )
    return bool(signals.received)


class _StopSignals:
    """Ctrl-C (SIGINT) and a preemption notice (SIGTERM) end a Ray run the same way: Ray Tune saves its
    experiment state and stops the running trials, which continue from their last epoch checkpoint on
    `msup study resume`. A second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def handle(self, signum: int, frame: Any) -> None:
        again = signum in self.received
        self.received.append(signum)
        if again or not _end_ray_run():
            raise KeyboardInterrupt


def _end_ray_run() -> bool:
    """Ask the Ray Tune run in progress to end as Ctrl-C does; False if none is going."""
    stop_run = signal.getsignal(signal.SIGUSR1)  # Ray Tune installs it while a run is going
    if not callable(stop_run):
        return False
    stop_run(signal.SIGUSR1, None)
    return True


class StopOnFullDisk(Callback):
    """Ends the Ray run as Ctrl-C does (state saved, trials resumable) when a trial found its disk full."""

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        if result.get(DISK_FULL_ATTR):
            _end_ray_run()


@contextmanager
def _stoppable(study_name: str) -> Iterator[_StopSignals]:
    """Runs a Tuner under `_StopSignals`; raises `Preempted` after a SIGTERM."""
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # ours below replaces Ray Tune's, and tells us it fired
    signals = _StopSignals()
    previous = {s: signal.signal(s, signals.handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield signals
    except KeyboardInterrupt:
        if signal.SIGTERM in signals.received:
            raise Preempted(study_name) from None
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if signal.SIGTERM in signals.received:
        raise Preempted(study_name)


def trial_dirname(trial: Any) -> str:
    """``trial-00012-<ray id>``: sorted like the Optuna trials, unique per Ray trial."""
    return f"trial-{trial.config.get('optuna_trial', 0):05d}-{trial.trial_id}"


def _scheduler(config: StudyConfig, storage_url: str) -> TrialScheduler:
    """msup's scheduler always runs: it records every epoch's accuracy, and prunes if a pruner is set."""
    return PruningScheduler(storage_url, config.name, config.pruner, config.accuracy, config.size, config.budget,
                            config.resource_weight)


class TablesRefresh(Callback):
    """Rewrites ``trials.csv`` / ``trials.parquet`` as trials finish, at most once per ``every_s``
    (``$MSUP_TABLES_EVERY_S``, default 30 s).

    A user can watch the tables while a study runs; their cost (one read of the
    study) stays bounded by the rate, not by the number of finished trials.
    """

    def __init__(self, storage_url: str, study_name: str, folder: str, accuracy: str, every_s: float | None = None) -> None:
        self._storage_url, self._study_name, self._folder, self._accuracy = storage_url, study_name, folder, accuracy
        self._every_s = float(os.environ.get(TABLES_ENV, TABLES_EVERY_S)) if every_s is None else every_s
        self._written = time.monotonic()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._maybe_write()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._maybe_write()

    def _maybe_write(self) -> None:
        if time.monotonic() - self._written < self._every_s:
            return
        from msup.search.state.storage import load_stored_study
        from msup.search.state.table import write_tables

        study = load_stored_study(self._storage_url, self._study_name)
        write_tables(study, Folder(self._folder), self._accuracy)
        self._written = time.monotonic()


class ProgressLine(Callback):
    """One concise line per finished trial (or stretch of a paused one): count (of the run's trials, where
    neither a compute budget nor pausing decides it), state, accuracy, size, time."""

    def __init__(self, config: StudyConfig, total: int, storage_url: str) -> None:
        self._accuracy, self._size, self._total = config.accuracy, config.size, total
        self._ledger_key = (storage_url, config.name)  # where paused trials are known
        self._done = 0
        self._start = time.time()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, trial.last_result or {})

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, {"error": "worker raised"})

    def _line(self, trial: Any, result: dict[str, Any]) -> None:
        self._done += 1
        spec = TrialConfig.of(trial)
        number, epochs, sizes = (spec.optuna_trial, spec.epochs, spec.sizes) if spec else ("?", None, {})
        state = final_state(result)
        if state == "FAIL":
            outcome = f"FAIL      {str(result['error'])[:80]}"
        else:
            ledger = held_ledger(*self._ledger_key)
            paused = spec is not None and ledger is not None and spec.optuna_trial in ledger.paused
            state = state if state == "COMPLETE" else f"{'PAUSED' if paused else 'PRUNED'}@{result.get('epoch', 0)}/{epochs}"
            size = sizes.get(self._size, result.get(self._size, float("nan")))
            outcome = f"{state:<9} {self._accuracy}={result.get(self._accuracy, float('nan')):.4f} {self._size}={size:.4g}"
        elapsed = time.time() - self._start
        of = f"/{self._total}" if self._total > 0 else ""
        log.info(f"[{self._done}{of}] trial {number:>4}  {outcome}  ({elapsed:.0f} s)")
