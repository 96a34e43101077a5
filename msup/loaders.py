"""Batch iterators that yield ``(images, labels)`` already on the training device.

`TensorBatches` keeps a whole small data set (digits, CIFAR) on the device as
uint8 and does the training augmentation there, batch-wise with tensor ops:
no per-sample Python in the hot path. `FolderBatches` wraps a `DataLoader`
(worker processes, pinned memory) for data sets too large for that.

Training iterators draw shuffling and augmentation from their own CPU
``generator``; saving its state at an epoch boundary makes the next epoch
reproducible after a resume, on any device.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

Batch = tuple[torch.Tensor, torch.Tensor]


class Batches(Protocol):
    """One split: iterate for one pass; ``len`` is batches per pass."""

    num_samples: int
    generator: torch.Generator | None

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Batch]: ...


class TensorBatches:
    """A split held on ``device``: uint8 NCHW images normalised per batch.

    ``seed`` given: a training split, shuffled every pass, the incomplete last
    batch dropped (BatchNorm needs more than one sample), and with ``augment``
    a random crop from the image zero-padded by ``pad`` pixels plus a random
    horizontal flip (torchvision's RandomCrop(padding) + RandomHorizontalFlip).
    ``seed`` None: fixed order, every image once.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        scale: float,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        batch_size: int,
        device: torch.device,
        seed: int | None = None,
        augment: bool = False,
        pad: int = 4,
    ) -> None:
        self.images = images.to(device)
        self.labels = labels.to(device)
        channels = (1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(channels)
        self._gain = scale / std_t  # x_norm = uint8 * gain + offset
        self._offset = -torch.tensor(mean, dtype=torch.float32, device=device).view(channels) / std_t
        self.batch_size = batch_size
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)
        self.augment = augment
        self.pad = pad
        self.num_samples = len(self.labels)

    def __len__(self) -> int:
        if self.generator is not None:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        device = self.images.device
        if self.generator is None:
            order = torch.arange(self.num_samples, device=device)
        else:  # the whole pass's randomness in one draw and one copy: no host-device sync per batch
            order = torch.randperm(self.num_samples, generator=self.generator).to(device)
            if self.augment:
                shifts = torch.randint(0, 2 * self.pad + 1, (self.num_samples, 2), generator=self.generator)
                flips = torch.rand(self.num_samples, generator=self.generator) < 0.5
                shifts, flips = shifts.to(device), flips.to(device)
        for i in range(len(self)):
            batch = slice(i * self.batch_size, (i + 1) * self.batch_size)
            images = self.images[order[batch]]
            if self.augment:
                images = self._crop_and_flip(images, shifts[batch], flips[batch])
            yield images.float().mul_(self._gain).add_(self._offset), self.labels[order[batch]]

    def _crop_and_flip(self, images: torch.Tensor, shifts: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
        """Crop window offsets ``shifts`` (n, 2) and mirror where ``flips``: one gather into the padded batch."""
        n, _, height, width = images.shape
        device = images.device
        rows = shifts[:, :1] + torch.arange(height, device=device)
        cols_fwd = torch.arange(width, device=device)
        cols = shifts[:, 1:] + torch.where(flips[:, None], cols_fwd.flip(0), cols_fwd)
        padded = F.pad(images, (self.pad,) * 4)
        index = torch.arange(n, device=device)[:, None, None]
        return padded[index, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


class FolderBatches:
    """A `Dataset` of transformed tensors through a `DataLoader`, moved to ``device`` per batch.

    ``seed`` given: shuffled training order (incomplete last batch dropped);
    the worker processes' augmentation seeds derive from the same generator.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        device: torch.device,
        num_workers: int,
        seed: int | None = None,
    ) -> None:
        self.device = device
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=seed is not None,
            drop_last=seed is not None,
            generator=self.generator,
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
            persistent_workers=num_workers > 0,
        )
        self.num_samples = len(dataset)  # type: ignore[arg-type]  # torch's Dataset declares no __len__; these have one

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        for images, labels in self.loader:
            yield images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)


class Transformed(Dataset):
    """``dataset`` (yielding ``(image, label)``) with ``transform`` applied to the image.

    Lets the training and validation halves of one ImageFolder scan use different transforms.
    """

    def __init__(self, dataset: Dataset, transform: object) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]  # as above

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.dataset[index]
        return self.transform(image), label  # type: ignore[operator]  # torchvision's transforms are untyped
