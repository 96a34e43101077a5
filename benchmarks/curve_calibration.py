"""How well can a trial's final accuracy be predicted from its curve so far? Calibration on the curve banks.

Groundwork for a pruner that stops a trial by its chance of reaching the front:
it needs a predictive distribution of the final validation accuracy given the
curve so far, and it must work on a task with no bank of its own. This script
measures one simple predictor against two baselines, on held-out configurations:

- ``knn``: the final accuracy is the accuracy now plus what the K most alike
  curves of the prior gained from the same share of their epochs to their
  last; alike by accuracy now, recent gain (two epochs), rank among the
  task's curves at that epoch, and log density (size / dense size). Its
  quantiles are those gains' quantiles.
- ``msup forecast``: what the ``front_chance`` pruner ships
  (`msup.search.pruning.forecast`): the 20 trained trials most alike at the
  same epoch (accuracy, two-epoch gain, log size), its quantiles those of their
  draws.
- ``last value``: the final accuracy is the accuracy now (every quantile).
- ``marginal``: the quantiles of the final accuracies of the task's own
  other configurations, whatever the curve (a study's completed trials).

Priors: ``same task`` (the other half of the task's own bank: an upper bound,
never the result), ``other task`` (the other task's whole bank: leave one task
out), ``20 own trials`` (20 configurations of the task's own half: a study's
completed trials, no bank) and the last two together. Held out: a random half of each task's bank configurations (seed 0,
full-length curves; not the odd ones: consecutive points of a Sobol sequence
alternate between the halves of its first axis); the final epoch is excluded. Reported: mean pinball loss
over the quantiles 0.05..0.95, and the coverage of the central 80 % and 90 %
intervals pooled by epoch band (first, middle, last third) and by size tercile,
with the 95 % binomial interval of the nominal rate.

    python benchmarks/curve_calibration.py
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np
import pandas as pd
from curve_bank import BANKS, load_bank
from replay import bank_half

from msup.search.pruning.forecast import FinalForecast

QUANTILES = np.round(np.arange(0.05, 0.96, 0.05), 2)
TASKS = {"digits": "digits", "mnist5k": "mnist5k-conv"}
FEATURES = ("accuracy", "gain", "rank", "log_density")
OWN_TRIALS = 20  # completed trials a study has of its own when the prior is used


def rows(bank: pd.DataFrame) -> pd.DataFrame:
    """One row per (configuration, epoch before the last) of the bank's full-length seed-0 curves."""
    runs = bank[(bank["seed"] == 0) & (bank["error"].fillna("") == "")]
    epochs = max(len(c) for c in runs["val_acc"])
    runs = runs[[len(c) == epochs for c in runs["val_acc"]]]
    out = []
    for run in runs.itertuples():
        curve = np.asarray(run.val_acc, float)
        for e in range(1, epochs):
            out.append({"config": run.config, "epoch": e, "epochs": epochs, "share": e / epochs,
                        "curve": {k + 1: float(a) for k, a in enumerate(curve[:e])}, "size": run.size_entropy_mib,
                        "accuracy": curve[e - 1],
                        "gain": curve[e - 1] - curve[max(0, e - 3)], "final": curve[-1],
                        "log_density": np.log10(run.size_entropy_mib / run.dense_mib)})
    frame = pd.DataFrame(out)
    frame["rank"] = frame.groupby("epoch")["accuracy"].rank(pct=True)
    frame["size_tercile"] = pd.qcut(frame["log_density"], 3, labels=["small", "middle", "large"])
    frame["band"] = pd.cut(frame["share"], [0, 1 / 3, 2 / 3, 1], labels=["first third", "middle", "last third"])
    return frame


def knn_quantiles(prior: pd.DataFrame, query: pd.DataFrame, k: int) -> np.ndarray:
    """Per query row: the accuracy now plus the quantiles of its K most alike prior rows' gains to the end."""
    scale = prior[list(FEATURES)].std().to_numpy()
    out = np.empty((len(query), len(QUANTILES)))
    shares = np.sort(prior["share"].unique())
    by_share = {s: (g[list(FEATURES)].to_numpy() / scale, (g["final"] - g["accuracy"]).to_numpy())
                for s, g in prior.groupby("share")}
    for i, row in enumerate(query.itertuples()):
        share = shares[np.argmin(np.abs(shares - row.share))]
        points, gains = by_share[share]
        distance = np.linalg.norm(points - np.array([getattr(row, f) for f in FEATURES]) / scale, axis=1)
        nearest = gains[np.argsort(distance)[:k]]
        out[i] = row.accuracy + np.quantile(nearest, QUANTILES)
    return out


