"""A study on a two-node Ray cluster with no shared file system: its folder in S3, its storage in PostgreSQL.

The driver is SIGKILLed at a fail point. Then every local folder it used goes
(its working directory, home, and Ray's temporary and staging folders), and so
does its cluster; a new cluster resumes the study from an empty working
directory given only the runs URI, which holds the study file naming the
database. The recovery invariant must hold, as for a study on local disk. While
the first driver runs, a second one from another working directory is refused
in one line naming the first's host and pid (the lease in the database).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import sessions
from servers import new_bucket, postgres_url
from studykit import (
    Driver,
    assert_consistent,
    kill_group,
    record,
    release,
    run_msup,
    unique_name,
    wait_for_pause,
    write_study,
)

from msup import Study
from msup.folder import Folder
from msup.search.state.driver_lock import DriverLease

pytestmark = [pytest.mark.slow, pytest.mark.faults]
CLUSTER = """
import sys
from ray.cluster_utils import Cluster

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
print(cluster.address, flush=True)
sys.stdin.read()  # up until the test closes stdin
cluster.shutdown()
"""


class TwoNodeCluster:
    """A local Ray cluster of a head and a worker node (one CPU each), with its own temporary folder."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.process = sessions.start([sys.executable, "-c", CLUSTER], env=env, cwd=cwd, text=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.address = self.process.stdout.readline().strip()
        assert self.address, "the cluster did not start"

    def shutdown(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=120)
        kill_group(self.process.pid)


def _machine(root: Path, label: str, runs: str) -> tuple[dict[str, str], Path]:
    """The environment and working directory of one machine: a home, a working directory and Ray's temp folder.

    Ray's folder is a short one in /tmp: its socket paths must stay under 108 bytes.
    """
    places = {kind: root / f"{label}-{kind}" for kind in ("home", "work")}
    for place in places.values():
        place.mkdir()
    places["ray"] = Path(tempfile.mkdtemp(prefix=f"msup-{label}-"))
    (root / f"{label}-ray").symlink_to(places["ray"])
    env = {**os.environ, "HOME": str(places["home"]), "RAY_TMPDIR": str(places["ray"]), "MSUP_RUNS": runs}
    return env, places["work"]


def test_a_study_in_s3_survives_a_killed_driver_and_resumes_on_another_machine(tmp_path, s3):
    postgres = postgres_url()
    name, budget, runs = unique_name("s3"), 4, f"s3://{new_bucket()}/runs"
    env_a, work_a = _machine(tmp_path, "a", runs)
    path = write_study(work_a, name, trials=budget, epochs=3, storage=postgres)
    points = tmp_path / "failpoints"
    armed = {**env_a, "MSUP_FAILPOINTS": "trial.after_epoch@1=pause;searcher.before_tell@2=kill_driver",
             "MSUP_FAILPOINTS_DIR": str(points)}
    cluster = TwoNodeCluster(env_a, work_a)
    try:
        with Driver(["study", "launch", str(path), "--address", cluster.address], armed, tmp_path / "launch.log") as driver:
            wait_for_pause(points, "trial.after_epoch", 1, driver)
            env_b, work_b = _machine(tmp_path, "b", runs)
            second = run_msup(["study", "resume", name], env_b, cwd=work_b, timeout=120)
            assert second.returncode == 2 and second.stderr.startswith(
                f"msup: error: study {name!r} already has a running driver (host {socket.gethostname()}, "
                f"pid {driver.pid}, since 20"), second.stderr
            assert second.stderr.count("\n") == 1 and "msup:msup@" not in second.stderr
            release(points, "trial.after_epoch", 1)
            assert driver.wait(timeout=400) == -9, driver.output()[-3000:]
    finally:
        cluster.shutdown()
    for place in ("a-home", "a-work", "a-ray"):  # the first machine is gone, and everything it had on disk
        shutil.rmtree((tmp_path / place).resolve())

    start = time.monotonic()
    assert DriverLease(postgres, name).holder() is None  # its process is gone: the lease is free on this machine
    cluster = TwoNodeCluster(env_b, work_b)
    try:
        resumed = run_msup(["study", "resume", name, "--address", cluster.address], env_b, cwd=work_b, timeout=600)
    finally:
        cluster.shutdown()
        shutil.rmtree((tmp_path / "b-ray").resolve(), ignore_errors=True)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    recovery_s = time.monotonic() - start

    folder = Folder(f"{runs}/{name}")
    accounting = assert_consistent(folder, name, budget, storage=postgres)
    complete = accounting.table[accounting.table["state"] == "COMPLETE"]["trial"]
    assert set((folder / "artifacts").children()) == {f"{number:05d}.msup" for number in complete}
    assert {"study.yaml", "trials.csv", "trials.parquet", "ray", "artifacts"} <= set(folder.children())
    if len(complete):  # the report of a finished study is drawn too, into the bucket
        assert {"pareto.png", "pareto.csv", "hypervolume.png"} <= set(folder.children())
    assert list(work_b.iterdir()) == []  # the resumed study wrote nothing where it ran

    status = run_msup(["study", "status", folder.uri, "--format", "json"], env_b, cwd=work_b, timeout=120)
    assert status.returncode == 0 and json.loads(status.stdout)["folder"] == folder.uri, status.stderr[-2000:]
    study = Study.load(folder.uri)  # the notebook API reads the same URI
    assert list(study.trials["trial"]) == list(accounting.table["trial"])
    if len(complete):
        assert not study.model(int(study.best()["trial"])).training
    record("S3 runs folder + PostgreSQL, two-node cluster: SIGKILL of the driver, resume on another machine",
           faults=1, lost=accounting.lost, duplicated=accounting.duplicated, recovery_s=round(recovery_s, 1),
           ray_experiment_restored="msup: restored run-1" in resumed.stdout)
