"""Supermasked conv and linear layers: frozen random weights, one trained score tensor.

The effective weight is ``W = weight * M`` where ``weight`` is a frozen random
tensor that already carries the layer scale sigma, and ``M`` in {0..N} is the
coat level cut from the scores (`msup.coats`). With one coat this is exactly
edge-popup. Levels are cached and refreshed once per optimizer step by the
trainer (`refresh_levels`), or recomputed in every forward (``refresh="forward"``,
edge-popup's behaviour) for comparison.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.common_types import _size_2_t

from msup.catalog import (
    REFRESH_MODES,
    SCALE_INITS,
    SCORE_INITS,
    WEIGHT_INITS,
    Refresh,
    ScaleInit,
    ScoreInit,
    WeightInit,
    validate_sparsities,
)
from msup.coats import CoatedWeight, coat_levels, kept_counts, level_fractions
from msup.errors import InputError

RELU_GAIN = math.sqrt(2.0)

PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]  # what nn.Conv1d and nn.Conv2d accept


@dataclass(frozen=True)
class MaskConfig:
    """Everything that defines a supermasked layer besides its shape.

    - ``sparsities``: cumulative sparsities ``p_1 < ... < p_N``; N coats.
    - ``weight_init``: frozen weight magnitudes, ``signed_constant`` (+-sigma) or
      ``kaiming_normal`` (N(0,1) * sigma).
    - ``scale_init``: the fan used for sigma = sqrt(2 / fan) * init_scale:
      ``density`` = fan_in * (1 - p_1) (the paper's), ``unscaled`` = fan_in,
      ``variance_preserving`` = fan_in * E[M^2] (Kaiming variance at init).
    - ``score_init``: ``kaiming_normal`` (fan_out, M-Sup) or ``kaiming_uniform``
      (a = sqrt(5), edge-popup).
    - ``grad_normalize``: divide the straight-through gradient by N.
    - ``refresh``: ``step`` (cached levels, the trainer refreshes) or ``forward``.
    - ``seed``: frozen weights and initial scores derive from it and the layer name.
    """

    sparsities: tuple[float, ...]
    weight_init: WeightInit = "signed_constant"
    scale_init: ScaleInit = "density"
    init_scale: float = 1.0
    score_init: ScoreInit = "kaiming_normal"
    grad_normalize: bool = False
    refresh: Refresh = "step"
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "sparsities", validate_sparsities(self.sparsities))
        _check_choice("weight_init", self.weight_init, WEIGHT_INITS)
        _check_choice("scale_init", self.scale_init, SCALE_INITS)
        _check_choice("score_init", self.score_init, SCORE_INITS)
        _check_choice("refresh", self.refresh, REFRESH_MODES)
        if not (isinstance(self.init_scale, (int, float)) and math.isfinite(self.init_scale) and self.init_scale > 0):
            raise InputError(f"init_scale={self.init_scale!r} must be a positive finite number")

    @property
    def coats(self) -> int:
        return len(self.sparsities)

    def with_seed(self, seed: int) -> MaskConfig:
        return replace(self, seed=seed)

    def scale_fan_factor(self) -> float:
        """Factor applied to fan_in before sigma = gain / sqrt(fan)."""
        if self.scale_init == "unscaled":
            return 1.0
        if self.scale_init == "density":
            return 1.0 - self.sparsities[0]
        fractions = level_fractions(self.sparsities)
        return sum(c * c * f for c, f in enumerate(fractions))


def _check_choice(key: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"{key}={value!r} is not one of {', '.join(choices)}")


def layer_seed(seed: int, name: str, purpose: str) -> int:
    """A stable 63-bit seed for one tensor of one layer, independent of build order."""
    digest = hashlib.blake2b(f"{seed}/{name}/{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class SupermaskMixin:
    """Shared state and behaviour of `MSupConv1d`, `MSupConv2d` and `MSupLinear`.

    The frozen weight is a non-persistent buffer: it is regenerated from the
    seed on construction, so checkpoints hold only scores (and BN state).
    """

    weight: torch.Tensor
    scores: nn.Parameter
    mask_config: MaskConfig
    layer_name: str
    sigma: float

    def _init_supermask(self, config: MaskConfig, name: str) -> None:
        module: nn.Module = self  # type: ignore[assignment]  # the mixin sits on an nn.Conv1d, nn.Conv2d or nn.Linear
        weight: torch.Tensor = module.weight  # type: ignore[assignment]  # a Parameter, not a submodule
        shape, dtype, device = weight.shape, weight.dtype, weight.device
        del module.weight
        self.mask_config = config
        self.layer_name = name
        fan_in = math.prod(shape[1:])
        self.sigma = RELU_GAIN / math.sqrt(fan_in * config.scale_fan_factor()) * config.init_scale
        weight_gen = torch.Generator().manual_seed(layer_seed(config.seed, name, "weight"))
        if config.weight_init == "signed_constant":
            base = torch.randint(0, 2, shape, generator=weight_gen).mul_(2).sub_(1).to(dtype)
        else:
            base = torch.randn(shape, generator=weight_gen, dtype=dtype)
        module.register_buffer("weight", base.mul_(self.sigma).to(device), persistent=False)
        scores = torch.empty(shape, dtype=dtype)
        score_gen = torch.Generator().manual_seed(layer_seed(config.seed, name, "scores"))
        if config.score_init == "kaiming_normal":
            nn.init.kaiming_normal_(scores, mode="fan_out", nonlinearity="relu", generator=score_gen)
        else:
            nn.init.kaiming_uniform_(scores, a=math.sqrt(5), generator=score_gen)
        self.scores = nn.Parameter(scores.to(device))
        self._kept = kept_counts(scores.numel(), config.sparsities)
        self._levels: torch.Tensor | None = None
        module.register_load_state_dict_post_hook(lambda mod, _keys: mod.invalidate_levels())

    @property
    def coats(self) -> int:
        return self.mask_config.coats

    @property
    def kept(self) -> tuple[int, ...]:
        """Weights kept by each coat (exact)."""
        return self._kept

    def invalidate_levels(self) -> None:
        self._levels = None

    def refresh_levels(self) -> None:
        """Recompute the cached levels from the current scores (one selection pass)."""
        self._levels = coat_levels(self.scores, self._kept, dtype=self.weight.dtype)

    def _current_levels(self) -> torch.Tensor:
        """The cached levels, recomputed first when stale or when every forward recomputes them."""
        if self._levels is None or self.mask_config.refresh == "forward":
            self.refresh_levels()
        assert self._levels is not None
        return self._levels

    def levels(self) -> torch.Tensor:
        """Current integer levels (``uint8``), as the next forward will use them."""
        return self._current_levels().to(torch.uint8)

    def set_levels(self, levels: torch.Tensor) -> None:
        """Install decoded levels (loading a compressed model); scores are then irrelevant."""
        if levels.shape != self.weight.shape:
            raise InputError(f"{self.layer_name}: levels shape {tuple(levels.shape)} != weight shape {tuple(self.weight.shape)}")
        self._levels = levels.to(device=self.weight.device, dtype=self.weight.dtype)

    def effective_weight(self) -> torch.Tensor:
        grad_scale = 1.0 if self.mask_config.grad_normalize else float(self.coats)
        return CoatedWeight.apply(self.scores, self.weight, self._current_levels(), grad_scale)

    def extra_repr(self) -> str:
        layer = super().extra_repr()  # type: ignore[misc]  # the mixin's next base is an nn.Module
        return f"{layer}, coats={self.coats}, sparsities={list(self.mask_config.sparsities)}"

    def _apply(self, fn: Any, recurse: bool = True) -> Any:  # keep cached levels on the module's device
        result = super()._apply(fn, recurse)  # type: ignore[misc]  # the mixin's next base is an nn.Module
        if self._levels is not None:
            self._levels = fn(self._levels)
        return result


def _refuse_bias(bias: bool, name: str) -> None:
    """A supermask scales frozen weights; a bias would be a trained weight outside it."""
    if bias:
        raise InputError(f"{name}: supermasked layers have no bias (bias=True given)")


class _SupermaskConv(SupermaskMixin):
    """The constructor and forward `MSupConv1d` and `MSupConv2d` share; the conv base class follows it in the MRO."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _size_2_t,
        stride: _size_2_t = 1,
        padding: _size_2_t | str = 0,
        dilation: _size_2_t = 1,
        groups: int = 1,
        bias: bool = False,
        padding_mode: PaddingMode = "zeros",
        *,
        mask: MaskConfig,
        name: str = "conv",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        _refuse_bias(bias, name)
        super().__init__(  # type: ignore[call-arg]  # nn.Conv1d's or nn.Conv2d's, next in the MRO
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, False, padding_mode,
            device=device, dtype=dtype,
        )
        self._init_supermask(mask, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.effective_weight(), None)  # type: ignore[attr-defined]  # the conv base's


class MSupConv1d(_SupermaskConv, nn.Conv1d):
    """`nn.Conv1d` with a frozen random weight and a trained multicoated supermask. No bias."""


class MSupConv2d(_SupermaskConv, nn.Conv2d):
    """`nn.Conv2d` with a frozen random weight and a trained multicoated supermask. No bias."""


class MSupLinear(SupermaskMixin, nn.Linear):
    """`nn.Linear` with a frozen random weight and a trained multicoated supermask. No bias."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        *,
        mask: MaskConfig,
        name: str = "linear",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        _refuse_bias(bias, name)
        super().__init__(in_features, out_features, False, device=device, dtype=dtype)
        self._init_supermask(mask, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight())


def supermask_layers(model: nn.Module) -> list[tuple[str, SupermaskMixin]]:
    """Every supermasked layer of ``model`` with its qualified name, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SupermaskMixin)]


