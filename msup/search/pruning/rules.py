"""Stopping rules: which pruner a study file names, and msup's own, deciding from the driver's ledger.

Pruner settings in a study file: ``{name: median, n_startup_trials: 5,
n_warmup_steps: 2}``; names: none, median, percentile, successive_halving,
hyperband, wilcoxon, patient (``wrapped: {...}`` or a name, plus ``patience``),
size_aware, mo_asha (`MoAshaPruner`) and front_chance (`FrontChancePruner`);
``pause_within: 0.02`` makes size_aware or mo_asha pause doubtful trials
instead of ending them. Steps are epochs, counted from 1:
``n_warmup_steps: 3`` judges a trial first after its third epoch (Optuna counts
from 0, so there it would be the fourth step).

- `SizeAwarePruner` judges a trial by what it would add to the Pareto front
  of the completed trials at the same epoch, so a small trial with lower
  accuracy is not stopped for being less accurate than larger ones.
- `MoAshaPruner`: multi-objective asynchronous successive halving over rungs.
- `FrontChancePruner` (`msup.search.pruning.front_chance`): a forecast of
  where the trial's curve ends, against the front at the trial's known size.

The rules are plain objects, testable without Ray; `msup.search.execution.scheduler`
consults them from a Ray Tune scheduler.
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

from msup.search.pruning.base import LedgerPruner
from msup.search.pruning.front_chance import FrontChancePruner
from msup.search.pruning.rungs import TIE_BREAKS, keeps_going, rung_epochs
from msup.search.state.keys import SIZE_ATTR
from msup.search.state.ledger import EpochIndex, StudyLedger, TrialRecord


class SizeAwarePruner(BasePruner, LedgerPruner):
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

    With ``pause_within`` > 0, a stopped trial whose accuracy is no more than
    that below the percentile bar is *doubtful*: the study pauses it, to resume
    when sampling ends, instead of ending it (`msup.search.pruning.pausing`).
    """

    def __init__(
        self, percentile: float = 50.0, n_startup_trials: int = 5, n_warmup_steps: int = 1, min_peers: int = 3,
        min_gain: float = 0.0, pause_within: float = 0.0,
    ) -> None:
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile={percentile} must lie in [0, 100]")
        if n_startup_trials < 0 or n_warmup_steps < 0 or min_peers < 1:
            raise ValueError("n_startup_trials and n_warmup_steps must be >= 0, min_peers >= 1")
        if not 0.0 <= min_gain < math.inf:
            raise ValueError(f"min_gain={min_gain} must be a finite number >= 0")
        self.pause_within = _pause_margin(pause_within)
        self._percentile = percentile
        self._n_startup_trials = n_startup_trials
        self._n_warmup_steps = n_warmup_steps
        self._min_peers = min_peers
        self._min_gain = min_gain

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        """Optuna's interface: the peers are read from ``study`` (a whole-study read; the driver uses `decide`)."""
        step = trial.last_step
        if step is None:
            return False
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        peers = EpochIndex()
        for t in completed:
            if step in t.intermediate_values and SIZE_ATTR in t.user_attrs:
                peers.add(t.user_attrs[SIZE_ATTR], t.intermediate_values[step])
        return self.decide(step, trial.user_attrs.get(SIZE_ATTR, math.inf), trial.intermediate_values[step],
                           len(completed), peers)

    def decide_from(
        self, ledger: StudyLedger, record: TrialRecord, epoch: int, accuracy: float, epochs: int,
    ) -> str | None:
        assert record.size is not None
        return self.reason(epoch, record.size, accuracy, ledger.trained, ledger.by_epoch.get(epoch) or EpochIndex())

    def doubtful(self, ledger: StudyLedger, record: TrialRecord, epoch: int, accuracy: float) -> bool:
        if self.pause_within <= 0 or record.size is None:
            return False
        no_larger = (ledger.by_epoch.get(epoch) or EpochIndex()).peers(record.size)
        return len(no_larger) >= self._min_peers and (
            accuracy >= float(np.percentile(no_larger, self._percentile)) - self.pause_within)

    def decide(self, step: int, size: float, accuracy: float, completed: int, peers: EpochIndex) -> bool:
        """The rule, given the number of completed trials and their (size, accuracy) at ``step``."""
        return self.reason(step, size, accuracy, completed, peers) is not None

    def reason(self, step: int, size: float, accuracy: float, completed: int, peers: EpochIndex) -> str | None:
        """Why the rule stops the trial, or None."""
        if step < self._n_warmup_steps or completed < self._n_startup_trials:
            return None
        no_larger = peers.peers(size)
        if len(no_larger) >= self._min_peers and accuracy < (bar := float(np.percentile(no_larger, self._percentile))):
            return (f"accuracy {accuracy:.4f} at epoch {step} below the {self._percentile:g}th percentile ({bar:.4f}) "
                    f"of {len(no_larger)} no larger trials")
        if self._min_gain > 0 and 0 < size < math.inf:
            gain = front_gain(accuracy, size, peers.front())
            if gain < self._min_gain:
                return f"adds {gain:.4g} to the front at epoch {step}, under min_gain {self._min_gain:g}"
        return None


