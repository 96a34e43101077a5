"""`msup train`: outputs of a run, exit codes, and nothing written on bad input."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from msup.cli import main
from msup.config import TrainConfig

DIGITS = str(Path(__file__).parents[1] / "studies" / "train" / "digits-mlp.yaml")
QUICK = ["--set", "optim.epochs=2", "--set", "runtime.device=cpu"]


def test_train_writes_config_metrics_final_and_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", DIGITS, *QUICK, "--set", "mask.sparsities=[0.6]", "--out", str(out)]) == 0
    resolved = TrainConfig.from_dict(yaml.safe_load((out / "config.yaml").read_text()))
    assert resolved.mask.sparsities == (0.6,) and resolved.optim.epochs == 2
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    final = json.loads((out / "final.json").read_text())
    for key in ("final_val_acc", "best_val_acc", "test_acc", "best_test_acc", "size_paper_mib",
                "size_entropy_mib", "dense_mib", "wall_s"):
        assert isinstance(final[key], float), key
    assert final["best_val_acc"] == max(m["val_acc"] for m in lines)
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 2
    captured = capsys.readouterr()
    assert "test accuracy" in captured.out and "epoch 2/2" in captured.err


def test_default_output_folder_is_named_after_the_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", DIGITS, *QUICK, "--set", "optim.epochs=1"]) == 0
    assert (tmp_path / "runs" / "train" / "digits-mlp" / "final.json").is_file()


@pytest.mark.parametrize(
    "sets, message",
    [
        (["optim.lrr=0.1"], "optim.lrr: unknown key; did you mean lr?"),
        (["optim.epochs=many"], "optim.epochs: 'many' must be an integer"),
        (["optim.lr=-0.1"], "optim.lr: -0.1 must be > 0"),
        (["optim.epochs=0"], "optim.epochs: 0 must be >= 1"),
        (["optim.batch_size=4096"], "optim.batch_size: 4096 is larger than the training split"),
        (["data.name=mnist"], "data.name: 'mnist' is not one of cifar10, cifar100, digits, imagenet"),
        (["model.name=vgg"], "model.name: 'vgg' is not one of cnn1d, conv2"),
        (["data.name=cifar10", "data.data_dir=/nonexistent/msup", "model.name=conv2"], "data.download: true"),
        (["lr=0.1"], "expected SECTION.KEY=VALUE"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, sets, message):
    out = tmp_path / "run"
    args = [arg for s in sets for arg in ("--set", s)]
    assert main(["train", DIGITS, *args, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_unreadable_config_exits_2(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "run")]) == 2
    assert "cannot read config" in capsys.readouterr().err


def test_divergence_exits_1(tmp_path, capsys):
    sets = ["--set", "model.name=conv2", "--set", "mask.init_scale=1e30"]
    assert main(["train", DIGITS, *QUICK, *sets, "--out", str(tmp_path / "run")]) == 1
    assert "training diverged" in capsys.readouterr().err
