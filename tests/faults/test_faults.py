"""Faults injected into real tiny studies at named fail points, and the invariant after recovery.

Invariant: every trial of the budget is COMPLETE, PRUNED or FAIL exactly once,
none lost and none run twice, and trials.csv agrees with the Optuna storage row
for row (`studykit.assert_consistent`). For a study a compute budget ends, whose
trial set is not fixed in advance: every trial it started is COMPLETE, PRUNED
or FAIL exactly once, no finished trial runs again, and the trial-epochs spent
(counted from the storage) lie between the budget N and N + T - 1. Every fault fires at a fail point
(`msup.failpoints`), never at a moment picked by the clock: what each case
tests does not depend on how fast the machine is. Each case writes its figures
(faults, lost, duplicated, recovery time) to $MSUP_FAULTS_LOG when that is set;
they are the source of BENCHMARKS-faults.md.
"""

from __future__ import annotations

import errno
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sessions
import yaml
from studykit import (
    MSUP,
    Driver,
    assert_consistent,
    count_states,
    failpoint_env,
    load_trials,
    msup_env,
    record,
    release,
    run_msup,
    spent_trial_epochs,
    sqlite_url,
    wait_for_pause,
    write_study,
)

from msup.cli import main
from msup.search.config.preflight import load_study_config
from msup.search.execution.searcher import StudySearcher
from msup.search.sampling.factory import study_sampler
from msup.search.state.ledger import curve_of
from msup.search.state.storage import load_or_create, open_storage

pytestmark = [pytest.mark.slow, pytest.mark.faults]
DIVERGING_LR = 1e30  # NaN loss within the first epoch (1e6 only makes the digits MLP's loss huge, not NaN)
SIGKILLED = -9


def _finished(states: dict[str, int]) -> int:
    return states["COMPLETE"] + states["PRUNED"] + states["FAIL"]


def _results(trial_dir: Path) -> list[dict]:
    path = trial_dir / "result.json"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _trial_dir(folder: Path, number: int) -> Path:
    return next(iter(sorted((folder / "ray").glob(f"run-*/trial-{number:05d}-*"))))


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
    assert (diverged["stopped_by"] == "failure").all() and healthy["stopped_by"].isna().all()
    assert (healthy["state"] == "COMPLETE").all() and healthy["test_acc"].notna().all()
    assert "FAIL      TrainingDiverged" in result.stdout  # the progress line names the reason too
    record("trial diverges (lr 1e30: NaN loss)", faults=len(diverged), lost=0, duplicated=0, recovery_s=0.0)


def test_a_trial_over_its_memory_limit_fails_with_the_reason_and_the_study_goes_on(tmp_path):
    """resources.memory_gib caps what each trial allocates: ResNet-18 at batch 1024 needs more, the MLP does not.

    Beyond its worker's own memory the MLP trial allocates at most about 0.25 GiB here (its
    first trial in a fresh worker), ResNet-18 about 0.55 GiB; caps of 0.3 to 0.6 GiB all
    separate them, 0.45 sits in the middle. One trial at a time, so the third trial runs in
    the worker the second one ran out of memory in.
    """
    runs, name, budget = tmp_path / "runs", "memory", 3
    space = {"parameters": {"model.name": {"type": "categorical", "choices": ["mlp", "resnet18"]}}}
    # Seed 10 of the random sampler draws mlp, resnet18, mlp.
    path = write_study(tmp_path, name, trials=budget, space=space, sampler={"name": "random", "seed": 10},
                       resources={"cpu": 1, "memory_gib": 0.45}, max_concurrent=1)
    study = yaml.safe_load(path.read_text())
    study["train"]["optim"]["batch_size"] = 1024
    path.write_text(yaml.safe_dump(study))
    result = run_msup(["study", "launch", str(path)], msup_env(runs))
    assert result.returncode == 0, result.stderr[-3000:]

    table = assert_consistent(runs / name, name, budget).table
    assert list(table["model.name"]) == ["mlp", "resnet18", "mlp"]
    assert list(table["state"]) == ["COMPLETE", "FAIL", "COMPLETE"]
    assert table.loc[1, "error"].startswith("RunError: out of memory on cpu: model resnet18")
    record("trial over its memory limit (resources.memory_gib)", faults=1, lost=0, duplicated=0, recovery_s=0.0)


