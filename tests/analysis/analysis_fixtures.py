"""Small hand-made results tables for the analysis tests.

A plain module (not conftest) so test files can import it by a name no other
test directory uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from msup.analysis.table import REQUIRED_COLUMNS, validate_trials

HEADER = ",".join(REQUIRED_COLUMNS)  # the first line of a minimal trials.csv

DEFAULT_ROW = {
    "state": "COMPLETE", "coats": 1, "val_acc": 0.5, "best_val_acc": 0.5, "test_acc": 0.5,
    "size_paper_mib": 1.0, "size_entropy_mib": 1.0, "size_artifact_bytes": 1_000_000, "dense_mib": 40.0,
}


def make_table(rows: Sequence[dict[str, object]]) -> pd.DataFrame:
    """A validated table; each row overrides `DEFAULT_ROW` and is numbered in order."""
    return validate_trials(pd.DataFrame([{"trial": i, **DEFAULT_ROW, **row} for i, row in enumerate(rows)]))
