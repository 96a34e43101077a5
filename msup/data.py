"""Data sets msup knows: their input shape and class count."""

from __future__ import annotations

from dataclasses import dataclass

from msup.errors import InputError


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    description: str


_DATASETS = {
    info.name: info
    for info in (
        DatasetInfo("digits", (1, 8, 8), 10, "scikit-learn 8x8 digits, shipped with the package"),
        DatasetInfo("cifar10", (3, 32, 32), 10, "CIFAR-10 (torchvision download)"),
        DatasetInfo("cifar100", (3, 32, 32), 100, "CIFAR-100 (torchvision download)"),
        DatasetInfo("imagenet", (3, 224, 224), 1000, "ImageNet in ImageFolder layout (user-provided)"),
    )
}


def list_datasets() -> list[str]:
    return sorted(_DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    try:
        return _DATASETS[name]
    except KeyError:
        raise InputError(f"unknown dataset {name!r}; choose one of {', '.join(list_datasets())}") from None
