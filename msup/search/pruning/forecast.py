"""Where will a trial's curve end? A forecast of its final accuracy from the study's own trained trials.

No bank, no download, no fitted weights: the trials the study has trained
are the prior. For a trial at epoch ``e`` the forecast takes the ``k`` trained
trials most alike at that epoch (accuracy then, its gain over the last two
epochs, log size; each standardised over the trained trials) and adds what
each of them gained from epoch ``e`` to its last to the trial's accuracy now:
``k`` draws of its final accuracy, as many as the neighbours it has.

The forecast is a function of the trained trials alone, with ties between
equally near neighbours broken by trial number, so a restarted driver, which
rebuilds its ledger from the storage, forecasts exactly what the first one
did. On the curve banks (BENCHMARKS.md, "Predicting where a curve ends") this
forecast from 20 of a study's own trials had a pinball loss 43 % (digits) and
18 % (mnist5k) below carrying the last value forward; a prior from another
task's bank did worse than the last value, so none ships.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

RECENT = 2  # epochs over which the recent gain is measured


def features(curve: Mapping[int, float], epoch: int, size: float) -> tuple[float, float, float]:
    """(accuracy at ``epoch``, its gain over the last `RECENT` epochs, log10 size): what makes two curves alike."""
    accuracy = curve[epoch]
    earlier = curve.get(max(1, epoch - RECENT), accuracy)
    return accuracy, accuracy - earlier, math.log10(size)


class _EpochRows:
    """The trained trials' features at one epoch and what each gained from there to its last epoch."""

    def __init__(self) -> None:
        self.points: list[tuple[float, float, float]] = []
        self.gains: list[float] = []
        self.numbers: list[int] = []
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def add(self, point: tuple[float, float, float], gain: float, number: int) -> None:
        self.points.append(point)
        self.gains.append(gain)
        self.numbers.append(number)
        self._arrays = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(standardised points, gains, trial numbers, the scale of each feature), rebuilt after an add."""
        if self._arrays is None:
            points = np.asarray(self.points, float)
            scale = points.std(axis=0)
            scale[scale <= 1e-12] = 1.0  # a feature every trial shares tells them apart by nothing
            self._arrays = (points / scale, np.asarray(self.gains, float), np.asarray(self.numbers), scale)
        return self._arrays


class FinalForecast:
    """Draws of a trial's final accuracy, from the trained trials most alike at the same epoch.

    ``add`` a trial once it has trained every epoch (in any order: the result
    does not depend on it); ``draws`` forecasts a running one.
    """

    def __init__(self, neighbours: int = 20) -> None:
        if isinstance(neighbours, bool) or not isinstance(neighbours, int) or neighbours < 1:
            raise ValueError(f"neighbours={neighbours!r} must be a whole number >= 1")
        self.neighbours = neighbours
        self.trained: set[int] = set()
        self._rows: dict[tuple[int, int], _EpochRows] = {}  # (epoch, last epoch) -> rows

    def add(self, number: int, curve: Mapping[int, float], size: float) -> None:
        """A trained trial's curve (epochs 1..last) and size."""
        if number in self.trained or not curve:
            return
        self.trained.add(number)
        last = max(curve)
        for epoch in curve:
            if epoch < last:
                self._rows.setdefault((epoch, last), _EpochRows()).add(
                    features(curve, epoch, size), curve[last] - curve[epoch], number)

    def peers(self, epoch: int, epochs: int) -> int:
        """How many trained trials of ``epochs`` epochs a forecast at ``epoch`` draws its neighbours from."""
        rows = self._rows.get((epoch, epochs))
        return 0 if rows is None else len(rows.gains)

    def draws(self, curve: Mapping[int, float], epoch: int, size: float, epochs: int) -> np.ndarray:
        """Forecast final accuracies of a trial of ``epochs`` epochs at ``epoch`` (empty: no peers yet)."""
        rows = self._rows.get((epoch, epochs))
        if rows is None:
            return np.empty(0)
        points, gains, numbers, scale = rows.arrays()
        query = np.asarray(features(curve, epoch, size)) / scale
        distance = np.square(points - query).sum(axis=1)
        k = min(self.neighbours, len(gains))
        nearest = np.lexsort((numbers, distance))[:k]  # ties by trial number: the same draws after a restart
        return np.clip(curve[epoch] + gains[nearest], 0.0, 1.0)


class Staircase:
    """A front as a step function of size: f(s), the best accuracy of any point no larger than s, up to a
    reference size; and the hypervolume (accuracy x decades of size, accuracy reference 0) a new point adds."""

    def __init__(self, points: list[tuple[float, float]], reference_size: float) -> None:
        ordered = sorted((s, a) for s, a in points if 0 < s < reference_size)
        sizes: list[float] = []
        best: list[float] = []
        for size, accuracy in ordered:
            if not best or accuracy > best[-1]:
                sizes.append(size)
                best.append(accuracy)
        self.sizes, self.best, self.reference_size = np.asarray(sizes), np.asarray(best), reference_size

    def at(self, size: float) -> float:
        """f(size): 0 where no point is that small."""
        below = int(np.searchsorted(self.sizes, size, side="right"))
        return float(self.best[below - 1]) if below else 0.0

    def _widths(self) -> np.ndarray:
        """Each step's width in decades of size, up to the reference size."""
        return np.diff(np.log10(np.r_[self.sizes, self.reference_size])) if self.sizes.size else np.empty(0)

    def hypervolume(self) -> float:
        return float(np.sum(self.best * self._widths()))

    def contributions(self) -> np.ndarray:
        """The hypervolume each point of the front holds alone among the front's points: what losing it would cost."""
        return np.diff(np.r_[0.0, self.best]) * self._widths()

    def gains(self, accuracies: np.ndarray, size: float) -> np.ndarray:
        """The hypervolume each accuracy would add at ``size`` (0 at or beyond the reference size)."""
        if not 0 < size < self.reference_size:
            return np.zeros(len(accuracies))
        larger = self.sizes > size
        edges = np.log10(np.r_[size, self.sizes[larger], self.reference_size])
        heights = np.r_[self.at(size), self.best[larger]]
        return np.maximum(0.0, np.asarray(accuracies)[:, None] - heights[None, :]) @ np.diff(edges)


def chance_above(draws: np.ndarray, bar: float) -> float:
    """The share of forecast draws above ``bar``: the chance the trial ends above it."""
    return float(np.mean(draws > bar)) if draws.size else 1.0


def pessimistic(draws: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of the draws: a final accuracy the trial reaches with probability 1 - ``quantile``."""
    return float(np.quantile(draws, quantile)) if draws.size else -math.inf
