"""Integer coat levels cut from one shared score tensor.

A layer with N coats keeps one real score per weight. Coat i holds the
``K_i`` weights with the largest ``|score|``; coats are nested, so a weight's
level (0..N) is the number of coats it belongs to.

Counts are exact and rank based: ``K_i = round_half_up(n * (1 - p_i))``, and
ties in ``|score|`` are broken by ``torch.topk``'s order, so every level holds
a count known from ``n`` and the sparsities alone. That makes the model size a
function of the configuration, known before training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

# Guards round-half-up against float noise such as 100 * (1 - 0.7) = 30.000000000000004.
_ROUNDING_SLACK = 1e-9


def kept_counts(n: int, sparsities: Sequence[float]) -> tuple[int, ...]:
    """Weights kept by each coat of an ``n``-weight layer: ``round_half_up(n * (1 - p_i))``.

    Non-increasing in ``i`` because the sparsities increase.
    """
    return tuple(int(math.floor(n * (1.0 - p) + 0.5 + _ROUNDING_SLACK)) for p in sparsities)


def level_counts(n: int, sparsities: Sequence[float]) -> tuple[int, ...]:
    """How many of ``n`` weights sit at each level 0..N (sums to ``n``)."""
    kept = kept_counts(n, sparsities)
    above = (n, *kept, 0)
    return tuple(above[c] - above[c + 1] for c in range(len(kept) + 1))


def level_fractions(sparsities: Sequence[float]) -> tuple[float, ...]:
    """Asymptotic fraction of weights at each level: ``f_0 = p_1``, ``f_c = p_{c+1} - p_c``, ``f_N = 1 - p_N``."""
    bounds = (0.0, *sparsities, 1.0)
    return tuple(bounds[c + 1] - bounds[c] for c in range(len(sparsities) + 1))


def coat_levels(scores: torch.Tensor, counts: Sequence[int], dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """Integer level of every weight (shape of ``scores``) from ``|scores|``.

    ``counts`` are the kept counts per coat (`kept_counts`). One selection over
    all ``n`` scores finds the outer coat; the inner coats come from one
    histogram of the survivors (`_inner_levels`), so the cost barely depends on
    N. ``dtype`` is the result's type: ``uint8`` for storage, the weight's
    float type for the forward pass. No gradient flows through this function.
    """
    with torch.no_grad():
        flat = scores.detach().abs().flatten()
        levels = torch.zeros(flat.numel(), dtype=dtype, device=flat.device)
        outer = counts[0] if counts else 0
        if outer == 0:
            return levels.view_as(scores)
        if outer < flat.numel():
            values, survivors = torch.topk(flat, outer, sorted=False)
        else:
            values, survivors = flat, torch.arange(flat.numel(), device=flat.device)
        levels[survivors] = _inner_levels(values, counts[1:]).to(dtype)
        return levels.view_as(scores)


# Histogram resolution for the inner coats: only the few values sharing a boundary bin are ranked.
_BINS = 4096


def _inner_levels(values: torch.Tensor, inner_counts: Sequence[int]) -> torch.Tensor:
    """Level (1..N) of each outer-coat survivor: coat i+1 holds the ``inner_counts[i]`` largest values.

    One pass bins the values (binning is monotone, so every value in a higher
    bin is larger); a cumulative histogram finds each coat's boundary bin; only
    the values inside boundary bins are ranked, once, so coats sharing a bin
    take prefixes of the same order and stay nested. Counts are exact.
    """
    levels = torch.ones(values.numel(), dtype=torch.int64, device=values.device)
    inner_counts = [k for k in inner_counts if k > 0]  # counts only shrink: empty coats are the innermost
    if not inner_counts:
        return levels
    low, high = torch.aminmax(values)
    width = (high - low).clamp_min(torch.finfo(values.dtype).tiny) / _BINS
    bins = ((values - low) / width).long().clamp_(0, _BINS - 1)
    at_or_above = torch.bincount(bins, minlength=_BINS).flip(0).cumsum(0).flip(0)  # values in bins >= b
    at_or_above = torch.cat([at_or_above, at_or_above.new_zeros(1)])
    boundaries = [int(torch.searchsorted(-at_or_above, -k, right=True)) - 1 for k in inner_counts]
    edges = torch.tensor(sorted(boundaries), device=bins.device)
    levels += torch.bucketize(bins, edges, right=False)
    shared = torch.isin(bins, edges).nonzero().flatten()  # the few values sitting in a boundary bin
    for boundary in sorted(set(boundaries)):
        members = shared[bins[shared] == boundary]
        order = members[torch.argsort(values[members], descending=True, stable=True)]
        for k, b in zip(inner_counts, boundaries):
            if b == boundary:
                levels[order[: k - int(at_or_above[boundary + 1])]] += 1
    return levels


class CoatedWeight(torch.autograd.Function):
    """``W = weight * levels`` forward; straight-through gradient to the scores.

    Each of the N coat step functions passes its upstream gradient unchanged,
    so ``dL/ds = sign(s) * grad_scale * dL/dW * weight`` with ``grad_scale = N``
    (the reference behaviour: N identical terms summed) or 1 when normalised.
    ``weight`` already carries the layer's scale sigma.
    """

    @staticmethod
    def forward(
        ctx: Any,  # torch's FunctionCtx, which carries grad_scale for backward
        scores: torch.Tensor,
        weight: torch.Tensor,
        levels: torch.Tensor,
        grad_scale: float,
    ) -> torch.Tensor:
        ctx.save_for_backward(scores, weight)
        ctx.grad_scale = grad_scale
        return weight * levels

    @staticmethod
    def backward(
        ctx: Any, grad_output: torch.Tensor
    ) -> tuple[torch.Tensor | None, None, None, None]:
        scores, weight = ctx.saved_tensors
        grad = grad_output * weight
        grad.mul_(scores.sign())
        if ctx.grad_scale != 1.0:
            grad.mul_(ctx.grad_scale)
        return grad, None, None, None