def test_two_launches_of_one_study_at_once_leave_one_driver(tmp_path, capsys):
    runs, name, budget = tmp_path / "runs", "twice", 2
    path = write_study(tmp_path, name, trials=budget)
    points = tmp_path / "failpoints"
    env = failpoint_env(runs, points, "trial.after_epoch@1=pause")  # the winner holds still at its first epoch
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
        wait_for_pause(points, "trial.after_epoch", 1, winner)
        capsys.readouterr()
        assert main(["study", "resume", name, "--runs-dir", str(runs)]) == 2
        busy = capsys.readouterr().err.strip()
        assert busy.startswith(f"msup: error: study {name!r} already has a running driver") and "\n" not in busy
        release(points, "trial.after_epoch", 1)
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


def test_a_killed_trial_worker_continues_from_its_last_checkpoint(tmp_path):
    runs, name, budget, epochs = tmp_path / "runs", "worker", 2, 5
    path = write_study(tmp_path, name, trials=budget, epochs=epochs, max_concurrent=1)
    env = failpoint_env(runs, tmp_path / "failpoints", "trial.after_epoch@3=kill_worker")
    start = time.monotonic()
    result = run_msup(["study", "launch", str(path)], env)
    assert result.returncode == 0, result.stderr[-3000:]

    table = assert_consistent(runs / name, name, budget).table
    assert list(table["state"]) == ["COMPLETE"] * budget and list(table["epochs"]) == [epochs] * budget
    results = _results(_trial_dir(runs / name, 0))
    killed = results[0]["pid"]
    before = [r["epoch"] for r in results if r["pid"] == killed]
    after = [r["epoch"] for r in results if r["pid"] != killed]
    assert before == [1, 2, 3]
    assert after == [4, 5]  # went on from the epoch-3 checkpoint, not from epoch 1
    curve = curve_of(load_trials(sqlite_url(runs / name), name)[0].user_attrs)
    assert sorted(curve) == list(range(1, epochs + 1))
    record("SIGKILL of a trial's worker after its third epoch", faults=1, lost=0, duplicated=0,
           recovery_s=round(time.monotonic() - start, 1), resumed_at_epoch=after[0])


# Where the driver dies: the fail point (its hit), and the study that makes that point mean what the name says.
# With one trial at a time, hit 2 of trial.before_checkpoint is trial 0's last (second) epoch, while the driver
# waits for it. (trial.after_final_report is no such point for the driver: it is then busy with the report.)
PRUNING_SPACE = {"parameters": {"coats": 1, "outer_density": 0.5, "lr": {"type": "categorical", "choices": [0.1, 1e-4]}}}
KILL_POINTS = {
    "between ask and attrs": ("searcher.after_ask@2", {}),
    "between attrs and the Ray trial id": ("searcher.after_attrs@2", {}),
    "between a trial's last epoch and its checkpoint": ("trial.before_checkpoint@2", {"max_concurrent": 1}),
    "during tell": ("searcher.before_tell@1", {}),
    # Seed 10 draws lr 0.1, then 1e-4: the second trial is stopped at epoch 1 by the median of the first.
    "after a stop decision": ("scheduler.after_prune@1", {
        "space": PRUNING_SPACE, "sampler": {"name": "random", "seed": 10}, "max_concurrent": 1, "epochs": 3,
        "pruner": {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 1},
    }),
    "before the tables": ("study.before_tables@1", {}),
    "between trials.csv and trials.parquet": ("study.between_tables@1", {}),
}


