"""The results table of a study, built from the Optuna storage (the source of truth).

One row per Optuna trial, columns as documented in `msup.analysis.table`: ``trial``,
``ray_trial_id``, ``state`` (the Optuna state, or REJECTED for a configuration
outside the size budget), every sampled parameter, ``epochs``, accuracies, the
three sizes, ``dense_mib``, ``compression``, ``wall_s``, ``train_s``,
``start_time``, ``end_time``, ``stopped_by`` (who ended it early, and why),
``error``, ``rejected`` (why it was never trained) and ``enqueued`` (its index
in the study file's ``enqueue:`` list).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from msup import failpoints
from msup.analysis.table import PAUSED, REJECTED
from msup.folder import Folder
from msup.search.state.keys import (
    ENQUEUED_ATTR,
    ERROR_ATTR,
    PAUSED_BY_ATTR,
    PRUNED_ATTR,
    RAY_ATTR,
    REJECTED_ATTR,
    STOPPED_BY_ATTR,
    TRAIN_S_ATTR,
    VALUES_ATTR,
)
from msup.search.state.ledger import curve_of, outcome

_ATTR_COLUMNS = (
    "best_val_acc", "test_acc", "best_test_acc", "size_paper_mib", "size_entropy_mib",
    "size_artifact_bytes", "dense_mib", "wall_s", TRAIN_S_ATTR,
)


def trials_table(study: optuna.Study, accuracy: str = "val_acc") -> pd.DataFrame:
    """A DataFrame of every trial of ``study``, in trial order."""
    rows = [_row(t, accuracy) for t in study.get_trials(deepcopy=False)]
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    ordered = ["trial", "ray_trial_id", "state"]
    params = [c for c in table.columns if c not in ordered and c not in _METRICS]
    return table[ordered + sorted(params, key=_param_order) + [c for c in _METRICS if c in table.columns]]


_METRICS = ("epochs", "val_acc", *_ATTR_COLUMNS, "compression", "start_time", "end_time", "stopped_by", "error",
            "rejected", "enqueued")


def _param_order(name: str) -> tuple[int, str]:
    if name == "coats":
        return (0, "")
    if name.startswith("sparsity_"):
        return (1, f"{int(name.split('_')[1]):03d}")
    return (2, name)


def _row(trial: optuna.trial.FrozenTrial, accuracy: str) -> dict[str, Any]:
    attrs = trial.user_attrs
    curve = curve_of(attrs)
    row: dict[str, Any] = {
        "trial": trial.number,
        "ray_trial_id": attrs.get(RAY_ATTR, ""),
        "state": outcome(trial.state, attrs),
        **attrs.get(VALUES_ATTR, {}),
        "epochs": max(curve) if curve else 0,
        "val_acc": curve[max(curve)] if curve else math.nan,
    }
    if trial.values is not None and accuracy == "val_acc":
        row["val_acc"] = trial.values[0]
    for key in _ATTR_COLUMNS:
        row[key] = attrs.get(key, math.nan)
    if math.isnan(row["best_val_acc"]) and curve:
        row["best_val_acc"] = max(curve.values())
    size = row["size_entropy_mib"]
    row["compression"] = row["dense_mib"] / size if size and not math.isnan(size) else math.nan
    row["start_time"], row["end_time"] = trial.datetime_start, trial.datetime_complete
    row["stopped_by"] = stopped_by(row["state"], attrs)
    row["error"] = attrs.get(ERROR_ATTR, "")
    row["rejected"] = attrs.get(REJECTED_ATTR, "")
    row["enqueued"] = attrs.get(ENQUEUED_ATTR)
    return row


def stopped_by(state: str, attrs: dict[str, Any]) -> str:
    """Who ended a trial before its last epoch, or kept it from training, and why; "" for one that trained out."""
    if STOPPED_BY_ATTR in attrs:
        return str(attrs[STOPPED_BY_ATTR])
    if state == PAUSED:
        return f"paused by {attrs.get(PAUSED_BY_ATTR, 'a pruner')}"
    if state == REJECTED:
        return "size_budget"
    if state == "FAIL":
        return "failure"
    return "pruner" if PRUNED_ATTR in attrs else ""  # a study written before reasons were kept


def write_tables(study: optuna.Study, folder: Folder | Path, accuracy: str = "val_acc") -> str:
    """Write ``trials.csv`` and ``trials.parquet`` into the study folder, each atomically; returns the CSV's location."""
    folder = Folder(folder)
    table = trials_table(study, accuracy)
    csv_location = folder.write_text("trials.csv", table.to_csv(index=False))
    failpoints.reach("study.between_tables")
    parquet = io.BytesIO()
    table.to_parquet(parquet, index=False)
    folder.write_bytes("trials.parquet", parquet.getvalue())
    return csv_location
