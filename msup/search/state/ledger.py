"""The driver's in-memory ledger of a study: what its decisions need, without reading the study back.

The searcher, the pruning scheduler and the results writer all need the same
facts about every trial: its storage id, state, size, accuracy per epoch and
whether a pruner stopped it. Reading them back from the Optuna storage at
every epoch makes the driver's cost grow with the study; instead the ledger is
built once from the storage when a driver starts (`StudyLedger.load`) and then
kept current by the components that write: storage first, ledger second, so a
restarted driver rebuilds the same ledger and makes the same decisions.

Completed trials are also indexed by epoch and size (`EpochIndex`), which is
what the size-aware pruner asks at every epoch report; every trial's (size,
accuracy) at every epoch it reached is kept in ``reached``, for the rungs of
the multi-objective ASHA pruner. The compute spent (trial-epochs, training
seconds, the drivers' wall-clock) is kept as running totals for the study's
budget (`msup.search.config.budget`).
"""

from __future__ import annotations

import bisect
import contextlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from msup.analysis.table import PAUSED, REJECTED
from msup.search.state.keys import (
    CLOCK_ATTR,
    CURVE_PREFIX,
    LEGACY_CURVE_ATTR,
    PAUSED_ATTR,
    REJECTED_ATTR,
    RESUMED_ATTR,
    TRAIN_S_ATTR,
)
from msup.search.state.storage import set_user_attrs

CLOCK_SAVE_EVERY_S = 10.0  # a driver that dies loses at most this much of the study's clock


def curve_of(attrs: Mapping[str, Any]) -> dict[int, float]:
    """A trial's accuracy per epoch from its user attributes (either layout)."""
    curve = {int(epoch): float(value) for epoch, value in attrs.get(LEGACY_CURVE_ATTR, {}).items()}
    curve.update({int(key[len(CURVE_PREFIX):]): float(value) for key, value in attrs.items() if key.startswith(CURVE_PREFIX)})
    return curve


def outcome(state: TrialState, attrs: Mapping[str, Any]) -> str:
    """A trial's outcome as msup reports it: its Optuna state's name, REJECTED or PAUSED."""
    if state == TrialState.PRUNED and REJECTED_ATTR in attrs:
        return REJECTED
    return PAUSED if state == TrialState.RUNNING and is_paused(attrs) else state.name


def is_paused(attrs: Mapping[str, Any]) -> bool:
    """Set aside by a pruner and not yet taken up again (the storage keeps such a trial RUNNING)."""
    return PAUSED_ATTR in attrs and RESUMED_ATTR not in attrs


@dataclass
class TrialRecord:
    number: int
    trial_id: int
    state: TrialState
    attrs: dict[str, Any] = field(default_factory=dict)  # sizes, sampled values, decisions: as stored
    curve: dict[int, float] = field(default_factory=dict)
    size: float | None = None  # the size objective the pruner ranks by
    trained: bool = False  # reported its final epoch: a peer of the size-aware pruner
    train_s: float = 0.0  # training seconds through its highest reported epoch
    epochs: int | None = None  # epochs it is to train, where known (the budget reserves the rest)


class EpochIndex:
    """(size, accuracy) of the trained trials at one epoch: sorted by size, with their Pareto front.

    ``peers(size)`` is a view of the accuracies of trials no larger than ``size``
    (one binary search); ``front`` holds only non-dominated points (larger size,
    higher accuracy, sorted by size), which is all `front_gain` needs besides
    the largest size seen.
    """

    def __init__(self) -> None:
        self._sizes = np.empty(0)
        self._accuracies = np.empty(0)
        self.front_sizes: list[float] = []
        self.front_accuracies: list[float] = []
        self.max_size = -math.inf

    def add(self, size: float, accuracy: float) -> None:
        at = int(np.searchsorted(self._sizes, size, side="right"))
        self._sizes = np.insert(self._sizes, at, size)
        self._accuracies = np.insert(self._accuracies, at, accuracy)
        self.max_size = max(self.max_size, size)
        below = bisect.bisect_right(self.front_sizes, size)  # front points no larger than this one
        if below and self.front_accuracies[below - 1] >= accuracy:
            return  # dominated (or equalled) by a no-larger, no-less-accurate point
        end = below
        while end < len(self.front_sizes) and self.front_accuracies[end] <= accuracy:
            end += 1  # points at least as large and no more accurate are now dominated
        start = below - 1 if below and self.front_sizes[below - 1] == size else below
        self.front_sizes[start:end] = [size]
        self.front_accuracies[start:end] = [accuracy]

    def peers(self, size: float) -> np.ndarray:
        return self._accuracies[: int(np.searchsorted(self._sizes, size, side="right"))]

    def front(self) -> list[tuple[float, float]]:
        """The front, plus the largest size at accuracy 0 (it bounds `front_gain`'s range, adds no height)."""
        points = list(zip(self.front_sizes, self.front_accuracies))
        return points + [(self.max_size, 0.0)] if self.front_sizes and self.max_size > self.front_sizes[-1] else points