@pytest.mark.parametrize("where", KILL_POINTS)
def test_resume_after_the_driver_is_killed_at_a_fail_point(tmp_path, where):
    point, study = KILL_POINTS[where]
    budget = 3
    runs, name = tmp_path / "runs", "killed"
    folder, storage = runs / name, sqlite_url(runs / name)
    path = write_study(tmp_path, name, trials=budget, **study)
    killing = failpoint_env(runs, tmp_path / "failpoints", f"{point}=kill_driver")
    killing["MSUP_TABLES_EVERY_S"] = "1e9"  # the tables are written at the end only, however slow the machine
    with Driver(["study", "launch", str(path)], killing, tmp_path / "launch.log") as driver:
        assert driver.wait(timeout=300) == SIGKILLED, driver.output()[-3000:]
    before = {t.number: (t.state.name, t.values) for t in load_trials(storage, name)}

    start = time.monotonic()
    resumed = run_msup(["study", "resume", name], msup_env(runs))
    recovery_s = time.monotonic() - start
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    accounting = assert_consistent(folder, name, budget)
    after = {t.number: (t.state.name, t.values) for t in load_trials(storage, name)}
    for number, (state, values) in before.items():  # what had finished stays exactly as it was
        if state != "RUNNING":
            assert after[number] == (state, values)
    # No trial of these studies fails on its own: a FAIL would be a trial the crash cost.
    assert "FAIL" not in [state for state, _ in after.values()], after
    if point.startswith("scheduler.after_prune"):
        assert [after[n][0] for n in range(budget)][:2] == ["COMPLETE", "PRUNED"]
    record(f"SIGKILL of the driver {where} ({point})", faults=1, lost=accounting.lost,
           duplicated=accounting.duplicated, recovery_s=round(recovery_s, 1),
           finished_before=sum(s != "RUNNING" for s, _ in before.values()))


def test_a_budget_study_killed_at_a_fail_point_and_resumed_spends_its_budget_once(tmp_path):
    runs, name, budget, epochs = tmp_path / "runs", "budget-killed", 7, 2
    folder, storage = runs / name, sqlite_url(runs / name)
    path = write_study(tmp_path, name, trials=None, epochs=epochs, budget={"trial_epochs": budget})
    killing = failpoint_env(runs, tmp_path / "failpoints", "searcher.before_tell@2=kill_driver")
    killing["MSUP_TABLES_EVERY_S"] = "1e9"
    with Driver(["study", "launch", str(path)], killing, tmp_path / "launch.log") as driver:
        assert driver.wait(timeout=300) == SIGKILLED, driver.output()[-3000:]
    before = {t.number: (t.state.name, t.values, t.user_attrs.get("ray_trial_id")) for t in load_trials(storage, name)}
    finished = [n for n, (state, _, _) in before.items() if state != "RUNNING"]
    trained = {n: _trained_epochs(folder, n) for n in finished}

    start = time.monotonic()
    resumed = run_msup(["study", "resume", name], msup_env(runs))
    recovery_s = time.monotonic() - start
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = load_trials(storage, name)
    accounting = assert_consistent(folder, name, len(trials))  # every trial it started ended, once
    assert budget <= spent_trial_epochs(storage, name) <= budget + epochs - 1
    after = {t.number: (t.state.name, t.values, t.user_attrs.get("ray_trial_id")) for t in trials}
    assert {n: after[n] for n in finished} == {n: before[n] for n in finished}
    assert {n: _trained_epochs(folder, n) for n in finished} == trained  # no finished trial trained again
    record(f"SIGKILL of the driver of a budget study (searcher.before_tell@2, {budget} trial-epochs)", faults=1,
           lost=accounting.lost, duplicated=accounting.duplicated, recovery_s=round(recovery_s, 1),
           finished_before=len(finished))


def _trained_epochs(folder: Path, number: int) -> set[tuple[int, float]]:
    """(epoch, its training seconds) of every epoch Ray recorded for Optuna trial ``number``, over all its runs.

    An epoch trained again has new seconds. Ray restoring a trial from its final checkpoint (its saved
    experiment state can lag a trial's end by seconds) repeats the last report without training: same pair.
    """
    return {(row["epoch"], row["epoch_s"]) for trial_dir in (folder / "ray").glob(f"run-*/trial-{number:05d}-*")
            for row in _results(trial_dir) if "epoch" in row}


