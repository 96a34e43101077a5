"""`loggers:` in a study file: one real tiny study tracked in a real MLflow store (SQLite), read back with MLflow's
client, in W&B's offline run files, read back record by record, and in TensorBoard's event files."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from studykit import SPACE, msup_env, run_msup, write_study

from msup.errors import InputError
from msup.search.config.study import parse_study

INSTALLED = {name for name in ("mlflow", "wandb") if importlib.util.find_spec(name) is not None}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """One study logged to every tracker installed here; its folder and its trials.csv."""
    root = tmp_path_factory.mktemp("tracked")
    loggers = {"mlflow": {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "experiment": "msup-test",
                          "tags": {"team": "vision"}},
               "wandb": {"project": "msup-test", "tags": ["cpu"]}}
    path = write_study(root, "tracked", trials=2, epochs=2,
                       loggers={**{k: v for k, v in loggers.items() if k in INSTALLED}, "tensorboard": {}})
    env = {**msup_env(root / "runs"), "WANDB_MODE": "offline", "WANDB_DIR": str(root / "wandb-files"), "WANDB_SILENT": "true"}
    launched = run_msup(["study", "launch", str(path)], env, cwd=root)  # MLflow's artifacts go to ./mlruns
    assert launched.returncode == 0, launched.stderr[-3000:]
    return root, pd.read_csv(root / "runs" / "tracked" / "trials.csv")


@pytest.mark.slow
def test_each_trial_is_an_mlflow_run_with_its_parameters_curve_sizes_state_and_model_file(tracked):
    if "mlflow" not in INSTALLED:
        pytest.skip("the mlflow extra is not installed (pip install -e '.[mlflow]')")
    from mlflow.tracking import MlflowClient

    root, table = tracked
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("msup-test")
    runs = {int(run.data.params["optuna_trial"]): run for run in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == list(table["trial"])
    for row in table.itertuples():
        run = runs[row.trial]
        assert run.data.tags["msup.state"] == row.state and run.data.tags["team"] == "vision"
        assert run.data.tags["msup.study"] == "tracked" and run.info.run_name == f"trial-{row.trial:05d}"
        assert float(run.data.params["lr"]) == pytest.approx(row.lr) and int(run.data.params["coats"]) == row.coats
        curve = client.get_metric_history(run.info.run_id, "val_acc")
        assert [m.step for m in curve] == list(range(1, row.epochs + 1))
        assert curve[-1].value == pytest.approx(row.val_acc)
        assert run.data.metrics["size_entropy_mib"] == pytest.approx(row.size_entropy_mib)
        assert {"train_loss", "size_paper_mib", "dense_mib"} <= set(run.data.metrics)
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
        assert artifacts == ([f"{row.trial:05d}.msup"] if row.state == "COMPLETE" else [])
        assert run.info.status == "FINISHED"


@pytest.mark.slow
def test_each_trial_is_a_wandb_run_in_offline_files_with_its_parameters_curve_and_state(tracked):
    if "wandb" not in INSTALLED:
        pytest.skip("the wandb extra is not installed (pip install -e '.[wandb]')")
    root, table = tracked
    runs = {}
    for log in (root / "wandb-files").glob("wandb/offline-run-*/run-*.wandb"):
        run = {"config": {}, "val_acc": [], "artifacts": []}
        for record in wandb_records(log):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run["name"], run["tags"] = record.run.display_name, list(record.run.tags)
                run["config"].update(_items(record.run.config.update))
            elif kind == "config":
                run["config"].update(_items(record.config.update))
            elif kind == "history":
                items = _items(record.history.item)
                if "val_acc" in items:
                    run["val_acc"].append((items["_step"], items["val_acc"]))
            elif kind == "artifact":
                run["artifacts"].append(record.artifact.type)
        runs[run["config"]["optuna_trial"]] = run
    assert sorted(runs) == list(table["trial"])
    for row in table.itertuples():
        run = runs[row.trial]
        assert run["name"] == f"trial-{row.trial:05d}" and run["tags"] == ["cpu"]
        assert run["config"]["lr"] == pytest.approx(row.lr) and run["config"]["msup.state"] == row.state
        assert [step for step, _ in run["val_acc"]] == list(range(1, row.epochs + 1))
        assert run["val_acc"][-1][1] == pytest.approx(row.val_acc)
        assert run["artifacts"] == (["model"] if row.state == "COMPLETE" else [])


@pytest.mark.slow
def test_tensorboard_event_files_are_written_for_every_trial_when_named(tracked):
    root, table = tracked
    for number in table["trial"]:
        (trial,) = (root / "runs" / "tracked" / "ray" / "run-1").glob(f"trial-{number:05d}-*")
        assert list(trial.glob("events.out.tfevents.*")) and (trial / "result.json").is_file()


def _items(items) -> dict:
    """Keys and values of W&B config, history or summary items (a key may come as a path)."""
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def wandb_records(path: Path):
    """The records of a W&B offline run file: LevelDB's log format (32 KiB blocks of framed chunks) after a 7-byte
    ``:W&B`` header, each record a protobuf of W&B's own schema."""
    from wandb.proto import wandb_internal_pb2

    data, block, position, pending = path.read_bytes(), 32768, 7, b""
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        left = block - position % block
        length, kind = int.from_bytes(data[position + 4 : position + 6], "little"), data[position + 6]
        if left < 7 or kind == 0:  # the rest of a block is padding
            position += left
            continue
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


@pytest.mark.parametrize("loggers, message", [
    ({"comet": {}}, "loggers.comet: unknown key; known keys: mlflow, wandb, tensorboard"),
    ({"mlflow": {"uri": "x"}}, "loggers.mlflow.uri: unknown key; known keys: tracking_uri, experiment, tags"),
    ("mlflow", "loggers: 'mlflow' must be a mapping of keys to values"),
    ({"mlflow": ["x"]}, "loggers.mlflow: ['x'] must be a mapping of keys to values"),
])
def test_bad_loggers_are_refused_with_their_key(tmp_path, loggers, message):
    with pytest.raises(InputError, match=re.escape(message)):
        parse_study({"name": "t", "search_space": SPACE, "loggers": loggers}, base_dir=tmp_path)


def test_a_list_of_names_takes_the_defaults(tmp_path):
    config = parse_study({"name": "t", "search_space": SPACE, "loggers": ["mlflow", "wandb", "tensorboard"]},
                         base_dir=tmp_path)
    assert config.loggers == {"mlflow": {}, "wandb": {}, "tensorboard": {}} and config.to_dict()["loggers"] == config.loggers


def test_the_state_a_tracker_records_is_the_one_the_study_records():
    from msup.search.execution.trackers import final_state

    assert final_state({"epoch": 2, "test_acc": 0.9}) == "COMPLETE"
    assert final_state({"epoch": 1, "val_acc": 0.4}) == "PRUNED"  # stopped before its last epoch: never tested
    assert final_state({"error": "InputError: ..."}) == "FAIL" and final_state({"epoch": 2}, failed=True) == "FAIL"
