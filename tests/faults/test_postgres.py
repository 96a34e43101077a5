"""A study whose Optuna storage is a real PostgreSQL server: launch, crash of the driver, resume.

`.ci/run` starts PostgreSQL on loopback and sets MSUP_TEST_POSTGRES; elsewhere
these tests are skipped with the reason. The database is shared between test
runs, so each run uses a study name of its own and deletes it afterwards.
"""

from __future__ import annotations

import time

import optuna
import pytest
import yaml
from studykit import (
    Driver,
    assert_consistent,
    count_states,
    failpoint_env,
    msup_env,
    record,
    run_msup,
    unique_name,
    write_study,
)

from msup.search.execution.scheduler import shadow_study_name
from msup.search.state.storage import open_storage

pytestmark = [pytest.mark.slow, pytest.mark.faults]


def test_study_on_postgres_survives_a_killed_driver(tmp_path, postgres):
    runs, name, budget = tmp_path / "runs", unique_name("pg"), 4
    path = write_study(tmp_path, name, trials=budget, epochs=4)
    env = msup_env(runs)
    try:
        # Killed when the second trial to finish training is about to be told: one finished, others mid-training.
        killing = failpoint_env(runs, tmp_path / "failpoints", "searcher.before_tell@2=kill_driver")
        with Driver(["study", "launch", str(path), "--storage", postgres], killing, tmp_path / "launch.log") as driver:
            assert driver.wait(timeout=300) == -9, driver.output()[-3000:]
        before = count_states(postgres, name)
        assert before["COMPLETE"] + before["PRUNED"] + before["FAIL"] < budget, before  # killed mid-study

        start = time.monotonic()
        resumed = run_msup(["study", "resume", name], env)
        recovery_s = time.monotonic() - start
        assert resumed.returncode == 0, resumed.stderr[-3000:]

        folder = runs / name
        assert yaml.safe_load((folder / "study.yaml").read_text())["storage"] == postgres
        assert not (folder / "optuna.db").exists()  # every trial went to the server
        accounting = assert_consistent(folder, name, budget, storage=postgres)

        status = run_msup(["study", "status", name, "--format", "json"], env, timeout=120)
        assert status.returncode == 0 and f'"study": "{name}"' in status.stdout, status.stderr
        record("postgres: SIGKILL of the driver, then resume", faults=1, lost=accounting.lost,
               duplicated=accounting.duplicated, recovery_s=round(recovery_s, 1), before=before)
    finally:
        storage = open_storage(postgres)
        for study in set(optuna.get_all_study_names(storage)) & {name, shadow_study_name(name)}:
            optuna.delete_study(study_name=study, storage=storage)
