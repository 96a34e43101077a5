"""Tiny real studies for the study and fault tests: study files, `msup` processes, and the recovery invariant.

Every study runs as a separate `msup` process in its own session, so a test can
SIGKILL the driver like a crash would, and then kill by process group exactly
the Ray processes that driver left behind (never anybody else's).
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import sessions
import yaml
from sessions import kill_group

from msup.analysis.table import load_trials as read_table
from msup.folder import Folder
from msup.search.state.ledger import curve_of

MSUP = str(Path(sys.executable).parent / "msup")
SPACE = {
    "parameters": {
        "coats": {"type": "int", "low": 1, "high": 3},
        "outer_density": {"type": "float", "low": 0.01, "high": 0.5, "log": True},
        "coat_keep": {"type": "float", "low": 0.2, "high": 0.7},
        "lr": {"type": "float", "low": 0.05, "high": 0.3, "log": True},
    }
}


def unique_name(prefix: str) -> str:
    """A study name no other test run uses (databases are shared between runs)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def write_study(
    folder: Path, name: str, *, trials: int | None = 4, epochs: int = 2, space: dict | None = None, **extra: Any,
) -> Path:
    """A tiny study file; ``trials=None`` leaves the key out (a study a compute ``budget`` ends)."""
    data = {
        "name": name,
        "train": {"optim": {"epochs": epochs, "batch_size": 128}, "runtime": {"device": "cpu"}},
        "search_space": space or SPACE,
        **({"trials": trials} if trials is not None else {}),
        "max_concurrent": 2,
        "sampler": {"name": "tpe", "seed": 1},
        "resources": {"cpu": 1},
        **extra,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def msup_env(runs: Path) -> dict[str, str]:
    return {**os.environ, "MSUP_RUNS": str(runs)}


def failpoint_env(runs: Path, folder: Path, rules: str) -> dict[str, str]:
    """`msup_env` with fail points armed; their hit counts and pause files live in ``folder``."""
    return {**msup_env(runs), "MSUP_FAILPOINTS": rules, "MSUP_FAILPOINTS_DIR": str(folder)}


def wait_for_pause(folder: Path, point: str, hit: int, driver: Driver, timeout: float = 240) -> dict[str, int]:
    """Wait until a ``pause`` fail point holds a process at ``point@hit``; returns its pid and parent pid.

    Not a race with training: the paused process stays at that point until `release`.
    """
    paused = folder / f"{point}@{hit}.paused"
    wait_until(paused.exists, timeout, f"fail point {point}@{hit}", driver)
    return json.loads(paused.read_text())


def release(folder: Path, point: str, hit: int) -> None:
    (folder / f"{point}@{hit}.go").touch()


class Driver:
    """A `msup` command running in the background, in a session of its own; its output goes to ``log``."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.process = sessions.start([MSUP, *args], env=env, stdout=out, stderr=subprocess.STDOUT)
        self.pid = self.process.pid

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        kill_group(self.pid)

    def sigkill(self) -> None:
        """Kill the driver alone, as a crash of its machine's Python process would."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def run_msup(
    args: Sequence[str], env: dict[str, str], timeout: float = 300, cwd: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run `msup ARGS` to its end in a session of its own; whatever it leaves running is killed."""
    return sessions.run([MSUP, *args], timeout, env=env, cwd=cwd)


def wait_until(condition: Callable[[], bool], timeout: float, what: str, driver: Driver | None = None) -> float:
    """Poll ``condition`` (an event that, once true, stays true) every 0.2 s; returns the seconds waited.

    Fails if ``driver`` ends first.
    """
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        if driver is not None and driver.process.poll() is not None:
            raise AssertionError(f"the driver ended (exit {driver.process.returncode}) before {what}:\n{driver.output()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'optuna.db'}"


def load_trials(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    """The study's trials (read once a driver has ended: no test polls a storage that may be half-created)."""
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def count_states(storage: str, name: str) -> dict[str, int]:
    states = [t.state.name for t in load_trials(storage, name)]
    return {s: states.count(s) for s in ("RUNNING", "COMPLETE", "PRUNED", "FAIL", "WAITING")}


@dataclass(frozen=True)
class Accounting:
    """How a study's budget came out after recovery: ``lost`` and ``duplicated`` must both be 0."""

    budget: int
    finished: int
    lost: int
    duplicated: int
    table: pd.DataFrame


def assert_consistent(folder: Path | Folder, name: str, budget: int, storage: str | None = None) -> Accounting:
    """Every trial of the budget is COMPLETE, PRUNED or FAIL exactly once; trials.csv agrees row for row.

    Configurations rejected for the size budget (never trained) use no budget; they are rows of their own.
    """
    folder = Folder(folder)  # a local directory, or a prefix in object storage
    trials = sorted(load_trials(storage or sqlite_url(folder.local), name), key=lambda t: t.number)
    table = read_table(io.BytesIO(folder.read_bytes("trials.csv")), source=f"{folder.shown}/trials.csv")
    budgeted = [t for t in trials if "rejected" not in t.user_attrs]
    finished = [t for t in budgeted if t.state.name in ("COMPLETE", "PRUNED", "FAIL")]
    accounting = Accounting(
        budget=budget,
        finished=len(finished),
        lost=budget - len(finished),
        duplicated=max(0, len(budgeted) - budget) + (len(table) - table["trial"].nunique()),
        table=table,
    )
    assert (accounting.lost, accounting.duplicated) == (0, 0), f"lost/duplicated trials: {accounting}"
    assert [t.number for t in trials] == list(range(len(trials))) == list(table["trial"])
    assert list(table["state"]) == ["REJECTED" if "rejected" in t.user_attrs else t.state.name for t in trials]
    trained = table[table["state"] != "REJECTED"]
    assert trained["ray_trial_id"].is_unique and table.loc[table["state"] == "REJECTED", "ray_trial_id"].isna().all()
    assert list(trained["ray_trial_id"]) == [t.user_attrs.get("ray_trial_id") for t in budgeted]
    for trial, row in zip(trials, table.itertuples()):
        assert _text(row.error) == trial.user_attrs.get("error", ""), f"trial {trial.number}: error differs"
        assert _text(row.rejected) == trial.user_attrs.get("rejected", ""), f"trial {trial.number}: rejection differs"
        if trial.state.name == "COMPLETE":
            assert math.isclose(row.val_acc, trial.values[0]) and math.isclose(row.size_entropy_mib, trial.values[1])
        else:
            assert trial.values is None
    return accounting


def spent_trial_epochs(storage: str, name: str) -> int:
    """Trial-epochs a study spent, counted from its storage: every trial's highest reported epoch."""
    return sum(max(curve_of(t.user_attrs), default=0) for t in load_trials(storage, name))


def _text(value: Any) -> str:
    return "" if isinstance(value, float) and math.isnan(value) else str(value)


def record(case: str, **fields: Any) -> None:
    """Append one fault case's figures to $MSUP_FAULTS_LOG (JSON lines), the source of BENCHMARKS-faults.md."""
    path = os.environ.get("MSUP_FAULTS_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"case": case, **fields}) + "\n")
