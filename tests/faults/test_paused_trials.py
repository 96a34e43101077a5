"""Paused trials through the real CLI: set aside with their checkpoint, taken up again from it when sampling
ends, and neither lost nor run twice when the driver is killed while trials are paused or being taken up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from studykit import Driver, assert_consistent, failpoint_env, load_trials, msup_env, run_msup, sqlite_url, write_study

from msup.search.state.ledger import curve_of

pytestmark = [pytest.mark.slow, pytest.mark.faults]
SIGKILLED = -9
BUDGET = 6
# One trial at a time, so the same trials pause on every run; every trial the rule stops is paused.
PAUSING = {"name": "size_aware", "n_startup_trials": 1, "n_warmup_steps": 1, "percentile": 100, "min_peers": 1,
           "pause_within": 0.5}


def pausing_study(tmp_path: Path, name: str) -> Path:
    return write_study(tmp_path, name, trials=BUDGET, epochs=3, max_concurrent=1, pruner=PAUSING)


def reported_epochs(folder: Path, number: int) -> list[list[int]]:
    """The epochs each Ray trial of Optuna trial ``number`` reported (Ray's result.json), by first epoch."""
    stretches = []
    for results in folder.glob(f"ray/run-*/trial-{number:05d}-*/result.json"):
        epochs = [json.loads(line)["epoch"] for line in results.read_text().splitlines() if line.strip()]
        stretches.append([e for e in epochs if e is not None])
    return sorted(stretches)


def assert_taken_up_from_their_checkpoints(folder: Path, name: str) -> int:
    """Every paused trial resumed from the epoch it was paused at, and finished; returns how many paused."""
    trials = load_trials(sqlite_url(folder), name)
    resumed = [t for t in trials if "resumed_at_epoch" in t.user_attrs]
    for trial in trials:
        curve = curve_of(trial.user_attrs)
        assert sorted(curve) == list(range(1, len(curve) + 1)), f"trial {trial.number}: epochs missing"
        assert trial.state.is_finished()
    for trial in resumed:
        at, stretches = trial.user_attrs["resumed_at_epoch"], reported_epochs(folder, trial.number)
        # A killed driver may not have logged the first stretch: at most one Ray trial of it started at epoch 1.
        assert [s[0] for s in stretches].count(1) <= 1, f"trial {trial.number} trained from epoch 1 again: {stretches}"
        assert any(s[0] == at + 1 for s in stretches), f"trial {trial.number} did not go on from epoch {at}: {stretches}"
    return len(resumed)


def test_doubtful_trials_pause_and_resume_from_their_checkpoint_when_sampling_ends(tmp_path):
    runs, name = tmp_path / "runs", "pausing"
    launched = run_msup(["study", "launch", str(pausing_study(tmp_path, name))], msup_env(runs))
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert "PAUSED@1/3" in launched.stdout + launched.stderr  # the progress line says so
    accounting = assert_consistent(runs / name, name, BUDGET)
    assert assert_taken_up_from_their_checkpoints(runs / name, name) >= 1
    assert "PAUSED" not in set(accounting.table["state"])


@pytest.mark.parametrize("point", ["scheduler.after_pause@1", "searcher.after_resume@1"],
                         ids=["while trials are paused", "while a paused trial is taken up"])
def test_a_killed_driver_loses_and_repeats_nothing_of_paused_trials(tmp_path, point: str):
    runs, name = tmp_path / "runs", "pausing"
    env = failpoint_env(runs, tmp_path / "failpoints", f"{point}=kill_driver")
    env["MSUP_TABLES_EVERY_S"] = "1e9"
    with Driver(["study", "launch", str(pausing_study(tmp_path, name))], env, tmp_path / "launch.log") as driver:
        assert driver.wait(timeout=300) == SIGKILLED, driver.output()[-3000:]
    resumed = run_msup(["study", "resume", name], msup_env(runs))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_consistent(runs / name, name, BUDGET)  # nothing lost, nothing run twice
    assert assert_taken_up_from_their_checkpoints(runs / name, name) >= 1
