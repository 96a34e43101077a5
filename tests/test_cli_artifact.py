import json
import os
from pathlib import Path

import pytest

from msup.checkpoint import save_checkpoint
from msup.cli import main
from msup.layers import MaskConfig
from msup.models import ModelSpec
from msup.train import evaluate

SPEC = ModelSpec("mlp", 10, (1, 8, 8), MaskConfig((0.7, 0.9212, 0.9685), seed=5))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint as `msup train` writes it; the fresh model's random scores stand in for trained ones."""
    model = SPEC.build().eval()
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"
    save_checkpoint(path, {
        "model_spec": SPEC.to_dict(), "config": {}, "model": model.state_dict(), "optimizer": {},
        "scheduler": {}, "epoch": 1, "rng": {}, "best": None, "history": [],
    })
    return path, model


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "model.msup"
    assert main(["export", str(checkpoint[0]), "--out", str(out)]) == 0
    return out


def test_export_then_inspect_reports_the_real_file_size(exported, capsys):
    assert main(["inspect", str(exported)]) == 0
    table = capsys.readouterr().out
    assert f"{os.path.getsize(exported):,} bytes" in table
    for row in ("levels", "tensors", "header", "paper accounting", "entropy bound", "dense fp32"):
        assert row in table
    assert main(["inspect", str(exported), "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["file_bytes"] == os.path.getsize(exported)
    assert summary["file_bytes"] == summary["header_bytes"] + summary["level_bytes"] + summary["tensor_bytes"]
    assert summary["codes"] == ["entropy"] and [layer["name"] for layer in summary["layers"]] == ["1", "4", "7"]


def test_unary_export_matches_the_paper_accounting(checkpoint, tmp_path, capsys):
    out = tmp_path / "unary.msup"
    assert main(["export", str(checkpoint[0]), "--out", str(out), "--code", "unary"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out), "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["codes"] == ["unary"]
    level_bits = sum(layer["payload_bits"] for layer in summary["layers"])
    assert level_bits == pytest.approx(1.3788 * summary["masked_weights"], rel=1e-3)


def test_evaluate_gives_the_checkpoint_model_accuracy(checkpoint, exported, capsys):
    assert main(["evaluate", str(exported), "--data", "digits", "--device", "cpu"]) == 0
    expected = evaluate(checkpoint[1], "digits", device="cpu")
    assert f"test accuracy {expected:.2%}" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["inspect"], ["evaluate", "--data", "digits"]])
def test_a_bad_model_file_exits_2_with_one_line(tmp_path, capsys, command):
    bad = tmp_path / "bad.msup"
    bad.write_bytes(b"definitely not a model")
    assert main([command[0], str(bad), *command[1:]]) == 2
    err = capsys.readouterr().err.strip()
    assert "not an msup model file" in err and "\n" not in err


def test_export_of_a_missing_checkpoint_exits_2(tmp_path, capsys):
    assert main(["export", str(tmp_path / "absent.pt"), "--out", str(tmp_path / "m.msup")]) == 2
    assert not (tmp_path / "m.msup").exists()


def test_the_1d_cnn_trains_exports_and_evaluates_through_the_cli(tmp_path, capsys):
    """MNIST-1D end to end: `msup train` of the shipped config, then export, inspect and evaluate its model file."""
    config = Path(__file__).resolve().parents[1] / "studies" / "train" / "mnist1d-conv.yaml"
    run, model = tmp_path / "run", tmp_path / "cnn1d.msup"
    assert main(["train", str(config), "--set", "optim.epochs=2", "--set", "model.width=0.25",
                 "--set", "runtime.device=cpu", "--out", str(run)]) == 0
    final = json.loads((run / "final.json").read_text())
    assert main(["export", str(run / "checkpoint.pt"), "--out", str(model)]) == 0
    assert main(["inspect", str(model), "--format", "json"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(model), "--data", "mnist1d", "--device", "cpu"]) == 0
    assert f"test accuracy {final['test_acc']:.2%} on mnist1d" in capsys.readouterr().out