class StudyLedger:
    """Every trial of one study, in memory: built once from the storage, then appended to."""

    def __init__(self, study: optuna.Study, size_key: str) -> None:
        self.study = study
        self.size_key = size_key
        self.trials: dict[int, TrialRecord] = {}
        self.unfinished: set[int] = set()  # numbers of the RUNNING trials: this driver's and orphans
        self.paused: set[int] = set()  # numbers of the RUNNING trials a pruner set aside (`is_paused`)
        self.rejected = 0  # configurations never trained, outside the size budget
        self.waiting: set[int] = set()  # numbers of WAITING (enqueued, not yet asked for) trials
        self.by_epoch: dict[int, EpochIndex] = {}
        self.reached: dict[int, dict[int, tuple[float, float]]] = {}  # epoch -> trial number -> (size, accuracy)
        self.trained = 0
        self.trained_numbers: list[int] = []  # trials in the order they reported their final epoch (with a size)
        self.spent_epochs = 0  # the sum of every trial's highest reported epoch
        self.spent_train_s = 0.0  # the sum of every trial's training seconds through that epoch
        for trial in study.get_trials(deepcopy=False):  # the one read of the whole study
            self._add(trial)
        self._clock_base = float(study.user_attrs.get(CLOCK_ATTR, 0.0))
        self._clock_start = _DRIVER_STARTED if _DRIVER_STARTED is not None else time.monotonic()
        self._clock_saved = time.monotonic()

    def clock_s(self) -> float:
        """Seconds the study's drivers ran: the earlier ones' (stored) and this one's so far."""
        return self._clock_base + time.monotonic() - self._clock_start

    def save_clock(self, every_s: float = 0.0) -> None:
        """Store the study's clock, if ``every_s`` passed since it was last stored."""
        if time.monotonic() - self._clock_saved >= every_s:
            self.study.set_user_attr(CLOCK_ATTR, self.clock_s())
            self._clock_saved = time.monotonic()

    def counted(self, with_rejected: bool) -> int:
        """Trials that count toward a study's trial budget: all asked for, rejected configurations only if
        ``with_rejected``; an enqueued trial counts once it is asked for."""
        return len(self.trials) - len(self.waiting) - (0 if with_rejected else self.rejected)

    def get(self, number: int) -> TrialRecord:
        """The record of trial ``number``; one asked outside this driver is read from the storage once."""
        record = self.trials.get(number)
        if record is None:
            storage = self.study._storage
            record = self._add(storage.get_trial(storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)))
        return record

    def add_new(self, number: int, trial_id: int) -> TrialRecord:
        """A trial this driver has just asked for."""
        record = self.trials[number] = TrialRecord(number, trial_id, TrialState.RUNNING)
        self.unfinished.add(number)
        self.waiting.discard(number)  # an enqueued trial, now asked for
        return record

    def set_state(self, record: TrialRecord, state: TrialState) -> None:
        """The state the storage was just told."""
        record.state = state
        if state.is_finished():
            self.unfinished.discard(record.number)
            self.paused.discard(record.number)

    def _file_running(self, record: TrialRecord) -> None:
        """A RUNNING trial is either paused or unfinished (to continue: this driver's, or an orphan)."""
        paused = is_paused(record.attrs)
        (self.paused if paused else self.unfinished).add(record.number)
        (self.unfinished if paused else self.paused).discard(record.number)

    def set_attr(self, record: TrialRecord, key: str, value: Any) -> None:
        """Store a user attribute of a main trial: in the storage first, then here."""
        self.set_attrs(record, {key: value})

    def set_attrs(self, record: TrialRecord, attrs: Mapping[str, Any]) -> None:
        """Store several user attributes of a main trial in one write: in the storage first, then here."""
        set_user_attrs(self.study._storage, record.trial_id, attrs)
        self.rejected += REJECTED_ATTR in attrs and REJECTED_ATTR not in record.attrs
        record.attrs.update(attrs)
        if {PAUSED_ATTR, RESUMED_ATTR} & attrs.keys() and not record.state.is_finished():
            self._file_running(record)
        if {self.size_key, "size_entropy_mib"} & attrs.keys():
            record.size = self._size_from(record.attrs)

    def know_sizes(self, record: TrialRecord, sizes: Mapping[str, float]) -> None:
        """Sizes the storage already holds but this record was read without (its trial was asked elsewhere)."""
        for key, value in sizes.items():
            record.attrs.setdefault(key, value)
        record.size = self._size_from(record.attrs)

    def record_epoch(self, record: TrialRecord, epoch: int, accuracy: float, final: bool, epoch_s: float = 0.0) -> None:
        """One epoch's accuracy (``curve.<epoch>``) and, for an epoch beyond the highest the trial reported, its
        training seconds (``train_s``): one write, then the indexes and the compute spent.

        An epoch reported again (redone after a crash) is not charged twice.
        """
        reached = max(record.curve, default=0)
        attrs: dict[str, Any] = {f"{CURVE_PREFIX}{epoch}": accuracy}
        if epoch > reached:
            attrs[TRAIN_S_ATTR] = record.train_s + max(0.0, epoch_s)
        set_user_attrs(self.study._storage, record.trial_id, attrs)
        if epoch > reached:
            self.spent_epochs += epoch - reached
            self.spent_train_s += attrs[TRAIN_S_ATTR] - record.train_s
            record.train_s = attrs[TRAIN_S_ATTR]
        record.curve[epoch] = accuracy
        self._reach(record, epoch, accuracy)
        if final and not record.trained:
            self._index(record)

    def _add(self, trial: FrozenTrial) -> TrialRecord:
        attrs = {k: v for k, v in trial.user_attrs.items() if not k.startswith(CURVE_PREFIX) and k != LEGACY_CURVE_ATTR}
        record = TrialRecord(trial.number, trial._trial_id, trial.state, attrs, curve_of(trial.user_attrs),
                             self._size_from(attrs), train_s=float(attrs.get(TRAIN_S_ATTR, 0.0)))
        self.trials[trial.number] = record
        self.rejected += REJECTED_ATTR in attrs
        self.spent_epochs += max(record.curve, default=0)
        self.spent_train_s += record.train_s
        if trial.state == TrialState.RUNNING:
            self._file_running(record)
        elif trial.state == TrialState.WAITING:  # enqueued, not started: `ask` takes it
            self.waiting.add(trial.number)
        for epoch, accuracy in record.curve.items():
            self._reach(record, epoch, accuracy)
        if trial.state == TrialState.COMPLETE:
            self._index(record)
        return record

    def _size_from(self, attrs: Mapping[str, Any]) -> float | None:
        """The size objective; the artifact size is known only after training, so rank by entropy until then."""
        size = attrs.get(self.size_key, attrs.get("size_entropy_mib"))
        return None if size is None else float(size)

    def size_before_training(self, record: TrialRecord) -> float | None:
        """The size objective, where it is known when a trial is sampled; an artifact's bytes are known only
        after training, so rules that compare running trials with trained ones use the entropy size instead."""
        size = record.attrs.get(self.size_key if self.size_key != "size_artifact_bytes" else "size_entropy_mib")
        return None if size is None else float(size)

    def _reach(self, record: TrialRecord, epoch: int, accuracy: float) -> None:
        """Rungs rank by a size known before training (`size_before_training`)."""
        size = self.size_before_training(record)
        if size is not None:
            self.reached.setdefault(epoch, {})[record.number] = (size, accuracy)

    def _index(self, record: TrialRecord) -> None:
        record.trained = True
        self.trained += 1
        if record.size is None:
            return
        self.trained_numbers.append(record.number)
        for epoch, accuracy in record.curve.items():
            self.by_epoch.setdefault(epoch, EpochIndex()).add(record.size, accuracy)


