"""A Ray Tune searcher that asks and tells a two-objective Optuna study directly.

Why not Ray's `OptunaSearch`: msup must compute a trial's size when it is
sampled, tell stopped-early trials PRUNED (not COMPLETE), record failures with
their reason, and recover trials a dead driver asked for but Ray never saved.
The Optuna storage is the source of truth; everything this object remembers
can be rebuilt from it.

Recovery rule: a RUNNING Optuna trial that no Ray trial of this run owns is an
*orphan* (its driver died between ask and Ray's next experiment checkpoint).
Ray asks for a replacement trial in that case, and the searcher hands it the
orphan's parameters, and its newest checkpoint from an earlier Ray run of the
study if there is one, instead of asking Optuna anew: nothing lost, nothing
twice. The same path rebuilds a study whose Ray experiment state is damaged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from msup import failpoints
from msup.config import TrainConfig
from msup.errors import InputError, RunError
from msup.folder import Folder
from msup.search.config.study import StudyConfig
from msup.search.execution.trial_config import TrialConfig
from msup.search.pruning.base import LedgerPruner
from msup.search.pruning.pausing import no_room_reason, paused_epoch, review
from msup.search.sampling.factory import study_sampler
from msup.search.state.account import BudgetAccount, Gate, budget_account
from msup.search.state.keys import (
    BUDGET_CONSTRAINT,
    ERROR_ATTR,
    PRUNED_ATTR,
    RAY_ATTR,
    REJECTED_ATTR,
    RESUMED_ATTR,
    SHADOW_ATTR,
    SIZE_ATTRS,
    STOPPED_BY_ATTR,
    VALUES_ATTR,
)
from msup.search.state.layout import ARTIFACTS_DIR, RAY_DIR, artifact_name
from msup.search.state.ledger import (
    CLOCK_SAVE_EVERY_S,
    StudyLedger,
    TrialRecord,
    driver_ledger,
)
from msup.search.state.storage import (
    count_trials,
    load_or_create,
    open_storage,
    set_user_attrs,
)
from msup.sizes import SizeCache

CHECKPOINT_FILE = "checkpoint.pt"  # inside each Ray checkpoint folder
EPOCH_MARKER = "epoch-"  # and beside it, an empty file `epoch_marker` names
MAX_REJECTED_IN_A_ROW = 1000  # then the budget or the space is wrong, not the sampler unlucky
Chosen = tuple[TrialRecord, dict[str, Any], dict[str, float], TrainConfig, str | None]  # values, sizes, checkpoint
RESULT_KEYS = (
    "epoch", "val_acc", "best_val_acc", "test_acc", "best_test_acc", "train_loss", "train_acc",
    "size_artifact_bytes", "wall_s",
)


class StudySearcher(Searcher):
    """Suggests trial configs from an Optuna study and reports outcomes back to it.

    What it needs to know of earlier trials (their ids, states, sampled values)
    comes from the driver's `StudyLedger`, not from reading the study back.
    """

    def __init__(self, config: StudyConfig, storage_url: str, folder: str, trial_cap: int | None = None) -> None:
        super().__init__()  # objectives live in the Optuna study; Ray checks no metric names
        self._config = config
        self._trial_cap = trial_cap  # no new configuration once the study holds this many (`StudyLedger.counted`)
        self._storage_url = storage_url
        self._folder = folder  # the study folder: artifacts/ and the checkpoints of earlier Ray runs
        self._owned: dict[str, int] = {}  # Ray trial id -> Optuna trial number
        self._study: optuna.Study | None = None
        self._ledger: StudyLedger | None = None
        self._account: BudgetAccount | None = None
        self._sizes = SizeCache()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_study": None, "_ledger": None, "_account": None}

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            storage = open_storage(self._storage_url)
            self._study = load_or_create(
                storage, self._config.name, [self._config.accuracy, self._config.size],
                study_sampler(self._config, count_trials(storage, self._config.name)),
            )
        return self._study

    @property
    def ledger(self) -> StudyLedger:
        if self._ledger is None:
            self._ledger = driver_ledger(self._storage_url, self.study, self._config.size)
        return self._ledger

    @property
    def account(self) -> BudgetAccount:
        if self._account is None:
            self._account = budget_account(self._config, self.ledger)
        return self._account

    # --- Ray Tune's Searcher interface ---------------------------------------------------

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]  # Ray's FINISHED is a str
        self.ledger.save_clock(every_s=CLOCK_SAVE_EVERY_S)  # Ray asks often: the study's clock stays current
        chosen = self._next()
        if isinstance(chosen, Gate):  # FINISHED ends the run once its trials end; otherwise asked again later
            return Searcher.FINISHED if chosen is Gate.FINISHED else None
        record, values, sizes, train, resume_from = chosen
        self.ledger.set_attr(record, RAY_ATTR, trial_id)
        self._owned[trial_id] = record.number
        return TrialConfig(
            optuna_trial=record.number, train=train.to_dict(), values=values, sizes=sizes, epochs=train.optim.epochs,
            cpus=self._config.cpu, memory_bytes=self._config.memory_bytes,
            checkpoint_every_s=0.0 if self._config.pruner.pauses else self._config.checkpoint_every_s,
            artifact_path=(Folder(self._folder) / ARTIFACTS_DIR).file_uri(artifact_name(record.number)),
            resume_from=resume_from,
        ).to_dict()

    def _next(self) -> Chosen | Gate:
        """An orphan to continue, a new draw, or, once sampling is over, a paused trial to take up again;
        a `Gate` when there is nothing to start now."""
        for _ in range(MAX_REJECTED_IN_A_ROW):
            gate = self._gate()
            if self.ledger.paused and self._take_orphan() is None and self._sampling_over(gate):
                resumed = self._resume_paused()
                if resumed is not None:
                    return resumed
            if gate is not Gate.START:
                return self._nothing_to_start(gate)
            chosen = self._choose()
            if chosen is None:
                return Gate.WAIT
            if not self._rejected(chosen[0], chosen[2]):
                return chosen
        raise RunError(f"the sampler proposed {MAX_REJECTED_IN_A_ROW} configurations in a row outside size_budget "
                       f"{self._config.size_budget.to_dict() if self._config.size_budget else {}}; widen the budget "
                       "or narrow the search space")

    def _choose(self) -> Chosen | None:
        """The next configuration: an orphan's, or a new draw with its sizes stored; None if it failed."""
        ledger, orphan = self.ledger, self._take_orphan()
        if orphan is not None and VALUES_ATTR in orphan.attrs:
            return self._continue(orphan)
        # a new trial, or one a dead driver had only begun to sample (its drawn values are kept)
        if orphan is None:
            trial = self.study.ask()
            record = ledger.add_new(trial.number, trial._trial_id)
        else:
            # The storage cache must know the trial before it takes a parameter: an enqueued trial's fixed values
            # are written without the sampler, which otherwise reads the study first (incremental after one read).
            self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            trial, record = optuna.Trial(self.study, orphan.trial_id), orphan
        failpoints.reach("searcher.after_ask")
        values = self._config.space.sample(trial)
        try:
            train = self._config.train_config(values)
        except InputError as exc:  # the space was checked up front; keep the study alive regardless
            ledger.set_attr(record, ERROR_ATTR, str(exc))
            self._tell(record, TrialState.FAIL, None)
            return None
        sizes = self._sizes.sizes(train)
        record.epochs = train.optim.epochs
        ledger.set_attrs(record, {**sizes, VALUES_ATTR: values})
        failpoints.reach("searcher.after_attrs")
        return record, values, sizes, train, None

    def _continue(self, record: TrialRecord) -> Chosen:
        """A trial already sampled and trained for a while (an orphan, a paused trial): from its newest checkpoint."""
        values = record.attrs[VALUES_ATTR]
        sizes = {k: record.attrs[k] for k in SIZE_ATTRS}
        train = self._config.train_config(values)
        record.epochs = train.optim.epochs
        return record, values, sizes, train, latest_checkpoint(Folder(self._folder), record.number)

    # --- paused trials (`msup.search.pruning.pausing`) --------------------------------------

    def _sampling_over(self, gate: Gate) -> bool:
        """No new trial may start, or the compute budget has no room for a whole new one."""
        if gate is not Gate.START:
            return True
        room, epochs = self.account.epochs_room(), self._config.planned_epochs({})
        return room is not None and epochs is not None and room < epochs

    def _resume_paused(self) -> Chosen | None:
        """Judge the paused trials again; take up the best the budget has room for (None: none fits)."""
        pruner = self._config.pruner.build()
        verdict = review(self.ledger, pruner if isinstance(pruner, LedgerPruner) else None, self._config.pruner.name,
                         self.account.epochs_of, self._owned.values())
        for record, reason in verdict.ended:
            self._end_paused(record, reason)
        for record in verdict.ranked:
            if self.account.fits(record):
                self.ledger.set_attr(record, RESUMED_ATTR, paused_epoch(record))
                failpoints.reach("searcher.after_resume")
                return self._continue(record)
        return None

    def _nothing_to_start(self, gate: Gate) -> Gate:
        """Paused trials the budget has no room for end once no other trial runs (its end might have made room)."""
        if self.ledger.paused:
            if self.ledger.unfinished:
                return Gate.WAIT
            for number in sorted(self.ledger.paused):
                record = self.ledger.trials[number]
                self._end_paused(record, no_room_reason(record))
        return gate

    def _end_paused(self, record: TrialRecord, reason: str) -> None:
        self.ledger.set_attrs(record, {PRUNED_ATTR: paused_epoch(record), STOPPED_BY_ATTR: reason})
        self._tell(record, TrialState.PRUNED, None)

    def _rejected(self, record: TrialRecord, sizes: Mapping[str, float]) -> bool:
        """Outside the size budget: told PRUNED with its constraint violated, so the sampler learns the bound."""
        budget = self._config.size_budget
        if budget is None:
            return False
        size = sizes[self._config.size]
        if BUDGET_CONSTRAINT not in self.study._storage.get_trial(record.trial_id).constraints:  # a replayed orphan has it
            optuna.Trial(self.study, record.trial_id).set_constraint(BUDGET_CONSTRAINT, budget.violation(size))
        reason = budget.rejection(size)
        if reason is None:
            return False
        self.ledger.set_attr(record, REJECTED_ATTR, reason)
        self._tell(record, TrialState.PRUNED, None)
        return True

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        """Every epoch's accuracy is already stored (by the scheduler); store the results, then tell."""
        number = self._owned.pop(trial_id, None)
        if number is None or error:  # a raised error is told FAIL, with its message, by `FailureRecorder`
            return
        record = self.ledger.get(number)
        if record.state.is_finished() or number in self.ledger.paused or record.attrs.get(RAY_ATTR) != trial_id:
            return  # told already, set aside to resume later, or taken up since by another Ray trial
        measured = {key: result[key] for key in RESULT_KEYS
                    if result and isinstance(result.get(key), (int, float)) and math.isfinite(result[key])}
        set_user_attrs(self.study._storage, record.trial_id, measured)
        state, values = self._outcome(record, result)
        failpoints.reach("searcher.before_tell")
        self._tell(record, state, values)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w", encoding="utf-8") as f:
            json.dump({"owned": self._owned}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, encoding="utf-8") as f:
            self._owned = {str(k): int(v) for k, v in json.load(f)["owned"].items()}

    # --- internals -----------------------------------------------------------------------

    def _outcome(self, record: TrialRecord, result: Mapping[str, Any] | None) -> tuple[TrialState, list[float] | None]:
        """COMPLETE only for a trial that trained every epoch and was tested; stopped early is PRUNED.

        A trial whose training failed reports ``error`` and ends FAIL with that message.
        """
        result = result or {}
        if result.get(ERROR_ATTR):
            self.ledger.set_attr(record, ERROR_ATTR, str(result[ERROR_ATTR]))
            return TrialState.FAIL, None
        accuracy, size = result.get(self._config.accuracy), result.get(self._config.size, record.attrs.get(self._config.size))
        finished = result.get("test_acc") is not None and PRUNED_ATTR not in record.attrs
        if finished and accuracy is not None and size is not None and math.isfinite(accuracy):
            return TrialState.COMPLETE, [float(accuracy), float(size)]
        return (TrialState.PRUNED if result.get("epoch") else TrialState.FAIL), None

    def _tell(self, record: TrialRecord, state: TrialState, values: list[float] | None) -> None:
        tell(self.ledger, record, state, values)

    def _gate(self) -> Gate:
        """An orphan always continues (its epochs are reserved); a new trial needs the trial cap (rejected
        configurations may have used it) and the compute budget to allow it."""
        if self._take_orphan() is not None:
            return Gate.START
        if self._trial_cap is not None and self.ledger.counted(self._config.counts_rejected) >= self._trial_cap:
            return Gate.FINISHED
        return self.account.gate()

    def _take_orphan(self) -> TrialRecord | None:
        """The lowest-numbered unfinished trial no Ray trial of this run owns (its driver died)."""
        owned = set(self._owned.values())
        return next((self.ledger.trials[n] for n in sorted(self.ledger.unfinished) if n not in owned), None)


