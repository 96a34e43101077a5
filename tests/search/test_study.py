"""Real studies: Ray Tune runs the trials, Optuna samples, the CLI drives it."""

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import optuna
import pandas as pd
import pytest
import sessions
import studykit
from studykit import MSUP, sqlite_url, write_study

from msup.cli import main

pytestmark = pytest.mark.slow


def load(folder: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=sqlite_url(folder))


def assert_consistent(folder: Path, name: str, budget: int) -> pd.DataFrame:
    return studykit.assert_consistent(folder, name, budget).table


def test_launch_extend_and_status(tmp_path, ray_session, capsys):
    runs = tmp_path / "runs"
    path = write_study(tmp_path, "tiny")
    assert main(["study", "launch", str(path), "--runs-dir", str(runs)]) == 0
    folder = runs / "tiny"
    table = assert_consistent(folder, "tiny", 4)
    complete = table[table["state"] == "COMPLETE"]
    assert len(complete) >= 1 and complete["test_acc"].notna().all()
    assert (complete["size_entropy_mib"] < complete["size_paper_mib"]).all()
    assert (complete["size_artifact_bytes"] > 0).all()
    assert all((folder / "artifacts" / f"{t:05d}.msup").is_file() for t in complete["trial"])
    assert {"pareto.png", "pareto.csv", "trials.parquet", "study.yaml"} <= {p.name for p in folder.iterdir()}
    study = load(folder, "tiny")
    assert study.metric_names == ["val_acc", "size_entropy_mib"] and study.best_trials

    from ray import tune

    from msup.search.execution.trainable import run_trial

    grid = tune.Tuner.restore(str(folder / "ray" / "run-1"), run_trial).get_results()
    assert len(grid) == 4 and not grid.errors

    assert main(["study", "launch", str(path), "--runs-dir", str(runs)]) == 2
    assert "msup study resume tiny" in capsys.readouterr().err

    assert main(["study", "resume", "tiny", "--runs-dir", str(runs), "--num-samples", "6"]) == 0
    assert_consistent(folder, "tiny", 6)
    assert (folder / "ray" / "run-2").is_dir()
    capsys.readouterr()
    assert main(["study", "status", "tiny", "--runs-dir", str(runs), "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert sum(info["counts"].values()) == 6 and info["driver_running"] is False and info["front"]


def test_dry_run_writes_nothing(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["study", "launch", str(write_study(tmp_path, "dry")), "--runs-dir", str(runs), "--dry-run"]) == 0
    assert "is valid" in capsys.readouterr().out and not runs.exists()


def test_resume_after_sigkill_of_the_driver(tmp_path):
    runs, name, budget = tmp_path / "runs", "killed", 6
    path = write_study(tmp_path, name, trials=budget, epochs=4)
    # Killed as the second finished trial is about to be told: one COMPLETE, the others unfinished.
    env = studykit.failpoint_env(runs, tmp_path / "failpoints", "searcher.before_tell@2=kill_driver")
    with studykit.Driver(["study", "launch", str(path)], env, tmp_path / "launch.log") as driver:
        assert driver.wait(timeout=300) == -9, driver.output()[-3000:]
    before = {t.number: t.state for t in load(runs / name, name).get_trials()}
    assert list(before.values()).count(optuna.trial.TrialState.COMPLETE) == 1
    assert any(not s.is_finished() for s in before.values())

    resumed = studykit.run_msup(["study", "resume", name], studykit.msup_env(runs))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    table = assert_consistent(runs / name, name, budget)
    assert not table[["outer_density", "lr"]].duplicated().any()  # the resumed sampler draws afresh
    for number, state in before.items():  # finished trials kept as they were
        if state.is_finished():
            assert table.loc[table["trial"] == number, "state"].item() == state.name


def test_a_size_budget_rejects_configurations_before_training(tmp_path):
    runs, name, budget = tmp_path / "runs", "budgeted", 4
    path = write_study(tmp_path, name, trials=budget, size_budget={"max": 0.006})  # about half the space is larger
    env = studykit.msup_env(runs)
    launched = studykit.run_msup(["study", "launch", str(path)], env)
    assert launched.returncode == 0, launched.stderr[-2000:]
    table = assert_consistent(runs / name, name, budget)  # rejected configurations use no budget
    rejected, trained = table[table["state"] == "REJECTED"], table[table["state"] != "REJECTED"]
    assert len(rejected) >= 1 and (rejected["size_entropy_mib"] > 0.006).all()
    assert rejected["rejected"].str.fullmatch(r"size 0\.\d+ MiB over the budget 0\.006 MiB").all()
    assert (rejected["stopped_by"] == "size_budget").all()
    assert rejected["epochs"].eq(0).all()
    assert (trained["size_entropy_mib"] <= 0.006).all() and len(trained) == budget
    for number in rejected["trial"]:
        assert not (runs / name / "artifacts" / f"{number:05d}.msup").exists()
    trials = load(runs / name, name).get_trials()
    assert all(t.constraints["size_budget"] > 0 for t in trials if t.number in set(rejected["trial"]))
    assert all(t.constraints["size_budget"] <= 0 for t in trials if t.number in set(trained["trial"]))
    status = studykit.run_msup(["study", "status", name], env)
    assert f"{len(rejected)} REJECTED" in status.stdout, status.stdout


def test_rejected_configurations_use_the_budget_when_the_study_file_says_so(tmp_path, ray_session):
    runs, name, budget = tmp_path / "runs", "counted", 4
    path = write_study(tmp_path, name, trials=budget, size_budget={"max": 0.006, "count_rejected": True})
    assert main(["study", "launch", str(path), "--runs-dir", str(runs)]) == 0
    table = pd.read_csv(runs / name / "trials.csv")
    rejected = int((table["state"] == "REJECTED").sum())
    assert len(table) == budget and 1 <= rejected < budget  # every configuration, trained or not, took a trial
    assert_consistent(runs / name, name, budget - rejected)
    assert main(["study", "resume", name, "--runs-dir", str(runs)]) == 0  # nothing left to run
    assert len(load(runs / name, name).get_trials()) == budget


def test_a_checkpoint_policy_by_time_saves_only_what_it_must(tmp_path, ray_session):
    """checkpoint.every_s longer than the study: one checkpoint per trial, after its last epoch."""
    runs, name, epochs = tmp_path / "runs", "sparse-checkpoints", 3
    path = write_study(tmp_path, name, trials=2, epochs=epochs, checkpoint={"every_s": 3600})
    assert main(["study", "launch", str(path), "--runs-dir", str(runs)]) == 0
    table = assert_consistent(runs / name, name, 2)
    assert list(table["epochs"]) == [epochs, epochs]  # every epoch reported (the pruner sees them all)
    assert not list((runs / name / "ray").rglob("events.out.tfevents.*"))  # TensorBoard only when named in loggers
    kept = sorted(p.name for p in (runs / name / "ray" / "run-1").glob("trial-*/checkpoint_*"))
    assert kept == ["checkpoint_000000", "checkpoint_000000"]  # Ray numbers checkpoints: only one was ever made


def test_a_dead_cluster_left_by_ray_start_is_not_joined(tmp_path):
    """`ray start` records its address in Ray's temp folder; once that head is gone a local study still runs."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))  # short: Ray's socket paths live under it
    try:
        (ray_tmp / "ray").mkdir()
        (ray_tmp / "ray" / "ray_current_cluster").write_text("192.0.2.2:41555")  # TEST-NET: nothing answers
        env = {**studykit.msup_env(tmp_path / "runs"), "RAY_TMPDIR": str(ray_tmp)}
        env.pop("RAY_ADDRESS", None)
        launched = studykit.run_msup(["study", "launch", str(write_study(tmp_path, "stale", trials=1, epochs=1))], env)
        assert launched.returncode == 0, launched.stderr[-2000:]
        assert_consistent(tmp_path / "runs" / "stale", "stale", 1)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


CLUSTER_DRIVER = """
import subprocess, sys
from ray.cluster_utils import Cluster

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
try:
    launched = subprocess.run([sys.argv[1], "study", "launch", sys.argv[2], "--address", cluster.address])
finally:
    cluster.shutdown()
sys.exit(launched.returncode)
"""


def test_two_node_cluster_runs_trials_on_both_nodes(tmp_path):
    """A head and a worker node on loopback; the study connects with --address."""
    path = write_study(tmp_path, "cluster", trials=4)
    script = tmp_path / "cluster_driver.py"
    script.write_text(CLUSTER_DRIVER)
    env = {**os.environ, "MSUP_RUNS": str(tmp_path / "runs")}
    run = sessions.run([sys.executable, str(script), MSUP, str(path)], 300, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    folder = tmp_path / "runs" / "cluster"
    assert_consistent(folder, "cluster", 4)
    nodes = {
        json.loads(line)["node_id"]
        for result in (folder / "ray" / "run-1").glob("trial-*/result.json")
        for line in result.read_text().splitlines()
    }
    assert len(nodes) == 2
