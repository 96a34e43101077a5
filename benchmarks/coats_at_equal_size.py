"""Do extra coats beat a single supermask at the same model size? A controlled experiment.

The learning setup is fixed (one training config). For each target entropy
size on a grid and each coat count N = 1..4, the sparsities are solved so the
network's entropy-bound size (`msup.sizes.model_size`, a function of the
sparsities alone) equals the target: inner coats keep a fixed share
``--coat-keep`` of the coat around them, as in msup's search spaces, and the
outer density is found by bisection (the size rises with it). Every point is
trained for ``--seeds`` seeds; the table gives the test accuracy, mean ± std,
and the figure draws it against size, one line per N.

    python benchmarks/coats_at_equal_size.py [--train studies/train/digits-mlp.yaml]
        [--sizes 0.0025 0.0035 0.005 0.007 0.01] [--coats 1 2 3 4] [--seeds 0 1 2]
        [--coat-keep 0.5] [--set optim.epochs=10 ...] [--figure docs/coats-at-equal-size-digits.png]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from size_figure import accuracy_against_size

from msup.config import load_config
from msup.search.config.space import sparsities_from
from msup.sizes import Inventory, inventory, model_size
from msup.train import train

ROOT = Path(__file__).resolve().parents[1]
# The search spaces' range of the outer density; up to 0.5 the entropy size rises with it (one coat's
# binary entropy peaks at density 0.5), so the target size pins exactly one density.
MIN_DENSITY, MAX_DENSITY = 1e-4, 0.5


def sparsities_for(coats: int, density: float, coat_keep: float) -> list[float]:
    return sparsities_from({"coats": coats, "outer_density": density,
                            **{f"coat_keep_{i}": coat_keep for i in range(2, coats + 1)}})


def solve_density(inv: Inventory, coats: int, coat_keep: float, target_mib: float) -> float | None:
    """The outer density whose sparsities give ``target_mib``, or None outside what N coats can reach."""
    def size(density: float) -> float:
        return model_size(inv, sparsities_for(coats, density, coat_keep)).entropy_mib

    low, high = MIN_DENSITY, MAX_DENSITY
    if not size(low) <= target_mib <= size(high):
        return None
    for _ in range(60):  # the size grows with the density, in steps of whole weights: bisect to the step
        middle = (low + high) / 2
        low, high = (middle, high) if size(middle) < target_mib else (low, middle)
    return min((low, high), key=lambda density: abs(size(density) - target_mib))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=ROOT / "studies" / "train" / "digits-mlp.yaml")
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.0025, 0.0035, 0.005, 0.007, 0.01],
                        help="target entropy sizes, MiB")
    parser.add_argument("--coats", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--coat-keep", type=float, default=0.5)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override the training config, as `msup train --set`")
    parser.add_argument("--figure", type=Path, help="write the figure here (PNG or SVG)")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    base = load_config(args.train, ["runtime.device=cpu", *args.overrides])
    inv = inventory(base.model_spec().build())
    results: dict[tuple[float, int], list[float]] = {}
    densities: dict[tuple[float, int], float] = {}
    start = time.perf_counter()
    for target in args.sizes:
        for coats in args.coats:
            density = solve_density(inv, coats, args.coat_keep, target)
            if density is None:
                print(f"size {target} MiB: out of reach with N={coats}", file=sys.stderr)
                continue
            sparsities = sparsities_for(coats, density, args.coat_keep)
            densities[target, coats] = density
            for seed in args.seeds:
                config = base.with_overrides([f"mask.sparsities={sparsities}", f"runtime.seed={seed}"])
                result = train(config)
                assert abs(result.size_entropy_mib / target - 1) < 1e-3, (result.size_entropy_mib, target)  # counts are whole
                results.setdefault((target, coats), []).append(result.test_acc)
                print(f"size {target} N={coats} density {density:.4f} seed {seed}: test {100 * result.test_acc:.2f}%",
                      file=sys.stderr, flush=True)
    total = time.perf_counter() - start

    print(f"{args.train.relative_to(ROOT) if args.train.is_relative_to(ROOT) else args.train}: test accuracy (%), "
          f"mean ± std over seeds {args.seeds}; inner coats keep {args.coat_keep:g} of the coat around them; "
          f"outer density in brackets; {total:.0f} s in all\n")
    print("| entropy size (MiB) | " + " | ".join(f"N={n}" for n in args.coats) + " |")
    print("|---" * (len(args.coats) + 1) + "|")
    for target in args.sizes:
        cells = []
        for coats in args.coats:
            accuracies = results.get((target, coats))
            if not accuracies:
                cells.append("out of reach")
                continue
            spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
            cells.append(f"{100 * statistics.fmean(accuracies):.2f} ± {100 * spread:.2f} "
                         f"({densities[target, coats]:.3f})")
        print(f"| {target:g} | " + " | ".join(cells) + " |")
    if args.figure:
        draw(results, args.coats, args.figure, base.data.name)
    return 0


def draw(results: dict[tuple[float, int], list[float]], coats: Sequence[int], path: Path, dataset: str) -> None:
    lines = {}
    for n in coats:
        points = sorted((size, accs) for (size, c), accs in results.items() if c == n)
        if points:
            lines[f"N={n}"] = ([s for s, _ in points], [100 * statistics.fmean(a) for _, a in points],
                              [100 * statistics.stdev(a) if len(a) > 1 else 0.0 for _, a in points])
    accuracy_against_size(lines, path, f"{dataset}: coat counts at equal size (mean ± std over seeds)",
                          "model size, entropy bound (MiB)", "test accuracy (%)")


if __name__ == "__main__":
    sys.exit(main())
