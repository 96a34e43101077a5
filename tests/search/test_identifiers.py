"""Identifiers and free text stay text in every reader of the results table, whatever their characters.

Ray's trial ids are 8 hexadecimal characters: about 1 in 43 is all digits, and an
id such as ``00123456`` or ``12345e67`` must not become a number.
"""

from __future__ import annotations

import io
import shutil

import optuna
import pandas as pd
import pytest
import sessions
from optuna.trial import TrialState, create_trial
from studykit import MSUP, assert_consistent, msup_env, write_study

from msup import Study
from msup.analysis.report import load_study, write_study_report
from msup.analysis.table import TEXT_COLUMNS, load_trials
from msup.search.state.storage import default_storage_url, load_or_create, open_storage
from msup.search.state.table import write_tables

IDS = ["55796207", "00123456", "12345e67"]
ERRORS = ["", "", "NA"]  # an error message that reads as a missing value to pandas' defaults


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> object:
    root = tmp_path_factory.mktemp("identifiers")
    runs = root / "runs"
    (runs / "ids").mkdir(parents=True)
    shutil.move(write_study(root, "ids", trials=3, epochs=2), runs / "ids" / "study.yaml")
    study = load_or_create(open_storage(default_storage_url(runs / "ids")), "ids", ["val_acc", "size_entropy_mib"],
                           optuna.samplers.RandomSampler(seed=0))
    for number, (ray_id, error) in enumerate(zip(IDS, ERRORS)):
        attrs = {"ray_trial_id": ray_id, "curve.1": 0.5, "curve.2": 0.6 + number / 10, "values": {"coats": 1, "lr": 0.1},
                 "size_entropy_mib": 0.01 * (number + 1), "size_paper_mib": 0.02, "size_artifact_bytes": 900.0,
                 "dense_mib": 0.3, "test_acc": 0.6}
        if error:
            study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={**attrs, "error": error}))
        else:
            study.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.6 + number / 10, 0.01 * (number + 1)],
                                         user_attrs=attrs))
    write_tables(study, runs / "ids")
    return runs


def _texts(table: pd.DataFrame, column: str) -> list[str]:
    return ["" if pd.isna(value) else value for value in table[column]]


def test_every_reader_reads_ids_and_messages_as_the_storage_holds_them(runs):
    folder = runs / "ids"
    readers = {
        "load_trials": load_trials(folder / "trials.csv"),
        "parquet": pd.read_parquet(folder / "trials.parquet"),
        "Study.trials": Study.load("ids", runs).trials,
        "msup pareto's table": load_study(folder).trials,
        "status --format csv": load_trials(io.BytesIO(sessions.run(
            [MSUP, "study", "status", "ids", "--format", "csv"], 120, env=msup_env(runs)).stdout.encode())),
    }
    for reader, table in readers.items():
        assert _texts(table, "ray_trial_id") == IDS, reader
        assert _texts(table, "error") == ERRORS, reader
        assert all(isinstance(value, str) for value in table["ray_trial_id"]), reader
    assert assert_consistent(folder, "ids", budget=3).table["ray_trial_id"].tolist() == IDS


def test_the_front_file_keeps_its_ids_as_text(runs):
    write_study_report(runs / "ids")
    front = load_trials(runs / "ids" / "pareto.csv")
    assert front["ray_trial_id"].tolist() == IDS[:2]


def test_parquet_stores_text_columns_as_strings(runs):
    import pyarrow.parquet as pq

    schema = pq.read_schema(runs / "ids" / "trials.parquet")
    assert all(str(schema.field(name).type) in ("string", "large_string") for name in TEXT_COLUMNS)
