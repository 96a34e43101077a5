"""Fixtures for the analysis tests: a study directory on disk."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from analysis_fixtures import make_table


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    """runs/good/trials.csv: front = trials 0, 2, 4 (N = 1, 2, 3), plus trials to leave out."""
    directory = tmp_path / "runs" / "good"
    directory.mkdir(parents=True)
    rows = [
        {"coats": 1, "val_acc": 0.60, "size_entropy_mib": 0.2},
        {"coats": 1, "val_acc": 0.55, "size_entropy_mib": 0.3},
        {"coats": 2, "val_acc": 0.80, "size_entropy_mib": 0.6},
        {"coats": 2, "val_acc": 0.70, "size_entropy_mib": 0.9},
        {"coats": 3, "val_acc": 0.85, "size_entropy_mib": 1.2},
        {"state": "PRUNED", "coats": 3, "val_acc": 0.99, "size_entropy_mib": 0.1},
        {"state": "FAIL", "coats": 2, "val_acc": None, "size_entropy_mib": None},
    ]
    make_table(rows).to_csv(directory / "trials.csv", index=False)
    return directory


@pytest.fixture
def compared(study_dir: Path):  # noqa: ANN201 - a function that runs `msup pareto good --compare other`
    """``runs/other``, a copy of ``runs/good``, and a call of `msup pareto` overlaying both into ``out``."""
    from msup.cli import main

    other = study_dir.parent / "other"
    other.mkdir()
    shutil.copy(study_dir / "trials.csv", other / "trials.csv")
    return lambda out: main(["pareto", str(study_dir), "--compare", "other", "--runs-dir", str(study_dir.parent),
                             "--out", str(out)])
