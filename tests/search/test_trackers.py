"""`loggers:` in a study file: a real tiny study tracked in a real MLflow store (SQLite), read back with MLflow's client."""

from __future__ import annotations

import pandas as pd
import pytest
from studykit import SPACE, msup_env, run_msup, write_study

from msup.errors import InputError
from msup.search.study_config import parse_study

@pytest.mark.slow
def test_each_trial_is_an_mlflow_run_with_its_parameters_curve_sizes_state_and_model_file(tmp_path):
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed (pip install -e '.[mlflow]')")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = write_study(tmp_path, "tracked", trials=2, epochs=2,
                       loggers={"mlflow": {"tracking_uri": uri, "experiment": "msup-test", "tags": {"team": "vision"}}})
    launched = run_msup(["study", "launch", str(path)], msup_env(tmp_path / "runs"))
    assert launched.returncode == 0, launched.stderr[-3000:]
    table = pd.read_csv(tmp_path / "runs" / "tracked" / "trials.csv")

    client = MlflowClient(uri)
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


@pytest.mark.parametrize("loggers, message", [
    ({"comet": {}}, "loggers.comet: unknown logger (expected one of mlflow, tensorboard)"),
    ({"wandb": {}}, "loggers.wandb: unknown logger (expected one of mlflow, tensorboard)"),
    ({"mlflow": {"uri": "x"}}, "loggers.mlflow: unknown option(s) uri (expected experiment, tags, tracking_uri)"),
    ("mlflow", "loggers: must be a list of names or a mapping"),
    ({"mlflow": ["x"]}, "loggers.mlflow: options must be a mapping"),
])
def test_bad_loggers_are_refused_with_their_key(tmp_path, loggers, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_study({"name": "t", "search_space": SPACE, "loggers": loggers}, base_dir=tmp_path)


def test_a_list_of_names_takes_the_defaults(tmp_path):
    config = parse_study({"name": "t", "search_space": SPACE, "loggers": ["mlflow", "tensorboard"]}, base_dir=tmp_path)
    assert config.loggers == {"mlflow": {}, "tensorboard": {}} and config.to_dict()["loggers"] == config.loggers


def test_the_state_a_tracker_records_is_the_one_the_study_records():
    from msup.search.trackers import final_state

    assert final_state({"epoch": 2, "test_acc": 0.9}) == "COMPLETE"
    assert final_state({"epoch": 1, "val_acc": 0.4}) == "PRUNED"  # stopped before its last epoch: never tested
    assert final_state({"error": "InputError: ..."}) == "FAIL" and final_state({"epoch": 2}, failed=True) == "FAIL"
