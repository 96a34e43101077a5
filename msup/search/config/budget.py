"""A study's budget in compute, as its study file states it (the spend is `msup.search.state.account`).

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

from typing import Any

from pydantic import Field, ValidationError

from msup.errors import InputError
from msup.validation import Float, StrictModel, problem_lines

TRIAL_EPOCHS, TRIAL_HOURS, HOURS = "trial_epochs", "trial_hours", "hours"
KINDS = (TRIAL_EPOCHS, TRIAL_HOURS, HOURS)
UNITS = {TRIAL_EPOCHS: "trial-epochs", TRIAL_HOURS: "trial-hours", HOURS: "hours"}
BUDGET_STOP = "budget"  # how `stopped_by` starts for a trial a time budget stopped


class ComputeBudget(StrictModel):
    """Limits in compute; a kind left out is open."""

    trial_epochs: int | None = Field(None, ge=1, description="the sum over trials of the highest epoch each reported")
    trial_hours: Float | None = Field(None, gt=0, description="the trials' training time, in hours of the "
                                      "resources each holds (GPU-hours where trials hold GPUs, else CPU-core-hours)")
    hours: Float | None = Field(None, gt=0, description="the study's own wall-clock, over all resumes")

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
        return self.model_copy(update=more.to_dict())


def parse_budget_option(texts: list[str]) -> ComputeBudget:
    """``--budget KIND=VALUE`` (repeatable) as a budget; `InputError` with the bad one."""
    raw: dict[str, Any] = {}
    for text in texts:
        kind, sep, value = text.partition("=")
        if not sep:
            raise InputError(f"--budget {text!r}: expected KIND=VALUE, KIND one of {', '.join(KINDS)}")
        try:
            number = float(value)
        except ValueError:
            raise InputError(f"--budget {text!r}: {value!r} is not a number") from None
        raw[kind.strip()] = int(number) if kind.strip() == TRIAL_EPOCHS and number.is_integer() else number
    if not raw:
        raise InputError("--budget: nothing given")
    try:
        return ComputeBudget.model_validate(raw)
    except ValidationError as exc:
        raise InputError(problem_lines(exc, ComputeBudget, raw, "--budget.")[0]) from None
