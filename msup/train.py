"""One training trial: data, model, SGD with a cosine schedule, evaluation, checkpoints.

`Trainer` is driven epoch by epoch (the Ray Tune trainable reports after each
yield); `train` runs a whole config; `evaluate` measures a model's accuracy on
a split. Accuracies are fractions in [0, 1]; times are seconds.

Scores change only at optimizer steps, so levels are refreshed right after
each step (`refresh_levels`), once per step. On CPU a run is deterministic
for a given ``runtime.seed``, and a resumed run repeats a straight one exactly.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from msup import checkpoint
from msup.catalog import DEFAULT_VAL_FRACTION, batch_size_problem
from msup.config import TrainConfig
from msup.data import SPLITS, load_splits
from msup.errors import InputError, RunError
from msup.layers import refresh_levels
from msup.loaders import Batch, Batches
from msup.sizes import inventory, model_size

Progress = Callable[[Batches, int], Iterable[Batch]]  # wraps one epoch's batches (e.g. a tqdm bar)
RESUMABLE_RUNTIME_KEYS = ("device", "num_workers", "compile", "amp", "channels_last")
CUDA_CHECK_EVERY = 25  # steps between finite-loss checks on CUDA (each check synchronises)


class TrainingDiverged(RunError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainResult:
    """Outcome of a trial. ``test_acc``: final state; ``best_test_acc``: best-validation state.

    ``wall_s`` sums the epochs' times and the final test evaluation (resumed runs included).
    """

    epochs: int
    final_val_acc: float
    best_val_acc: float
    best_epoch: int
    test_acc: float
    best_test_acc: float
    size_paper_mib: float
    size_entropy_mib: float
    dense_mib: float
    wall_s: float
    history: tuple[dict[str, float], ...]

    def summary(self) -> dict[str, Any]:
        """Everything but the per-epoch history."""
        return {k: v for k, v in asdict(self).items() if k != "history"}


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when torch sees a GPU; ``cuda`` without one is an `InputError`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("runtime.device: cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def accuracy(model: nn.Module, batches: Batches, amp_dtype: torch.dtype | None = None,
             channels_last: bool = False) -> float:
    """Fraction of ``batches`` that ``model`` (put in eval mode) classifies correctly."""
    model.eval()
    correct: torch.Tensor | int = 0
    with torch.no_grad():
        for images, labels in batches:
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(images.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(images)
            correct = correct + (logits.argmax(1) == labels).sum()
    return int(correct) / batches.num_samples


def evaluate(
    model: nn.Module,
    dataset_name: str,
    data_dir: str | Path | None = None,
    split: str = "test",
    device: str | torch.device | None = None,
    batch_size: int = 1024,
    *,
    download: bool = False,
    val_fraction: float = DEFAULT_VAL_FRACTION,
) -> float:
    """Accuracy of ``model`` on one split of a data set (``device`` None: where the model is)."""
    if split not in SPLITS:
        raise InputError(f"split={split!r} is not one of {', '.join(SPLITS)}")
    if device is None:
        device = next(itertools.chain(model.parameters(), model.buffers())).device
    splits = load_splits(dataset_name, batch_size=batch_size, data_dir=data_dir, download=download,
                         val_fraction=val_fraction, device=device)
    return accuracy(model.to(device), {"train": splits.train, "val": splits.val, "test": splits.test}[split])


class Trainer:
    """Train one `TrainConfig`: iterate `epochs()`, then `finish()`. Checkpointable between epochs."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        rt, opt = config.runtime, config.optim
        self.device = resolve_device(rt.device)
        self.spec = config.model_spec()
        torch.manual_seed(rt.seed)  # the dense baseline's initial weights come from the global generator
        with self._oom_as_run_error():
            self.data = load_splits(
                config.data.name, batch_size=opt.batch_size, data_dir=config.data.data_dir,
                download=config.data.download, val_fraction=config.data.val_fraction,
                device=self.device, seed=rt.seed, num_workers=rt.num_workers,
            )
        problem = batch_size_problem(config.data.name, opt.batch_size, self.data.train.num_samples,
                                     config.data.val_fraction)
        if problem:
            raise InputError(problem)
        cuda = self.device.type == "cuda"
        self.channels_last = cuda and rt.channels_last
        self.amp_dtype = _amp_dtype() if cuda and rt.amp else None
        with self._oom_as_run_error():
            self.model = self.spec.build().to(self.device)
            if self.channels_last:
                self.model = self.model.to(memory_format=torch.channels_last)
        self.forward: nn.Module = torch.compile(self.model) if rt.compile else self.model  # type: ignore[assignment]  # a wrapped Module
        self.optimizer = torch.optim.SGD(
            _param_groups(self.model, opt.weight_decay, opt.bn_weight_decay),
            lr=opt.lr, momentum=opt.momentum, nesterov=opt.nesterov,
        )
        steps = len(self.data.train)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _cosine_with_warmup(steps * opt.warmup_epochs, steps * opt.epochs)
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=opt.label_smoothing)
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.best: dict[str, Any] | None = None

    def epochs(self, progress: Progress | None = None) -> Iterator[dict[str, float]]:
        """Train the remaining epochs, yielding each one's metrics (``epoch`` is 1-based)."""
        while self.epoch < self.config.optim.epochs:
            with self._oom_as_run_error():
                metrics = self._train_epoch(progress)
            yield metrics

    def finish(self) -> TrainResult:
        """Test accuracy of the final and of the best-validation state."""
        if self.best is None:
            raise RunError("finish() needs at least one trained epoch")
        start = time.perf_counter()
        with self._oom_as_run_error():
            test_acc = self._accuracy(self.data.test)
            best_test_acc = test_acc
            if self.best["epoch"] != self.epoch:
                final_state = _cpu_copy(self.model.state_dict())
                self.model.load_state_dict(self.best["model"])
                best_test_acc = self._accuracy(self.data.test)
                self.model.load_state_dict(final_state)
        size = model_size(inventory(self.model), self.config.mask.sparsities)
        dense = self.spec.mask is None  # the baseline stores every weight in fp32: its size is dense_mib
        return TrainResult(
            epochs=self.epoch,
            final_val_acc=self.history[-1]["val_acc"],
            best_val_acc=self.best["val_acc"],
            best_epoch=self.best["epoch"],
            test_acc=test_acc,
            best_test_acc=best_test_acc,
            size_paper_mib=size.dense_mib if dense else size.paper_mib,
            size_entropy_mib=size.dense_mib if dense else size.entropy_mib,
            dense_mib=size.dense_mib,
            wall_s=sum(m["epoch_s"] for m in self.history) + time.perf_counter() - start,
            history=tuple(self.history),
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this trainer stands (see `msup.checkpoint`)."""
        generator = self.data.train.generator
        return {
            "model_spec": self.spec.to_dict(),
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
                "data": None if generator is None else generator.get_state(),
            },
            "best": self.best,
            "history": list(self.history),
        }

    def save_checkpoint(self, path: str | Path) -> None:
        checkpoint.save_checkpoint(path, self.state_dict())

    def load_checkpoint(self, path: str | Path) -> None:
        """Continue from a checkpoint of the same config (runtime placement keys may differ)."""
        state = checkpoint.load_checkpoint(path)
        mine, theirs = _flat(self.config.to_dict()), _flat(state["config"])
        free = {f"runtime.{key}" for key in RESUMABLE_RUNTIME_KEYS}
        differ = sorted(k for k in mine.keys() | theirs.keys() if k not in free and mine.get(k) != theirs.get(k))
        if differ:
            raise InputError(f"{path} was trained with a different config ({', '.join(differ)} differ)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state.get("scaler") or {})
        self.epoch, self.best, self.history = state["epoch"], state["best"], list(state["history"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if self.device.type == "cuda" and rng["cuda"]:
            torch.cuda.set_rng_state_all(rng["cuda"])
        if self.data.train.generator is not None and rng["data"] is not None:
            self.data.train.generator.set_state(rng["data"])

    # --- internals -----------------------------------------------------------------------

    def _train_epoch(self, progress: Progress | None) -> dict[str, float]:
        start = time.perf_counter()
        epoch, batches = self.epoch + 1, self.data.train
        self.forward.train()
        losses = torch.zeros(len(batches), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        check_every = CUDA_CHECK_EVERY if self.device.type == "cuda" else 1
        checked = 0
        lr = self.optimizer.param_groups[0]["lr"]
        for step, (images, labels) in enumerate(progress(batches, epoch) if progress else batches):
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                logits = self.forward(images)
                loss = self.criterion(logits, labels)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            refresh_levels(self.model)
            lr = self.optimizer.param_groups[0]["lr"]
            self.scheduler.step()
            losses[step] = loss.detach()
            correct += (logits.argmax(1) == labels).sum()
            if (step + 1) % check_every == 0 or step + 1 == len(batches):
                self._check_finite(losses, checked, step + 1, epoch)
                checked = step + 1
        val_acc = self._accuracy(self.data.val)
        if self.best is None or val_acc > self.best["val_acc"]:
            self.best = {"epoch": epoch, "val_acc": val_acc, "model": _cpu_copy(self.model.state_dict())}
        self.epoch = epoch
        metrics = {
            "epoch": epoch,
            "train_loss": losses.mean().item(),
            "train_acc": correct.item() / (len(batches) * self.config.optim.batch_size),
            "val_acc": val_acc,
            "best_val_acc": self.best["val_acc"],
            "lr": lr,
            "epoch_s": time.perf_counter() - start,
        }
        self.history.append(metrics)
        return metrics

    def _check_finite(self, losses: torch.Tensor, begin: int, end: int, epoch: int) -> None:
        window = losses[begin:end]
        finite = torch.isfinite(window)
        if bool(finite.all()):
            return
        bad = begin + int((~finite).nonzero()[0])
        opt = self.config.optim
        raise TrainingDiverged(
            f"training diverged: loss {losses[bad].item()} at epoch {epoch}, step {bad + 1} of "
            f"{len(losses)} ({self.spec.name}, lr {opt.lr:g}, batch size {opt.batch_size}); "
            "lower optim.lr or mask.init_scale"
        )

    def _accuracy(self, batches: Batches) -> float:
        return accuracy(self.forward, batches, self.amp_dtype, self.channels_last)

    @contextmanager
    def _oom_as_run_error(self) -> Iterator[None]:
        """Turns an out-of-memory error (CUDA, or a refused host allocation) into a `RunError` naming the config."""
        try:
            yield
        except (MemoryError, RuntimeError) as exc:  # torch.OutOfMemoryError is a RuntimeError
            if not _out_of_memory(exc):
                raise
            cfg = self.config
            coats = "dense" if cfg.model.dense else f"{len(cfg.mask.sparsities)} coats"
            raise RunError(
                f"out of memory on {self.device}: model {cfg.model.name} ({coats}) on {cfg.data.name} "
                f"with optim.batch_size {cfg.optim.batch_size}; lower the batch size or give the trial more memory"
            ) from exc


def _out_of_memory(exc: BaseException) -> bool:
    """CUDA's out-of-memory error, or the host allocator's refusal (a plain RuntimeError in torch)."""
    text = str(exc)
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "can't allocate memory" in text or "std::bad_alloc" in text


def train(config: TrainConfig, on_epoch: Callable[[dict[str, float]], None] | None = None) -> TrainResult:
    """Train ``config`` from scratch; ``on_epoch`` receives each epoch's metrics."""
    trainer = Trainer(config)
    for metrics in trainer.epochs():
        if on_epoch is not None:
            on_epoch(metrics)
    return trainer.finish()


def _amp_dtype() -> torch.dtype:
    """bfloat16 where the GPU supports it (no loss scaling needed), else float16."""
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _cosine_with_warmup(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """LR factor per step: linear warmup to 1, then half a cosine down to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup_steps) / max(1, total_steps - warmup_steps)))

    return factor


def _param_groups(model: nn.Module, weight_decay: float, bn_weight_decay: bool) -> list[dict[str, Any]]:
    """Trainable parameters (scores, dense weights, BatchNorm), BatchNorm's decay optional."""
    bn = {id(p) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) for p in m.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in trainable if id(p) not in bn], "weight_decay": weight_decay},
        {"params": [p for p in trainable if id(p) in bn], "weight_decay": weight_decay if bn_weight_decay else 0.0},
    ]


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    """``{"optim": {"lr": 0.1}}`` -> ``{"optim.lr": 0.1}``."""
    return {f"{section}.{key}": value for section, values in config.items() for key, value in values.items()}


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
