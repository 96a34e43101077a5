"""The front against a brute-force definition of dominance, ties and groups included."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from analysis_fixtures import make_table
from hypothesis import given, settings
from hypothesis import strategies as st

from msup.analysis.pareto import pareto_front, pareto_mask
from msup.analysis.table import TableError

# Few distinct values, so that ties in size, accuracy or both are common.
ROWS = st.lists(
    st.fixed_dictionaries({
        "state": st.sampled_from(["COMPLETE", "COMPLETE", "PRUNED", "FAIL", "RUNNING"]),
        "coats": st.integers(1, 3),
        "val_acc": st.integers(0, 6).map(lambda k: k / 6),
        "size_entropy_mib": st.integers(1, 6).map(float),
    }),
    min_size=1, max_size=40,
)


def brute_force_front(rows: pd.DataFrame) -> set[int]:
    """Trial numbers no other row beats: >= in both objectives and > in one."""
    front = set()
    for _, a in rows.iterrows():
        beaten = any(
            b["val_acc"] >= a["val_acc"] and b["size_entropy_mib"] <= a["size_entropy_mib"]
            and (b["val_acc"] > a["val_acc"] or b["size_entropy_mib"] < a["size_entropy_mib"])
            for _, b in rows.iterrows()
        )
        if not beaten:
            front.add(int(a["trial"]))
    return front


@settings(max_examples=60, deadline=None)
@given(ROWS)
def test_front_matches_brute_force_on_complete_trials(rows: list[dict[str, object]]) -> None:
    table = make_table(rows)
    complete = table[table["state"] == "COMPLETE"]
    if complete.empty:
        with pytest.raises(TableError, match="no COMPLETE trial"):
            pareto_front(table)
        return
    front = pareto_front(table)
    assert set(front["trial"]) == brute_force_front(complete)
    assert (front["state"] == "COMPLETE").all()
    assert list(front["size_entropy_mib"]) == sorted(front["size_entropy_mib"])


@settings(max_examples=40, deadline=None)
@given(ROWS)
def test_per_group_fronts_match_brute_force_per_group(rows: list[dict[str, object]]) -> None:
    table = make_table([{**row, "state": "COMPLETE"} for row in rows])
    front = pareto_front(table, by="coats")
    for coats, group in table.groupby("coats"):
        assert set(front.loc[front["coats"] == coats, "trial"]) == brute_force_front(group)
    assert list(front["coats"]) == sorted(front["coats"])


def test_exact_duplicates_both_stay_on_the_front() -> None:
    mask = pareto_mask([0.9, 0.9, 0.8, 0.9], [1.0, 1.0, 1.0, 2.0])
    assert mask.tolist() == [True, True, False, False]


def test_mask_does_not_depend_on_row_order() -> None:
    rng = np.random.default_rng(1)
    accuracy, size = rng.integers(0, 5, 200) / 5, rng.integers(1, 6, 200).astype(float)
    order = rng.permutation(200)
    assert np.array_equal(pareto_mask(accuracy, size)[order], pareto_mask(accuracy[order], size[order]))


def test_any_accuracy_and_size_column() -> None:
    table = make_table([
        {"test_acc": 0.9, "size_paper_mib": 2.0, "val_acc": 0.1},
        {"test_acc": 0.8, "size_paper_mib": 1.0, "val_acc": 0.2},
        {"test_acc": 0.7, "size_paper_mib": 3.0, "val_acc": 0.3},
    ])
    assert pareto_front(table, x="size_paper_mib", y="test_acc")["trial"].tolist() == [1, 0]


def test_complete_rows_without_the_chosen_columns_are_ignored() -> None:
    table = make_table([{"test_acc": None, "val_acc": 0.99}, {"test_acc": 0.5}])
    assert pareto_front(table, y="test_acc")["trial"].tolist() == [1]


def test_unknown_columns_are_rejected() -> None:
    table = make_table([{}])
    with pytest.raises(TableError, match="size column"):
        pareto_front(table, x="wall_s")
    with pytest.raises(TableError, match="accuracy column"):
        pareto_front(table, y="compression")
    with pytest.raises(TableError, match="no such column"):
        pareto_front(table, by="optimizer")


def test_empty_and_non_finite_inputs() -> None:
    assert pareto_mask([], []).tolist() == []
    with pytest.raises(ValueError, match="finite"):
        pareto_mask([0.5, np.nan], [1.0, 2.0])
