"""The study file's enqueue: list trains first and exactly once, however often its driver is killed and resumed."""

from __future__ import annotations

import pytest
from studykit import Driver, assert_consistent, failpoint_env, load_trials, msup_env, run_msup, sqlite_url, write_study

pytestmark = [pytest.mark.slow, pytest.mark.faults]
SIGKILLED = -9
PAPER_RECIPE = {"coats": 3, "outer_density": 0.3, "coat_keep_2": 0.2627, "coat_keep_3": 0.4}
EDGE_POPUP = {"coats": 1, "outer_density": 0.3, "lr": 0.1}


def test_enqueued_configurations_train_first_and_once_across_three_killed_drivers(tmp_path):
    runs, name, budget = tmp_path / "runs", "enqueued", 4
    folder, storage = runs / name, sqlite_url(runs / name)
    path = write_study(tmp_path, name, trials=budget, enqueue=[PAPER_RECIPE, EDGE_POPUP])
    # Killed: as it asks for the second enqueued trial; then at the first tell; then at the next tell.
    kills = [(["study", "launch", str(path)], "searcher.after_ask@2"), (["study", "resume", name], "searcher.before_tell@1"),
             (["study", "resume", name], "searcher.before_tell@2")]
    for run, (args, point) in enumerate(kills):
        env = failpoint_env(runs, tmp_path / "failpoints", f"{point}=kill_driver")
        env["MSUP_TABLES_EVERY_S"] = "1e9"
        with Driver(args, env, tmp_path / f"run-{run}.log") as driver:
            assert driver.wait(timeout=300) == SIGKILLED, driver.output()[-3000:]
    resumed = run_msup(["study", "resume", name], msup_env(runs))
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    accounting = assert_consistent(folder, name, budget)  # nothing lost, nothing run twice
    trials = load_trials(storage, name)
    enqueued = {t.user_attrs["enqueued"]: t for t in trials if "enqueued" in t.user_attrs}
    assert sorted(enqueued) == [0, 1] and [t.number for t in trials if "enqueued" in t.user_attrs] == [0, 1]
    for index, values in enumerate([PAPER_RECIPE, EDGE_POPUP]):
        assert {k: enqueued[index].params[k] for k in values} == values  # trained as listed, the rest sampled
    table = accounting.table
    assert list(table["enqueued"].iloc[:2]) == [0, 1] and table["enqueued"].iloc[2:].isna().all()
    assert len(trials) == budget  # the list was enqueued once, not once per resume
