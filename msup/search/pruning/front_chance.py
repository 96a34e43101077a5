"""Stop a trial by its chance of reaching the front, which its known size turns into one dimension.

A trial's size is exact the moment it is sampled; only its final accuracy A
is uncertain. With f(s) the best final accuracy of any trained trial no larger
than s (the front's staircase), a trial of size s ends on the front exactly
when A > f(s). The rule forecasts A from the curve so far
(`msup.search.pruning.forecast`) and stops the trial when

    P(A > f(s) + epsilon) < delta

or when the hypervolume it is expected to add (the mean over the forecast's
draws, each lowered by epsilon) is under ``min_gain`` times what a typical
point of the front holds alone (the median of their exclusive
contributions), scaled by the share of its epochs still to train (what
going on costs), at
``patience`` checks in a row (this epoch's and the ones before, each judged on
the curve up to its epoch). ``epsilon`` is the accuracy two seeds of one
configuration differ by, so a trial is not kept for a tie within noise. The
front counts running trials too, each at a pessimistic quantile of its own
forecast (``running_quantile``), so the rule acts before many trials are
trained. Two tests need no forecast: a trial whose potential, the hypervolume
it would add even at accuracy 1, is under ``min_potential`` of the front's
stops at its first report, and so does one at or below ``min_accuracy``
(chance level) once past the grace epochs. Hypervolume is measured as the
study's report does: accuracy x decades of size, up to the dense size.

For ``size_artifact_bytes`` (known only after training) the rule compares
entropy sizes, as the ledger's rungs do (`StudyLedger.size_before_training`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from msup.search.pruning.base import LedgerPruner
from msup.search.pruning.forecast import FinalForecast, Staircase, chance_above, pessimistic
from msup.search.state.ledger import EpochIndex, StudyLedger, TrialRecord

DEFAULT_EPSILON = 0.005  # just under the median difference of two seeds of a digits configuration (0.70 points)


class FrontChancePruner(LedgerPruner):
    """``front_chance``: stop a trial once its forecast chance of entering the front, or the hypervolume it is
    expected to add, is too small."""

    def __init__(
        self, delta: float = 0.3, delta_at_end: float | None = None, epsilon: float = DEFAULT_EPSILON,
        min_gain: float = 0.5, grace: int = 2, patience: int = 2, n_startup_trials: int = 5, neighbours: int = 20,
        running_quantile: float | None = 0.2, min_potential: float = 0.0, min_accuracy: float = 0.0,
    ) -> None:
        for name, value in (("delta", delta), ("epsilon", epsilon), ("min_potential", min_potential),
                            ("min_accuracy", min_accuracy)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name}={value!r} must be a number in [0, 1)")
        if isinstance(min_gain, bool) or not isinstance(min_gain, (int, float)) or not 0.0 <= min_gain < math.inf:
            raise ValueError(f"min_gain={min_gain!r} must be a finite number >= 0")
        if delta_at_end is not None and (isinstance(delta_at_end, bool) or not isinstance(delta_at_end, (int, float))
                                         or not 0.0 <= delta_at_end <= delta):
            raise ValueError(f"delta_at_end={delta_at_end!r} must lie in [0, delta]")
        for name, count in (("grace", grace), ("patience", patience), ("n_startup_trials", n_startup_trials)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"{name}={count!r} must be a whole number >= 1")
        if running_quantile is not None and (isinstance(running_quantile, bool) or not isinstance(
                running_quantile, (int, float)) or not 0.0 <= running_quantile <= 0.5):
            raise ValueError(f"running_quantile={running_quantile!r} must lie in [0, 0.5], or be null")
        self.delta, self.epsilon, self.min_gain = float(delta), float(epsilon), float(min_gain)
        self.delta_at_end = self.delta if delta_at_end is None else float(delta_at_end)
        self.grace, self.patience, self.n_startup_trials = grace, patience, n_startup_trials
        self.running_quantile = None if running_quantile is None else float(running_quantile)
        self.min_potential, self.min_accuracy = float(min_potential), float(min_accuracy)
        self._neighbours = neighbours
        self._reset(None)

    def _reset(self, ledger: StudyLedger | None) -> None:
        self._ledger = ledger
        self._forecast = FinalForecast(self._neighbours)
        self._finals = EpochIndex()  # (size, final accuracy) of the trained trials, with their front
        self._synced = 0

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles the scheduler that holds this rule: the forecast is rebuilt from the ledger instead."""
        state = dict(self.__dict__)
        for key in ("_ledger", "_forecast", "_finals", "_synced"):
            state.pop(key)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset(None)

    def _sync(self, ledger: StudyLedger) -> None:
        """Take in the trials trained since the last call (all of them, for a new ledger)."""
        if ledger is not self._ledger:
            self._reset(ledger)
        for number in ledger.trained_numbers[self._synced:]:
            record = ledger.trials[number]
            size = ledger.size_before_training(record)
            if size is not None and size > 0 and record.curve:
                self._forecast.add(number, record.curve, size)
                self._finals.add(size, record.curve[max(record.curve)])
        self._synced = len(ledger.trained_numbers)

    def decide_from(
        self, ledger: StudyLedger, record: TrialRecord, epoch: int, accuracy: float, epochs: int,
    ) -> str | None:
        size = ledger.size_before_training(record)
        if size is None or size <= 0:
            return None
        self._sync(ledger)
        running = self._running_points(ledger, record, epochs)
        front = Staircase([*zip(self._finals.front_sizes, self._finals.front_accuracies), *running],
                          self._reference_size(record))
        best, volume = front.at(size), front.hypervolume()
        typical = float(np.median(front.contributions())) if front.sizes.size else 0.0
        if self.min_potential > 0 and volume > 0:
            potential = float(front.gains(np.array([1.0]), size)[0]) / volume
            if potential < self.min_potential:
                return (f"could add at most {potential:.2%} of the front's hypervolume even at accuracy 1, under "
                        f"min_potential {self.min_potential:g}")
        if epoch < self.grace:
            return None
        if accuracy <= self.min_accuracy:
            return f"accuracy {accuracy:.4f} at epoch {epoch} at or below min_accuracy {self.min_accuracy:g}"
        if len(self._forecast.trained) < self.n_startup_trials:
            return None
        chances, gains = [], []
        for judged in range(epoch, epoch - self.patience, -1):
            if judged < self.grace or judged not in record.curve:
                return None
            draws = self._forecast.draws(record.curve, judged, size, epochs)
            if draws.size == 0:
                return None
            chance = chance_above(draws, best + self.epsilon)
            gain = float(front.gains(draws - self.epsilon, size).mean()) / typical if typical > 0 else math.inf
            if chance >= self._delta(judged, epochs) and (self.min_gain <= 0 or gain >= self._min_gain(judged, epochs)):
                return None
            chances.append(chance)
            gains.append(gain)
        return (f"P(final > f(s) + eps) {', '.join(f'{c:.2f}' for c in chances[::-1])} and expected gain "
                f"{', '.join(f'{g:.2f}' for g in gains[::-1])} of a typical front point's at epochs "
                f"{epoch - len(chances) + 1}..{epoch} (delta {self._delta(epoch, epochs):.3g}, min_gain "
                f"{self._min_gain(epoch, epochs):.3g}; f(s) {best:.4f}, eps {self.epsilon:g}; "
                f"{len(self._forecast.trained)} trained, {len(running)} running counted)")

    def _min_gain(self, epoch: int, epochs: int) -> float:
        """The gain a trial must be expected to add to go on: ``min_gain`` for a whole trial's epochs, less in
        proportion to the epochs it has left (what going on costs)."""
        return self.min_gain * (epochs - epoch) / epochs

    def _delta(self, epoch: int, epochs: int) -> float:
        """``delta`` at the first judged epoch, falling linearly to ``delta_at_end`` at the last."""
        share = (epoch - self.grace) / max(1, epochs - 1 - self.grace)
        return self.delta + (self.delta_at_end - self.delta) * min(1.0, max(0.0, share))

    def _running_points(self, ledger: StudyLedger, record: TrialRecord, epochs: int) -> list[tuple[float, float]]:
        """(size, the final accuracy it reaches with probability 1 - ``running_quantile``) of the other running
        trials past their grace epochs."""
        if self.running_quantile is None:
            return []
        points = []
        for number in sorted(ledger.unfinished):
            other = ledger.trials.get(number)
            if other is None or number == record.number or not other.curve:
                continue
            other_size, reached, last = ledger.size_before_training(other), max(other.curve), other.epochs or epochs
            if other_size is None or other_size <= 0 or not self.grace <= reached < last:
                continue
            draws = self._forecast.draws(other.curve, reached, other_size, last)
            if draws.size:
                points.append((other_size, pessimistic(draws, self.running_quantile)))
        return points

    def _reference_size(self, record: TrialRecord) -> float:
        """The hypervolume's reference size: the dense network's (or 10x the largest trained trial's; with
        neither, none: every trial has room to add)."""
        dense = record.attrs.get("dense_mib")
        largest = self._finals.max_size
        if dense:
            return max(float(dense), largest)
        return 10.0 * largest if largest > 0 else math.inf
