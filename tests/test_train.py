"""Trainer on digits (CPU): learning, schedule, determinism, failures."""

import math

import pytest
import torch

from msup.config import TrainConfig
from msup.errors import InputError, RunError
from msup.train import Trainer, TrainingDiverged, evaluate, train

METRIC_KEYS = {"epoch", "train_loss", "train_acc", "val_acc", "best_val_acc", "lr", "epoch_s"}


def config(*overrides):
    return TrainConfig().with_overrides(["runtime.device=cpu", "optim.epochs=4", *overrides])


def _scores(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_supermask_mlp_learns_digits_and_reports_every_epoch():
    seen = []
    result = train(config(), on_epoch=seen.append)
    assert [m["epoch"] for m in seen] == [1, 2, 3, 4] and all(set(m) == METRIC_KEYS for m in seen)
    assert result.test_acc > 0.85 and result.best_test_acc > 0.85
    assert result.best_val_acc == max(m["val_acc"] for m in seen) == seen[-1]["best_val_acc"]
    assert result.best_val_acc == seen[result.best_epoch - 1]["val_acc"]
    assert seen[-1]["train_loss"] < seen[0]["train_loss"]
    assert 0 < result.size_paper_mib < result.dense_mib and result.size_entropy_mib <= result.size_paper_mib


def test_dense_baseline_trains_weights_not_scores():
    trainer = Trainer(config("model.dense=true"))
    names = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert names and not any("scores" in n for n in names)
    list(trainer.epochs())
    assert trainer.finish().test_acc > 0.85


def test_cosine_schedule_with_warmup_reaches_zero():
    trainer = Trainer(config("optim.warmup_epochs=2", "optim.lr=0.2"))
    lrs = [m["lr"] for m in trainer.epochs()]
    assert lrs[0] == pytest.approx(0.1)  # last step of the first of two warmup epochs: half the peak
    assert lrs[1] == pytest.approx(0.2) and lrs[2] < 0.2
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    steps = len(trainer.data.train)
    assert lrs[3] == pytest.approx(0.1 * (1 + math.cos(math.pi * (2 * steps - 1) / (2 * steps))))


def test_batchnorm_weight_decay_is_optional():
    groups = Trainer(config("optim.bn_weight_decay=false", "optim.weight_decay=0.01")).optimizer.param_groups
    decays = {g["weight_decay"]: sum(p.numel() for p in g["params"]) for g in groups}
    assert decays[0.01] == 64 * 256 + 256 * 256 + 256 * 10  # the scores
    assert decays[0.0] == 2 * 2 * 256  # BatchNorm gamma and beta


def test_same_seed_same_run_other_seed_other_run():
    def run(seed):
        trainer = Trainer(config("optim.epochs=2", f"runtime.seed={seed}"))
        history = [{k: v for k, v in m.items() if k != "epoch_s"} for m in trainer.epochs()]
        return history, _scores(trainer.model)

    (h0, s0), (h0b, s0b), (h1, s1) = run(0), run(0), run(1)
    assert h0 == h0b and all(torch.equal(s0[k], s0b[k]) for k in s0)
    assert h0 != h1 and not torch.equal(s0["1.scores"], s1["1.scores"])


def test_divergence_names_epoch_and_step():
    trainer = Trainer(config("model.name=conv2", "mask.init_scale=1e30"))
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step 1 of \d+ \(conv2, lr 0.1, batch size 128\)"):
        list(trainer.epochs())


def test_out_of_memory_names_the_config(monkeypatch):
    trainer = Trainer(config())

    def no_memory(*args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainer, "criterion", no_memory)
    with pytest.raises(RunError, match="out of memory on cpu: model mlp .3 coats. on digits with optim.batch_size 128"):
        next(trainer.epochs())


def test_finish_needs_an_epoch_and_evaluate_agrees_with_it():
    trainer = Trainer(config("optim.epochs=2"))
    with pytest.raises(RunError, match="at least one"):
        trainer.finish()
    list(trainer.epochs())
    result = trainer.finish()
    assert evaluate(trainer.model, "digits") == result.test_acc
    with pytest.raises(InputError, match="split"):
        evaluate(trainer.model, "digits", split="holdout")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_an_input_error():
    with pytest.raises(InputError, match="runtime.device: cuda"):
        Trainer(TrainConfig().with_overrides(["runtime.device=cuda"]))
