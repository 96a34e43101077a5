"""Faults injected into real tiny studies, and the invariant after recovery.

Invariant: every trial of the budget is COMPLETE, PRUNED or FAIL exactly once,
none lost and none run twice, and trials.csv agrees with the Optuna storage row
for row (`studykit.assert_consistent`). Each case writes its figures (faults,
lost, duplicated, recovery time) to $MSUP_FAULTS_LOG when that is set; they are
the source of BENCHMARKS-faults.md.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path

import pytest
from studykit import (
    Driver, assert_consistent, count_states, load_trials, mid_training, msup_env, record, run_msup, sqlite_url,
    wait_until, write_study,
)

from msup.cli import main
from msup.search.searcher import StudySearcher
from msup.search.storage import load_or_create, open_storage
from msup.search.study_config import load_study_config

pytestmark = [pytest.mark.slow, pytest.mark.faults]
DIVERGING_LR = 1e30  # NaN loss within the first epoch (1e6 only makes the digits MLP's loss huge, not NaN)


def _finished(states: dict[str, int]) -> int:
    return states["COMPLETE"] + states["PRUNED"] + states["FAIL"]


def test_a_diverging_trial_fails_with_its_reason_and_the_study_goes_on(tmp_path):
    runs, name, budget = tmp_path / "runs", "diverge", 2
    space = {"parameters": {"lr": {"type": "categorical", "choices": [DIVERGING_LR, 0.1]}}}
    # Seed 9 of the random sampler draws lr = 0.1, then 1e30.
    path = write_study(tmp_path, name, trials=budget, space=space, sampler={"name": "random", "seed": 9})
    result = run_msup(["study", "launch", str(path)], msup_env(runs))
    assert result.returncode == 0, result.stderr[-3000:]

    table = assert_consistent(runs / name, name, budget).table
    diverged, healthy = table[table["lr"] == DIVERGING_LR], table[table["lr"] == 0.1]
    assert len(diverged) == 1 and len(healthy) == 1
    assert (diverged["state"] == "FAIL").all()
    assert diverged["error"].str.contains("TrainingDiverged: training diverged: loss nan").all()
    assert (healthy["state"] == "COMPLETE").all() and healthy["test_acc"].notna().all()
    assert "FAIL      TrainingDiverged" in result.stdout  # the progress line names the reason too
    record("trial diverges (lr 1e30: NaN loss)", faults=len(diverged), lost=0, duplicated=0, recovery_s=0.0)


def test_two_launches_of_one_study_at_once_leave_one_driver(tmp_path, capsys):
    runs, name, budget = tmp_path / "runs", "twice", 2
    path = write_study(tmp_path, name, trials=budget, epochs=8)
    env = msup_env(runs)
    with Driver(["study", "launch", str(path)], env, tmp_path / "a.log") as first, \
            Driver(["study", "launch", str(path)], env, tmp_path / "b.log") as second:
        start = time.monotonic()
        loser = wait_until_one_exits(first, second, timeout=120)
        refused_s = time.monotonic() - start
        winner = second if loser is first else first
        assert loser.process.returncode == 2, loser.output()[-3000:]
        refusal = loser.output().strip()
        assert len(refusal.splitlines()) == 1 and refusal.startswith("msup: error:"), refusal
        assert "already exists" in refusal or "already has a running driver" in refusal

        # A resume while the winner runs is refused by the driver lock (in this process: no start-up delay).
        wait_until(lambda: mid_training(sqlite_url(runs / name), name), 240, "a trial mid-training", winner)
        capsys.readouterr()
        assert main(["study", "resume", name, "--runs-dir", str(runs)]) == 2
        assert winner.process.poll() is None, "the driver ended before the resume was tried: lengthen its trials"
        busy = capsys.readouterr().err.strip()
        assert busy.startswith(f"msup: error: study {name!r} already has a running driver") and "\n" not in busy
        assert winner.wait(timeout=300) == 0, winner.output()[-3000:]
    assert_consistent(runs / name, name, budget)
    record("two launches at once, then a resume while the driver runs", faults=2, lost=0, duplicated=0,
           recovery_s=round(refused_s, 1))


def wait_until_one_exits(a: Driver, b: Driver, timeout: float) -> Driver:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for driver in (a, b):
            if driver.process.poll() is not None:
                return driver
        time.sleep(0.2)
    raise AssertionError("neither launch ended: the second one was not refused")


def _results(trial_dir: Path) -> list[dict]:
    path = trial_dir / "result.json"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def test_a_killed_trial_worker_continues_from_its_last_checkpoint(tmp_path):
    runs, name, budget, epochs = tmp_path / "runs", "worker", 2, 10
    path = write_study(tmp_path, name, trials=budget, epochs=epochs, max_concurrent=1)
    with Driver(["study", "launch", str(path)], msup_env(runs), tmp_path / "launch.log") as driver:
        ray_runs = runs / name / "ray" / "run-1"

        def trial_zero() -> Path | None:
            return next(iter(sorted(ray_runs.glob("trial-00000-*"))), None)

        wait_until(lambda: (d := trial_zero()) is not None and len(_results(d)) >= 3, 240, "3 epochs of trial 0", driver)
        reported = _results(trial_zero())
        pid = reported[-1]["pid"]
        # Only ever a Ray worker of this study's own driver (its session), never another process.
        assert os.getsid(pid) == driver.pid and Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::")
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: any(r["pid"] != pid for r in _results(trial_zero())), 240, "the restarted worker", driver)
        recovery_s = time.monotonic() - killed_at
        assert driver.wait(timeout=300) == 0, driver.output()[-3000:]

    table = assert_consistent(runs / name, name, budget).table
    assert list(table["state"]) == ["COMPLETE"] * budget and list(table["epochs"]) == [epochs] * budget
    results = _results(trial_zero())
    before = [r["epoch"] for r in results if r["pid"] == pid]
    after = [r["epoch"] for r in results if r["pid"] != pid]
    assert before[:3] == [1, 2, 3]
    assert after[0] > 1 and after[-1] == epochs  # went on from a checkpoint, not from epoch 1
    curve = load_trials(sqlite_url(runs / name), name)[0].user_attrs["curve"]
    assert sorted(map(int, curve)) == list(range(1, epochs + 1))
    record("SIGKILL of a trial's worker mid-training", faults=1, lost=0, duplicated=0,
           recovery_s=round(recovery_s, 1), resumed_at_epoch=after[0])


# When the driver dies, with a budget and epochs that leave time to catch that moment: right after it created the
# study (Ray starting), with the first trials mid-training, and with only the last trial left.
# (tests/search covers "right after the first COMPLETE".)
MOMENTS = {
    "starting": (2, 3, lambda storage, name, budget, folder: (folder / "study.yaml").exists()),
    "first-trials-running": (2, 3, lambda storage, name, budget, folder: mid_training(storage, name)),
    "last-trial-running": (3, 4, lambda storage, name, budget, folder: mid_training(storage, name, budget - 1)),
}


@pytest.mark.parametrize("moment", MOMENTS)
def test_resume_after_the_driver_is_killed(tmp_path, moment):
    budget, epochs, reached = MOMENTS[moment]
    runs, name = tmp_path / "runs", f"killed-{moment}"
    folder, storage = runs / name, sqlite_url(runs / name)
    path = write_study(tmp_path, name, trials=budget, epochs=epochs)
    env = msup_env(runs)
    with Driver(["study", "launch", str(path)], env, tmp_path / "launch.log") as driver:
        waited = wait_until(lambda: reached(storage, name, budget, folder), 240, moment, driver)
        driver.sigkill()
    before = {t.number: (t.state.name, t.values) for t in load_trials(storage, name)}
    assert sum(state != "RUNNING" for state, _ in before.values()) < budget, "killed too late: nothing to resume"

    start = time.monotonic()
    resumed = run_msup(["study", "resume", name], env)
    recovery_s = time.monotonic() - start
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    accounting = assert_consistent(folder, name, budget)
    after = {t.number: (t.state.name, t.values) for t in load_trials(storage, name)}
    for number, (state, values) in before.items():  # what had finished stays exactly as it was
        if state != "RUNNING":
            assert after[number] == (state, values)
    record(f"SIGKILL of the driver: {moment} ({waited:.0f} s in)", faults=1, lost=accounting.lost,
           duplicated=accounting.duplicated, recovery_s=round(recovery_s, 1),
           finished_before=sum(s != "RUNNING" for s, _ in before.values()))


def test_resume_with_a_truncated_ray_experiment_state(tmp_path):
    runs, name, budget = tmp_path / "runs", "damaged", 2
    folder, storage = runs / name, sqlite_url(runs / name)
    path = write_study(tmp_path, name, trials=budget, epochs=3, max_concurrent=1)
    env = msup_env(runs)
    with Driver(["study", "launch", str(path)], env, tmp_path / "launch.log") as driver:
        wait_until(lambda: mid_training(storage, name, finished_at_least=1), 240, "a finished trial", driver)
        driver.sigkill()
    assert _finished(count_states(storage, name)) < budget
    state = folder / "ray" / "run-1" / "tuner.pkl"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])

    start = time.monotonic()
    resumed = run_msup(["study", "resume", name], env)
    recovery_s = time.monotonic() - start
    assert "Traceback" not in resumed.stderr
    assert resumed.returncode == 0, resumed.stderr[-3000:]  # recovered from the Optuna storage
    assert "cannot restore Ray experiment run-1" in resumed.stdout
    accounting = assert_consistent(folder, name, budget)
    record("truncated ray/run-1/tuner.pkl, then resume", faults=2, lost=accounting.lost,
           duplicated=accounting.duplicated, recovery_s=round(recovery_s, 1), outcome="recovered")


def test_a_trial_the_dead_driver_had_only_begun_to_sample_is_not_lost(tmp_path):
    """A driver killed between Optuna's ask and the trial's first attributes leaves a bare RUNNING trial.

    The resumed searcher must give that trial a Ray trial rather than ask for a new
    one: otherwise it stays RUNNING forever and the study runs one trial too many.
    """
    config = load_study_config(write_study(tmp_path, "half", trials=2))
    storage = sqlite_url(tmp_path)
    study = load_or_create(open_storage(storage), "half", [config.accuracy, config.size], config.build_sampler())
    study.ask()  # where the dead driver stopped
    searcher = StudySearcher(config, storage, str(tmp_path))
    suggested = [searcher.suggest(f"ray-{i}")["optuna_trial"] for i in range(2)]
    assert suggested == [0, 1] and len(study.get_trials()) == 2
    assert all(not math.isnan(t.user_attrs["size_entropy_mib"]) for t in study.get_trials())
