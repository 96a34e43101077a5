from pathlib import Path

import pytest
import yaml
from studykit import write_study

from msup.cli import main
from msup.errors import InputError
from msup.search.config.preflight import load_study_config

REPO = Path(__file__).resolve().parents[3]
SPACE = {"parameters": {"coats": {"type": "int", "low": 1, "high": 3},
                        "outer_density": {"type": "float", "low": 0.01, "high": 0.5, "log": True},
                        "coat_keep": {"type": "float", "low": 0.2, "high": 0.7}}}


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def base(**changes):
    return {"name": "t", "train": {"optim": {"epochs": 2}}, "search_space": SPACE, "trials": 4, **changes}


@pytest.mark.parametrize("study", sorted(p.name for p in (REPO / "studies").glob("*.yaml")))
def test_shipped_studies_are_valid(study):
    config = load_study_config(REPO / "studies" / study)
    assert config.space.params and config.trials is None  # a compute budget ends them
    trials = {"digits": 40, "mnist5k": 24, "mnist1d": 40}[study.split("-")[0].removesuffix(".yaml")]
    unpruned = trials * config.train["optim"]["epochs"]
    assert config.budget is not None and config.budget.trial_epochs == unpruned  # what their unpruned trials cost


def test_the_cluster_study_is_valid_and_keeps_its_database_password_out():
    config = load_study_config(REPO / "studies" / "cluster" / "cifar10-resnet18.yaml")
    assert config.gpu == 0.25 and config.storage.startswith("postgresql://msup:${PGPASSWORD}@")


@pytest.mark.parametrize("manifest", ["rayjob-s3.yaml", "ray-cluster-s3.yaml"])
def test_the_cluster_examples_without_a_shared_file_system_mount_nothing(manifest):
    text = (REPO / "studies" / "cluster" / manifest).read_text()
    spec = yaml.safe_load(text)
    assert "MSUP_RUNS" in text and "s3://" in text and "nfs" not in text.lower()
    assert "volumes" not in text and "volumeMounts" not in text and "/mnt/shared" not in text
    assert spec.get("kind") == "RayJob" or "setup_commands" in spec


def test_valid_study_resolves_files_relative_to_itself(tmp_path):
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    config = load_study_config(write(tmp_path, base(search_space="space.yaml")))
    assert config.space.max_coats == 3 and config.train == {"optim": {"epochs": 2}}
    assert config.to_dict()["search_space"] == SPACE


@pytest.mark.parametrize(
    "data, message",
    [
        ("", "must be a YAML mapping"),
        ("[1, 2]", "must be a YAML mapping"),
        ("name: [unclosed", "not a readable YAML file"),
        (base(name="../escape"), "name: '../escape' must be"),
        (base(trials=0), "trials: 0 must be >= 1"),
        (base(max_concurrent="two"), "max_concurrent: 'two'"),
        (base(objectives={"accuracy": "test_acc"}), "objectives.accuracy: 'test_acc' is not one of"),
        (base(objectives={"size": "bytes"}), "objectives.size: 'bytes' is not one of"),
        (base(sampler={"name": "cmaes"}), "sampler.name: 'cmaes' is not one of tpe, nsga2, gp, random"),
        (base(pruner={"name": "medium"}), "pruner.name: 'medium' is not one of"),
        (base(pruner={"name": "median", "n_warmup": 2}), "invalid settings for median pruner"),
        (base(resources={"cpu": 0}), "resources.cpu: 0 must be > 0"),
        (base(resources={"gpu": 1.5}), "whole number of GPUs"),
        (base(search_space="missing.yaml"), "search_space: file 'missing.yaml' not found"),
        (base(search_space=None), "search_space: None must be a path to a YAML file or a mapping"),
        (base(sampler={"seed": 1}), "sampler.name: required"),
        (base(loggers=["mlflow", "neptune"]), "loggers.neptune: unknown key; known keys: mlflow, wandb, tensorboard"),
        (base(loggers={"wandb": {"projekt": "x"}}), "loggers.wandb.projekt: unknown key; did you mean project?"),
        (base(max_concurrent=True), "max_concurrent: True must be an integer"),
        (base(train={"optim": {"lr": -1}}), "train.optim.lr"),
        (base(train={"optim": {"epochs": 2}, "modle": {}}), "train.modle"),
        (base(extra_key=1), "extra_key: unknown key"),
        (base(search_space={"parameters": {"lr": {"type": "float", "low": -1.0, "high": 0.1}}}),
         "search_space can produce an invalid training config: optim.lr"),
        (base(search_space={"parameters": {"batch_size": {"type": "int", "low": 16, "high": 100000}}}),
         "search_space can produce an invalid training config"),
        (base(size_budget=0.008), "size_budget: 0.008 must be a mapping"),
        (base(size_budget={"maximum": 0.008}), "size_budget.maximum: unknown key; did you mean max?"),
        (base(size_budget={"max": -1}), "size_budget.max: -1 must be > 0"),
        (base(size_budget={"min": 0.01, "max": 0.005}), "size_budget: min 0.01 must be below max 0.005"),
        (base(size_budget={"max": 0.008, "count_rejected": "yes"}), "size_budget.count_rejected: 'yes' must be true or false"),
        (base(size_budget={"count_rejected": True}), "size_budget: needs max and/or min"),
        (base(checkpoint={"every_s": -1}), "checkpoint.every_s: -1 must be >= 0"),
        (base(checkpoint={"every": 30}), "checkpoint.every: unknown key; did you mean every_s?"),
        (base(size_budget={"max": 0.008}, objectives={"size": "size_artifact_bytes"}),
         "size_budget: the artifact's size is known only after training"),
        (base(size_budget={"max": 0.0001}), "size_budget: no configuration of the search space fits {'max': 0.0001}"),
        (base(size_budget={"min": 5.0}), "span 0.00"),
        (base(sampler={"name": "tpe", "learn_from_pruned": "yes"}), "sampler.learn_from_pruned: 'yes' must be true or false"),
    ],
)
def test_malformed_studies_are_rejected_with_the_key(tmp_path, data, message):
    with pytest.raises(InputError) as exc:
        load_study_config(write(tmp_path, data))
    assert message in str(exc.value)


