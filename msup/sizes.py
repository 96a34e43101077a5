"""Model-size accounting, known before training.

A supermasked model is stored as a seed (free) plus the level of every masked
weight plus whatever is trained densely (BatchNorm, optional dense layers).
Three numbers, all in MiB (2^20 bytes):

- **paper**: the reference accounting. Per masked layer of n weights,
  ``n + sum_{i<N} K_i`` bits (a truncated unary code; K_i the exact coat counts), plus
  32 bits per BatchNorm gamma and per dense weight. Comparable with published
  numbers (which call MiB "MB").
- **entropy**: ``n * H(f)`` bits per layer with f the exact level fractions,
  plus the same 32-bit terms: the floor a real entropy coder approaches.
- **dense**: 32 bits per weight of the same network trained densely, plus
  BatchNorm gamma and beta.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from torch import nn

from msup.catalog import validate_sparsities
from msup.coats import kept_counts, level_counts
from msup.layers import SupermaskMixin

if TYPE_CHECKING:
    from msup.config import TrainConfig

BITS_PER_MIB = 8 * 1024**2
FLOAT_BITS = 32


@dataclass(frozen=True)
class Inventory:
    """What a network must store, independent of the coat settings.

    ``masked`` are the weight counts of the supermasked layers; ``dense_weights``
    counts trained parameters of ordinary conv/linear layers (weights and
    biases); ``bn_gamma`` / ``bn_beta`` the affine BatchNorm parameters.
    """

    masked: tuple[int, ...]
    dense_weights: int
    bn_gamma: int
    bn_beta: int

    @property
    def masked_weights(self) -> int:
        return sum(self.masked)


def inventory(model: nn.Module) -> Inventory:
    """Count what ``model`` stores: supermasked layers, dense layers, BatchNorm parameters."""
    masked, dense, gamma, beta = [], 0, 0, 0
    for module in model.modules():
        if isinstance(module, SupermaskMixin):
            masked.append(module.weight.numel())
        elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            dense += sum(p.numel() for p in module.parameters(recurse=False))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            gamma += module.weight.numel()
            beta += module.bias.numel()
    return Inventory(tuple(masked), dense, gamma, beta)


def entropy_bits_per_weight(counts: Sequence[int]) -> float:
    """Shannon entropy (bits) of a level histogram."""
    total = sum(counts)
    return -sum(c / total * math.log2(c / total) for c in counts if c)


def unary_bits(n: int, sparsities: Sequence[float]) -> int:
    """Truncated unary code length of one layer: one bit per weight, plus one per inner coat it passes.

    Uses msup's exact coat counts, so it equals the real unary payload bit for
    bit; the reference rounds ``n * (1 - p_i)`` up instead, a difference of
    fewer than N bits per layer.
    """
    return n + sum(kept_counts(n, sparsities)[:-1])


@dataclass(frozen=True)
class ModelSize:
    """Sizes of one configuration; MiB are 2^20 bytes."""

    coats: int
    sparsities: tuple[float, ...]
    masked_weights: int
    paper_mib: float
    entropy_mib: float
    dense_mib: float
    paper_bits_per_weight: float
    entropy_bits_per_weight: float

    @property
    def compression_paper(self) -> float:
        return self.dense_mib / self.paper_mib

    @property
    def compression_entropy(self) -> float:
        return self.dense_mib / self.entropy_mib

    def as_dict(self) -> dict[str, object]:
        return {
            **asdict(self),
            "sparsities": list(self.sparsities),
            "compression_paper": self.compression_paper,
            "compression_entropy": self.compression_entropy,
        }


def model_size(inv: Inventory, sparsities: Sequence[float]) -> ModelSize:
    """Paper, entropy and dense sizes of a network described by ``inv`` under ``sparsities``."""
    p = validate_sparsities(sparsities)
    extra_bits = FLOAT_BITS * (inv.bn_gamma + inv.dense_weights)
    paper_level_bits = sum(unary_bits(n, p) for n in inv.masked)
    entropy_level_bits = sum(n * entropy_bits_per_weight(level_counts(n, p)) for n in inv.masked)
    dense_bits = FLOAT_BITS * (inv.masked_weights + inv.dense_weights + inv.bn_gamma + inv.bn_beta)
    n_total = max(inv.masked_weights, 1)
    return ModelSize(
        coats=len(p),
        sparsities=p,
        masked_weights=inv.masked_weights,
        paper_mib=(paper_level_bits + extra_bits) / BITS_PER_MIB,
        entropy_mib=(entropy_level_bits + extra_bits) / BITS_PER_MIB,
        dense_mib=dense_bits / BITS_PER_MIB,
        paper_bits_per_weight=paper_level_bits / n_total,
        entropy_bits_per_weight=entropy_level_bits / n_total,
    )


class SizeCache:
    """Paper / entropy / dense sizes per training config; one model build per architecture.

    What a network stores does not depend on the coat settings, so the
    inventory of each architecture is computed once and reused for every
    sampled set of sparsities.
    """

    def __init__(self) -> None:
        self._inventories: dict[tuple, Inventory] = {}

    def sizes(self, config: TrainConfig) -> dict[str, float]:
        spec = config.model_spec()
        key = (replace(spec, mask=None), spec.mask is None)  # the architecture, whatever the coats
        if key not in self._inventories:
            self._inventories[key] = inventory(spec.build())
        size = model_size(self._inventories[key], config.mask.sparsities)
        if spec.mask is None:
            return {"size_paper_mib": size.dense_mib, "size_entropy_mib": size.dense_mib, "dense_mib": size.dense_mib}
        return {"size_paper_mib": size.paper_mib, "size_entropy_mib": size.entropy_mib, "dense_mib": size.dense_mib}
