"""Early stopping of weak trials: Optuna pruners consulted from a Ray Tune scheduler.

Ray's stock Optuna integration never asks an Optuna pruner, Optuna refuses to
prune multi-objective studies, and trials a Ray scheduler stops early reach
Optuna as COMPLETE. msup closes the gap:

- `PruningScheduler` (a Ray Tune scheduler) writes every epoch's accuracy into
  a single-objective *shadow* study kept beside the main study in the same
  storage, and asks the configured Optuna pruner about that curve.
- A stop decision is written to the storage first (``pruned_at_epoch`` on the
  main trial, with ``stopped_by``: the pruner and its reason), so it survives a
  driver crash; the searcher then tells the main study PRUNED, never COMPLETE.
  A spent time budget (`msup.search.config.budget`) stops running trials the same way.
- A pruner that tells doubtful from hopeless may *pause* a trial instead
  (``paused_at_epoch``; `msup.search.pruning.pausing`): Ray stops it, the Optuna
  trial stays RUNNING, and the searcher takes it up again when sampling ends.

The rules themselves: `msup.search.pruning.rules`.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.trial import TrialState
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from msup import failpoints
from msup.search.config.budget import ComputeBudget
from msup.search.execution.trial_config import TrialConfig
from msup.search.pruning.base import LedgerPruner
from msup.search.pruning.rules import PrunerSpec
from msup.search.state.account import BudgetAccount
from msup.search.state.keys import (
    PAUSED_ATTR,
    PAUSED_BY_ATTR,
    PRUNED_ATTR,
    RAY_ATTR,
    RESUMED_ATTR,
    SHADOW_ATTR,
    SIZE_ATTR,
    STOPPED_BY_ATTR,
)
from msup.search.state.ledger import (
    CLOCK_SAVE_EVERY_S,
    StudyLedger,
    TrialRecord,
    driver_ledger,
    is_paused,
)
from msup.search.state.storage import open_storage


def shadow_study_name(study_name: str) -> str:
    return f"{study_name}.pruning"


class PruningScheduler(FIFOScheduler):
    """Ray Tune scheduler: records every epoch's accuracy, then asks the configured pruner whether to stop.

    Its state is the driver's `StudyLedger` (rebuilt from the storage when a
    driver starts), so a restored experiment, whose scheduler starts afresh,
    keeps every curve and decision. Per epoch report it writes one record (the
    accuracy and the training seconds), plus, for an Optuna pruner, the shadow
    trial's intermediate value; the size-aware and mo_asha pruners decide from
    the ledger's indexes. Once a time budget is spent it stops every running
    trial at its next report (``budget`` and ``weight``: `msup.search.config.budget`).
    """

    def __init__(
        self, storage_url: str, study_name: str, pruner: PrunerSpec, accuracy: str, size: str,
        budget: ComputeBudget | None = None, weight: float = 1.0,
    ) -> None:
        super().__init__()
        self._storage_url = storage_url
        self._study_name = study_name
        self._pruner_spec = pruner
        self._accuracy = accuracy
        self._size = size
        self._budget, self._weight = budget, weight
        self._pruner: BasePruner | LedgerPruner | None = None
        self._ledger: StudyLedger | None = None
        self._account: BudgetAccount | None = None
        self._shadow: optuna.Study | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_ledger": None, "_shadow": None, "_pruner": None, "_account": None}

    def _open(self) -> StudyLedger:
        if self._ledger is None:
            storage = open_storage(self._storage_url)
            main = optuna.load_study(study_name=self._study_name, storage=storage)
            self._ledger = driver_ledger(self._storage_url, main, self._size)
            self._account = BudgetAccount(self._budget, self._ledger, self._weight, lambda record: record.epochs or 0)
            self._pruner = self._pruner_spec.build()
            if isinstance(self._pruner, BasePruner) and not isinstance(self._pruner, LedgerPruner):
                self._shadow = optuna.create_study(
                    study_name=shadow_study_name(self._study_name), storage=storage, direction="maximize",
                    pruner=self._pruner, load_if_exists=True,
                )
        return self._ledger

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        spec, epoch = TrialConfig.of(trial), result.get("epoch")
        accuracy = result.get(self._accuracy)
        if spec is None or epoch is None or not isinstance(accuracy, (int, float)) or not math.isfinite(accuracy):
            return TrialScheduler.CONTINUE
        ledger = self._open()
        record = ledger.get(spec.optuna_trial)
        if record.attrs.get(PRUNED_ATTR) is not None:  # decided before a restart: stop again, never resurrect
            return TrialScheduler.STOP
        owner = record.attrs.get(RAY_ATTR)
        if owner is not None and getattr(trial, "trial_id", owner) != owner:
            return TrialScheduler.STOP  # Ray restored a paused trial that another Ray trial has since taken up
        if is_paused(record.attrs):  # paused before a restart, and Ray restored it: it waits again
            return self._pause_again(ledger, record, int(epoch), accuracy, float(result.get("epoch_s") or 0.0))
        if record.state.is_finished():  # a replay of a told trial: nothing new to learn
            return TrialScheduler.CONTINUE
        if record.size is None:  # asked outside this driver's searcher: its sizes come with the Ray trial
            ledger.know_sizes(record, spec.sizes)
        epoch, accuracy, epochs = int(epoch), float(accuracy), int(spec.epochs)
        final = bool(result.get("done")) or epoch >= epochs
        ledger.record_epoch(record, epoch, accuracy, final, float(result.get("epoch_s") or 0.0))
        ledger.save_clock(every_s=CLOCK_SAVE_EVERY_S)
        stop = self._why_stop(ledger, record, epoch, accuracy, epochs, final)
        if stop is None:
            return TrialScheduler.CONTINUE
        reason, pause = stop
        if pause:
            ledger.set_attrs(record, {PAUSED_ATTR: epoch, PAUSED_BY_ATTR: reason})  # `msup.search.pruning.pausing`
            failpoints.reach("scheduler.after_pause")
            return TrialScheduler.STOP
        ledger.set_attrs(record, {PRUNED_ATTR: epoch, STOPPED_BY_ATTR: reason})
        failpoints.reach("scheduler.after_prune")
        return TrialScheduler.STOP

    @staticmethod
    def _pause_again(ledger: StudyLedger, record: TrialRecord, epoch: int, accuracy: float, epoch_s: float) -> str:
        """A paused trial Ray restored after a restart trained on from its last checkpoint: an epoch past the
        pause is kept (and the pause moves to it, where the new checkpoint is); the trial stops again."""
        if epoch > int(record.attrs[PAUSED_ATTR]):
            ledger.record_epoch(record, epoch, accuracy, False, epoch_s)
            ledger.set_attrs(record, {PAUSED_ATTR: epoch})
        return TrialScheduler.STOP

    def _why_stop(
        self, ledger: StudyLedger, record: TrialRecord, epoch: int, accuracy: float, epochs: int, final: bool,
    ) -> tuple[str, bool] | None:
        """``stopped_by`` for a trial to stop after this epoch (the budget's reason or the pruner's), and whether
        to pause it rather than end it; None: it goes on."""
        if final:
            if self._pruner is not None and not isinstance(self._pruner, LedgerPruner):
                self._ask_shadow(ledger, record, epoch, accuracy, final)  # its shadow trial completes
            return None
        assert self._account is not None
        budget = self._account.stop_reason()
        if budget is not None:
            return budget, False
        if self._pruner is None:
            return None
        doubtful = False
        if isinstance(self._pruner, LedgerPruner):
            why = self._pruner.decide_from(ledger, record, epoch, accuracy, epochs)
            doubtful = why is not None and self._pruner.doubtful(ledger, record, epoch, accuracy)  # False: no pause_within
            if doubtful and RESUMED_ATTR in record.attrs:
                return None  # taken up again after a pause: only a hopeless verdict stops it now
        else:
            why = f"stopped at epoch {epoch}" if self._ask_shadow(ledger, record, epoch, accuracy, final) else None
        return None if why is None else (f"pruner {self._pruner_spec.name}: {why}", doubtful)

    def _ask_shadow(self, ledger: StudyLedger, record: TrialRecord, epoch: int, accuracy: float, final: bool) -> bool:
        """An Optuna pruner judges the curve as a single-objective shadow trial (Optuna's own cost per call)."""
        assert self._shadow is not None
        storage = self._shadow._storage
        shadow_id = record.attrs.get(SHADOW_ATTR)
        if shadow_id is None:
            shadow_trial = self._shadow.ask()
            shadow_trial.set_user_attr(SIZE_ATTR, record.size)
            shadow_trial.set_user_attr("main_trial", record.number)
            shadow_id = shadow_trial._trial_id
            ledger.set_attr(record, SHADOW_ATTR, shadow_id)
        elif storage.get_trial(shadow_id).state.is_finished():  # a replay after a restart: already judged
            return False
        storage.set_trial_intermediate_value(shadow_id, epoch, accuracy)
        if final:
            storage.set_trial_state_values(shadow_id, TrialState.COMPLETE, [accuracy])
            return False
        if self._shadow.pruner.prune(self._shadow, storage.get_trial(shadow_id)):
            storage.set_trial_state_values(shadow_id, TrialState.PRUNED)
            return True
        return False

    def debug_string(self) -> str:
        return f"Using msup pruning scheduler ({self._pruner_spec.name})."
