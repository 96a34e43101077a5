"""Pareto fronts and hypervolume for accuracy (maximised) against size (minimised).

Dominance: trial A dominates B when A is at least as accurate *and* at least as
small, and strictly better in one of the two. Exact duplicates (same size, same
accuracy) therefore never dominate each other and are all kept on the front, so
repeats of one result stay visible and the front is independent of row order.

Hypervolume is the area between the front and a reference point
(accuracy ``acc_ref``, size ``size_ref``): the set of (size, accuracy) that
some trial beats. By default the size axis is measured in decades
(log10), as the figures draw it, so the unit is accuracy fraction x decades of
size; with ``log_size=False`` it is accuracy fraction x the size unit. The
default reference is accuracy 0 and the dense fp32 size of the network (the
largest size a compressed model should ever have); trials at or beyond the
reference add nothing.

``python -m msup.analysis.pareto`` is the command line (see `msup.analysis.report`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from msup.analysis.table import (
    COMPLETE,
    END_TIME,
    EPOCHS,
    FAIL,
    PRUNED,
    SIZE_ENTROPY_MIB,
    START_TIME,
    STATE,
    TRIAL,
    VAL_ACC,
    TableError,
    complete_trials,
    dense_size,
)

FRONT_COLUMN = "on_front"
HYPERVOLUME = "hypervolume"
TRIAL_EPOCHS, ELAPSED_S = "trial_epochs", "elapsed_s"  # compute spent, in `hypervolume_history`
FINISHED_STATES = (COMPLETE, PRUNED, FAIL)


def pareto_mask(accuracy: ArrayLike, size: ArrayLike) -> np.ndarray:
    """Boolean mask of the non-dominated points (see module docstring for ties).

    Sorts by size once, so it costs O(n log n) rather than comparing all pairs.
    """
    acc, size_ = _finite_pair(accuracy, size)
    if acc.size == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((-acc, size_))  # by size, then most accurate first
    acc_sorted, size_sorted = acc[order], size_[order]
    starts = np.flatnonzero(np.r_[True, size_sorted[1:] != size_sorted[:-1]])
    group_best = np.maximum.reduceat(acc_sorted, starts)
    # Best accuracy among all strictly smaller sizes, per size group.
    smaller_best = np.r_[-np.inf, np.maximum.accumulate(group_best)[:-1]]
    group_of = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, acc.size]))
    keep_sorted = (acc_sorted == group_best[group_of]) & (acc_sorted > smaller_best[group_of])
    mask = np.empty(acc.size, dtype=bool)
    mask[order] = keep_sorted
    return mask


def pareto_front(
    trials: pd.DataFrame, x: str = SIZE_ENTROPY_MIB, y: str = VAL_ACC, by: str | None = None
) -> pd.DataFrame:
    """Rows of the COMPLETE trials on the front, smallest size first.

    With ``by`` (e.g. ``"coats"``) each value of that column gets its own front,
    and the result is sorted by that column first.
    """
    rows = complete_trials(trials, x, y)
    mask = mark_front(rows, x, y, by)
    keys = [by, x, TRIAL] if by else [x, TRIAL]
    return rows[mask].sort_values(keys, kind="stable")


def mark_front(rows: pd.DataFrame, x: str, y: str, by: str | None = None) -> pd.Series:
    """Boolean Series (aligned with ``rows``): on the front of its ``by`` group, or overall."""
    if by is None:
        return pd.Series(pareto_mask(rows[y], rows[x]), index=rows.index, name=FRONT_COLUMN)
    if by not in rows.columns:
        raise TableError(f"cannot group fronts by {by!r}: no such column")
    masks = [
        pd.Series(pareto_mask(group[y], group[x]), index=group.index)
        for _, group in rows.groupby(by, dropna=False, sort=False)
    ]
    return pd.concat(masks).reindex(rows.index).rename(FRONT_COLUMN)


def default_reference(trials: pd.DataFrame, x: str) -> tuple[float, float]:
    """(accuracy 0, dense fp32 size in the unit of ``x``); the largest trial size if dense is unknown."""
    dense = dense_size(trials, x)
    if dense is None:
        dense = float(trials[x].max())
    if not np.isfinite(dense):
        raise TableError(f"{trials.attrs.get('source', 'table')}: no size to use as reference")
    return 0.0, dense


def hypervolume(
    accuracy: ArrayLike, size: ArrayLike, reference: tuple[float, float], log_size: bool = True
) -> float:
    """Area dominated by the points up to ``reference`` = (acc_ref, size_ref).

    Units: accuracy x decades of size (``log_size``), else accuracy x size unit.
    Points are not required to be non-dominated or inside the reference box.
    """
    acc, size_ = _finite_pair(accuracy, size)
    if acc.size == 0:
        return 0.0
    acc_ref, size_ref = reference
    if log_size:
        if size_ref <= 0 or np.any(size_ <= 0):
            raise ValueError("sizes must be positive on a log scale")
        size_, size_ref = np.log10(size_), float(np.log10(size_ref))
    order = np.argsort(size_, kind="stable")
    left_edges = np.minimum(size_[order], size_ref)
    widths = np.diff(np.r_[left_edges, size_ref])
    # Between one size and the next, the best accuracy reached so far is the height.
    heights = np.clip(np.maximum.accumulate(acc[order]) - acc_ref, 0.0, None)
    return float(np.sum(widths * heights))


def hypervolume_history(
    trials: pd.DataFrame,
    x: str = SIZE_ENTROPY_MIB,
    y: str = VAL_ACC,
    reference: tuple[float, float] | None = None,
    log_size: bool = True,
) -> pd.DataFrame:
    """The front's hypervolume after each finished trial, against the compute spent by then.

    One row per finished trial (COMPLETE, PRUNED or FAIL), in the order they ended
    (``end_time``; trial number where it is unknown). Columns ``trial``,
    ``trial_epochs`` (the epochs of every trial ended so far), ``elapsed_s``
    (seconds from the study's first trial start to this end; NaN without
    times) and ``hypervolume`` (of the COMPLETE trials among them).
    ``reference`` defaults to `default_reference`; pass one to compare several studies.
    """
    complete_trials(trials, x, y)  # a clear error when there is nothing to measure
    if reference is None:
        reference = default_reference(trials, x)
    rows = trials[trials[STATE].isin(FINISHED_STATES)]
    timed = END_TIME in rows.columns and START_TIME in rows.columns and rows[END_TIME].notna().any()
    rows = rows.sort_values([END_TIME, TRIAL] if timed else [TRIAL], kind="stable", na_position="last")
    counted = ((rows[STATE] == COMPLETE) & rows[x].notna() & rows[y].notna()).to_numpy()
    acc, size_ = rows[y].to_numpy(float), rows[x].to_numpy(float)
    values, current = [], 0.0
    for k in range(len(rows)):
        if counted[k]:  # only a COMPLETE trial moves the front
            current = hypervolume(acc[: k + 1][counted[: k + 1]], size_[: k + 1][counted[: k + 1]], reference, log_size)
        values.append(current)
    epochs = rows[EPOCHS].fillna(0).to_numpy(float) if EPOCHS in rows.columns else np.ones(len(rows))
    elapsed = ((rows[END_TIME] - trials[START_TIME].min()).dt.total_seconds().to_numpy(float) if timed
               else np.full(len(rows), np.nan))
    return pd.DataFrame({TRIAL: rows[TRIAL].to_numpy(), TRIAL_EPOCHS: np.cumsum(epochs), ELAPSED_S: elapsed,
                         HYPERVOLUME: values})


def shared_reference(tables: Sequence[pd.DataFrame], x: str) -> tuple[float, float]:
    """One reference for several studies: accuracy 0 and the largest of their default sizes."""
    return 0.0, max(default_reference(table, x)[1] for table in tables)


BUDGET_MULTIPLES = (1.0, 1.5, 2.0, 3.0)
BUDGET = "budget"


def best_within_budgets(
    studies: Mapping[str, pd.DataFrame], x: str = SIZE_ENTROPY_MIB, y: str = VAL_ACC,
    multiples: Sequence[float] = BUDGET_MULTIPLES,
) -> pd.DataFrame:
    """The best ``y`` each study reaches at sizes up to a few budgets, one row per budget.

    Budgets are ``multiples`` of the smallest *useful* COMPLETE size across all
    studies: the smallest trial at least half as accurate as the best trial of
    any study. A tiny network at chance accuracy is on the front too, and
    anchoring there would read every study at chance. Every study is read at the
    same sizes, and a study with nothing that small gets NaN. Columns:
    ``budget`` (in the unit of ``x``), ``multiple``, then one column per study.
    """
    rows = {name: complete_trials(trials, x, y) for name, trials in studies.items()}
    best = max((float(r[y].max()) for r in rows.values() if len(r)), default=None)
    if best is None:
        raise TableError("no COMPLETE trial in any study: no size budget to read the fronts at")
    smallest = min(float(r.loc[r[y] >= best / 2, x].min()) for r in rows.values() if (r[y] >= best / 2).any())
    table = pd.DataFrame({BUDGET: [smallest * m for m in multiples], "multiple": list(multiples)})
    for name, r in rows.items():
        table[name] = [r.loc[r[x] <= budget, y].max() if (r[x] <= budget).any() else np.nan for budget in table[BUDGET]]
    return table


def _finite_pair(accuracy: ArrayLike, size: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    acc, size_ = np.asarray(accuracy, dtype=float), np.asarray(size, dtype=float)
    if acc.shape != size_.shape or acc.ndim != 1:
        raise ValueError("accuracy and size must be 1-D arrays of the same length")
    if not (np.isfinite(acc).all() and np.isfinite(size_).all()):
        raise ValueError("accuracy and size must be finite")
    return acc, size_