def test_sigterm_stops_the_study_at_checkpoints_and_resume_continues(tmp_path):
    runs, name, budget, epochs = tmp_path / "runs", "preempted", 2, 4
    path = write_study(tmp_path, name, trials=budget, epochs=epochs)
    notice = failpoint_env(runs, tmp_path / "failpoints", "trial.after_epoch@2=term_driver")
    stopped = run_msup(["study", "launch", str(path)], notice)
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    message = stopped.stderr.strip().splitlines()[-1]
    assert message.startswith("msup: preempted (SIGTERM)") and f"msup study resume {name}" in message
    assert _finished(count_states(sqlite_url(runs / name), name)) < budget

    start = time.monotonic()
    resumed = run_msup(["study", "resume", name], msup_env(runs))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    table = assert_consistent(runs / name, name, budget).table
    assert list(table["epochs"]) == [epochs] * budget
    restarts = []
    for number in range(budget):
        results = _results(_trial_dir(runs / name, number))
        first_pid = results[0]["pid"]
        restarts += [r["epoch"] for r in results if r["pid"] != first_pid][:1]
    assert restarts and all(epoch > 1 for epoch in restarts)  # continued from checkpoints, not from scratch
    record("SIGTERM of the driver (preemption notice), then resume", faults=1, lost=0, duplicated=0,
           recovery_s=round(time.monotonic() - start, 1), resumed_at_epochs=restarts)


NODE_LOSS_DRIVER = """
import json, os, signal, subprocess, sys, time
from pathlib import Path
from ray.cluster_utils import Cluster

msup, study, points = sys.argv[1], sys.argv[2], Path(sys.argv[3])
# A dead node is declared after about 2 s of missed health checks (Ray's default is about 15 s).
health = {"health_check_period_ms": 500, "health_check_failure_threshold": 4}
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": health})
worker = cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
launch = subprocess.Popen([msup, "study", "launch", study, "--address", cluster.address])
try:
    paused = []
    for hit in (1, 2):  # both trials after their first epoch: one per node, since each node has one CPU
        path = points / f"trial.after_epoch@{hit}.paused"
        while not path.exists():
            assert launch.poll() is None, "the driver ended before both trials paused"
            time.sleep(0.2)
        paused.append(json.loads(path.read_text()))
    raylet = worker.all_processes["raylet"][0].process.pid
    lost = [p["pid"] for p in paused if p["ppid"] == raylet]
    # The machine is gone: every worker process of the node dies with its raylet (removing the node alone
    # would leave its workers running and reporting).
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, ppid = int(stat.parent.name), int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == raylet:
            os.kill(pid, signal.SIGKILL)
    cluster.remove_node(worker, allow_graceful=False)
    for hit in (1, 2):
        (points / f"trial.after_epoch@{hit}.go").touch()
    code = launch.wait(timeout=400)
finally:
    launch.kill()
    cluster.shutdown()
print(json.dumps({"lost_pids": lost, "worker_node": worker.node_id}))
sys.exit(code)
"""


