"""The forecast of a trial's final accuracy: its nearest trained trials' gains, whatever order they came in."""

from __future__ import annotations

import random

import numpy as np
import pytest

from msup.analysis.pareto import hypervolume
from msup.search.pruning.forecast import FinalForecast, Staircase, chance_above, features, pessimistic


def curve(*values: float) -> dict[int, float]:
    return dict(enumerate(values, start=1))


def test_draws_are_the_accuracy_now_plus_what_the_nearest_trials_gained() -> None:
    forecast = FinalForecast(neighbours=2)
    forecast.add(0, curve(0.50, 0.60, 0.70, 0.80), size=1.0)  # at epoch 2: 0.60, gained 0.20
    forecast.add(1, curve(0.52, 0.61, 0.66, 0.71), size=1.0)  # at epoch 2: 0.61, gained 0.10
    forecast.add(2, curve(0.10, 0.10, 0.10, 0.10), size=1.0)  # at chance: far from the query
    draws = forecast.draws(curve(0.50, 0.60), epoch=2, size=1.0, epochs=4)
    assert sorted(np.round(draws, 6)) == [0.70, 0.80]
    assert forecast.peers(2, 4) == 3 and forecast.peers(4, 4) == 0  # the last epoch has nothing left to forecast
    assert forecast.draws(curve(0.5, 0.6), epoch=2, size=1.0, epochs=6).size == 0  # no trial of 6 epochs yet


def test_alike_means_the_same_accuracy_gain_and_size() -> None:
    forecast = FinalForecast(neighbours=1)
    forecast.add(0, curve(0.3, 0.5, 0.9), size=0.01)  # small
    forecast.add(1, curve(0.3, 0.5, 0.6), size=1.0)  # large
    forecast.add(2, curve(0.5, 0.5, 0.5), size=0.01)  # small, flat
    assert forecast.draws(curve(0.3, 0.5), 2, 0.012, 3) == pytest.approx([0.9])
    assert forecast.draws(curve(0.3, 0.5), 2, 0.9, 3) == pytest.approx([0.6])
    assert forecast.draws(curve(0.5, 0.5), 2, 0.01, 3) == pytest.approx([0.5])


def test_draws_do_not_depend_on_the_order_trials_were_trained_in() -> None:
    rng = random.Random(0)
    trials = [(n, curve(*sorted(rng.uniform(0.1, 0.95) for _ in range(5))), 10 ** rng.uniform(-3, 0)) for n in range(60)]
    queries = [(curve(*sorted(rng.uniform(0.1, 0.95) for _ in range(3))), 10 ** rng.uniform(-3, 0)) for _ in range(20)]
    forecasts = []
    for order in (trials, trials[::-1], rng.sample(trials, len(trials))):
        forecast = FinalForecast(neighbours=7)
        for number, c, size in order:
            forecast.add(number, c, size)
        forecast.add(*order[0])  # a trial added twice counts once
        forecasts.append([forecast.draws(q, 3, size, 5).tolist() for q, size in queries])
    assert forecasts[0] == forecasts[1] == forecasts[2]


def test_equally_near_trials_are_chosen_by_trial_number() -> None:
    forecast = FinalForecast(neighbours=1)
    forecast.add(5, curve(0.4, 0.5, 0.7), size=1.0)
    forecast.add(3, curve(0.4, 0.5, 0.6), size=1.0)  # the same point at epoch 2, a lower number
    assert forecast.draws(curve(0.4, 0.5), 2, 1.0, 3) == pytest.approx([0.6])


def test_chance_and_pessimistic_quantile() -> None:
    draws = np.array([0.1, 0.2, 0.3, 0.4])
    assert chance_above(draws, 0.25) == 0.5 and chance_above(np.empty(0), 0.9) == 1.0  # no forecast: no verdict
    assert pessimistic(draws, 0.0) == 0.1 and pessimistic(np.empty(0), 0.2) == -np.inf
    assert features(curve(0.2, 0.3, 0.5), 3, 0.01) == pytest.approx((0.5, 0.3, -2.0))


def test_neighbours_must_be_a_whole_number() -> None:
    with pytest.raises(ValueError, match="neighbours=0"):
        FinalForecast(neighbours=0)


def test_staircase_measures_the_front_as_the_report_does() -> None:
    rng = random.Random(1)
    for _ in range(50):
        points = [(10 ** rng.uniform(-3, -1), rng.uniform(0.1, 0.95)) for _ in range(rng.randint(1, 12))]
        front = Staircase(points, reference_size=0.5)
        volume = hypervolume([a for _, a in points], [s for s, _ in points], (0.0, 0.5))
        assert front.hypervolume() == pytest.approx(volume)
        size, accuracies = 10 ** rng.uniform(-3.5, -0.2), np.array([0.05, 0.5, 0.9, 1.0])
        added = [hypervolume([a for _, a in points] + [acc], [s for s, _ in points] + [size], (0.0, 0.5)) - volume
                 for acc in accuracies]
        assert front.gains(accuracies, size) == pytest.approx(added, abs=1e-12)
        steps = list(zip(front.sizes, front.best))  # the front's points: what each holds alone among them
        for (s, a), alone in zip(steps, front.contributions()):
            rest = [(s2, a2) for s2, a2 in steps if (s2, a2) != (s, a)]
            without = hypervolume([a2 for _, a2 in rest], [s2 for s2, _ in rest], (0.0, 0.5)) if rest else 0.0
            assert alone == pytest.approx(volume - without, abs=1e-12)
        assert front.at(front.sizes[0] / 2) == 0.0 and front.at(1.0) == pytest.approx(max(a for _, a in points))
    assert not Staircase([(0.6, 0.9)], reference_size=0.5).gains(np.array([1.0]), 0.7).any()  # beyond the reference