_DRIVER_LEDGERS: dict[tuple[str, str], StudyLedger] = {}
_DRIVER_STARTED: float | None = None  # when this process became a study's driver: its clock counts from there


def start_driver_clock() -> None:
    """This process now drives a study (it holds its lock): the study's clock runs from here."""
    global _DRIVER_STARTED
    _DRIVER_STARTED = time.monotonic()


def driver_ledger(storage_url: str, study: optuna.Study, size_key: str) -> StudyLedger:
    """The one ledger of ``study`` in this driver process, shared by its searcher and scheduler.

    Ray pickles both (without their connections) into its experiment state and
    restores them as new objects; they find the ledger here again.
    """
    key = (storage_url, study.study_name)
    if key not in _DRIVER_LEDGERS:
        _DRIVER_LEDGERS[key] = StudyLedger(study, size_key)
    return _DRIVER_LEDGERS[key]


def held_ledger(storage_url: str, study_name: str) -> StudyLedger | None:
    """The ledger this driver holds for the study, if it has built one (never a read of the storage)."""
    return _DRIVER_LEDGERS.get((storage_url, study_name))


def release_ledgers() -> None:
    """Store every ledger's clock and forget them (a driver ends): the next one is rebuilt from the storage."""
    global _DRIVER_STARTED
    try:
        for ledger in _DRIVER_LEDGERS.values():
            with contextlib.suppress(Exception):  # a driver ending on a storage failure reports that, not this
                ledger.save_clock()
    finally:
        _DRIVER_LEDGERS.clear()
        _DRIVER_STARTED = None
