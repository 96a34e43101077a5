"""The results-table contract: what loads and what is refused with a one-line reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from analysis_fixtures import HEADER, make_table

from msup.analysis.table import (
    TableError,
    dense_size,
    format_size,
    load_trials,
    parameter_columns,
)

GOOD_ROW = "0,COMPLETE,2,0.8,0.81,0.79,1.5,1.2,1300000,42.6"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trials.csv"
    path.write_text(text)
    return path


def test_loads_a_valid_table_with_empty_cells(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER},sparsity_1,sparsity_2\n{GOOD_ROW},0.5,\n1,FAIL,,,,,,,,42.6,0.3,\n")
    trials = load_trials(path)
    assert trials["trial"].tolist() == [0, 1]
    assert trials.attrs["source"] == str(path)
    assert parameter_columns(trials) == ["coats", "sparsity_1", "sparsity_2"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        (f"{HEADER}\n", "no rows"),
        ("trial,state\n0,COMPLETE\n", "missing column"),
        (f"{HEADER}\n0,COMPLETE,2,high,0.81,0.79,1.5,1.2,1300000,42.6\n",
         "line 2: val_acc = 'high' is not a number"),
        (f"{HEADER}\n{GOOD_ROW}\n0,COMPLETE,2,0.8,0.81,0.79,1.5,1.2,1300000,42.6\n", "line 3: trial"),
        (f"{HEADER}\n0,DONE,2,0.8,0.81,0.79,1.5,1.2,1300000,42.6\n", "state = 'DONE'"),
        (f"{HEADER}\n0,COMPLETE,2,80,0.81,0.79,1.5,1.2,1300000,42.6\n", "fraction"),
        (f"{HEADER}\n0,COMPLETE,2,0.8,0.81,0.79,1.5,0,1300000,42.6\n", "positive"),
        (f"{HEADER}\n0,COMPLETE,,0.8,0.81,0.79,1.5,1.2,1300000,42.6\n", "coats"),
        (f"{HEADER}\n0.5,COMPLETE,2,0.8,0.81,0.79,1.5,1.2,1300000,42.6\n", "integer"),
    ],
)
def test_bad_tables_are_refused_with_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TableError, match=message) as error:
        load_trials(write(tmp_path, text))
    assert "\n" not in str(error.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="no such file"):
        load_trials(tmp_path / "absent.csv")


def test_sizes_in_the_unit_of_the_column() -> None:
    table = make_table([{"dense_mib": 1.5}])
    assert dense_size(table, "size_entropy_mib") == 1.5
    assert dense_size(table, "size_artifact_bytes") == 1.5 * 2**20
    assert format_size(1.5 * 2**20, "size_artifact_bytes") == "1,572,864 bytes"
    assert format_size(42.61016, "size_paper_mib") == "42.61 MiB"