def test_loss_of_a_worker_node_finishes_its_trials_on_the_head_node(tmp_path):
    runs, name, budget, epochs = tmp_path / "runs", "node-loss", 2, 3
    path = write_study(tmp_path, name, trials=budget, epochs=epochs)
    script, points = tmp_path / "node_loss.py", tmp_path / "failpoints"
    script.write_text(NODE_LOSS_DRIVER)
    env = failpoint_env(runs, points, "trial.after_epoch@1=pause;trial.after_epoch@2=pause")
    start = time.monotonic()
    run = sessions.run([sys.executable, str(script), MSUP, str(path), str(points)], 600, env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(outcome["lost_pids"]) == 1, outcome  # exactly one paused trial was on the worker node

    table = assert_consistent(runs / name, name, budget).table
    assert list(table["state"]) == ["COMPLETE"] * budget and list(table["epochs"]) == [epochs] * budget
    moved = []
    for number in range(budget):
        results = _results(_trial_dir(runs / name, number))
        if results[0]["pid"] in outcome["lost_pids"]:
            moved = results
    assert [r["node_id"] for r in moved[:1]] == [outcome["worker_node"]]
    after = [r for r in moved if r["node_id"] != outcome["worker_node"]]
    assert [r["epoch"] for r in after] == list(range(2, epochs + 1))  # on the head node, from the epoch-1 checkpoint
    record("loss of a worker node (its raylet killed) mid-study", faults=1, lost=0, duplicated=0,
           recovery_s=round(time.monotonic() - start, 1), resumed_at_epoch=after[0]["epoch"])


def test_resume_with_a_truncated_ray_experiment_state(tmp_path):
    runs, name, budget = tmp_path / "runs", "damaged", 2
    folder, storage = runs / name, sqlite_url(runs / name)
    path = write_study(tmp_path, name, trials=budget, max_concurrent=1)
    killing = failpoint_env(runs, tmp_path / "failpoints", "searcher.before_tell@1=kill_driver")
    with Driver(["study", "launch", str(path)], killing, tmp_path / "launch.log") as driver:
        assert driver.wait(timeout=300) == SIGKILLED, driver.output()[-3000:]
    assert _finished(count_states(storage, name)) < budget
    state = folder / "ray" / "run-1" / "tuner.pkl"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])

    start = time.monotonic()
    resumed = run_msup(["study", "resume", name], msup_env(runs))
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
    study = load_or_create(open_storage(storage), "half", [config.accuracy, config.size], study_sampler(config))
    study.ask()  # where the dead driver stopped
    searcher = StudySearcher(config, storage, str(tmp_path))
    suggested = [searcher.suggest(f"ray-{i}")["optuna_trial"] for i in range(2)]
    assert suggested == [0, 1] and len(study.get_trials()) == 2
    assert all(not math.isnan(t.user_attrs["size_entropy_mib"]) for t in study.get_trials())


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MiB tmpfs for the study folder, so that a write can really fail with ENOSPC."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; returns it (delete it to free the space)."""
    filler = disk / "filler"
    block = b"\0" * 2**20
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(block)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


@pytest.mark.parametrize("storage", ["in the study folder", "elsewhere"])
def test_a_full_disk_stops_the_study_clearly_and_resume_finishes_once_space_is_freed(tmp_path, small_disk, storage):
    runs, name, budget = small_disk / "runs", "full", 2
    url = sqlite_url(tmp_path) if storage == "elsewhere" else None
    path = write_study(tmp_path, name, trials=budget, max_concurrent=1, **({"storage": url} if url else {}))
    points = tmp_path / "failpoints"
    env = failpoint_env(runs, points, "trial.before_checkpoint@2=pause")  # trial 0's last epoch: model file next
    with Driver(["study", "launch", str(path)], env, tmp_path / "launch.log") as driver:
        wait_for_pause(points, "trial.before_checkpoint", 2, driver)
        filler = fill(small_disk)
        release(points, "trial.before_checkpoint", 2)
        code = driver.wait(timeout=300)
    output = driver.output()
    assert code == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    message = output.strip().splitlines()[-1]
    assert message.startswith("msup: failed: disk full"), output[-3000:]
    states = count_states(url or sqlite_url(runs / name), name)
    assert _finished(states) < budget and states["FAIL"] == 0, states  # the full disk failed no trial

    filler.unlink()
    resumed = run_msup(["study", "resume", name], msup_env(runs))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    table = assert_consistent(runs / name, name, budget, storage=url).table
    assert list(table["state"]) == ["COMPLETE"] * budget
    record(f"study folder's disk full at a model-file write (storage {storage}), then resume", faults=1, lost=0,
           duplicated=0, recovery_s=0.0)
