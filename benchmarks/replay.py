"""Replay searches on a curve bank: msup's real searcher, pruning scheduler, ledger and samplers, no training.

Every trial a sampler asks for is answered from the bank (`curve_bank.py`),
one of two ways (``--answer``):

- ``nearest``: its nearest bank configuration (coats and categorical values
  matched exactly, the other parameters normalised to [0, 1], log where the
  space is log), whose values the trial then carries, so both objectives (its
  sizes and its curve) come from a configuration that was really trained;
- ``forest`` (the default): the sampled values are kept, so the sizes are
  exact, and the curve is predicted by a forest fitted on the bank's curves.
  On the digits bank a configuration's final accuracy is predicted 3x better
  this way than by its nearest neighbour (BENCHMARKS.md): in nine dimensions
  3,000 configurations leave neighbours far apart. A forest's curves shrink
  toward the mean, so each is given what the forest misses on bank
  configurations it predicts alike (out of fold; ``forest_mean`` leaves it out).

Trials run on a simulated clock: ``max_concurrent`` workers, per-epoch seconds
from the bank, plus a fixed overhead per trial (`TRIAL_OVERHEAD_S`, measured
on real studies). The controller calls what Ray Tune's would (`Controller`).

Three views, each over paired seeds (seed s means the same sampler seed in
every arm):

- ``same``: the random sampler, the study's trial count. For a given seed,
  every arm trains the same configurations, so pruners are compared trial by
  trial and the floor and the oracle are computed exactly from ``none``'s
  trials (`replay_report.py`).
- ``trials``: the study's own sampler and trial count, as a real study runs
  (`search_efficiency.py`): what the sim-to-real check compares.
- ``compute``: the study's own sampler. ``none`` trains the study's trial
  count; every other arm keeps sampling until it has spent as many
  trial-epochs and as much simulated time as ``none`` did for that seed.
- ``warm``: as ``compute``, for warm starts (`msup.search.sampling.warm_start`):
  ``warm`` and ``warm_size_aware`` are ``none`` and ``size_aware`` whose
  sampler is first shown the finished trials of an earlier study, the cold
  ``none`` study of another seed (s + `EARLIER_SEED`); ``warm_front`` is
  ``warm`` that also trains the earlier study's front first (``front_first``);
  ``none`` and ``size_aware`` are the cold starts they are measured against.

Arms: the msup pruners in `ARMS`, plus two reference policies that stop trials
from outside the pruner: ``floor1``/``floor2`` (train i epochs, go on only if
the point is non-dominated among every trial's point at epoch i so far) and
``oracle`` (after one epoch, go on only if the trial's own final accuracy,
read from the bank, would enter the front of the trials completed so far).
The ``size_aware_pause`` arms pause what the study's pruner stops near its bar
(`msup.search.pruning.pausing`); in the equal-compute views their searcher is
told none's trial-epochs as its budget, since it takes paused trials up when
the budget has no room for a whole new trial. A paused trial has a row per
stretch it trained (state PAUSED for the first).

One Parquet file per (view, seed) with a row per trial of every arm; files
already there are skipped, so a run resumes where it stopped:

    python benchmarks/replay.py studies/digits.yaml --seeds 100 --workers 2
    python benchmarks/replay_report.py studies/digits.yaml --figures benchmarks/figures
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import heapq
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from curve_bank import load_bank, unit_axes

ROOT = Path(__file__).resolve().parents[1]
TRIAL_OVERHEAD_S = 0.37  # a digits trial's seconds beyond its epochs in a real study (BENCHMARKS.md, study overhead)
MO_ASHA = {"name": "mo_asha", "grace": 1, "eta": 3}
ARMS: dict[str, dict[str, Any] | None] = {
    "none": {"name": "none"},
    "size_aware": None,  # the study file's own pruner
    # the size-aware rule with its min_gain test, as the digits study shipped it before its compute budget
    "size_aware_gain": {"name": "size_aware", "n_startup_trials": 3, "n_warmup_steps": 2, "min_gain": 0.004,
                        "percentile": 50, "min_peers": 3},
    "mo_asha": {**MO_ASHA, "tie_break": "hypervolume", "min_accuracy": 0.2},  # search_efficiency.py's
    "mo_asha_eps": {**MO_ASHA, "tie_break": "epsilon_net", "min_accuracy": 0.2},
    "mo_asha_crowding": {**MO_ASHA, "tie_break": "crowding", "min_accuracy": 0.2},
    "moasha": {**MO_ASHA, "tie_break": "epsilon_net", "min_accuracy": 0.0},  # Syne Tune's MOASHA rule
    "asha": {"name": "successive_halving", "min_resource": 1, "reduction_factor": 3},  # accuracy alone
    "front_chance": {"name": "front_chance"},  # its shipped defaults (`msup.search.pruning.front_chance`)
    "size_aware_pause": None,  # the study file's own pruner, pausing trials near its bar (`PAUSE_WITHIN`)
    "size_aware_pause_wide": None,
    "floor1": {"name": "none"},
    "floor2": {"name": "none"},
    "oracle": {"name": "none"},
}
PRUNERS = ("none", "size_aware", "size_aware_gain", "mo_asha", "mo_asha_eps", "mo_asha_crowding", "moasha", "asha",
           "front_chance", "size_aware_pause", "size_aware_pause_wide")
# A trial the study's own pruner stops within this much accuracy of its bar is paused, not ended (set a priori).
PAUSE_WITHIN = {"size_aware_pause": 0.02, "size_aware_pause_wide": 0.05}
# Warm-started arms: the pruner arm they run, their sampler shown an earlier study's finished trials.
WARM = {"warm": "none", "warm_size_aware": "size_aware", "warm_front": "none"}
FRONT_FIRST = ("warm_front",)  # warm starts that train the earlier study's front first (`enqueue_front`)
VIEWS = {"same": PRUNERS, "trials": PRUNERS, "compute": tuple(ARMS), "warm": ("none", "size_aware", *WARM)}
EARLIER_SEED = 500_000  # the earlier study of seed s is the cold ``none`` study of seed s + EARLIER_SEED


# --- answering a sampled configuration from the bank ------------------------------------------------------


class BankAnswers:
    """What a sampled configuration would have done, from the bank's seed-0 runs.

    ``nearest``: the nearest bank run in the same cell (coats and categorical values equal), whose values the
    trial then carries. ``forest_mean``: the sampled values kept (their sizes are exact), the curve predicted by
    a multi-output forest fitted on the bank's curves (seeded, so every replay sees the same surrogate).
    ``forest``: that curve plus what the forest misses on configurations it predicts alike (`ForestMisses`),
    since a front is made of the best draws, not of means.
    """

    def __init__(self, space: Any, bank: pd.DataFrame, mode: str = "nearest") -> None:
        if mode not in ANSWERS:
            raise ValueError(f"answer mode {mode!r} is not one of {', '.join(ANSWERS)}")
        self.space, self.mode = space, mode
        self.runs = bank[bank["seed"] == 0].reset_index(drop=True)
        self.exact = [p.name for p in space.params if p.kind == "categorical" or p.name == "coats"]
        self._cells: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        keys = [self.key(values) for values in self.runs["values"]]
        coords = [self.coords(values) for values in self.runs["values"]]
        for key in set(keys):
            rows = np.array([i for i, k in enumerate(keys) if k == key])
            self._cells[key] = (rows, np.array([coords[i] for i in rows]))
        self._forest = fit_forest(space, self.runs) if mode.startswith("forest") else None
        self._misses = ForestMisses(space, self.runs) if mode == "forest" else None

    def key(self, values: dict[str, Any]) -> tuple:
        return tuple(json.dumps(values.get(name)) for name in self.exact)

    def coords(self, values: dict[str, Any]) -> list[float]:
        """The continuous parameters in [0, 1] (log where the space is log), in a fixed order."""
        out = []
        for name in sorted(values):
            param = self.space.param("coat_keep" if name.startswith("coat_keep_") else name)
            if param is None or param.kind not in ("int", "float") or name in self.exact:
                continue
            out.append(_unit(param, values[name]))
        return out

    def nearest(self, values: dict[str, Any], k: int = 1, exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers and distances of the ``k`` nearest runs in the same cell (``exclude``: a row left out)."""
        cell = self._cells.get(self.key(values))
        if cell is None:
            raise LookupError(f"the bank has no configuration with {dict(zip(self.exact, self.key(values)))}")
        rows, coords = cell
        distances = np.sqrt(((coords - np.array(self.coords(values))) ** 2).sum(axis=1)) if coords.shape[1] else \
            np.zeros(len(rows))
        if exclude is not None:
            distances = np.where(rows == exclude, np.inf, distances)
        order = np.argsort(distances, kind="stable")[:k]
        return rows[order], distances[order]

    def answer(self, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the values the trial carries, its run: config, curve, epoch seconds, error, final test accuracy)."""
        (row,), (distance,) = self.nearest(values)
        near = self.runs.iloc[row]
        run = {"config": int(near["config"]), "snap": float(distance), "epoch_s": list(near["epoch_s"])}
        if self._forest is None:
            run.update(curve=list(near["val_acc"]), test_acc=near["test_acc"], error=near["error"])
            return dict(near["values"]), run
        curve = self._forest.predict([features(self.space, values)])[0]
        if self._misses is not None:
            curve = curve + self._misses.draw(float(curve[-1]), json.dumps(values, sort_keys=True))
        run.update(curve=[float(a) for a in np.clip(curve, 0.0, 1.0)], test_acc=float("nan"), error="")
        return values, run


ANSWERS = ("nearest", "forest", "forest_mean")


class ForestMisses:
    """What the forest misses, so that replayed finals spread as the bank's do: a configuration's residual curve
    (its bank curve minus the forest's prediction from folds that left it out), drawn among the bank
    configurations the forest predicts alike. It holds the seed spread and the surrogate's own error; without
    it the forest's curves shrink toward the mean and replayed fronts come out below real ones."""

    NEIGHBOURS = 90  # residual curves to draw from, those of the nearest predicted finals

    def __init__(self, space: Any, runs: pd.DataFrame) -> None:
        predicted, actual = out_of_fold(space, runs)
        self.levels, self.residuals = predicted[:, -1], actual - predicted

    def draw(self, final: float, key: str) -> np.ndarray:
        """A residual curve for the configuration ``key`` (the same one in every arm and replay), predicted to
        end at ``final``."""
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little"))
        similar = np.argsort(np.abs(self.levels - final), kind="stable")[: self.NEIGHBOURS]
        return self.residuals[rng.choice(similar)]


def _unit(param: Any, value: Any) -> float:
    low, high, value = float(param.low), float(param.high), float(value)
    if param.log:
        low, high, value = math.log(low), math.log(high), math.log(value)
    return (value - low) / (high - low) if high > low else 0.0


def features(space: Any, values: dict[str, Any]) -> list[float]:
    """A fixed-length description of a configuration for the forest: every axis of the space in [0, 1]
    (a categorical value as its index, an absent inner coat as keeping everything), plus the log density of
    the innermost coat, which sets how much of the network the top level holds."""
    row = []
    for name, _ in unit_axes(space):
        param = space.param("coat_keep" if name.startswith("coat_keep_") else name)
        if param.kind == "categorical":
            row.append(float(param.choices.index(values[name])))
        else:
            row.append(_unit(param, values[name]) if name in values else (1.0 - float(param.low)) / (
                float(param.high) - float(param.low)))
    coats = int(values.get("coats", 1))
    innermost = values.get(f"sparsity_{coats}")
    return row + ([math.log(max(1.0 - float(innermost), 1e-9))] if innermost is not None else [])


def fit_forest(space: Any, runs: pd.DataFrame) -> Any:
    """Extremely randomised trees, one multi-output model of the whole validation curve (full-length runs only)."""
    from sklearn.ensemble import ExtraTreesRegressor

    full = _full_length(runs)
    forest = ExtraTreesRegressor(n_estimators=100, min_samples_leaf=2, random_state=0, n_jobs=1)
    return forest.fit([features(space, v) for v in full["values"]], np.stack(full["val_acc"].to_numpy()))


def _full_length(runs: pd.DataFrame) -> pd.DataFrame:
    length = runs["val_acc"].map(len).max()
    return runs[(runs["error"] == "") & (runs["val_acc"].map(len) == length)].reset_index(drop=True)


def out_of_fold(space: Any, runs: pd.DataFrame, folds: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, actual) curves of the full-length runs, each predicted by a forest fitted without it."""
    from sklearn.model_selection import KFold

    full = _full_length(runs)
    actual = np.stack(full["val_acc"].to_numpy())
    predicted = np.empty_like(actual)
    for fitted, held in KFold(folds, shuffle=True, random_state=0).split(full):
        forest = fit_forest(space, full.iloc[fitted])
        predicted[held] = forest.predict([features(space, v) for v in full.iloc[held]["values"]])
    return predicted, actual


class AnsweringSpace:
    """The study's search space, its draws answered by the bank (what `StudySearcher` samples through)."""

    def __init__(self, answers: BankAnswers) -> None:
        self._answers = answers
        self.runs: list[dict[str, Any]] = []  # the answer of every draw, in draw order

    def __getattr__(self, name: str) -> Any:
        return getattr(self._answers.space, name)

    def sample(self, trial: Any) -> dict[str, Any]:
        values, run = self._answers.answer(self._answers.space.sample(trial))
        self.runs.append(run)
        return values


# --- reference policies: stopping rules that are not msup pruners -----------------------------------------


class Floor:
    """Train ``epoch`` epochs; go on only if non-dominated among every trial's point at that epoch so far."""

    def __init__(self, epoch: int) -> None:
        self.epoch, self.points = epoch, []

    def stop(self, size: float, epoch: int, accuracy: float, final: float | None, front: list) -> bool:
        if epoch != self.epoch:
            return False
        self.points.append((size, accuracy))
        return any(s <= size and a >= accuracy and (s, a) != (size, accuracy) for s, a in self.points)


class Oracle:
    """After one epoch, go on only if the trial's final accuracy (known) would enter the completed trials' front."""

    def stop(self, size: float, epoch: int, accuracy: float, final: float | None, front: list) -> bool:
        return epoch == 1 and (final is None or any(s <= size and a >= final for s, a in front))


def policy_of(arm: str) -> Floor | Oracle | None:
    if arm.startswith("floor"):
        return Floor(int(arm[len("floor"):]))
    return Oracle() if arm == "oracle" else None


# --- one replayed study --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Budget:
    """When sampling stops: a trial count, or compute (trial-epochs and simulated seconds, both spent)."""

    trials: int | None = None
    epochs: float = math.inf
    seconds: float = math.inf


def replay(config: Any, answers: BankAnswers, arm: str, sampler: dict[str, Any], budget: Budget,
           scratch: Path, earlier: list[Any] | None = None, changed: dict[str, Any] | None = None,
           ) -> tuple[list[dict[str, Any]], dict[str, float], list[Any]]:
    """One study of ``arm`` (its pruner settings ``changed`` where given), its sampler warm-started from
    ``earlier`` trials where given; returns a row per trial, the totals (epochs, simulated seconds, CPU seconds)
    and the study's finished trials."""
    from controller import Controller
    from optuna.trial import TrialState

    from msup.search.config.budget import ComputeBudget
    from msup.search.pruning.rules import parse_pruner
    from msup.search.sampling.factory import build_sampler
    from msup.search.sampling.warm_start import WarmStart, front_configurations
    from msup.search.state.enqueued import enqueue_once
    from msup.search.state.keys import RESUMED_ATTR
    from msup.search.state.ledger import release_ledgers

    pruner = {**(ARMS[WARM.get(arm, arm)] or config.pruner.raw), **(changed or {})}
    if arm in PAUSE_WITHIN:
        pruner = {**pruner, "pause_within": PAUSE_WITHIN[arm]}
    space = AnsweringSpace(answers)
    config = dataclasses.replace(config, name=f"replay-{uuid.uuid4().hex[:8]}", space=space, sampler=sampler,
                                 pruner=parse_pruner(pruner, "pruner", []))
    if config.pruner.pauses and math.isfinite(budget.epochs):  # it takes paused trials up once sampling is over:
        config = dataclasses.replace(config, budget=ComputeBudget(trial_epochs=int(budget.epochs)))  # it must know
    url = str(scratch / f"{config.name}.journal")  # a journal file on tmpfs where there is one
    warm = None if earlier is None else WarmStart(build_sampler(sampler, 0, config.size), earlier)
    controller = Controller(config, url, str(scratch), sampler=warm, trial_cap=budget.trials)
    if arm in FRONT_FIRST and earlier is not None:  # what a launch does with warm_start's front_first
        enqueue_once(controller.searcher.study, front_configurations(earlier))
    policy, epochs_per_trial = policy_of(arm), int(config.train["optim"]["epochs"])
    cpu, clock, spent = time.process_time(), 0.0, 0
    events: list[tuple[float, int, str]] = []
    running: dict[str, dict[str, Any]] = {}
    runs: dict[int, dict[str, Any]] = {}  # the bank run answering each Optuna trial
    rows: list[dict[str, Any]] = []
    front: list[tuple[float, float]] = []

    def spent_all() -> bool:
        return budget.trials is None and spent >= budget.epochs and clock >= budget.seconds

    def start(slot: int) -> None:
        if spent_all():
            return
        trial_id = f"r{len(rows) + len(running):05d}"
        trial_config = controller.suggest(trial_id)
        if trial_config is None:
            return
        number = trial_config["optuna_trial"]
        resumed = controller.searcher.ledger.trials[number].attrs.get(RESUMED_ATTR)
        run = runs[number] if resumed is not None else space.runs[-1]  # a paused trial goes on from its epoch
        runs[number], epoch = run, int(resumed or 0)
        size = trial_config["sizes"][config.size]
        running[trial_id] = {"config": trial_config, "run": run, "epoch": epoch, "from": epoch, "start": clock,
                             "size": size}
        heapq.heappush(events, (clock + TRIAL_OVERHEAD_S + _epoch_s(run, epoch + 1), slot, trial_id))

    def finish(trial_id: str, state: str, result: dict[str, Any] | None) -> None:
        trial = running.pop(trial_id)
        controller.complete(trial_id, result)
        run, number = trial["run"], trial["config"]["optuna_trial"]
        if number in controller.searcher.ledger.paused:
            state = "PAUSED"
        final = run["curve"][-1] if state == "COMPLETE" else math.nan
        if state == "COMPLETE":
            front.append((trial["size"], final))
        # a paused trial has a row per stretch it trained: epochs counts this stretch's, the curve is the whole
        rows.append({"trial": number, "config": run["config"], "snap": run["snap"],
                     "state": state, "epochs": trial["epoch"] - trial["from"], "size": trial["size"], "final": final,
                     "curve": [float(a) for a in run["curve"][:trial["epoch"]]], "start_s": trial["start"],
                     "end_s": clock, "spent_epochs": spent})

    for slot in range(config.max_concurrent):
        start(slot)
    while events:
        clock, slot, trial_id = heapq.heappop(events)
        if spent_all():
            break
        trial = running[trial_id]
        run, epoch = trial["run"], trial["epoch"] + 1
        trial["epoch"], spent = epoch, spent + 1
        if epoch > len(run["curve"]):  # the recorded run failed here (diverged): its last report is the error
            trial["epoch"], spent = epoch - 1, spent - 1
            finish(trial_id, "FAIL", {"error": run["error"] or "no curve", "epoch": epoch - 1})
            start(slot)
            continue
        result = {"epoch": epoch, config.accuracy: float(run["curve"][epoch - 1]), **trial["config"]["sizes"]}
        last = epoch == epochs_per_trial
        if last:
            result.update(test_acc=run["test_acc"], best_test_acc=run["test_acc"], wall_s=clock - trial["start"])
        final = run["curve"][-1] if len(run["curve"]) == epochs_per_trial and not run["error"] else None
        going_on = controller.report(trial_id, result)
        if going_on and not last and policy is not None:
            # stopped from outside the pruner: with no test accuracy in its last result, the searcher tells PRUNED
            going_on = not policy.stop(trial["size"], epoch, result[config.accuracy], final, front)
        if last or not going_on:
            finish(trial_id, "COMPLETE" if last and going_on else "PRUNED", result)
            start(slot)
        else:
            heapq.heappush(events, (clock + _epoch_s(run, epoch + 1), slot, trial_id))
    finished = controller.searcher.study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    release_ledgers()
    return rows, {"epochs": spent, "seconds": clock, "cpu_s": time.process_time() - cpu}, finished


def _epoch_s(run: dict[str, Any], epoch: int) -> float:
    times = run["epoch_s"]
    return float(times[min(epoch, len(times)) - 1]) if times else 0.0


_ANSWERS: dict[tuple[str, str, str, str], BankAnswers] = {}  # one per worker process: a forest is fitted once


def replay_seed(task: tuple[str, str, int, str, str, list[str], str, dict[str, dict[str, Any]]]) -> pd.DataFrame:
    """Every arm of one view on one seed (``none`` first: it sets the compute the others get)."""
    view, study_path, seed, bank_path, mode, arms, half, options = task
    import optuna

    from msup.search.config.preflight import load_study_config

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    config = replayed_study(load_study_config(study_path))
    key = (study_path, bank_path, mode, half)
    if key not in _ANSWERS:
        _ANSWERS[key] = BankAnswers(config.space, bank_half(load_bank(bank_path), half), mode)
    answers = _ANSWERS[key]
    sampler = {"name": "random", "seed": seed} if view == "same" else {**config.sampler, "seed": seed}
    frames, limits = [], Budget(trials=config.trials)
    equal_compute = view in ("compute", "warm")
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as scratch:
        earlier = None
        if view == "warm":
            *_, earlier = replay(config, answers, "none", {**sampler, "seed": seed + EARLIER_SEED}, limits,
                                 Path(scratch))
        for arm in ["none", *[a for a in arms if a != "none"]]:
            budget = limits if not equal_compute or arm == "none" else dataclasses.replace(limits, trials=None)
            rows, totals, _ = replay(config, answers, arm, sampler, budget, Path(scratch),
                                     earlier if arm in WARM else None, options.get(arm))
            if arm == "none" and equal_compute:
                limits = Budget(epochs=totals["epochs"], seconds=totals["seconds"])
            frames.append(pd.DataFrame(rows).assign(view=view, arm=arm, seed=seed, answer=mode, run_epochs=totals["epochs"],
                                                    run_s=totals["seconds"], cpu_s=totals["cpu_s"]))
    return pd.concat(frames, ignore_index=True)


def replayed_study(config: Any) -> Any:
    """The study as the replay runs it: none's trial count fixed (a study file's trial-epoch budget in whole
    trials), and no compute budget of its own, since each view sets its own limits."""
    trials = config.trials
    if trials is None:
        if config.budget is None or config.budget.trial_epochs is None:
            raise SystemExit(f"{config.name}: a replay needs trials or a trial_epochs budget in the study file")
        trials = config.budget.trial_epochs // int(config.train["optim"]["epochs"])
    return dataclasses.replace(config, trials=trials, budget=None)


def bank_half(bank: pd.DataFrame, half: str) -> pd.DataFrame:
    """``a`` or ``b``: a seeded random half of the bank's configurations, the other half; ``all``: the whole bank
    (tune on one half, report the other). Not even and odd configurations: consecutive points of the bank's Sobol
    sequence alternate between the halves of its first axis, so on digits the odd ones end 27 points lower."""
    if half == "all":
        return bank
    configs = np.sort(bank["config"].unique())
    in_a = bank["config"].isin(np.random.default_rng(0).permutation(configs)[: len(configs) // 2])
    return bank[in_a if half == "a" else ~in_a]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="the study file the bank was recorded for")
    parser.add_argument("--bank", type=Path, help="the bank folder (default benchmarks/banks/<study name>)")
    parser.add_argument("--seeds", type=int, default=100, help="paired seeds per arm")
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--views", nargs="+", default=list(VIEWS), choices=list(VIEWS))
    parser.add_argument("--arms", nargs="+", choices=[*ARMS, *WARM], help="default: every arm of each view")
    parser.add_argument("--half", default="all", choices=("all", "a", "b"), help="answer from half of the bank")
    parser.add_argument("--answer", default="forest", choices=ANSWERS,
                        help="nearest: the nearest bank run; forest: sampled values, curve from a forest on the bank plus "
                             "what it misses on alike configurations; forest_mean: the forest's curve alone")
    parser.add_argument("--set", action="append", default=[], metavar="ARM=JSON",
                        help='change an arm\'s pruner settings, e.g. front_chance=\'{"delta": 0.05}\' (to tune one)')
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, help="default benchmarks/replays/<study name>")
    args = parser.parse_args(argv)
    bank = args.bank or ROOT / "benchmarks" / "banks" / args.study.stem
    out = args.out or ROOT / "benchmarks" / "replays" / args.study.stem
    out.mkdir(parents=True, exist_ok=True)
    options: dict[str, dict[str, Any]] = {}
    for item in args.set:
        arm, _, text = item.partition("=")
        if arm not in ARMS or ARMS[arm] is None:
            parser.error(f"--set {item}: {arm!r} is not an arm with pruner settings of its own")
        options[arm] = {**options.get(arm, {}), **json.loads(text)}
    tasks = [(view, str(args.study.resolve()), seed, str(bank), args.answer,
              [a for a in (args.arms or VIEWS[view]) if a in VIEWS[view]], args.half, options)
             for seed in range(args.first_seed, args.first_seed + args.seeds) for view in args.views
             if not (out / f"{view}-{seed}.parquet").exists()]
    print(f"{len(tasks)} (view, seed) replays to run into {out}", flush=True)
    start = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for done, frame in enumerate(pool.imap_unordered(replay_seed, tasks), start=1):
            view, seed = frame["view"].iloc[0], int(frame["seed"].iloc[0])
            frame.to_parquet(out / f".{view}-{seed}.parquet", index=False)
            os.replace(out / f".{view}-{seed}.parquet", out / f"{view}-{seed}.parquet")
            if done % 5 == 0 or done == len(tasks):
                rate = done / (time.monotonic() - start)
                print(f"  {done}/{len(tasks)}, {(len(tasks) - done) / rate / 60:.1f} min left", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