def forecast_quantiles(prior: pd.DataFrame, query: pd.DataFrame) -> np.ndarray:
    """Per query row: the quantiles of the shipped forecast's draws, its trained trials the prior's configurations."""
    forecast = FinalForecast()
    for config, rows_of in prior.groupby("config"):
        last = rows_of.iloc[-1]
        forecast.add(int(config), {**last["curve"], int(last["epochs"]): float(last["final"])}, float(last["size"]))
    return np.stack([np.quantile(forecast.draws(row.curve, row.epoch, row.size, row.epochs), QUANTILES)
                     for row in query.itertuples()])


def pinball(predicted: np.ndarray, final: np.ndarray) -> float:
    diff = final[:, None] - predicted
    return float(np.mean(np.maximum(QUANTILES * diff, (QUANTILES - 1) * diff)))


def coverage(predicted: np.ndarray, final: np.ndarray, low: float, high: float) -> np.ndarray:
    lo, hi = predicted[:, list(QUANTILES).index(low)], predicted[:, list(QUANTILES).index(high)]
    return (final >= lo) & (final <= hi)


def binomial_interval(rate: float, n: int) -> tuple[float, float]:
    half = 1.96 * np.sqrt(rate * (1 - rate) / n)
    return rate - half, rate + half


def report(k: int) -> str:
    banks = {task: load_bank(BANKS / folder) for task, folder in TASKS.items()}
    frames = {task: rows(bank) for task, bank in banks.items()}
    lines = ["| task | prior | predictor | pinball (x1000) | 80 % covered | 90 % covered | groups outside the binomial "
             "interval (80 % / 90 %) |", "|---|---|---|---:|---:|---:|---:|"]
    for task, bank in banks.items():
        held, own = rows(bank_half(bank, "b")), rows(bank_half(bank, "a"))
        other = next(f for t, f in frames.items() if t != task)
        finals = own.groupby("config")["final"].first().to_numpy()
        early = own[own["config"].isin(np.random.default_rng(1).permutation(own["config"].unique())[:OWN_TRIALS])]
        arms = {
            ("same task (upper bound)", "knn"): knn_quantiles(own, held, k),
            ("other task", "knn"): knn_quantiles(other, held, k),
            (f"{OWN_TRIALS} own trials", "knn"): knn_quantiles(early, held, k),
            (f"other task + {OWN_TRIALS} own", "knn"): knn_quantiles(pd.concat([other, early]), held, k),
            (f"{OWN_TRIALS} own trials", "msup forecast"): forecast_quantiles(early, held),
            ("none", "last value"): np.repeat(held["accuracy"].to_numpy()[:, None], len(QUANTILES), axis=1),
            ("same task", "marginal"): np.tile(np.quantile(finals, QUANTILES), (len(held), 1)),
        }
        final = held["final"].to_numpy()
        for (prior, name), predicted in arms.items():
            cells = []
            for low, high, nominal in ((0.1, 0.9, 0.8), (0.05, 0.95, 0.9)):
                covered = coverage(predicted, final, low, high)
                outside = 0
                groups = [*held.groupby("band", observed=True).groups.values(),
                          *held.groupby("size_tercile", observed=True).groups.values()]
                for index in groups:
                    positions = held.index.get_indexer(index)
                    lo, hi = binomial_interval(nominal, len(positions))
                    outside += not lo <= covered[positions].mean() <= hi
                cells.append((covered.mean(), outside, len(groups)))
            lines.append(f"| {task} | {prior} | {name} | {1000 * pinball(predicted, final):.2f} | {cells[0][0]:.1%} | "
                         f"{cells[1][0]:.1%} | {cells[0][1]} / {cells[1][1]} of {cells[0][2]} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=50, help="neighbours per prediction")
    args = parser.parse_args(argv)
    print(report(args.k))
    return 0


if __name__ == "__main__":
    sys.exit(main())
