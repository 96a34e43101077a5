"""Hypervolume against Optuna's exact computation, and its history over trials."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from analysis_fixtures import make_table
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna._hypervolume import compute_hypervolume

from msup.analysis.pareto import (
    default_reference,
    hypervolume,
    hypervolume_history,
    shared_reference,
)

POINTS = st.lists(
    st.tuples(st.floats(0.0, 1.0), st.floats(1e-3, 1e3)), min_size=0, max_size=60,
)
REFERENCE = st.tuples(st.floats(0.0, 0.5), st.floats(1e-2, 1e3))


def optuna_hypervolume(accuracy: np.ndarray, size: np.ndarray, reference: tuple[float, float]) -> float:
    """Optuna minimises, so accuracy is negated; points outside the box add nothing."""
    inside = (accuracy >= reference[0]) & (size <= reference[1])
    losses = np.column_stack([-accuracy[inside], size[inside]])
    return compute_hypervolume(losses.reshape(-1, 2), np.array([-reference[0], reference[1]]))


@settings(max_examples=200, deadline=None)
@given(POINTS, REFERENCE, st.booleans())
def test_matches_optuna(points: list[tuple[float, float]], reference: tuple[float, float], log_size: bool) -> None:
    accuracy = np.array([a for a, _ in points], dtype=float)
    size = np.array([s for _, s in points], dtype=float)
    if log_size:
        expected = optuna_hypervolume(accuracy, np.log10(size), (reference[0], np.log10(reference[1])))
    else:
        expected = optuna_hypervolume(accuracy, size, reference)
    assert hypervolume(accuracy, size, reference, log_size) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_matches_optuna_on_large_random_sets() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        accuracy, size = rng.uniform(0, 1, 500), 10 ** rng.uniform(-2, 2, 500)
        expected = optuna_hypervolume(accuracy, np.log10(size), (0.0, 2.0))
        assert hypervolume(accuracy, size, (0.0, 100.0)) == pytest.approx(expected, rel=1e-9)


def test_one_point_is_a_rectangle_in_decades() -> None:
    assert hypervolume([0.8], [0.1], (0.0, 10.0)) == pytest.approx(0.8 * 2)
    assert hypervolume([0.8], [0.1], (0.0, 10.0), log_size=False) == pytest.approx(0.8 * 9.9)
    assert hypervolume([], [], (0.0, 10.0)) == 0.0


def test_default_reference_is_accuracy_zero_and_dense_size_in_the_column_unit() -> None:
    table = make_table([{"dense_mib": 2.0}])
    assert default_reference(table, "size_entropy_mib") == (0.0, 2.0)
    assert default_reference(table, "size_artifact_bytes") == (0.0, 2.0 * 2**20)
    no_dense = make_table([{"dense_mib": None, "size_paper_mib": 3.0}])
    assert default_reference(no_dense, "size_paper_mib") == (0.0, 3.0)
    assert shared_reference([table, no_dense], "size_paper_mib") == (0.0, 3.0)


def test_history_follows_trial_order_and_counts_every_finished_trials_epochs() -> None:
    rows = [
        {"val_acc": 0.5, "size_entropy_mib": 1.0, "epochs": 5},
        {"state": "PRUNED", "val_acc": 0.99, "size_entropy_mib": 0.01, "epochs": 2},
        {"val_acc": 0.4, "size_entropy_mib": 2.0, "epochs": 5},
        {"state": "RUNNING", "val_acc": 0.9, "size_entropy_mib": 0.1, "epochs": 3},
        {"val_acc": 0.7, "size_entropy_mib": 0.5, "epochs": 5},
    ]
    table = make_table(rows).sample(frac=1.0, random_state=3)  # row order must not matter
    history = hypervolume_history(table, reference=(0.0, 10.0))
    assert history["trial"].tolist() == [0, 1, 2, 4]  # a pruned trial spends compute; a running one has not ended
    assert history["trial_epochs"].tolist() == [5, 7, 12, 17]
    assert history["elapsed_s"].isna().all()  # no times in this table
    first = hypervolume([0.5], [1.0], (0.0, 10.0))
    expected = [first, first, first, hypervolume([0.5, 0.7], [1.0, 0.5], (0.0, 10.0))]
    assert history["hypervolume"].tolist() == pytest.approx(expected)


def test_history_follows_the_order_trials_ended_in_and_the_clock() -> None:
    start = pd.Timestamp("2026-12-04 10:00:00")
    rows = [
        {"val_acc": 0.5, "size_entropy_mib": 1.0, "epochs": 5, "start_time": start,
         "end_time": start + pd.Timedelta(seconds=90)},
        {"val_acc": 0.7, "size_entropy_mib": 0.5, "epochs": 3, "start_time": start + pd.Timedelta(seconds=5),
         "end_time": start + pd.Timedelta(seconds=30)},
    ]
    history = hypervolume_history(make_table(rows), reference=(0.0, 10.0))
    assert history["trial"].tolist() == [1, 0]  # trial 1 ended first
    assert history["trial_epochs"].tolist() == [3, 8]
    assert history["elapsed_s"].tolist() == [30.0, 90.0]
    assert history["hypervolume"].iloc[0] == pytest.approx(hypervolume([0.7], [0.5], (0.0, 10.0)))
