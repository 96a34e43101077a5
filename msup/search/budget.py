"""A study's budget in compute: what it allows, what its trials spent, and when sampling ends.

A study file may set, beside ``trials:`` (whichever is reached first ends sampling)::

    budget: {trial_epochs: 1200}   # the sum over trials of the highest epoch each reported
    budget: {trial_hours: 2.5}     # the trials' training time, in hours of the resources each holds:
                                   # GPU-hours where trials hold GPUs (gpu: 0.25 counts a quarter), else
                                   # CPU-core-hours
    budget: {hours: 8}             # the study's own wall-clock: the time its drivers ran, over all resumes

Everything spent is counted from what the Optuna storage holds (a trial's
``curve.<epoch>`` attributes, its ``train_s``, the study's ``driver_s``), so a
resumed driver continues with what is left; a driver that dies loses none of
the trials' spend, and at most the last 10 s of its clock. Work a trial redoes
after a crash is not charged: only epochs beyond the highest it had reported
count.

The policy, per kind:

- ``trial_epochs``: no new trial starts once the epochs spent plus those still
  reserved by running trials (each its remaining epochs) reach the budget; a
  trial a pruner stops frees its reservation; running trials finish. A study
  spends between N and N + T - 1 trial-epochs (T: epochs per trial).
- ``trial_hours``: the same, with a running trial reserving its remaining
  epochs at its own mean epoch time so far (the study's mean before its first
  epoch). Time cannot be reserved exactly, so once the budget is spent the
  running trials stop at their next epoch, PRUNED, with ``stopped_by`` naming
  the budget.
- ``hours``: a deadline. No trial starts after it, and running trials stop at
  their next epoch after it, PRUNED, with ``stopped_by`` naming the budget.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from msup.errors import InputError
from msup.search.ledger import PRUNED_ATTR, StudyLedger, TrialRecord

TRIAL_EPOCHS, TRIAL_HOURS, HOURS = "trial_epochs", "trial_hours", "hours"
KINDS = (TRIAL_EPOCHS, TRIAL_HOURS, HOURS)
UNITS = {TRIAL_EPOCHS: "trial-epochs", TRIAL_HOURS: "trial-hours", HOURS: "hours"}
BUDGET_STOP = "budget"  # how `stopped_by` starts for a trial a time budget stopped


@dataclass(frozen=True)
class ComputeBudget:
    """Limits in compute; a kind left out is open."""

    trial_epochs: int | None = None
    trial_hours: float | None = None
    hours: float | None = None

    def limits(self) -> dict[str, float]:
        """The kinds set, with their limits, in `KINDS` order."""
        return {kind: float(value) for kind in KINDS if (value := getattr(self, kind)) is not None}

    def to_dict(self) -> dict[str, int | float]:
        return {kind: getattr(self, kind) for kind in KINDS if getattr(self, kind) is not None}

    def extended(self, more: ComputeBudget) -> ComputeBudget:
        """This budget with the kinds ``more`` sets replaced; a smaller limit than the current one is refused."""
        for kind, limit in more.limits().items():
            current = getattr(self, kind)
            if current is not None and limit < current:
                raise InputError(f"--budget {kind}={limit:g} is below the study's budget of {current:g} {UNITS[kind]}")
        return replace(self, **more.to_dict())


def parse_budget(raw: Any, where: str, errors: list[str]) -> ComputeBudget | None:
    """A ``budget:`` mapping, checked; problems are appended to ``errors``."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not raw or set(raw) - set(KINDS):
        errors.append(f"{where}: must be a mapping with one or more of {', '.join(KINDS)}, got {raw!r}")
        return None
    values: dict[str, Any] = {}
    for kind, value in raw.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
        if kind == TRIAL_EPOCHS and not (number and value == int(value)):
            errors.append(f"{where}.{kind}: {value!r} must be a whole number of trial-epochs >= 1")
        elif not number:
            errors.append(f"{where}.{kind}: {value!r} must be a number of hours > 0")
        else:
            values[kind] = int(value) if kind == TRIAL_EPOCHS else float(value)
    return ComputeBudget(**values) if len(values) == len(raw) else None


def parse_budget_option(texts: list[str]) -> ComputeBudget:
    """``--budget KIND=VALUE`` (repeatable) as a budget; `InputError` with the bad one."""
    raw: dict[str, Any] = {}
    for text in texts:
        kind, sep, value = text.partition("=")
        if not sep:
            raise InputError(f"--budget {text!r}: expected KIND=VALUE, KIND one of {', '.join(KINDS)}")
        try:
            raw[kind.strip()] = float(value)
        except ValueError:
            raise InputError(f"--budget {text!r}: {value!r} is not a number") from None
    errors: list[str] = []
    budget = parse_budget(raw, "--budget", errors)
    if errors or budget is None:
        raise InputError(errors[0] if errors else "--budget: nothing given")
    return budget


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
        self.ledger, self.weight, self._epochs_of = ledger, weight, epochs_of

    def spent(self) -> Spend:
        return Spend(float(self.ledger.spent_epochs), self.ledger.spent_train_s * self.weight / 3600.0,
                     self.ledger.clock_s() / 3600.0)

    def reserved(self) -> dict[str, float]:
        """What the running trials will still spend if none is stopped, per kind that reserves."""
        epochs = hours = 0.0
        mean_epoch_s = self.ledger.spent_train_s / self.ledger.spent_epochs if self.ledger.spent_epochs else 0.0
        for number in self.ledger.unfinished:  # the running trials: this driver's and orphans, never the whole study
            record = self.ledger.trials[number]
            if PRUNED_ATTR in record.attrs:
                continue  # a pruner stopped it: nothing more to train
            reached = max(record.curve, default=0)
            left = max(0, self._epochs_of(record) - reached)
            epochs += left
            hours += left * (record.train_s / reached if reached else mean_epoch_s) * self.weight / 3600.0
        return {TRIAL_EPOCHS: epochs, TRIAL_HOURS: hours, HOURS: 0.0}

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