def latest_checkpoint(folder: Folder, number: int) -> str | None:
    """The newest epoch checkpoint an earlier Ray trial of the study saved for Optuna trial ``number``.

    Newest by the epoch it holds (its `epoch_marker`), since a trial paused and taken up
    again has checkpoints in two Ray trials of one run; checkpoints written before the
    markers rank by run, then by their index within it (a run's checkpoints count from 0).
    Lists the runs' trial folders: done only for the few trials a dead driver left, and
    for each paused trial taken up again.
    """
    ray, trial_prefix, newest = folder / RAY_DIR, f"trial-{number:05d}-", None
    for run in ray.children():
        if not run.startswith("run-") or not run[4:].isdigit():
            continue
        for trial in (name for name in (ray / run).children() if name.startswith(trial_prefix)):
            for checkpoint in (name for name in (ray / run / trial).children() if name.startswith("checkpoint_")):
                found = ray / run / trial / checkpoint
                files = found.children()
                if CHECKPOINT_FILE not in files:
                    continue
                epoch = max((int(name[len(EPOCH_MARKER):]) for name in files
                             if name.startswith(EPOCH_MARKER) and name[len(EPOCH_MARKER):].isdigit()), default=-1)
                key = (epoch, int(run[4:]), int(checkpoint.split("_")[-1]))
                if newest is None or key > newest[0]:
                    newest = (key, found.file_uri(CHECKPOINT_FILE))
    return None if newest is None else newest[1]


def epoch_marker(epoch: int) -> str:
    """The empty file beside a checkpoint that names its epoch, so `latest_checkpoint` reads no checkpoint."""
    return f"{EPOCH_MARKER}{epoch:05d}"


def tell(ledger: StudyLedger, record: TrialRecord, state: TrialState, values: list[float] | None) -> None:
    """Close the trial in the storage (its pruning shadow trial first, if any), then in the ledger."""
    study = ledger.study
    shadow_id = record.attrs.get(SHADOW_ATTR)
    if shadow_id is not None and state != TrialState.COMPLETE and not study._storage.get_trial(shadow_id).state.is_finished():
        study._storage.set_trial_state_values(shadow_id, TrialState.PRUNED if state == TrialState.PRUNED else TrialState.FAIL)
    study.tell(record.number, values, state=state)
    ledger.set_state(record, state)


def record_failure(ledger: StudyLedger, number: int, message: str) -> None:
    """Tell FAIL, with the error message, for a trial whose worker raised (after Ray's retries)."""
    record = ledger.get(number)
    if record.state.is_finished():
        return
    ledger.set_attr(record, ERROR_ATTR, message)
    tell(ledger, record, TrialState.FAIL, None)