def refresh_levels(model: nn.Module) -> None:
    """Refresh every cached level tensor; the trainer calls this after each optimizer step."""
    for _, layer in supermask_layers(model):
        layer.refresh_levels()


def convert_to_supermask(
    model: nn.Module,
    mask: MaskConfig,
    *,
    dense_first_last: bool = False,
    bn_affine: bool = True,
) -> nn.Module:
    """Replace the conv/linear layers of a torch model (in place) by supermasked ones.

    Biases are dropped (supermasked layers have none). ``dense_first_last``
    keeps the first conv and the last linear layer as ordinary trained layers.
    ``bn_affine=False`` swaps BatchNorm layers for non-affine ones (edge-popup).
    Layer seeds derive from each layer's qualified name, so converting the same
    architecture twice gives the same frozen weights.
    """
    targets = [(n, m) for n, m in model.named_modules() if type(m) in (nn.Conv1d, nn.Conv2d, nn.Linear)]
    if not targets:
        raise InputError(f"{type(model).__name__} has no nn.Conv1d, nn.Conv2d or nn.Linear layer to convert")
    skip = {targets[0][0], targets[-1][0]} if dense_first_last else set()
    for name, layer in targets:
        if name in skip:
            continue
        if isinstance(layer, nn.Conv1d):
            new: nn.Module = MSupConv1d(
                layer.in_channels, layer.out_channels, layer.kernel_size[0], layer.stride[0],
                layer.padding if isinstance(layer.padding, str) else layer.padding[0], layer.dilation[0],
                layer.groups, padding_mode=layer.padding_mode, mask=mask, name=name,
            )
        elif isinstance(layer, nn.Conv2d):
            new = MSupConv2d(
                layer.in_channels, layer.out_channels, _pair(layer.kernel_size), _pair(layer.stride),
                layer.padding if isinstance(layer.padding, str) else _pair(layer.padding), _pair(layer.dilation),
                layer.groups, padding_mode=layer.padding_mode, mask=mask, name=name,
            )
        else:
            new = MSupLinear(layer.in_features, layer.out_features, mask=mask, name=name)
        _set_submodule(model, name, new)
    if not bn_affine:
        for name, bn in [(n, m) for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]:
            _set_submodule(model, name, type(bn)(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=False))
    return model


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def _pair(value: tuple[int, ...]) -> tuple[int, int]:
    """An nn.Conv2d size (always two numbers) as the type its constructor takes."""
    return value[0], value[1]
