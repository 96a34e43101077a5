"""What early stopping buys, and what it costs, on the embedded digits study.

Ways to run the same budget of trials (same search space, same TPE sampler
settings, same seeds):

- ``none``: msup, every trial trains every epoch (the reference);
- ``asha``: Ray's stock ``ASHAScheduler`` behind stock ``OptunaSearch``
  (metric [accuracy, size], mode [max, min]); a trial ASHA stops reaches Optuna
  as COMPLETE with its half-trained accuracy;
- ``median``: msup with Optuna's median pruner (the study's warm-up and
  start-up settings), stopped trials told PRUNED;
- ``size_aware``: msup with the study file's pruner (`SizeAwarePruner`);
- ``mo_asha``: msup's multi-objective ASHA (`MoAshaPruner`, settings `MO_ASHA`
  plus ``--mo-asha`` overrides), its hypervolume tie-break;
- ``mo_asha_fb``: the same, with the sampler shown pruned trials where they
  stood when stopped (``learn_from_pruned``), so the feedback is measured alone;
- ``mo_asha_fb_crowding`` and ``mo_asha_fb_epsilon``: the other two tie-breaks,
  with feedback;
- ``size_aware_fb``: ``size_aware`` with the same feedback;
- ``front_chance``: msup's forecasting rule at its defaults
  (`msup.search.pruning.front_chance`);
- ``size_aware_recent``: ``size_aware`` with the sampler shown only the
  ``RECENT_HISTORY`` most recent trials (``sampler.max_history``, the knob that
  bounds TPE's cost in a large study), so what forgetting costs is measured.

For each run: trial-epochs trained, wall time, the hypervolume of the front the
Optuna study reports (its COMPLETE trials), how many of that front's points
were stopped early, and the hypervolume of that same front once every point is
trained for the full budget (under-trained points are retrained without Ray;
fully trained points keep their value). Hypervolume is `msup.analysis.pareto`'s:
accuracy x decades of size, reference (accuracy 0, the network's dense fp32
size), so every run of every arm is measured against the same box.

    python benchmarks/search_efficiency.py [--trials 40] [--epochs 20] [--seeds 0 1 2]
        [--arms none asha median size_aware mo_asha ...] [--mo-asha grace=2 eta=3] [--keep DIR]
        [--earlier DIR/outcomes.json ...]

``--earlier`` adds the outcomes kept earlier runs saved (for the seeds asked
for, and arms not run now) to the table, so the ``none`` reference need not be
trained again to compare new pruner settings with it; ``--arms`` with no arm
then only tabulates them.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml
from markdown_table import markdown_table
from ray.tune import Callback

from msup.analysis.pareto import hypervolume
from msup.search.config.preflight import load_study_config
from msup.search.config.study import StudyConfig
from msup.search.pruning.rules import PrunerSpec, parse_pruner
from msup.search.sampling.factory import build_sampler
from msup.search.state.keys import VALUES_ATTR
from msup.search.state.ledger import curve_of
from msup.search.state.storage import default_storage_url, open_storage
from msup.sizes import SizeCache
from msup.train import train

ROOT = Path(__file__).resolve().parents[1]
ARMS = (
    "none", "asha", "median", "size_aware", "mo_asha", "mo_asha_fb", "mo_asha_fb_crowding", "mo_asha_fb_epsilon",
    "size_aware_fb", "size_aware_recent", "front_chance",
)
RECENT_HISTORY = 15
MO_ASHA = {"name": "mo_asha", "grace": 1, "eta": 3, "tie_break": "hypervolume", "min_accuracy": 0.2}


@dataclasses.dataclass(frozen=True)
class Point:
    """A point of a reported front: the trial's sampled values and what the study was told."""

    values: dict[str, Any]
    accuracy: float
    size: float
    epochs: int


@dataclasses.dataclass(frozen=True)
class Outcome:
    arm: str
    seed: int
    trial_epochs: int
    wall_s: float
    front: tuple[Point, ...]
    full_accuracies: tuple[float, ...]  # the front's accuracies after training to the full budget


# --- the four arms ---------------------------------------------------------------------------


def arm_config(
    base: StudyConfig, arm: str, seed: int, trials: int, epochs: int, mo_asha: dict[str, Any] = MO_ASHA,
) -> StudyConfig:
    """The study file with this run's name, budget, epochs, sampler seed and pruner."""
    study_pruner = base.pruner.raw
    pruners = {
        "none": {"name": "none"},
        "asha": {"name": "none"},  # ASHA replaces msup's scheduler in that arm
        "median": {"name": "median", **{k: study_pruner[k] for k in ("n_startup_trials", "n_warmup_steps") if k in study_pruner}},
        "size_aware": study_pruner,
        "size_aware_fb": study_pruner,
        "size_aware_recent": study_pruner,
        "mo_asha": mo_asha,
        "mo_asha_fb": mo_asha,
        "mo_asha_fb_crowding": {**mo_asha, "tie_break": "crowding"},
        "mo_asha_fb_epsilon": {**mo_asha, "tie_break": "epsilon_net"},
        "front_chance": {"name": "front_chance"},
    }
    errors: list[str] = []
    pruner: PrunerSpec = parse_pruner(pruners[arm], "pruner", errors)
    if errors:
        raise SystemExit(f"{arm}: {errors}")
    train_dict = {**base.train, "optim": {**base.train.get("optim", {}), "epochs": epochs}}
    return dataclasses.replace(
        base, name=f"bench-{arm}-s{seed}", trials=trials, budget=None, train=train_dict,
        sampler={**base.sampler, "seed": seed, "learn_from_pruned": "_fb" in arm,
                 **({"max_history": RECENT_HISTORY} if arm.endswith("_recent") else {})}, pruner=pruner,
    )