class MoAshaPruner(LedgerPruner):
    """Multi-objective ASHA (`msup.search.pruning.rungs`): at rungs ``grace * eta**k``, keep the top ``1/eta``.

    Every trial that reached a rung counts, whatever its state, so the rule
    acts from the first trial on. ``rungs`` (a list of epochs) replaces the
    geometric rungs, so how often trials are judged and how many go on can be
    set apart. ``min_accuracy`` is the accuracy below which a point is of no
    use (e.g. chance level); ``tie_break`` orders a front. With ``pause_within``
    > 0, a stopped trial that this much more accuracy would have kept at the
    rung is *doubtful*: the study pauses it (`msup.search.pruning.pausing`).
    """

    def __init__(
        self, grace: int = 1, eta: float = 3.0, tie_break: str = "hypervolume", min_accuracy: float = 0.0,
        rungs: Sequence[int] | None = None, pause_within: float = 0.0,
    ) -> None:
        if isinstance(grace, bool) or not isinstance(grace, int) or grace < 1:
            raise ValueError(f"grace={grace!r} must be a whole number of epochs >= 1")
        if not isinstance(eta, (int, float)) or not 1.0 < eta < math.inf:
            raise ValueError(f"eta={eta!r} must be a number > 1")
        if tie_break not in TIE_BREAKS:
            raise ValueError(f"tie_break={tie_break!r} is not one of {', '.join(TIE_BREAKS)}")
        if not isinstance(min_accuracy, (int, float)) or not 0.0 <= min_accuracy < 1.0:
            raise ValueError(f"min_accuracy={min_accuracy!r} must lie in [0, 1)")
        if rungs is not None and (not isinstance(rungs, Sequence) or not rungs or any(
                isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in rungs)):
            raise ValueError(f"rungs={rungs!r} must be a list of whole epochs >= 1")
        self.grace, self.eta, self.tie_break, self.min_accuracy = grace, float(eta), tie_break, float(min_accuracy)
        self.rungs = None if rungs is None else sorted(set(rungs))
        self.pause_within = _pause_margin(pause_within)

    def rung_epochs(self, epochs: int) -> list[int]:
        if self.rungs is not None:
            return [r for r in self.rungs if r < epochs]
        return rung_epochs(self.grace, self.eta, epochs)

    def decide_from(
        self, ledger: StudyLedger, record: TrialRecord, epoch: int, accuracy: float, epochs: int,
    ) -> str | None:
        points = ledger.reached.get(epoch, {})
        if epoch not in self.rung_epochs(epochs) or record.number not in points:
            return None
        if keeps_going(points, record.number, self.eta, self.tie_break, self._reference(record, points)):
            return None
        return f"not in the best 1/{self.eta:g} of {len(points)} trials at the rung of epoch {epoch}"

    def doubtful(self, ledger: StudyLedger, record: TrialRecord, epoch: int, accuracy: float) -> bool:
        points = ledger.reached.get(epoch, {})
        if self.pause_within <= 0 or record.number not in points:
            return False
        size, reached = points[record.number]
        lifted = {**points, record.number: (size, reached + self.pause_within)}
        return keeps_going(lifted, record.number, self.eta, self.tie_break, self._reference(record, points))

    def _reference(self, record: TrialRecord, points: Mapping[int, tuple[float, float]]) -> tuple[float, float]:
        """The hypervolume reference of a rung: the dense size (or 10x the largest point's), ``min_accuracy``."""
        dense = record.attrs.get("dense_mib")
        largest = max(size for size, _ in points.values())
        return (max(float(dense), largest) if dense else 10.0 * largest, self.min_accuracy)


def _pause_margin(value: Any) -> float:
    """A pruner's ``pause_within``: the accuracy that separates a doubtful trial from a hopeless one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"pause_within={value!r} must be an accuracy in [0, 1)")
    return float(value)


def front_gain(accuracy: float, size: float, front: Sequence[tuple[float, float]]) -> float:
    """Area (accuracy x decades of size) the point adds to what the (size, accuracy) points of ``front`` dominate.

    Measured up to the largest size in ``front``, against accuracy 0 (as
    `msup.analysis.pareto.hypervolume`). A point more accurate than all of ``front``
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


def _build(name: str, options: dict[str, Any]) -> BasePruner | LedgerPruner | None:
    if name == "none":
        if options:
            raise TypeError(f"none takes no options, got {sorted(options)}")
        return None
    if name == "patient":
        wrapped = options.pop("wrapped", None)
        inner = None if wrapped is None else _build_from(wrapped)
        if not (inner is None or isinstance(inner, BasePruner)):
            raise TypeError(f"patient wraps pruners with Optuna's interface only, not {wrapped!r}")
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
        "mo_asha": MoAshaPruner,
        "front_chance": FrontChancePruner,
    }
    if name not in classes:
        raise ValueError(f"{name!r} is not one of {', '.join(PRUNERS)}")
    with warnings.catch_warnings():  # WilcoxonPruner is experimental in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return classes[name](**options)


PRUNERS = (
    "none", "median", "percentile", "successive_halving", "hyperband", "wilcoxon", "patient", "size_aware", "mo_asha",
    "front_chance",
)


def _build_from(raw: str | Mapping[str, Any]) -> BasePruner | LedgerPruner | None:
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

    @property
    def pauses(self) -> bool:
        """Whether it sets doubtful trials aside instead of ending them (``pause_within``)."""
        return bool(self.raw.get("pause_within"))

    def build(self) -> BasePruner | LedgerPruner | None:
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