def test_every_problem_is_listed(tmp_path):
    with pytest.raises(InputError) as exc:
        load_study_config(write(tmp_path, base(trials=-1, max_concurrent=0, pruner={"name": "x"})))
    assert "3 problem(s)" in str(exc.value)


def test_a_size_budget_is_kept_in_the_resolved_study(tmp_path):
    config = load_study_config(write(tmp_path, base(size_budget={"max": 0.008})))
    assert config.size_budget is not None and config.size_budget.rejection(0.0113) == "size 0.0113 MiB over the budget 0.008 MiB"
    assert config.size_budget.rejection(0.008) is None and config.size_budget.violation(0.0113) == pytest.approx(0.0033)
    assert load_study_config(write(tmp_path, config.to_dict())).size_budget == config.size_budget


@pytest.mark.parametrize("study", ["digits", "mnist5k-conv", "mnist1d"])
def test_the_edge_popup_twin_differs_from_its_study_only_in_its_coats(study):
    msup, twin = (load_study_config(REPO / "studies" / f"{name}.yaml") for name in (study, f"{study}-edge-popup"))
    mine, theirs = msup.to_dict(), twin.to_dict()
    assert {k for k in mine if mine[k] != theirs[k]} == {"name", "description", "search_space"}
    coat_settings = {"coats", "coat_keep", "scale_init", "grad_normalize"}  # what N = 1 fixes or leaves out
    params = {name: spec for name, spec in mine["search_space"]["parameters"].items() if name not in coat_settings}
    assert params == {n: s for n, s in theirs["search_space"]["parameters"].items() if n not in coat_settings}
    assert twin.space.max_coats == 1


@pytest.mark.parametrize("entry, problem", [
    ({"lr": 0.9}, "enqueue[0].lr: 0.9 is outside [0.05, 0.3]"),
    ({"coats": 5}, "enqueue[0].coats: 5 is outside [1, 3]"),
    ({"coats": 2.0}, "enqueue[0].coats: 2.0 must be an integer"),
    ({"coats": 2, "coat_keep_3": 0.4}, "enqueue[0].coat_keep_3: needs coats >= 3 in the same configuration"),
    ({"momentum": 0.5}, "enqueue[0].momentum: not a sampled parameter of the search space"),
    ({"coat_keep": 0.5}, "enqueue[0].coat_keep: not a sampled parameter"),
])
def test_an_enqueued_configuration_outside_the_space_is_one_line_and_exit_2(tmp_path, capsys, entry, problem):
    path = write_study(tmp_path, "bad", enqueue=[entry])
    assert main(["study", "launch", str(path), "--runs-dir", str(tmp_path / "runs"), "--dry-run"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and problem in error, error


def test_enqueued_configurations_are_kept_in_the_resolved_study(tmp_path):
    entries = [{"coats": 3, "outer_density": 0.3, "coat_keep_2": 0.2627, "coat_keep_3": 0.4}, {"lr": 0.1}]
    config = load_study_config(write_study(tmp_path, "ok", enqueue=entries))
    assert config.enqueue == tuple(entries) and config.to_dict()["enqueue"] == entries