def run_msup(config: StudyConfig, folder: Path) -> tuple[list[Point], int, float]:
    """A normal msup study; returns its reported front, trial-epochs and wall time."""
    from msup.search.driver import launch

    start = time.perf_counter()
    with open(folder / f"{config.name}.log", "w", encoding="utf-8") as log, contextlib.redirect_stdout(log):
        launch(config, runs=folder)
    wall = time.perf_counter() - start
    study = optuna.load_study(study_name=config.name, storage=open_storage(default_storage_url(folder / config.name)))
    trained = {t.number: max(curve_of(t.user_attrs), default=0) for t in study.trials}
    front = [Point(t.user_attrs[VALUES_ATTR], t.values[0], t.values[1], trained[t.number]) for t in study.best_trials]
    return front, sum(trained.values()), wall


class DefineByRun:
    """OptunaSearch's define-by-run space: msup's sampling, plus the config msup's trainable reads."""

    def __init__(self, config: StudyConfig, artifacts: Path) -> None:
        self._config = config
        self._artifacts = artifacts
        self._sizes = SizeCache()

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        values = self._config.space.sample(trial)
        train_config = self._config.train_config(values)
        return {
            "optuna_trial": trial.number,
            "train": train_config.to_dict(),
            "sizes": self._sizes.sizes(train_config),
            "cpus": self._config.cpu,
            "artifact_path": str(self._artifacts / f"{trial.number:05d}.msup"),
        }


def run_asha(config: StudyConfig, folder: Path) -> tuple[list[Point], int, float]:
    """Stock Ray: OptunaSearch (multi-objective) + ASHAScheduler, msup's trainable."""
    from optuna.storages import RDBStorage
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from msup.search.execution.trainable import run_trial

    epochs = int(config.train["optim"]["epochs"])
    storage_url = f"sqlite:///{folder / config.name}.db"
    searcher = OptunaSearch(
        space=DefineByRun(config, folder / config.name / "artifacts"),
        metric=[config.accuracy, config.size], mode=["max", "min"],
        sampler=build_sampler(config.sampler), study_name=config.name, storage=RDBStorage(storage_url),
    )
    trained = EpochCounter()
    tuner = tune.Tuner(
        tune.with_resources(run_trial, {"cpu": config.cpu}),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=ASHAScheduler(time_attr="epoch", metric=config.accuracy, mode="max", max_t=epochs),
            num_samples=config.trials,
            max_concurrent_trials=config.max_concurrent,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=config.name, storage_path=str(folder / config.name), callbacks=[trained], verbose=0,
        ),
    )
    start = time.perf_counter()
    tuner.fit()
    wall = time.perf_counter() - start
    study = optuna.load_study(study_name=config.name, storage=storage_url)
    front = [
        Point(dict(t.params), t.values[0], t.values[1], trained.epochs.get(t.number, 0)) for t in study.best_trials
    ]
    return front, sum(trained.epochs.values()), wall


class EpochCounter(Callback):
    """The last epoch each trial reported, by Optuna trial number."""

    def __init__(self) -> None:
        self.epochs: dict[int, int] = {}

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if "epoch" in result:
            number = trial.config["optuna_trial"]
            self.epochs[number] = max(self.epochs.get(number, 0), int(result["epoch"]))


RUNNERS: dict[str, Callable[[StudyConfig, Path], tuple[list[Point], int, float]]] = {
    arm: run_asha if arm == "asha" else run_msup for arm in ARMS
}


# --- measurement -----------------------------------------------------------------------------


def full_budget_accuracies(config: StudyConfig, front: Sequence[Point], epochs: int) -> tuple[float, ...]:
    """The front's accuracies once every point trained all epochs: under-trained points are retrained."""
    return tuple(
        point.accuracy if point.epochs >= epochs else train(config.train_config(point.values)).final_val_acc
        for point in front
    )


def run_one(
    base: StudyConfig, arm: str, seed: int, trials: int, epochs: int, folder: Path, mo_asha: dict[str, Any],
) -> Outcome:
    config = arm_config(base, arm, seed, trials, epochs, mo_asha)
    front, trial_epochs, wall = RUNNERS[arm](config, folder)
    full = full_budget_accuracies(config, front, epochs)
    return Outcome(arm, seed, trial_epochs, wall, tuple(front), full)


