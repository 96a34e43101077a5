"""Early stopping of weak trials: Optuna pruners consulted from a Ray Tune scheduler.

Ray's stock Optuna integration never asks an Optuna pruner, Optuna refuses to
prune multi-objective studies, and trials a Ray scheduler stops early reach
Optuna as COMPLETE. msup closes the gap:

- `PruningScheduler` (a Ray Tune scheduler) writes every epoch's accuracy into
  a single-objective *shadow* study kept beside the main study in the same
  storage, and asks the configured Optuna pruner about that curve.
- A stop decision is written to the storage first (``pruned_at_epoch`` on the
  main trial), so it survives a driver crash; the searcher then tells the main
  study PRUNED, never COMPLETE.
- `SizeAwarePruner` judges a trial by what it would add to the Pareto front
  of the completed trials at the same epoch, so a small trial with lower
  accuracy is not stopped for being less accurate than larger ones.

Pruner settings in a study file: ``{name: median, n_startup_trials: 5,
n_warmup_steps: 2}``; names: none, median, percentile, successive_halving,
hyperband, wilcoxon, patient (``wrapped: {...}`` or a name, plus ``patience``),
size_aware. Steps are epochs, counted from 1: ``n_warmup_steps: 3`` judges a
trial first after its third epoch (Optuna counts from 0, so there it would be
the fourth step).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from msup import failpoints

SIZE_ATTR = "size"  # user attribute of a shadow trial: its size objective
PRUNED_ATTR = "pruned_at_epoch"  # user attribute of a main trial: the epoch a pruner stopped it
SHADOW_ATTR = "shadow_trial_id"  # user attribute of a main trial: its shadow trial's storage id


class SizeAwarePruner(BasePruner):
    """Prune a trial whose (size, accuracy) at this epoch is no use to the front finished trials had then.

    From epoch ``n_warmup_steps`` on, once ``n_startup_trials`` trials completed,
    the trial's accuracy is compared with the completed trials' accuracies at the
    same epoch. It is pruned when

    - it is beaten: at least ``min_peers`` of them are no larger than it and its
      accuracy is below the ``percentile``-th percentile of theirs; or
    - it adds less than ``min_gain`` (when > 0) to their front: the area, in
      accuracy x decades of size (`front_gain`), that the trial would add. A
      trial some no-larger trial beats adds nothing; a smaller, less accurate one
      adds the strip to the left of the others, and is kept if that is enough.

    Smaller trials are never judged against larger ones' accuracy alone, because
    a small trial with lower accuracy may still belong to the front.
    """

    def __init__(
        self, percentile: float = 50.0, n_startup_trials: int = 5, n_warmup_steps: int = 1, min_peers: int = 3,
        min_gain: float = 0.0,
    ) -> None:
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile={percentile} must lie in [0, 100]")
        if n_startup_trials < 0 or n_warmup_steps < 0 or min_peers < 1:
            raise ValueError("n_startup_trials and n_warmup_steps must be >= 0, min_peers >= 1")
        if not 0.0 <= min_gain < math.inf:
            raise ValueError(f"min_gain={min_gain} must be a finite number >= 0")
        self._percentile = percentile
        self._n_startup_trials = n_startup_trials
        self._n_warmup_steps = n_warmup_steps
        self._min_peers = min_peers
        self._min_gain = min_gain

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self._n_warmup_steps:
            return False
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(completed) < self._n_startup_trials:
            return False
        size = trial.user_attrs.get(SIZE_ATTR, math.inf)
        accuracy = trial.intermediate_values[step]
        front = [
            (t.user_attrs[SIZE_ATTR], t.intermediate_values[step])
            for t in completed
            if step in t.intermediate_values and SIZE_ATTR in t.user_attrs
        ]
        peers = [peer_accuracy for peer_size, peer_accuracy in front if peer_size <= size]
        if len(peers) >= self._min_peers and accuracy < np.percentile(peers, self._percentile):
            return True
        return self._min_gain > 0 and 0 < size < math.inf and front_gain(accuracy, size, front) < self._min_gain


def front_gain(accuracy: float, size: float, front: Sequence[tuple[float, float]]) -> float:
    """Area (accuracy x decades of size) the point adds to what the (size, accuracy) points of ``front`` dominate.

    Measured up to the largest size in ``front``, against accuracy 0 (as
    `analysis.pareto.hypervolume`). A point more accurate than all of ``front``
    raises the front's top and counts as infinite; a dominated point adds 0.
    """
    if not front or accuracy > max(a for _, a in front):
        return math.inf
    edges = sorted({size, *(s for s, _ in front if s > size)})
    gain = 0.0
    for left, right in zip(edges, edges[1:]):
        best = max((a for s, a in front if s <= left), default=0.0)
        gain += max(0.0, accuracy - best) * math.log10(right / left)
    return gain


def _build(name: str, options: dict[str, Any]) -> BasePruner | None:
    if name == "none":
        if options:
            raise TypeError(f"none takes no options, got {sorted(options)}")
        return None
    if name == "patient":
        wrapped = options.pop("wrapped", None)
        inner = None if wrapped is None else _build_from(wrapped)
        with warnings.catch_warnings():  # experimental in Optuna; chosen explicitly in the study file
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.pruners.PatientPruner(inner, **options)
    classes = {
        "median": optuna.pruners.MedianPruner,
        "percentile": optuna.pruners.PercentilePruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "wilcoxon": optuna.pruners.WilcoxonPruner,
        "size_aware": SizeAwarePruner,
    }
    if name not in classes:
        raise ValueError(f"{name!r} is not one of {', '.join(PRUNERS)}")
    with warnings.catch_warnings():  # WilcoxonPruner is experimental in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return classes[name](**options)


PRUNERS = ("none", "median", "percentile", "successive_halving", "hyperband", "wilcoxon", "patient", "size_aware")


def _build_from(raw: str | Mapping[str, Any]) -> BasePruner | None:
    """A fresh pruner from a name or ``{name: ..., **options}`` (the top level and ``wrapped`` alike)."""
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, Mapping):
        raise TypeError(f"a pruner is a name or a mapping with 'name', got {raw!r}")
    options = dict(raw)
    return _build(str(options.pop("name", "")), options)


@dataclass(frozen=True)
class PrunerSpec:
    """A validated pruner section; `build` makes a fresh Optuna pruner."""

    raw: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.raw.get("name"))

    def build(self) -> BasePruner | None:
        return _build_from(self.raw)


def parse_pruner(raw: Any, where: str, errors: list[str]) -> PrunerSpec:
    """Check a pruner section by building it once; problems are appended to ``errors``."""
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, Mapping) or raw.get("name") not in PRUNERS:
        name = raw.get("name") if isinstance(raw, Mapping) else raw
        errors.append(f"{where}.name: {name!r} is not one of {', '.join(PRUNERS)}")
        return PrunerSpec({"name": "none"})
    try:
        _build_from(raw)
    except (TypeError, ValueError) as exc:
        errors.append(f"{where}: invalid settings for {raw['name']} pruner: {exc}")
        return PrunerSpec({"name": "none"})
    return PrunerSpec(dict(raw))


def shadow_study_name(study_name: str) -> str:
    return f"{study_name}.pruning"


class PruningScheduler(FIFOScheduler):
    """Ray Tune scheduler that asks an Optuna pruner, via the shadow study, after every epoch.

    Holds no state of its own: decisions and curves live in the Optuna storage,
    so a restored experiment (whose scheduler starts afresh) keeps them.
    """

    def __init__(self, storage_url: str, study_name: str, pruner: PrunerSpec, accuracy: str, size: str) -> None:
        super().__init__()
        self._storage_url = storage_url
        self._study_name = study_name
        self._pruner_spec = pruner
        self._accuracy = accuracy
        self._size = size
        self._studies: tuple[optuna.Study, optuna.Study] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_studies": None}

    def _open(self) -> tuple[optuna.Study, optuna.Study]:
        if self._studies is None:
            from msup.search.storage import open_storage

            storage = open_storage(self._storage_url)
            main = optuna.load_study(study_name=self._study_name, storage=storage)
            shadow = optuna.create_study(
                study_name=shadow_study_name(self._study_name), storage=storage, direction="maximize",
                pruner=self._pruner_spec.build() or optuna.pruners.NopPruner(), load_if_exists=True,
            )
            self._studies = (main, shadow)
        return self._studies

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        number, epoch = trial.config.get("optuna_trial"), result.get("epoch")
        accuracy = result.get(self._accuracy)
        if number is None or epoch is None or accuracy is None:
            return TrialScheduler.CONTINUE
        main, shadow = self._open()
        storage = main._storage
        main_id = storage.get_trial_id_from_study_id_trial_number(main._study_id, number)
        attrs = storage.get_trial(main_id).user_attrs
        if PRUNED_ATTR in attrs:  # decided before a restart: stop again, never resurrect
            return TrialScheduler.STOP
        shadow_id = attrs.get(SHADOW_ATTR)
        if shadow_id is None:
            shadow_trial = shadow.ask()
            sizes = trial.config["sizes"]  # the artifact size is known only after training: rank by entropy
            shadow_trial.set_user_attr(SIZE_ATTR, sizes.get(self._size, sizes["size_entropy_mib"]))
            shadow_trial.set_user_attr("main_trial", number)
            shadow_id = shadow_trial._trial_id
            storage.set_trial_user_attr(main_id, SHADOW_ATTR, shadow_id)
        if storage.get_trial(shadow_id).state.is_finished():
            return TrialScheduler.CONTINUE
        storage.set_trial_intermediate_value(shadow_id, int(epoch), float(accuracy))
        done = result.get("done") or int(epoch) >= int(trial.config["epochs"])
        if done:
            storage.set_trial_state_values(shadow_id, TrialState.COMPLETE, [float(accuracy)])
            return TrialScheduler.CONTINUE
        if shadow.pruner.prune(shadow, storage.get_trial(shadow_id)):
            storage.set_trial_user_attr(main_id, PRUNED_ATTR, int(epoch))
            storage.set_trial_state_values(shadow_id, TrialState.PRUNED)
            failpoints.reach("scheduler.after_prune")
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        return f"Using msup pruning scheduler ({self._pruner_spec.name})."
