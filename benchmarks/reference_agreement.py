"""msup's coat levels and straight-through gradient against the M-Sup authors' implementation.

The authors' code (github.com/yasu0001/multicoated-supermasks) cuts the coats
with its ``percentile`` function (a threshold per coat, read off the sorted
``|score|``) and sums one ``GetSubnet`` step function per coat; each step passes
its gradient straight through. msup cuts exact counts with `coat_levels` and
applies `CoatedWeight` once. This script feeds both the same scores, weights
and upstream gradient and reports where they differ: levels, effective
weights, and score gradients.

The authors' code is not part of msup. Point ``--reference`` at a checkout of
it (the file ``src/custom_grad.py``; it needs only torch and numpy):

    git clone https://github.com/yasu0001/multicoated-supermasks /tmp/msup-reference
    python benchmarks/reference_agreement.py --reference /tmp/msup-reference/src/custom_grad.py
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from msup.coats import CoatedWeight, coat_levels, kept_counts

SHAPES = ((64, 64, 3, 3), (256, 64), (10, 256), (128, 3, 3, 3))
SPARSITIES = ((0.5,), (0.7, 0.9), (0.7, 0.9212, 0.9685), (0.6, 0.8, 0.9, 0.95))


@dataclass(frozen=True)
class Agreement:
    shape: tuple[int, ...]
    sparsities: tuple[float, ...]
    level_mismatches: int
    kept_msup: tuple[int, ...]
    kept_reference: tuple[int, ...]
    max_weight_diff: float
    max_grad_diff: float


def load_reference(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("msup_reference_grad", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_weight(
    ref: ModuleType, scores: torch.Tensor, weight: torch.Tensor, sparsities: Sequence[float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' layer: thresholds from their percentile, one straight-through step per coat."""
    with torch.no_grad():
        thresholds = ref.percentile(scores.abs(), np.array(sparsities))
    mask = sum(ref.GetSubnet.apply(scores.abs(), k, 1.0) for k in thresholds)
    return weight * mask, mask.detach()


def msup_weight(scores: torch.Tensor, weight: torch.Tensor, sparsities: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    levels = coat_levels(scores, kept_counts(scores.numel(), sparsities), dtype=weight.dtype)
    return CoatedWeight.apply(scores, weight, levels, float(len(sparsities))), levels


def compare(ref: ModuleType, shape: tuple[int, ...], sparsities: Sequence[float], seed: int) -> Agreement:
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(shape, generator=generator)
    weight = torch.randn(shape, generator=generator)
    upstream = torch.randn(shape, generator=generator)
    results = []
    for build in (lambda s: reference_weight(ref, s, weight, sparsities), lambda s: msup_weight(s, weight, sparsities)):
        leaf = scores.clone().requires_grad_(True)
        effective, levels = build(leaf)
        (effective * upstream).sum().backward()
        results.append((effective.detach(), levels, leaf.grad))
    (w_ref, l_ref, g_ref), (w_msup, l_msup, g_msup) = results
    n = scores.numel()
    return Agreement(
        shape=tuple(shape), sparsities=tuple(sparsities),
        level_mismatches=int((l_ref != l_msup).sum()),
        kept_msup=kept_counts(n, sparsities),
        kept_reference=tuple(int((l_ref >= c).sum()) for c in range(1, len(sparsities) + 1)),
        max_weight_diff=float((w_ref - w_msup).abs().max()),
        max_grad_diff=float((g_ref - g_msup).abs().max()),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="the authors' src/custom_grad.py")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    ref = load_reference(args.reference)
    print("| layer shape | sparsities | seeds | weights | level mismatches | kept per coat, msup | kept per coat, reference "
          "| max abs diff, effective weight | max abs diff, score gradient |")
    print("|---|---|---|---|---|---|---|---|---|")
    for shape in SHAPES:
        for sparsities in SPARSITIES:
            rows = [compare(ref, shape, sparsities, seed) for seed in args.seeds]
            mismatches = sum(r.level_mismatches for r in rows)
            kept_ref = sorted({r.kept_reference for r in rows})
            print(f"| {'x'.join(map(str, shape))} | {list(sparsities)} | {len(rows)} | {int(np.prod(shape))} | {mismatches} "
                  f"| {list(rows[0].kept_msup)} | {', '.join(str(list(k)) for k in kept_ref)} "
                  f"| {max(r.max_weight_diff for r in rows):.3g} | {max(r.max_grad_diff for r in rows):.3g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