def load_outcomes(path: Path) -> list[Outcome]:
    """Outcomes as a kept run wrote them (``outcomes.json``: plain JSON, no pickles)."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    return [Outcome(**{**row, "front": tuple(Point(**p) for p in row["front"]),
                       "full_accuracies": tuple(row["full_accuracies"])}) for row in rows]


def front_hypervolume(accuracies: Sequence[float], front: Sequence[Point], reference: tuple[float, float]) -> float:
    return hypervolume(list(accuracies), [p.size for p in front], reference)


def summary(outcomes: Sequence[Outcome], reference: tuple[float, float], epochs: int) -> dict[str, dict[str, list[float]]]:
    """Per arm, per quantity: one value per seed (ratios are to the ``none`` run of the same seed)."""
    by_seed = {(o.arm, o.seed): o for o in outcomes}
    table: dict[str, dict[str, list[float]]] = {}
    for o in outcomes:
        reported = front_hypervolume([p.accuracy for p in o.front], o.front, reference)
        full = front_hypervolume(o.full_accuracies, o.front, reference)
        row = {
            "trial-epochs": o.trial_epochs,
            "wall s": o.wall_s,
            "front points": len(o.front),
            "under-trained on front": sum(p.epochs < epochs for p in o.front),
            "HV reported": reported,
            "HV after full training": full,
        }
        base = by_seed.get(("none", o.seed))
        if base is not None:
            base_hv = front_hypervolume([p.accuracy for p in base.front], base.front, reference)
            row["trial-epochs % of none"] = 100 * o.trial_epochs / base.trial_epochs
            row["HV reported % of none"] = 100 * reported / base_hv
            row["HV full % of none"] = 100 * full / base_hv
        for key, value in row.items():
            table.setdefault(o.arm, {}).setdefault(key, []).append(float(value))
    return table


# Column and its number format.
COLUMNS = {
    "trial-epochs": ".0f", "trial-epochs % of none": ".0f", "wall s": ".0f", "front points": ".1f",
    "under-trained on front": ".1f", "HV reported": ".3f", "HV reported % of none": ".1f",
    "HV after full training": ".3f", "HV full % of none": ".1f",
}


def markdown(table: dict[str, dict[str, list[float]]]) -> str:
    rows = [[arm, *(_mean_spread(row.get(column, []), spec) for column, spec in COLUMNS.items())]
            for arm, row in table.items()]
    return markdown_table(["arm", *COLUMNS], rows)


def _mean_spread(values: Sequence[float], spec: str) -> str:
    if not values:
        return "-"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):{spec}} ± {spread:{spec}}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, default=ROOT / "studies" / "digits.yaml")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="*", choices=ARMS, default=list(ARMS))
    parser.add_argument("--mo-asha", nargs="*", default=[], metavar="KEY=VALUE",
                        help=f"override the mo_asha arms' pruner settings {MO_ASHA} (values are YAML)")
    parser.add_argument("--keep", type=Path, help="keep the study folders here (default: a temporary folder)")
    parser.add_argument("--earlier", type=Path, nargs="+", default=[],
                        help="outcomes.json of earlier --keep runs to include")
    args = parser.parse_args(argv)
    mo_asha = {**MO_ASHA, **{k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.mo_asha)}}

    from msup.search.execution.runner import connect

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)  # retraining runs beside nothing else, like one trial on one CPU
    base = load_study_config(args.study)
    reference = (0.0, SizeCache().sizes(base.train_config({}))["dense_mib"])
    if args.arms:  # tabulating earlier outcomes needs no Ray
        connect(None)
    outcomes = [o for path in args.earlier for o in load_outcomes(path) if o.seed in args.seeds and o.arm not in args.arms]
    with contextlib.ExitStack() as stack:
        folder = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="msup-search-bench-")))
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        for seed in args.seeds:
            for arm in args.arms:
                outcome = run_one(base, arm, seed, args.trials, args.epochs, folder, mo_asha)
                outcomes.append(outcome)
                print(f"seed {seed} {arm:<10} {outcome.trial_epochs:>5} trial-epochs {outcome.wall_s:6.0f} s "
                      f"front {len(outcome.front)} ({sum(p.epochs < args.epochs for p in outcome.front)} under-trained)",
                      file=sys.stderr, flush=True)
                if args.keep:  # after every arm: an interrupted run keeps what it measured (see --earlier)
                    (args.keep / "outcomes.json").write_text(json.dumps([dataclasses.asdict(o) for o in outcomes], indent=1))
        total = time.perf_counter() - start
    table = summary(outcomes, reference, args.epochs)
    print(f"{args.trials} trials x {args.epochs} epochs, seeds {args.seeds}, mean ± std over seeds; "
          f"hypervolume reference: accuracy {reference[0]}, size {reference[1]:.4g} MiB (dense fp32), "
          f"size axis in decades; pruner of size_aware: {base.pruner.raw}; of mo_asha: {mo_asha}; "
          f"total {total:.0f} s\n")
    print(markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
