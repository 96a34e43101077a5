"""Tables and figures of replayed searches (`replay.py`): both views, with the floor and the oracle beside every arm.

- *Same trials* (random sampler; every arm trains the same configurations for a
  seed): hypervolume as % of ``none``'s against trial-epochs as % of ``none``'s,
  with the floor (train every trial i epochs, go on with the non-dominated set
  at epoch i) and the oracle (knowing every final accuracy, train the front
  fully and stop the rest after g epochs; a tolerance sweep gives up the front
  points of least hypervolume contribution) computed exactly from ``none``'s
  trials.
- *Equal compute* (the study's sampler; every arm gets ``none``'s trial-epochs
  and simulated seconds): hypervolume regret against the bank's own front as
  compute grows, hypervolume at 25/50/100 % of the budget, and the compute each
  arm needs to reach ``none``'s final hypervolume (and 95 % of it) per seed.

Hypervolume is `msup.analysis.pareto`'s (accuracy x decades of size up to the dense
size), with the accuracy reference at 0 and at chance (1 / classes). Figures
are interquartile means over seeds with 95 % bootstrap intervals.

    python benchmarks/replay_report.py studies/digits.yaml [--replays DIR] [--figures DIR] [--markdown FILE]
        [--real runs/bench/outcomes.json]   # the sim-to-real check against real studies
        [--real-compute runs/real/compute.json]   # the same under a compute budget (real_studies.py)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from curve_bank import load_bank
from replay import ROOT, BankAnswers, bank_half, out_of_fold, replayed_study
from scipy.stats import trim_mean, wilcoxon

from msup.analysis.pareto import hypervolume, pareto_mask

TOLERANCES = (1.0, 0.995, 0.99, 0.98, 0.95)
GRID = np.geomspace(0.02, 1.0, 40)  # compute as a fraction of none's
MARKS = (0.25, 0.5, 1.0)


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean (scipy's `trim_mean` at 25 %)."""
    values = np.asarray(values, float)
    return float(trim_mean(values, 0.25)) if values.size else float("nan")


