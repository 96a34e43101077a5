"""Model registry: `create_model(name, ...)` and `list_models()`.

Every builder makes an ordinary torch network (bias-free conv/linear layers),
which `convert_to_supermask` then turns into a supermasked one. With
``mask=None`` the same architecture is returned dense and trainable, the
baseline every size is compared with.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from msup.catalog import add_model_name
from msup.errors import InputError
from msup.layers import MaskConfig, convert_to_supermask

InputShape = tuple[int, int, int]
Builder = Callable[..., nn.Module]  # (num_classes, input_shape), plus the keyword options the entry takes


@dataclass(frozen=True)
class ModelEntry:
    name: str
    build: Builder
    description: str
    default_dataset: str
    scalable: bool = False  # its builder takes ``width``, a multiplier of every layer's width
    batchnorm_option: bool = False  # its builder takes ``batchnorm``, BatchNorm after every conv


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str, description: str, default_dataset: str, scalable: bool = False, batchnorm_option: bool = False,
) -> Callable[[Builder], Builder]:
    def decorate(build: Builder) -> Builder:
        _REGISTRY[name] = ModelEntry(name, build, description, default_dataset, scalable, batchnorm_option)
        add_model_name(name)
        return build

    return decorate


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def model_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown model {name!r}; choose one of {', '.join(list_models())}") from None


def create_model(
    name: str,
    num_classes: int,
    input_shape: Sequence[int],
    mask: MaskConfig | None = None,
    *,
    dense_first_last: bool = False,
    bn_affine: bool = True,
    width: float = 1.0,
    batchnorm: bool = False,
) -> nn.Module:
    """Build ``name`` for ``num_classes`` outputs and (C, H, W) inputs.

    ``mask`` makes it supermasked (see `convert_to_supermask` for the options);
    ``None`` keeps it dense. ``width`` multiplies every layer's width, for the
    models registered ``scalable`` (the Conv-n and 1-D CNN families);
    ``batchnorm`` adds BatchNorm after every conv of the models registered with
    that option (the Conv-n family).
    """
    entry = model_entry(name)
    if width != 1.0 and not entry.scalable:
        raise InputError(f"model.width={width:g}: {name} has no width multiplier "
                         f"(models with one: {_models_with('scalable')})")
    if batchnorm and not entry.batchnorm_option:
        raise InputError(f"model.batchnorm: {name} has no BatchNorm option "
                         f"(models with one: {_models_with('batchnorm_option')})")
    if not width > 0:
        raise InputError(f"model.width={width:g} must be above 0")
    if num_classes < 2:
        raise InputError(f"num_classes={num_classes} must be at least 2")
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"input_shape={list(input_shape)} must be (channels, height, width) of positive sizes")
    options: dict[str, Any] = {"width": width} if entry.scalable else {}
    if entry.batchnorm_option:
        options["batchnorm"] = batchnorm
    model = entry.build(num_classes, shape, **options)
    if mask is not None:
        convert_to_supermask(model, mask, dense_first_last=dense_first_last, bn_affine=bn_affine)
    return model


def _models_with(option: str) -> str:
    return ", ".join(n for n in list_models() if getattr(_REGISTRY[n], option))


@dataclass(frozen=True)
class ModelSpec:
    """Everything `create_model` needs, as plain data: saved with checkpoints and model files.

    Building the same spec twice gives identical frozen weights and initial scores.
    """

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]
    mask: MaskConfig | None
    dense_first_last: bool = False
    bn_affine: bool = True
    width: float = 1.0
    batchnorm: bool = False

    def build(self) -> nn.Module:
        return create_model(
            self.name, self.num_classes, self.input_shape, self.mask,
            dense_first_last=self.dense_first_last, bn_affine=self.bn_affine, width=self.width,
            batchnorm=self.batchnorm,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (lists, not tuples)."""
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        if self.mask is not None:
            data["mask"]["sparsities"] = list(self.mask.sparsities)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Inverse of `to_dict`; raises `InputError` on a malformed spec."""
        try:
            mask = data.get("mask")
            return cls(
                name=str(data["name"]),
                num_classes=int(data["num_classes"]),
                input_shape=tuple(int(d) for d in data["input_shape"]),  # type: ignore[arg-type]  # (C, H, W), checked
                mask=None if mask is None else MaskConfig(**{**mask, "sparsities": tuple(mask["sparsities"])}),
                dense_first_last=bool(data.get("dense_first_last", False)),
                bn_affine=bool(data.get("bn_affine", True)),
                width=float(data.get("width", 1.0)),
                batchnorm=bool(data.get("batchnorm", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed model spec {data!r}: {exc}") from None


# --- builders -------------------------------------------------------------------------


@register_model("mlp", "64-256-256-classes MLP with BatchNorm (for 8x8 digits)", "digits")
def _mlp(num_classes: int, input_shape: InputShape) -> nn.Module:
    width = 256
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(input_shape), width, bias=False),
        nn.BatchNorm1d(width),
        nn.ReLU(inplace=True),
        nn.Linear(width, width, bias=False),
        nn.BatchNorm1d(width),
        nn.ReLU(inplace=True),
        nn.Linear(width, num_classes, bias=False),
    )


class ConvNet(nn.Module):
    """Edge-popup's Conv-n: 3x3 conv + ReLU pairs, 2x2 max-pool after each pair, then 256-256-classes.

    ``width`` multiplies every layer's width (at least 1 channel each): 0.25 makes
    a Conv-4 that trains an epoch of the 3,200 mnist5k training images in seconds on a CPU.
    ``batchnorm`` puts a BatchNorm between each conv and its ReLU (edge-popup's Conv-n has none).
    """

    def __init__(self, widths: Sequence[int], num_classes: int, input_shape: InputShape, width: float = 1.0,
                 batchnorm: bool = False) -> None:
        super().__init__()
        widths = [max(1, round(w * width)) for w in widths]
        hidden = max(1, round(256 * width))
        channels, height, width = input_shape
        pools = len(widths) // 2
        if height % 2**pools or width % 2**pools:
            raise InputError(
                f"conv{len(widths)} halves the image {pools} times: input {height}x{width} "
                f"must be divisible by {2**pools}"
            )
        layers: list[nn.Module] = []
        for i, out in enumerate(widths):
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False),
                       *([nn.BatchNorm2d(out)] if batchnorm else []), nn.ReLU(inplace=True)]
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2))
            channels = out
        self.features = nn.Sequential(*layers)
        flat = channels * (height // 2**pools) * (width // 2**pools)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


_CONV_WIDTHS = {2: (64, 64), 4: (64, 64, 128, 128), 6: (64, 64, 128, 128, 256, 256)}
_CONV_WIDTHS[8] = (*_CONV_WIDTHS[6], 512, 512)


def _register_convnets() -> None:
    for depth, widths in _CONV_WIDTHS.items():

        def build(num_classes: int, input_shape: InputShape, width: float = 1.0, batchnorm: bool = False,
                  widths: tuple[int, ...] = widths) -> nn.Module:
            return ConvNet(widths, num_classes, input_shape, width, batchnorm)

        register_model(f"conv{depth}", f"edge-popup Conv-{depth} (CIFAR-10; model.width scales it)", "cifar10",
                       scalable=True, batchnorm_option=True)(build)


_register_convnets()


class SignalCNN(nn.Module):
    """A 1-D CNN for MNIST-1D's one-row signals: three conv + BatchNorm + ReLU blocks, one linear head.

    Kernel 5 throughout; the second and third convs halve the length (40 -> 20 -> 10).
    ``width`` multiplies the 32 channels of every conv (at least 1). Inputs are
    (C, 1, L) images, the layout every msup data set shares; the height is dropped.
    """

    def __init__(self, num_classes: int, input_shape: InputShape, width: float = 1.0) -> None:
        super().__init__()
        channels, height, length = input_shape
        if height != 1:
            raise InputError(f"cnn1d reads one-row signals: input_shape={list(input_shape)} must have height 1")
        hidden = max(1, round(32 * width))
        layers: list[nn.Module] = []
        for stride in (1, 2, 2):
            layers += [nn.Conv1d(channels, hidden, 5, stride=stride, padding=2, bias=False),
                       nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
            channels, length = hidden, (length - 1) // stride + 1
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(hidden * length, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.flatten(2)).flatten(1))


@register_model("cnn1d", "1-D CNN, 3 convs + BatchNorm + linear head (MNIST-1D; model.width scales it)", "mnist1d",
                scalable=True)
def _cnn1d(num_classes: int, input_shape: InputShape, width: float = 1.0) -> nn.Module:
    return SignalCNN(num_classes, input_shape, width)


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm and an identity or 1x1-conv shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet18(nn.Module):
    """ResNet-18 for 32x32 inputs: 3x3 stem, no max-pool, four stages of two basic blocks."""

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        stages, in_planes = [], 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(nn.Sequential(BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1)))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.pool(x).flatten(1))


@register_model("resnet18", "ResNet-18, CIFAR variant (3x3 stem, no max-pool)", "cifar10")
def _resnet18(num_classes: int, input_shape: InputShape) -> nn.Module:
    return CifarResNet18(num_classes, input_shape[0])


def _torchvision(factory_name: str) -> Builder:
    def build(num_classes: int, input_shape: InputShape) -> nn.Module:
        import torchvision.models

        if input_shape[0] != 3:
            raise InputError(f"{factory_name} takes 3-channel images, got input_shape={list(input_shape)}")
        model = getattr(torchvision.models, factory_name)(weights=None, num_classes=num_classes)
        model.fc = nn.Linear(model.fc.in_features, num_classes, bias=False)
        return model

    return build


for _name, _label in (("resnet50", "ResNet-50"), ("resnet101", "ResNet-101"), ("wide_resnet50_2", "Wide ResNet-50-2")):
    register_model(_name, f"{_label} (torchvision definition, ImageNet)", "imagenet")(_torchvision(_name))
