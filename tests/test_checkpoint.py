"""Checkpoints: exact resume, weights-only files, models rebuilt for export."""

import pytest
import torch

from msup.checkpoint import FORMAT, load_checkpoint, model_from_checkpoint
from msup.config import TrainConfig
from msup.errors import InputError
from msup.train import Trainer, evaluate


def config(*overrides):
    return TrainConfig().with_overrides(["runtime.device=cpu", "optim.epochs=4", *overrides])


def _without_time(history):
    return [{k: v for k, v in m.items() if k != "epoch_s"} for m in history]


def test_resume_repeats_a_straight_run_exactly(tmp_path):
    straight = Trainer(config())
    list(straight.epochs())

    first = Trainer(config())
    for metrics in first.epochs():
        if metrics["epoch"] == 2:
            first.save_checkpoint(tmp_path / "ckpt.pt")
            break
    resumed = Trainer(config())
    resumed.load_checkpoint(tmp_path / "ckpt.pt")
    assert [m["epoch"] for m in resumed.epochs()] == [3, 4]

    assert _without_time(resumed.history) == _without_time(straight.history)
    final, again = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(final[k], again[k]) for k in final)
    assert straight.best["epoch"] == resumed.best["epoch"]
    assert straight.finish().summary() | {"wall_s": 0} == resumed.finish().summary() | {"wall_s": 0}


def test_file_is_weights_only_and_atomic(tmp_path):
    trainer = Trainer(config("optim.epochs=1"))
    list(trainer.epochs())
    path = tmp_path / "sub" / "ckpt.pt"
    trainer.save_checkpoint(path)
    trainer.save_checkpoint(path)  # overwriting leaves no temporary file behind
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]
    state = torch.load(path, weights_only=True)
    assert state["format"] == FORMAT and state["epoch"] == 1
    assert TrainConfig.from_dict(state["config"]) == config("optim.epochs=1")
    # scores and BatchNorm only: the frozen random weights are rebuilt from the seed
    assert {k for k in state["model"] if k.endswith("scores")} == {"1.scores", "4.scores", "7.scores"}
    assert {k for k in state["model"] if k.endswith(".weight")} == {"2.weight", "5.weight"}


def test_model_from_checkpoint_gives_final_and_best_state(tmp_path):
    trainer = Trainer(config("optim.lr=0.5"))
    list(trainer.epochs())
    trainer.save_checkpoint(tmp_path / "ckpt.pt")
    result = trainer.finish()
    final, spec = model_from_checkpoint(tmp_path / "ckpt.pt")
    best, _ = model_from_checkpoint(tmp_path / "ckpt.pt", state="best")
    assert spec == trainer.spec and not final.training
    assert evaluate(final, "digits") == result.test_acc
    assert evaluate(best, "digits") == result.best_test_acc


def test_bad_checkpoints_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable msup checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"format": "other/1"}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not an msup checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_resuming_another_config_is_refused(tmp_path):
    trainer = Trainer(config("optim.epochs=1"))
    list(trainer.epochs())
    trainer.save_checkpoint(tmp_path / "ckpt.pt")
    with pytest.raises(InputError, match=r"different config \(optim.epochs, optim.lr differ\)"):
        Trainer(config("optim.lr=0.05")).load_checkpoint(tmp_path / "ckpt.pt")
    Trainer(config("optim.epochs=1", "runtime.num_workers=0")).load_checkpoint(tmp_path / "ckpt.pt")
