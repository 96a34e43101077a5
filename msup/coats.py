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

import torch

from msup.errors import InputError

# Guards round-half-up against float noise such as 100 * (1 - 0.7) = 30.000000000000004.
_ROUNDING_SLACK = 1e-9


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

    ``dtype`` is the result's type: ``uint8`` for storage, the weight's float
    type for the forward pass (saves a conversion per refresh).

    ``counts`` are the kept counts per coat (`kept_counts`). One selection over
    all ``n`` scores finds the outer coat; each inner coat is a selection among
    the previous coat's survivors only, so the cost is dominated by the first
    pass and barely grows with N. No gradient flows through this function.
    """
    with torch.no_grad():
        flat = scores.detach().abs().flatten()
        levels = torch.zeros(flat.numel(), dtype=dtype, device=flat.device)
        survivors = torch.arange(flat.numel(), device=flat.device)
        values = flat
        for level, k in enumerate(counts, start=1):
            if k < values.numel():
                picked = torch.topk(values, k, sorted=False).indices
                survivors, values = survivors[picked], values[picked]
            levels[survivors] = level
            if k == 0:
                break
        return levels.view_as(scores)


class CoatedWeight(torch.autograd.Function):
    """``W = weight * levels`` forward; straight-through gradient to the scores.

    Each of the N coat step functions passes its upstream gradient unchanged,
    so ``dL/ds = sign(s) * grad_scale * dL/dW * weight`` with ``grad_scale = N``
    (the reference behaviour: N identical terms summed) or 1 when normalised.
    ``weight`` already carries the layer's scale sigma.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        scores: torch.Tensor,
        weight: torch.Tensor,
        levels: torch.Tensor,
        grad_scale: float,
    ) -> torch.Tensor:
        ctx.save_for_backward(scores, weight)
        ctx.grad_scale = grad_scale
        return weight * levels

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor
    ) -> tuple[torch.Tensor | None, None, None, None]:
        scores, weight = ctx.saved_tensors
        grad = grad_output * weight
        grad.mul_(scores.sign())
        if ctx.grad_scale != 1.0:
            grad.mul_(ctx.grad_scale)
        return grad, None, None, None
