"""A study's spend against its compute budget, and what it lets the searcher and scheduler do.

The policy per kind is stated in `msup.search.config.budget`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from msup.errors import InputError
from msup.search.config.budget import (
    BUDGET_STOP,
    HOURS,
    TRIAL_EPOCHS,
    TRIAL_HOURS,
    UNITS,
    ComputeBudget,
)
from msup.search.state.keys import PRUNED_ATTR, VALUES_ATTR
from msup.search.state.ledger import StudyLedger, TrialRecord

if TYPE_CHECKING:
    from msup.search.config.study import StudyConfig


class Gate(enum.Enum):
    """What the searcher may do about a new trial."""

    START = "start"
    WAIT = "wait"  # running trials hold the rest of the budget; one a pruner stops may free it
    FINISHED = "finished"


@dataclass(frozen=True)
class Spend:
    """Compute a study has spent, in each kind's unit."""

    trial_epochs: float
    trial_hours: float
    hours: float

    def to_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class BudgetAccount:
    """A study's spend against its budget, from the driver's ledger (no read of the study).

    ``weight`` turns a trial's training seconds into resource-seconds (its GPUs, else its CPU
    cores); ``epochs_of`` gives a trial's planned epochs, for reservations.
    """

    def __init__(self, budget: ComputeBudget | None, ledger: StudyLedger, weight: float,
                 epochs_of: Callable[[TrialRecord], int]) -> None:
        self.budget = budget or ComputeBudget()
        self.ledger, self.weight, self.epochs_of = ledger, weight, epochs_of

    def spent(self) -> Spend:
        return Spend(float(self.ledger.spent_epochs), self.ledger.spent_train_s * self.weight / 3600.0,
                     self.ledger.clock_s() / 3600.0)

    def reserved(self) -> dict[str, float]:
        """What the running trials will still spend if none is stopped, per kind that reserves."""
        total = {TRIAL_EPOCHS: 0.0, TRIAL_HOURS: 0.0, HOURS: 0.0}
        for number in self.ledger.unfinished:  # the running trials: this driver's and orphans, never the whole study
            record = self.ledger.trials[number]
            if PRUNED_ATTR in record.attrs:
                continue  # a pruner stopped it: nothing more to train
            for kind, amount in self._left(record).items():
                total[kind] += amount
        return total

    def _left(self, record: TrialRecord) -> dict[str, float]:
        """What ``record``'s trial still spends if it trains to its last epoch, per kind that reserves."""
        reached = max(record.curve, default=0)
        left = max(0, self.epochs_of(record) - reached)
        mean_epoch_s = self.ledger.spent_train_s / self.ledger.spent_epochs if self.ledger.spent_epochs else 0.0
        epoch_s = record.train_s / reached if reached else mean_epoch_s
        return {TRIAL_EPOCHS: float(left), TRIAL_HOURS: left * epoch_s * self.weight / 3600.0, HOURS: 0.0}

    def fits(self, record: TrialRecord) -> bool:
        """Whether the rest of ``record``'s epochs fit the budget beside what the running trials reserve."""
        limits = self.budget.limits()
        if not limits:
            return True
        spent, reserved, need = self.spent().to_dict(), self.reserved(), self._left(record)
        return all(spent[kind] < limit and spent[kind] + reserved[kind] + need[kind] <= limit
                   for kind, limit in limits.items())

    def epochs_room(self) -> float | None:
        """Trial-epochs the budget has left beside the running trials' reservations; None without that limit."""
        limit = self.budget.limits().get(TRIAL_EPOCHS)
        if limit is None:
            return None
        return limit - self.spent().trial_epochs - self.reserved()[TRIAL_EPOCHS]

    def gate(self) -> Gate:
        """Whether a new trial may start now."""
        limits = self.budget.limits()
        if not limits:
            return Gate.START
        spent = self.spent().to_dict()
        if any(spent[kind] >= limit for kind, limit in limits.items()):
            return Gate.FINISHED
        reserved = self.reserved()
        if any(spent[kind] + reserved[kind] >= limit for kind, limit in limits.items()):
            return Gate.WAIT  # only running trials reserve: one of them will end and ask again
        return Gate.START

    def stop_reason(self) -> str | None:
        """Why running trials must stop now (a time budget is spent), or None."""
        spent = self.spent()
        for kind in (TRIAL_HOURS, HOURS):
            limit = getattr(self.budget, kind)
            if limit is not None and getattr(spent, kind) >= limit:
                return f"{BUDGET_STOP}: {limit:g} {UNITS[kind]} spent"
        return None


def progress(budget: ComputeBudget | None, trials: int | None, done: int, spent: Spend) -> dict[str, dict[str, float]]:
    """Each limit of a study with what is spent and left: ``{kind: {limit, spent, left}}``, trials first."""
    rows = {"trials": (float(trials), float(done))} if trials is not None else {}
    rows.update({kind: (limit, getattr(spent, kind)) for kind, limit in (budget or ComputeBudget()).limits().items()})
    return {kind: {"limit": limit, "spent": used, "left": max(0.0, limit - used)} for kind, (limit, used) in rows.items()}


def fraction_used(limits: Mapping[str, Mapping[str, float]]) -> float:
    """How far a study is through its budget: the most used of its limits (0 with none)."""
    return max((min(1.0, row["spent"] / row["limit"]) for row in limits.values()), default=0.0)


def describe(limits: Mapping[str, Mapping[str, float]]) -> str:
    """"12/40 trials, 342/1,200 trial-epochs": each limit with what is spent, for one line of text."""
    units = {"trials": "trials", **UNITS}
    return ", ".join(f"{_amount(row['spent'], kind)}/{_amount(row['limit'], kind)} {units[kind]}"
                     for kind, row in limits.items())


def _amount(value: float, kind: str) -> str:
    return f"{value:,.0f}" if kind in ("trials", TRIAL_EPOCHS) else f"{value:.3g}"


def budget_account(config: StudyConfig, ledger: StudyLedger) -> BudgetAccount:
    """The study's spend against its compute budget, kept by ``ledger``."""
    def epochs_of(record: TrialRecord) -> int:
        if record.epochs is None:
            try:
                record.epochs = config.train_config(record.attrs.get(VALUES_ATTR, {})).optim.epochs
            except InputError:  # a configuration that cannot train reserves nothing
                record.epochs = 0
        return record.epochs

    return BudgetAccount(config.budget, ledger, config.resource_weight, epochs_of)
