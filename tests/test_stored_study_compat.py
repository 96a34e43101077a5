"""A study folder written by msup 0.1.0 before the package split keeps working: status, pareto, resume.

The fixture (tests/fixtures/study-0.1.0/) is a finished 2-trial study: its study.yaml, optuna.db and
trials.csv as that version wrote them (its Ray experiment and model files left out). Its stored
attribute keys, file names and resolved study file are what these tests hold the current code to;
reading it must import neither Ray nor torch.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from studykit import MSUP, msup_env, run_msup, sqlite_url

FIXTURE = Path(__file__).parent / "fixtures" / "study-0.1.0"
NAME = "compat"


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """The fixture as a study under a runs folder; its storage URL points at its new place, as a user moving it would set."""
    folder = tmp_path / "runs" / NAME
    shutil.copytree(FIXTURE, folder)
    study = yaml.safe_load((folder / "study.yaml").read_text())
    study["storage"] = sqlite_url(folder)
    (folder / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    return tmp_path / "runs"


def test_status_of_an_old_study_imports_neither_ray_nor_torch(runs: Path) -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", MSUP, "study", "status", NAME, "--format", "json"],
                          env=msup_env(runs), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    status = json.loads(done.stdout)
    assert status["counts"]["COMPLETE"] + status["counts"]["PRUNED"] == 2 and status["front"]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert not imported & {"ray", "torch"}


@pytest.mark.slow
def test_an_old_study_draws_its_front_and_resumes_to_more_trials(runs: Path) -> None:
    drawn = run_msup(["pareto", NAME], msup_env(runs))
    assert drawn.returncode == 0, drawn.stderr[-3000:]
    assert (runs / NAME / "pareto.png").stat().st_size > 0

    resumed = run_msup(["study", "resume", NAME, "--num-samples", "3"], msup_env(runs))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    status = json.loads(run_msup(["study", "status", NAME, "--format", "json"], msup_env(runs)).stdout)
    assert sum(status["counts"][state] for state in ("COMPLETE", "PRUNED", "FAIL")) == 3
