"""`msup study list`: every study under the runs folder, read from its storage, one bad study hiding none."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
from optuna.trial import TrialState, create_trial
from studykit import write_study

from msup.cli import main
from msup.folder import Folder
from msup.search.driver import driver_lock
from msup.search.state.storage import default_storage_url, load_or_create, open_storage


def make_study(runs: Path, name: str, states: list[TrialState]) -> Path:
    folder = runs / name
    folder.mkdir(parents=True)
    shutil.move(write_study(runs, name, trials=5), folder / "study.yaml")
    study = load_or_create(open_storage(default_storage_url(folder)), name, ["val_acc", "size_entropy_mib"],
                           optuna.samplers.RandomSampler(seed=0))
    for state in states:
        if state == TrialState.RUNNING:
            study.ask()
        else:
            study.add_trial(create_trial(state=state, values=[0.9, 0.01] if state == TrialState.COMPLETE else None))
    return folder


def test_list_shows_counts_driver_and_last_activity_of_every_study(tmp_path, capsys):
    runs = tmp_path / "runs"
    make_study(runs, "alpha", [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED])
    busy = make_study(runs, "beta", [TrialState.COMPLETE, TrialState.RUNNING])
    (runs / "broken").mkdir()
    (runs / "broken" / "study.yaml").write_text("name: [unclosed")
    (runs / "not-a-study").mkdir()
    with driver_lock(Folder(busy)):
        assert main(["study", "list", "--runs-dir", str(runs), "--format", "json"]) == 0
        rows = {row["study"]: row for row in json.loads(capsys.readouterr().out)}
        assert main(["study", "list", "--runs-dir", str(runs)]) == 0
        lines = capsys.readouterr().out.splitlines()
    assert sorted(rows) == ["alpha", "beta", "broken"]
    assert rows["alpha"]["counts"] == {"COMPLETE": 2, "PRUNED": 1, "FAIL": 0, "RUNNING": 0}
    assert rows["alpha"]["trials"] == 5 and not rows["alpha"]["driver_running"] and rows["alpha"]["last_activity"]
    assert rows["alpha"]["budget"] == {"trials": {"limit": 5, "spent": 3, "left": 2}}
    assert rows["beta"]["driver_running"] and rows["beta"]["counts"]["RUNNING"] == 1
    assert "not a readable YAML file" in rows["broken"]["error"]
    assert lines[0].startswith("alpha: 2 COMPLETE, 1 PRUNED; budget spent: 3/5 trials; no driver; last activity 20")
    assert lines[1].startswith("beta: 1 COMPLETE, 1 RUNNING; budget spent: 1/5 trials; driver running")
    assert lines[2].startswith("broken: unreadable (")


def test_an_empty_runs_folder_says_how_to_start(tmp_path, capsys):
    assert main(["study", "list", "--runs-dir", str(tmp_path)]) == 0
    assert "no studies under" in capsys.readouterr().out