def interval(values: Sequence[float], draws: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of the interquartile mean over seeds (all resamples at once)."""
    values = np.asarray(values, float)
    rng = np.random.default_rng(seed)
    samples = np.sort(values[rng.integers(0, values.size, (draws, values.size))], axis=1)
    cut = int(0.25 * values.size)  # as trim_mean cuts
    means = samples[:, cut: values.size - cut].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def shown(values: Sequence[float], scale: float = 100.0, digits: int = 1) -> str:
    low, high = interval(values)
    return f"{scale * iqm(values):.{digits}f} [{scale * low:.{digits}f}, {scale * high:.{digits}f}]"


class Measure:
    """Hypervolume of (size, final accuracy) points against one reference (accuracy, dense size)."""

    def __init__(self, dense: float, chance: float) -> None:
        self.dense, self.chance = dense, chance

    def __call__(self, sizes: Sequence[float], finals: Sequence[float], at_chance: bool = False) -> float:
        if len(sizes) == 0:
            return 0.0
        return hypervolume(finals, sizes, (self.chance if at_chance else 0.0, self.dense))


# --- same trials ----------------------------------------------------------------------------------------------


def same_trials(frame: pd.DataFrame, hv: Measure, at_chance: bool, references: bool = True) -> pd.DataFrame:
    """Per seed and arm: trial-epochs and hypervolume as fractions of none's (``hv_abs``: the hypervolume itself).

    ``references``: add the floors and the oracle's levels, exact only where every arm trained none's trials.
    """
    rows = []
    for seed, runs in frame.groupby("seed"):
        none = runs[runs["arm"] == "none"]
        spent, best = none["epochs"].sum(), _front_hv(none, hv, at_chance)
        for arm, trials in runs.groupby("arm", sort=False):
            value = _front_hv(trials, hv, at_chance)
            rows.append({"seed": seed, "arm": arm, "epochs": trials["epochs"].sum() / spent, "hv": value / best,
                         "hv_abs": value, "cpu_s": trials["cpu_s"].iloc[0]})
        if not references:
            continue
        epochs = int(max(len(c) for c in none["curve"]))
        for rung in (1, 2):
            cost, value = _floor(none, rung, hv, at_chance)
            rows.append({"seed": seed, "arm": f"floor{rung}", "epochs": cost / spent, "hv": value / best})
        for grace in (0, 1):
            for tolerance, cost in _oracle(none, grace, epochs, hv, at_chance, best).items():
                rows.append({"seed": seed, "arm": f"oracle g={grace} {100 * tolerance:g}%", "epochs": cost / spent,
                             "hv": tolerance})
    return pd.DataFrame(rows)


def _front_hv(trials: pd.DataFrame, hv: Measure, at_chance: bool) -> float:
    done = trials[trials["state"] == "COMPLETE"]
    return hv(done["size"].to_numpy(), done["final"].to_numpy(), at_chance)


def _floor(none: pd.DataFrame, rung: int, hv: Measure, at_chance: bool) -> tuple[float, float]:
    """Every trial trains ``rung`` epochs; the non-dominated set at that epoch trains fully."""
    reached = none[none["curve"].map(len) >= rung]
    keep = reached.index[pareto_mask(reached["curve"].map(lambda c: c[rung - 1]).to_numpy(), reached["size"].to_numpy())]
    cost = none.loc[keep, "epochs"].sum() + none.drop(index=keep)["epochs"].clip(upper=rung).sum()
    done = none.loc[keep][none.loc[keep, "state"] == "COMPLETE"]
    return float(cost), hv(done["size"].to_numpy(), done["final"].to_numpy(), at_chance)


def _oracle(none: pd.DataFrame, grace: int, epochs: int, hv: Measure, at_chance: bool,
            best: float) -> dict[float, float]:
    """Least trial-epochs at which training only some front points fully keeps each share of none's hypervolume."""
    done = none[none["state"] == "COMPLETE"]
    front = done[pareto_mask(done["final"].to_numpy(), done["size"].to_numpy())]
    kept = list(front.index)
    levels: list[tuple[float, float]] = []  # (hypervolume share, cost) as front points are given up
    while True:
        value = hv(none.loc[kept, "size"].to_numpy(), none.loc[kept, "final"].to_numpy(), at_chance)
        cost = len(kept) * epochs + none.drop(index=kept)["epochs"].clip(upper=grace).sum()
        levels.append((value / best if best else 1.0, float(cost)))
        if not kept:
            break
        losses = [value - hv(none.loc[[k for k in kept if k != i], "size"].to_numpy(),
                             none.loc[[k for k in kept if k != i], "final"].to_numpy(), at_chance) for i in kept]
        kept.pop(int(np.argmin(losses)))
    return {t: min(cost for share, cost in levels if share >= t - 1e-12) for t in TOLERANCES}


# --- equal compute --------------------------------------------------------------------------------------------


def equal_compute(frame: pd.DataFrame, hv: Measure, at_chance: bool, bank_hv: float, clock: str) -> pd.DataFrame:
    """Per seed and arm: hypervolume at each compute fraction (`GRID`), and compute to reach none's final."""
    spent_key, total_key = ("spent_epochs", "run_epochs") if clock == "epochs" else ("end_s", "run_s")
    rows = []
    for seed, runs in frame.groupby("seed"):
        none = runs[runs["arm"] == "none"]
        budget, target = float(none[total_key].iloc[0]), _front_hv(none, hv, at_chance)
        for arm, trials in runs.groupby("arm"):
            done = trials[trials["state"] == "COMPLETE"].sort_values(spent_key)
            sizes, finals = done["size"].to_numpy(), done["final"].to_numpy()
            spent = done[spent_key].to_numpy() / budget
            curve = np.array([hv(sizes[spent <= f], finals[spent <= f], at_chance) for f in GRID])
            reach = np.array([hv(sizes[: k + 1], finals[: k + 1], at_chance) for k in range(len(done))])
            row = {"seed": seed, "arm": arm, "regret": bank_hv - curve, "hv": curve / target if target else curve}
            for share in (1.0, 0.95):
                hit = np.flatnonzero(reach >= share * target - 1e-12)
                row[f"to_{share:g}"] = float(spent[hit[0]]) if hit.size else np.inf
            rows.append(row)
    return pd.DataFrame(rows)


def warm_gain(table: pd.DataFrame) -> list[str]:
    """Per seed, the cold start's compute to its own final hypervolume over each warm start's: their median."""
    runs = table.pivot(index="seed", columns="arm", values="to_1")
    lines = []
    for arm in (a for a in runs.columns if a.startswith("warm")):
        ratio = (runs["none"] / runs[arm]).to_numpy()
        ratio = np.where(np.isinf(runs[arm].to_numpy()), 0.0, ratio)  # never reached: no gain
        lines.append(f"{arm} against the cold start, paired over {len(ratio)} seeds: compute to the cold start's final "
                     f"hypervolume {np.median(ratio):.2f}x lower (median; interquartile "
                     f"{np.quantile(ratio, 0.25):.2f}–{np.quantile(ratio, 0.75):.2f}x), at least 1.5x lower on "
                     f"{np.mean(ratio >= 1.5):.0%} of the seeds.")
    return lines


def pause_gain(table: pd.DataFrame, frame: pd.DataFrame) -> list[str]:
    """Per seed, each pausing arm's final hypervolume (all of none's compute) against size_aware's, which kills."""
    final = table.assign(final=_at(table["hv"], 1.0)).pivot(index="seed", columns="arm", values="final")
    lines = []
    for arm in (a for a in final.columns if a.startswith("size_aware_pause")):
        diff = (final[arm] - final["size_aware"]).to_numpy()
        p = wilcoxon(diff).pvalue if np.any(diff != 0) else 1.0
        lines.append(f"{arm} against size_aware, paired over {len(diff)} seeds: final hypervolume "
                     f"{shown(diff, digits=2)} points of none's final (IQM, 95 % interval), lower on "
                     f"{np.mean(diff < -1e-9):.0%} of the seeds and higher on {np.mean(diff > 1e-9):.0%}; Wilcoxon "
                     f"signed-rank p = {p:.2g}. {pauses(frame, arm)}")
    return lines


def paired(table: pd.DataFrame, arm: str, column: str, what: str, oracle: str | None = None) -> list[str]:
    """``arm`` against size_aware and mo_asha, seed by seed, on ``column`` (lower is better; never reached counts
    as 10x none's compute): the median difference, a Wilcoxon signed-rank p, and the share of the gap between
    size_aware and ``oracle`` that ``arm`` closes (of their IQMs; medians for compute to a target)."""
    runs = table.pivot_table(index="seed", columns="arm", values=column, aggfunc="first").replace(np.inf, 10.0)
    level = (lambda v: float(np.median(v))) if column.startswith("to_") else iqm
    lines = []
    for other in ("size_aware", "mo_asha"):
        if other not in runs or arm not in runs:
            continue
        diff = (runs[arm] - runs[other]).to_numpy()
        p = wilcoxon(diff).pvalue if np.any(diff != 0) else 1.0
        lines.append(f"{arm} against {other}, {what}, paired over {len(diff)} seeds: median difference "
                     f"{100 * np.median(diff):+.1f} points of none's, lower on {np.mean(diff < -1e-9):.0%} of the seeds "
                     f"and higher on {np.mean(diff > 1e-9):.0%}; Wilcoxon signed-rank p = {p:.2g}.")
    if oracle is not None and "size_aware" in runs and oracle in runs:
        shipped, best, own = level(runs["size_aware"]), level(runs[oracle]), level(runs[arm])
        if own >= 10.0:
            lines.append(f"{arm} reaches none's final on fewer than half the seeds: no share of the gap in {what} "
                         f"between size_aware ({100 * shipped:.1f}) and {oracle} ({100 * best:.1f}) is closed.")
        elif shipped > best:
            closed = (shipped - own) / (shipped - best)
            verb = f"closes {closed:.0%} of" if closed >= 0 else f"widens by {-closed:.0%}"
            lines.append(f"{arm} ({100 * own:.1f}) {verb} the gap in {what} between size_aware ({100 * shipped:.1f}) "
                         f"and {oracle} ({100 * best:.1f}).")
    return lines


def pauses(frame: pd.DataFrame, arm: str) -> str:
    """How many trials a pausing arm paused per seed, and what became of them."""
    rows = frame[frame["arm"] == arm]
    seeds = rows["seed"].nunique()
    paused = pd.MultiIndex.from_frame(rows.loc[rows["state"] == "PAUSED", ["seed", "trial"]])
    later = rows[pd.MultiIndex.from_frame(rows[["seed", "trial"]]).isin(paused) & (rows["state"] != "PAUSED")]
    return (f"It paused {len(paused) / seeds:.1f} trials per seed and took up {len(later) / seeds:.1f} again "
            f"({(later['state'] == 'COMPLETE').sum() / seeds:.1f} trained out).")


def _fraction(value: float) -> str:
    return f"{value:.2f}" if np.isfinite(value) else "> 1"


def _at(values: pd.Series, fraction: float) -> np.ndarray:
    index = int(np.argmin(np.abs(GRID - fraction)))
    return np.array([v[index] for v in values])


# --- sim-to-real ---------------------------------------------------------------------------------------------


def real_outcomes(paths: Sequence[Path], hv: Measure) -> pd.DataFrame:
    """Per seed and arm of real studies (`search_efficiency.py`'s outcomes.json): the measures of `same_trials`."""
    outcomes = _json_rows(paths)
    rows = []
    for outcome in outcomes:
        none = next(o for o in outcomes if o["arm"] == "none" and o["seed"] == outcome["seed"])
        value = hv([p["size"] for p in outcome["front"]], outcome["full_accuracies"])
        rows.append({"seed": outcome["seed"], "arm": outcome["arm"], "hv_abs": value,
                     "epochs": outcome["trial_epochs"] / none["trial_epochs"],
                     "hv": value / hv([p["size"] for p in none["front"]], none["full_accuracies"])})
    return pd.DataFrame(rows)


def sim_to_real(replayed: pd.DataFrame, real: pd.DataFrame, draws: int = 4000) -> list[str]:
    """Is each real k-seed mean inside the 95 % interval of replayed k-seed means (k seeds drawn from the replays)?"""
    lines = ["| arm | measure | real mean | replayed 95 % interval of the mean | inside |", "|---|---|---:|---:|---|"]
    rng = np.random.default_rng(0)
    name = {"epochs": "trial-epochs, % of none", "hv": "hypervolume, % of none", "hv_abs": "hypervolume"}
    for arm, rows in real.groupby("arm", sort=False):
        pool = replayed[replayed["arm"] == arm]
        if pool.empty:
            continue
        for measure, scale in (("epochs", 100.0), ("hv", 100.0), ("hv_abs", 1.0)):
            lines.append(_inside(arm, name[measure], scale, rows[measure].to_numpy(), pool[measure].to_numpy(), rng,
                                 draws))
    return lines


def real_compute(paths: Sequence[Path]) -> pd.DataFrame:
    """Real studies' ``compute.json`` (`real_studies.py`): per seed and arm, the share of none's budget it had and
    its final hypervolume as a fraction of none's."""
    return pd.DataFrame(_json_rows(paths))


def _json_rows(paths: Sequence[Path]) -> list[dict]:
    """The rows of JSON lists saved by the real-study benchmarks, one list per file, in order."""
    import json

    return [row for path in paths for row in json.loads(path.read_text(encoding="utf-8"))]


def sim_to_real_compute(replayed: pd.DataFrame, real: pd.DataFrame, draws: int = 4000) -> list[str]:
    """The same check for the compute view: each real arm's final hypervolume against the replayed arm's
    hypervolume at the same share of none's compute (trial-epochs)."""
    lines = ["| arm | budget, share of none's | real mean of the final hypervolume, % of none's | replayed 95 % "
             "interval of the mean | inside |", "|---|---:|---:|---:|---|"]
    rng = np.random.default_rng(0)
    for (arm, share), rows in real.groupby(["arm", "share"], sort=False):
        pool = replayed[replayed["arm"] == arm]
        if not pool.empty:
            lines.append(_inside(arm, f"{share:.2f}", 100.0, rows["hv"].to_numpy(), _at(pool["hv"], share), rng, draws))
    return lines


def _inside(arm: str, what: str, scale: float, real: np.ndarray, replayed: np.ndarray, rng: np.random.Generator,
            draws: int) -> str:
    """A table row: the real mean, the 95 % interval of replayed means of as many seeds, and whether it is inside."""
    means = [replayed[rng.choice(replayed.size, real.size, replace=False)].mean() for _ in range(draws)]
    low, high, mean = np.percentile(means, 2.5), np.percentile(means, 97.5), real.mean()
    return (f"| {arm} | {what} | {scale * mean:.3g} | [{scale * low:.3g}, {scale * high:.3g}] "
            f"| {'yes' if low <= mean <= high else '**no**'} |")


# --- bank quality ----------------------------------------------------------------------------------------------


def forest_error(answers: BankAnswers) -> tuple[float, float]:
    """Mean and median absolute error of the forest's final accuracy on bank configurations it was not fitted on."""
    predicted, actual = out_of_fold(answers.space, answers.runs)
    errors = np.abs(predicted[:, -1] - actual[:, -1])
    return float(np.mean(errors)), float(np.median(errors))


def snapping(bank: pd.DataFrame, answers: BankAnswers, replays: pd.DataFrame) -> dict[str, float]:
    """Snapping distances of the replays, the bank's leave-one-out error, and the seed-to-seed spread."""
    runs = answers.runs
    ok = runs["error"] == ""
    errors = []
    for row, values in enumerate(runs["values"]):
        if not ok.iloc[row]:
            continue
        (near,), _ = answers.nearest(values, 1, exclude=row)
        if ok.iloc[near]:
            errors.append(abs(runs["val_acc"].iloc[near][-1] - runs["val_acc"].iloc[row][-1]))
    finals = bank[bank["error"] == ""].assign(final=lambda b: b["val_acc"].map(lambda c: c[-1]))
    seeded = finals.groupby("config").filter(lambda g: len(g) == 3)
    base = seeded[seeded["seed"] == 0].set_index("config")["final"]
    others = seeded[seeded["seed"] != 0]
    spread = np.abs(others["final"].to_numpy() - base.loc[others["config"]].to_numpy())
    stds = seeded.groupby("config")["final"].std(ddof=1)
    snaps = replays["snap"].to_numpy()
    return {"configs": len(runs), "snap_median": float(np.median(snaps)), "snap_p90": float(np.percentile(snaps, 90)),
            "loo_mae": float(np.mean(errors)), "loo_median": float(np.median(errors)),
            "seed_mad": float(np.mean(spread)), "seed_median": float(np.median(spread)), "seed_std": float(stds.mean()),
            "seeded_configs": int(len(stds))}


# --- the report -------------------------------------------------------------------------------------------------


def load_replays(folder: Path, view: str) -> pd.DataFrame:
    parts = sorted(folder.glob(f"{view}-*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True) if parts else pd.DataFrame()


def report(study: Path, replays: Path, bank_folder: Path, half: str, figures: Path | None,
           real: Sequence[Path] = (), real_computed: Sequence[Path] = ()) -> str:
    from msup.search.config.preflight import load_study_config

    config = replayed_study(load_study_config(study))
    bank = bank_half(load_bank(bank_folder), half)
    answers = BankAnswers(config.space, bank)
    ok = answers.runs[answers.runs["error"] == ""]
    finals = ok["val_acc"].map(lambda c: c[-1]).to_numpy()
    hv = Measure(float(ok["dense_mib"].iloc[0]), 1.0 / _classes(config))
    lines = [f"## Replays of {config.name} ({half} bank: {len(answers.runs)} configurations)", ""]
    same, trials, compute, warm = (load_replays(replays, view) for view in ("same", "trials", "compute", "warm"))
    both = pd.concat([same, trials, compute, warm], ignore_index=True)
    if not both.empty:
        quality = snapping(bank, answers, both)
        forest_mae, forest_median = forest_error(answers)
        modes = ", ".join(sorted(both["answer"].unique())) if "answer" in both else "nearest"
        lines += [
            f"Answered by: {modes}. Distance to the nearest bank configuration: median {quality['snap_median']:.3f}, "
            f"90th percentile {quality['snap_p90']:.3f} (unit cube of the continuous parameters). A configuration's "
            "final accuracy predicted from the nearest other bank configuration is off by "
            f"{100 * quality['loo_mae']:.2f} points on average (median {100 * quality['loo_median']:.2f}); "
            f"by the forest, fitted without it (5 folds), {100 * forest_mae:.2f} (median {100 * forest_median:.2f}). "
            f"Two training seeds of one configuration differ by {100 * quality['seed_mad']:.2f} points on average "
            f"(median {100 * quality['seed_median']:.2f}; {quality['seeded_configs']} configurations with 3 seeds): "
            f"ratios {quality['loo_mae'] / quality['seed_mad']:.1f} (nearest) and "
            f"{forest_mae / quality['seed_mad']:.1f} (forest).", ""]
    for at_chance in (False, True):
        reference = f"accuracy reference {'chance' if at_chance else '0'}"
        bank_hv = hv(ok["size_entropy_mib" if config.size == "size_entropy_mib" else config.size].to_numpy(), finals,
                     at_chance)
        for view, frame in (("same", same), ("trials", trials)):
            if frame.empty:
                continue
            table = same_trials(frame, hv, at_chance, references=view == "same")
            sampler = "random" if view == "same" else config.sampler["name"]
            lines += [f"### {'Same trials' if view == 'same' else 'Equal trial count'}, {reference} "
                      f"({frame['seed'].nunique()} seeds, {sampler} sampler, {config.trials} trials)", "",
                      "| arm | trial-epochs, % of none | hypervolume, % of none | CPU s per seed-arm |",
                      "|---|---:|---:|---:|"]
            for arm, rows in table.groupby("arm", sort=False):
                cpu = f"{rows['cpu_s'].median():.1f}" if rows["cpu_s"].notna().any() else ""
                lines.append(f"| {arm} | {shown(rows['epochs'])} | {shown(rows['hv'])} | {cpu} |")
            lines += ["", *(f"{arm}: {pauses(frame, arm)}" for arm in table["arm"].unique()
                            if arm.startswith("size_aware_pause")), ""]
            if "front_chance" in set(table["arm"]) and view == "same":
                lines += [*paired(table, "front_chance", "epochs", "trial-epochs", "oracle g=1 99%"),
                          *paired(table, "front_chance", "hv", "hypervolume (higher is better)"), ""]
            if view == "trials" and real and not at_chance:
                lines += [f"Sim-to-real: real studies ({', '.join(str(p) for p in real)}) against {len(frame['seed'].unique())} "
                          "replayed seeds of this view:", "", *sim_to_real(table, real_outcomes(real, hv)), ""]
            if figures is not None and view == "same":
                _same_figure(table, figures / f"replay-{config.name}-same{'-chance' if at_chance else ''}.png",
                             config.name, reference)
        for view, frame in (("compute", compute), ("warm", warm)):
            if frame.empty:
                continue
            for clock in ("epochs", "seconds"):
                table = equal_compute(frame, hv, at_chance, bank_hv, clock)
                what = "trial-epochs" if clock == "epochs" else "simulated wall-clock"
                started = "" if view == "compute" else ", warm starts from another seed's study"
                lines += [f"### Equal compute ({what}), {reference} ({frame['seed'].nunique()} seeds, "
                          f"{config.sampler['name']} sampler; budget: none's {config.trials} trials{started})", "",
                          "| arm | HV at 25 %, % of none's final | at 50 % | at 100 % | compute to none's final "
                          "(median; seeds never) | to 95 % of it | speed-up |",
                          "|---|---:|---:|---:|---:|---:|---:|"]
                for arm, rows in table.groupby("arm", sort=False):
                    marks = [shown(_at(rows["hv"], f)) for f in MARKS]
                    reach = [f"{_fraction(np.median(rows[k]))} ({np.isinf(rows[k]).sum()})" for k in ("to_1", "to_0.95")]
                    median = np.median(rows["to_1"])
                    speed = f"{1.0 / median:.2f}x" if np.isfinite(median) else "< 1x"
                    lines.append(f"| {arm} | {' | '.join(marks)} | {' | '.join(reach)} | {speed} |")
                lines.append("")
                if view == "warm":
                    lines += [*warm_gain(table), ""]
                if "front_chance" in set(table["arm"]):
                    lines += [*paired(table, "front_chance", "to_1", "compute to none's final hypervolume", "oracle"), ""]
                if view == "compute" and clock == "epochs" and real_computed and not at_chance:
                    lines += [f"Sim-to-real: real studies under a compute budget ({', '.join(map(str, real_computed))}) "
                              f"against {frame['seed'].nunique()} replayed seeds of this view:", "",
                              *sim_to_real_compute(table, real_compute(real_computed)), ""]
                if {"size_aware", "size_aware_pause"} <= set(table["arm"]):
                    lines += [*pause_gain(table, frame), ""]
                if figures is not None:
                    _regret_figure(table, figures / f"replay-{config.name}-{view}-{clock}"
                                   f"{'-chance' if at_chance else ''}.png", config.name, what, reference)
    return "\n".join(lines)


def _classes(config: object) -> int:
    from msup.config import TrainConfig

    return TrainConfig.from_dict(config.train).model_spec().num_classes  # type: ignore[attr-defined]


def _same_figure(table: pd.DataFrame, path: Path, name: str, reference: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 5))
    for grace, style in ((0, "k--"), (1, "k-")):
        rows = table[table["arm"].str.startswith(f"oracle g={grace} ")]
        levels = rows.groupby("hv")["epochs"].apply(iqm).sort_index()
        axes.plot(100 * levels.to_numpy(), 100 * levels.index.to_numpy(), style, marker=".",
                  label=f"oracle (rest stopped after {grace} epochs)")
    for arm, rows in table[~table["arm"].str.startswith("oracle")].groupby("arm"):
        x, y = iqm(rows["epochs"]), iqm(rows["hv"])
        (xl, xh), (yl, yh) = interval(rows["epochs"]), interval(rows["hv"])
        axes.errorbar(100 * x, 100 * y, xerr=[[100 * (x - xl)], [100 * (xh - x)]],
                      yerr=[[100 * (y - yl)], [100 * (yh - y)]], fmt="o", capsize=3, label=arm)
    axes.set_xlabel("trial-epochs, % of no pruning")
    axes.set_ylabel("hypervolume, % of no pruning")
    axes.set_title(f"{name}: same trials ({reference}); IQM, 95% bootstrap")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def _regret_figure(table: pd.DataFrame, path: Path, name: str, what: str, reference: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 5))
    for arm, rows in table.groupby("arm", sort=False):
        curves = np.stack(rows["regret"].to_numpy())
        middle = np.array([iqm(curves[:, i]) for i in range(len(GRID))])
        bands = np.array([interval(curves[:, i], draws=300) for i in range(len(GRID))])
        style = "k--" if arm == "oracle" else ("k:" if arm.startswith("floor") else "-")
        line, = axes.plot(GRID, middle, style, label=arm)
        axes.fill_between(GRID, bands[:, 0], bands[:, 1], color=line.get_color(), alpha=0.15)
    axes.set_xscale("log")
    axes.set_xlabel(f"compute, fraction of no pruning's ({what})")
    axes.set_ylabel("hypervolume regret against the bank's front")
    axes.set_title(f"{name}: equal compute ({reference}); IQM, 95% bootstrap")
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--replays", type=Path, help="default benchmarks/replays/<study name>")
    parser.add_argument("--bank", type=Path, help="default benchmarks/banks/<study name>")
    parser.add_argument("--half", default="all", choices=("all", "a", "b"))
    parser.add_argument("--figures", type=Path, help="write PNG figures here")
    parser.add_argument("--markdown", type=Path, help="also write the tables here")
    parser.add_argument("--real", type=Path, nargs="*", default=[],
                        help="outcomes.json of real studies (search_efficiency.py --keep) for the sim-to-real check")
    parser.add_argument("--real-compute", type=Path, nargs="*", default=[],
                        help="compute.json of real studies under a budget (real_studies.py) for the same check")
    args = parser.parse_args(argv)
    text = report(args.study, args.replays or ROOT / "benchmarks" / "replays" / args.study.stem,
                  args.bank or ROOT / "benchmarks" / "banks" / args.study.stem, args.half, args.figures, args.real,
                  args.real_compute)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
