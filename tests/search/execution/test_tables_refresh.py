"""trials.csv is refreshed while a study runs, at a bounded rate."""

from __future__ import annotations

import optuna
import pandas as pd

from msup.search.execution.runner import TablesRefresh
from msup.search.state.storage import load_or_create, open_storage


def test_tables_are_rewritten_at_most_once_per_interval(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = load_or_create(open_storage(url), "live", ["val_acc", "size_entropy_mib"], optuna.samplers.RandomSampler(seed=0))
    refresh = TablesRefresh(url, "live", str(tmp_path), "val_acc", every_s=3600)
    study.tell(study.ask(), [0.5, 0.01])
    refresh.on_trial_complete(0, [], None)
    assert not (tmp_path / "trials.csv").exists()  # within the interval: nothing read, nothing written

    refresh._every_s = 0.0
    refresh.on_trial_complete(0, [], None)
    study.tell(study.ask(), [0.6, 0.02])
    assert list(pd.read_csv(tmp_path / "trials.csv")["state"]) == ["COMPLETE"]
    refresh.on_trial_error(0, [], None)
    assert list(pd.read_parquet(tmp_path / "trials.parquet")["val_acc"]) == [0.5, 0.6]
