"""Early stopping: the size-aware pruner, pruner settings, and the scheduler against a real Optuna storage.

The scheduler is driven directly with stand-in Ray trials (it reads only
``trial.config``); one slow test runs a real Ray Tune study.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from optuna.trial import FrozenTrial, TrialState, create_trial
from ray.tune.schedulers import TrialScheduler

from msup.analysis.pareto import hypervolume
from msup.search.execution.scheduler import PruningScheduler, shadow_study_name
from msup.search.execution.trial_config import TrialConfig
from msup.search.pruning.front_chance import FrontChancePruner
from msup.search.pruning.rules import (
    PRUNERS,
    MoAshaPruner,
    SizeAwarePruner,
    front_gain,
    parse_pruner,
)
from msup.search.state.keys import (
    PAUSED_ATTR,
    PAUSED_BY_ATTR,
    PRUNED_ATTR,
    RESUMED_ATTR,
    SHADOW_ATTR,
    SIZE_ATTR,
    STOPPED_BY_ATTR,
)
from msup.search.state.ledger import StudyLedger, release_ledgers
from msup.search.state.storage import load_or_create, open_storage
from msup.search.state.table import trials_table

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP
EPOCHS = 6
GOOD = (0.5, 0.7, 0.8, 0.85, 0.9, 0.92)
WEAK = (0.2, 0.15, 0.1, 0.1, 0.1, 0.1)


# --- SizeAwarePruner on hand-built curves ------------------------------------------------


def completed(size: float, curve: Sequence[float]) -> FrozenTrial:
    return create_trial(
        state=TrialState.COMPLETE, value=curve[-1], user_attrs={SIZE_ATTR: size},
        intermediate_values=dict(enumerate(curve, start=1)),
    )


def running(size: float, curve: Sequence[float]) -> FrozenTrial:
    return create_trial(state=TrialState.RUNNING, user_attrs={SIZE_ATTR: size},
                        intermediate_values=dict(enumerate(curve, start=1)))


def shadow_with(*trials: FrozenTrial) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    study.add_trials(trials)
    return study


PEERS = [completed(1.0, GOOD), completed(1.0, (0.4, 0.6, 0.7)), completed(2.0, (0.45, 0.65, 0.75))]


def test_larger_and_worse_is_pruned_smaller_and_worse_is_not() -> None:
    pruner = SizeAwarePruner(n_startup_trials=3, n_warmup_steps=1, min_peers=3)
    study = shadow_with(*PEERS)
    assert pruner.prune(study, running(4.0, (0.3, 0.5)))
    assert not pruner.prune(study, running(0.5, (0.3, 0.5)))  # no trial as small: may still be on the front
    assert not pruner.prune(study, running(4.0, (0.5, 0.7)))  # at least as accurate as the peers' median


def test_peers_are_the_trials_no_larger_and_with_the_same_step() -> None:
    pruner = SizeAwarePruner(n_startup_trials=0, n_warmup_steps=0, min_peers=3)
    study = shadow_with(*PEERS)
    assert not pruner.prune(study, running(1.5, (0.3, 0.5)))  # two peers: the 2.0 one is larger
    assert pruner.prune(study, running(2.0, (0.3, 0.5)))  # equal size counts as a peer
    # Step 4 exists only in the first peer's curve: below min_peers, so no verdict.
    assert not pruner.prune(study, running(9.0, (0.5, 0.7, 0.8, 0.1)))


def test_warmup_startup_and_min_peers_are_respected() -> None:
    study = shadow_with(*PEERS)
    weak_large = running(4.0, WEAK[:3])
    assert SizeAwarePruner(n_startup_trials=0, n_warmup_steps=0, min_peers=1).prune(study, weak_large)
    assert not SizeAwarePruner(n_startup_trials=0, n_warmup_steps=4, min_peers=1).prune(study, weak_large)
    assert not SizeAwarePruner(n_startup_trials=4, n_warmup_steps=0, min_peers=1).prune(study, weak_large)
    assert not SizeAwarePruner(n_startup_trials=0, n_warmup_steps=0, min_peers=4).prune(study, weak_large)
    assert not SizeAwarePruner(n_startup_trials=0).prune(study, running(4.0, ()))  # nothing reported yet


def test_percentile_sets_how_many_peers_must_beat_the_trial() -> None:
    study = shadow_with(*PEERS)  # step 2 accuracies: 0.6, 0.65, 0.7
    middle = running(4.0, (0.5, 0.66))
    assert SizeAwarePruner(percentile=100, n_startup_trials=0, min_peers=1).prune(study, middle)
    assert not SizeAwarePruner(percentile=0, n_startup_trials=0, min_peers=1).prune(study, middle)


FRONT = [(1.0, 0.9), (10.0, 0.95)]  # (size, accuracy)


@pytest.mark.parametrize(
    ("point", "gain"),
    [
        ((0.1, 0.5), 0.5),  # a decade left of everything, at accuracy 0.5
        ((3.0, 0.93), 0.03 * math.log10(10 / 3)),
        ((3.0, 0.9), 0.0),  # dominated by (1.0, 0.9)
        ((20.0, 0.94), 0.0),  # larger and worse than (10.0, 0.95)
        ((20.0, 0.99), math.inf),  # raises the top of the front
    ],
)
def test_front_gain(point: tuple[float, float], gain: float) -> None:
    size, accuracy = point
    assert front_gain(accuracy, size, FRONT) == pytest.approx(gain)
    if math.isfinite(gain):  # the same area as analysis' hypervolume, up to the largest size of the front
        reference = (0.0, max(s for s, _ in FRONT))
        before = hypervolume([a for _, a in FRONT], [s for s, _ in FRONT], reference)
        after = hypervolume([a for _, a in FRONT] + [accuracy], [s for s, _ in FRONT] + [size], reference)
        assert after - before == pytest.approx(gain)
    assert front_gain(accuracy, size, []) == math.inf


def test_min_gain_prunes_what_adds_too_little_and_keeps_a_small_useful_trial() -> None:
    study = shadow_with(*(completed(size, (0.3, accuracy)) for size, accuracy in FRONT))
    pruner = SizeAwarePruner(n_startup_trials=2, n_warmup_steps=1, min_peers=5, min_gain=0.02)
    assert not pruner.prune(study, running(0.1, (0.2, 0.5)))  # smaller and less accurate: gains 0.5
    assert pruner.prune(study, running(3.0, (0.2, 0.93)))  # gains 0.016
    assert pruner.prune(study, running(20.0, (0.2, 0.94)))  # larger and worse, too few peers for the percentile
    assert not pruner.prune(study, running(3.0, (0.2, 0.96)))  # the most accurate so far
    assert not SizeAwarePruner(n_startup_trials=2, min_peers=5).prune(study, running(3.0, (0.2, 0.93)))  # off by default


@pytest.mark.parametrize(
    "options",
    [
        {"percentile": 101}, {"percentile": -1}, {"n_startup_trials": -1}, {"n_warmup_steps": -1}, {"min_peers": 0},
        {"min_gain": -0.1}, {"min_gain": math.inf},
    ],
)
def test_size_aware_rejects_bad_settings(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SizeAwarePruner(**options)


# --- parse_pruner ------------------------------------------------------------------------

DOCUMENTED = [
    ("none", None),
    ({"name": "none"}, None),
    ("median", optuna.pruners.MedianPruner),
    ({"name": "median", "n_startup_trials": 2, "n_warmup_steps": 3, "interval_steps": 1}, optuna.pruners.MedianPruner),
    ({"name": "percentile", "percentile": 25.0, "n_startup_trials": 1}, optuna.pruners.PercentilePruner),
    ({"name": "successive_halving", "min_resource": 1, "reduction_factor": 3}, optuna.pruners.SuccessiveHalvingPruner),
    ({"name": "hyperband", "min_resource": 1, "max_resource": EPOCHS, "reduction_factor": 3}, optuna.pruners.HyperbandPruner),
    ({"name": "wilcoxon", "p_threshold": 0.2}, optuna.pruners.WilcoxonPruner),
    ({"name": "patient", "patience": 2, "wrapped": {"name": "median", "n_startup_trials": 2}}, optuna.pruners.PatientPruner),
    ({"name": "patient", "patience": 1, "wrapped": "median"}, optuna.pruners.PatientPruner),
    ({"name": "patient", "patience": 1, "min_delta": 0.01}, optuna.pruners.PatientPruner),
    ({"name": "size_aware", "percentile": 60, "n_startup_trials": 2, "n_warmup_steps": 1, "min_peers": 2}, SizeAwarePruner),
    ({"name": "size_aware", "n_startup_trials": 3, "n_warmup_steps": 3, "min_gain": 0.004}, SizeAwarePruner),
    ({"name": "mo_asha", "grace": 2, "eta": 3, "tie_break": "crowding", "min_accuracy": 0.1}, MoAshaPruner),
    ({"name": "front_chance", "delta": 0.2, "delta_at_end": 0.05, "min_gain": 0.005, "grace": 1, "patience": 2,
      "running_quantile": None, "min_potential": 0.001, "min_accuracy": 0.1}, FrontChancePruner),
]


@pytest.mark.parametrize(("raw", "expected"), DOCUMENTED)
def test_every_documented_pruner_parses_and_builds(raw: Any, expected: type | None) -> None:
    errors: list[str] = []
    spec = parse_pruner(raw, "pruner", errors)
    assert errors == []
    assert spec.name == (raw if isinstance(raw, str) else raw["name"])
    built = spec.build()
    assert (built is None) if expected is None else isinstance(built, expected)
    if built is not None:
        assert spec.build() is not built  # stateful pruners (hyperband) are never shared between runs


def test_documented_names_are_all_covered() -> None:
    names = {raw if isinstance(raw, str) else raw["name"] for raw, _ in DOCUMENTED}
    assert names == set(PRUNERS)


def test_patient_wraps_the_inner_pruner() -> None:
    spec = parse_pruner({"name": "patient", "patience": 2, "wrapped": {"name": "size_aware", "min_peers": 2}}, "p", [])
    assert isinstance(spec.build()._wrapped_pruner, SizeAwarePruner)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("asha", "pruner.name: 'asha' is not one of none, median"),
        ({"percentile": 50}, "pruner.name: None is not one of"),
        (42, "pruner.name: 42 is not one of"),
        ({"name": "median", "n_startup_trial": 2}, "pruner: invalid settings for median pruner: "),
        ({"name": "median", "n_startup_trial": 2}, "n_startup_trial"),
        ({"name": "percentile", "percentile": 150}, "invalid settings for percentile pruner"),
        ({"name": "size_aware", "min_peers": 0}, "min_peers >= 1"),
        ({"name": "size_aware", "percentile": 120}, "percentile=120 must lie in [0, 100]"),
        ({"name": "none", "n_warmup_steps": 1}, "none takes no options"),
        ({"name": "front_chance", "delta": 1.5}, "delta=1.5 must be a number in [0, 1)"),
        ({"name": "front_chance", "delta": 0.1, "delta_at_end": 0.2}, "delta_at_end=0.2 must lie in [0, delta]"),
        ({"name": "front_chance", "patience": 0}, "patience=0 must be a whole number >= 1"),
        ({"name": "front_chance", "running_quantile": 0.9}, "running_quantile=0.9 must lie in [0, 0.5]"),
        ({"name": "front_chance", "neighbours": 0}, "neighbours=0"),
        ({"name": "front_chance", "pause_within": 0.02}, "pause_within"),
        ({"name": "patient"}, "patience"),
        ({"name": "patient", "patience": 1, "wrapped": {"name": "bogus"}}, "'bogus' is not one of none, median"),
        ({"name": "patient", "patience": 1, "wrapped": [1]}, "a pruner is a name or a mapping with 'name'"),
    ],
)
def test_bad_pruners_are_rejected_with_a_clear_message(raw: Any, message: str) -> None:
    errors: list[str] = []
    spec = parse_pruner(raw, "pruner", errors)
    assert len(errors) == 1 and message in errors[0], errors
    assert spec.name == "none"


# --- PruningScheduler against a real storage ----------------------------------------------

STUDY = "prune-test"


@dataclass
class FakeTrial:
    """What the scheduler reads of a Ray trial: its config."""

    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class Storage:
    url: str

    def main(self) -> optuna.Study:
        sampler = optuna.samplers.RandomSampler(seed=0)
        return load_or_create(open_storage(self.url), STUDY, ["val_acc", "size_entropy_mib"], sampler)

    def shadow(self) -> optuna.Study:
        return optuna.load_study(study_name=shadow_study_name(STUDY), storage=open_storage(self.url))

    def main_trial(self, number: int) -> FrozenTrial:
        return self.main().trials[number]

    def shadow_of(self, trial: FakeTrial) -> FrozenTrial:
        shadow_id = self.main_trial(trial.config["optuna_trial"]).user_attrs[SHADOW_ATTR]
        return next(t for t in self.shadow().trials if t._trial_id == shadow_id)

    def scheduler(self, pruner: Any) -> PruningScheduler:
        errors: list[str] = []
        spec = parse_pruner(pruner, "pruner", errors)
        assert not errors
        return PruningScheduler(self.url, STUDY, spec, "val_acc", "size_entropy_mib")

    def new_trial(self, size: float = 1.0) -> FakeTrial:
        number = self.main().ask().number
        spec = TrialConfig(optuna_trial=number, train={}, values={}, sizes={"size_entropy_mib": size}, epochs=EPOCHS)
        return FakeTrial(spec.to_dict())


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    store = Storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    store.main()
    yield store
    release_ledgers()


def feed(scheduler: PruningScheduler, trial: FakeTrial, curve: Sequence[float], first_epoch: int = 1) -> list[str]:
    """Report ``curve`` epoch by epoch, as Ray would, until the scheduler says STOP."""
    decisions = []
    for epoch, accuracy in enumerate(curve, start=first_epoch):
        decisions.append(scheduler.on_trial_result(None, trial, {"epoch": epoch, "val_acc": accuracy}))
        if decisions[-1] == STOP:
            break
    return decisions


def test_curves_go_to_the_shadow_study_and_finished_trials_complete_there(storage: Storage) -> None:
    scheduler = storage.scheduler({"name": "median", "n_startup_trials": 1})
    trial = storage.new_trial(size=0.25)
    assert feed(scheduler, trial, GOOD[:3]) == [CONTINUE] * 3
    shadow_id = storage.main_trial(0).user_attrs[SHADOW_ATTR]
    (shadow,) = storage.shadow().trials
    assert shadow._trial_id == shadow_id and shadow.state == TrialState.RUNNING
    assert shadow.intermediate_values == dict(enumerate(GOOD[:3], start=1))
    assert shadow.user_attrs == {SIZE_ATTR: 0.25, "main_trial": 0}
    assert feed(scheduler, trial, GOOD[3:], first_epoch=4) == [CONTINUE] * 3
    (shadow,) = storage.shadow().trials
    assert shadow.state == TrialState.COMPLETE and shadow.value == GOOD[-1]
    assert storage.shadow().direction == optuna.study.StudyDirection.MAXIMIZE


def test_results_without_an_epoch_or_accuracy_are_ignored(storage: Storage) -> None:
    scheduler = storage.scheduler("median")
    trial = storage.new_trial()
    assert scheduler.on_trial_result(None, trial, {"error": "RunError: diverged"}) == CONTINUE
    assert scheduler.on_trial_result(None, FakeTrial({}), {"epoch": 1, "val_acc": 0.5}) == CONTINUE
    assert SHADOW_ATTR not in storage.main_trial(0).user_attrs


def run_peers(storage: Storage, scheduler: PruningScheduler, sizes: Sequence[float]) -> None:
    for size in sizes:
        assert feed(scheduler, storage.new_trial(size), GOOD) == [CONTINUE] * EPOCHS


def test_a_weak_trial_is_stopped_and_the_decision_is_stored(storage: Storage) -> None:
    scheduler = storage.scheduler({"name": "median", "n_startup_trials": 2, "n_warmup_steps": 2})
    run_peers(storage, scheduler, [1.0, 1.0])
    weak = storage.new_trial()
    assert feed(scheduler, weak, WEAK) == [CONTINUE, STOP]  # epoch 1 is warm-up; judged from epoch 2
    attrs = storage.main_trial(weak.config["optuna_trial"]).user_attrs
    assert attrs[PRUNED_ATTR] == 2 and attrs[STOPPED_BY_ATTR] == "pruner median: stopped at epoch 2"
    shadow = storage.shadow_of(weak)
    assert shadow.state == TrialState.PRUNED and shadow.last_step == 2


def test_size_aware_stops_larger_and_worse_but_keeps_small_and_worse(storage: Storage) -> None:
    scheduler = storage.scheduler({"name": "size_aware", "n_startup_trials": 2, "n_warmup_steps": 1, "min_peers": 2})
    run_peers(storage, scheduler, [1.0, 2.0])
    small, large = storage.new_trial(size=0.5), storage.new_trial(size=3.0)
    assert feed(scheduler, small, WEAK) == [CONTINUE] * EPOCHS
    assert feed(scheduler, large, WEAK) == [STOP]
    assert PRUNED_ATTR not in storage.main_trial(small.config["optuna_trial"]).user_attrs
    attrs = storage.main_trial(large.config["optuna_trial"]).user_attrs
    assert attrs[PRUNED_ATTR] == 1
    assert attrs[STOPPED_BY_ATTR] == ("pruner size_aware: accuracy 0.2000 at epoch 1 below the 50th percentile (0.5000) "
                                      "of 3 no larger trials")  # the two peers and the small trial, now complete


def test_mo_asha_acts_before_any_trial_has_finished(storage: Storage) -> None:
    scheduler = storage.scheduler({"name": "mo_asha", "grace": 1, "eta": 2})
    first, small, dominated = storage.new_trial(size=1.0), storage.new_trial(size=0.5), storage.new_trial(size=2.0)
    assert feed(scheduler, first, GOOD[:1]) == [CONTINUE]  # alone at rung 1
    assert feed(scheduler, small, [0.45]) == [CONTINUE]  # half the size, nearly as accurate: first on the front
    assert feed(scheduler, dominated, WEAK[:1]) == [STOP]  # larger and worse than both, which still run
    attrs = storage.main_trial(dominated.config["optuna_trial"]).user_attrs
    assert attrs[PRUNED_ATTR] == 1
    assert attrs[STOPPED_BY_ATTR] == "pruner mo_asha: not in the best 1/2 of 3 trials at the rung of epoch 1"
    assert storage.main().user_attrs == {} and not storage.main_trial(0).user_attrs.get(SHADOW_ATTR)


def test_a_pruned_trial_stays_pruned_after_a_restart(storage: Storage) -> None:
    pruner = {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 2}
    before = storage.scheduler(pruner)
    run_peers(storage, before, [1.0, 1.0])
    weak, good = storage.new_trial(), storage.new_trial()
    assert feed(before, weak, WEAK) == [CONTINUE, STOP]
    assert feed(before, good, GOOD[:3]) == [CONTINUE] * 3
    shadow_before = storage.shadow_of(weak)

    assert pickle.loads(pickle.dumps(before))._ledger is None  # Ray pickles it without connections
    release_ledgers()  # a new driver process: nothing in memory
    after = storage.scheduler(pruner)  # the restored driver's scheduler: rebuilds its ledger from the storage
    # The restored driver replays the weak trial from its last checkpoint, even with a strong score.
    assert after.on_trial_result(None, weak, {"epoch": 2, "val_acc": 0.99}) == STOP
    assert after.on_trial_result(None, weak, {"epoch": 3, "val_acc": 0.99}) == STOP
    assert storage.main_trial(weak.config["optuna_trial"]).user_attrs[PRUNED_ATTR] == 2
    shadow_after = storage.shadow_of(weak)
    assert shadow_after.state == TrialState.PRUNED
    assert shadow_after.intermediate_values == shadow_before.intermediate_values
    # The unpruned trial carries on with its own shadow trial: no second one is asked.
    assert feed(after, good, GOOD[3:], first_epoch=4) == [CONTINUE] * 3
    assert len(storage.shadow().trials) == 4
    assert storage.shadow_of(good).state == TrialState.COMPLETE


@pytest.mark.parametrize(
    "raw",
    [
        {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 3},
        {"name": "percentile", "percentile": 25.0, "n_startup_trials": 1},
        {"name": "successive_halving", "min_resource": 1, "reduction_factor": 3},
        {"name": "hyperband", "min_resource": 1, "max_resource": EPOCHS, "reduction_factor": 2},
        {"name": "wilcoxon", "p_threshold": 0.2},
        {"name": "patient", "patience": 2, "wrapped": {"name": "median", "n_startup_trials": 2}},
        {"name": "patient", "patience": 1, "min_delta": 0.01},
        {"name": "size_aware", "n_startup_trials": 2, "min_peers": 2},
        {"name": "size_aware", "n_startup_trials": 2, "min_peers": 9, "min_gain": 0.01},
    ],
)
def test_every_pruner_stops_a_weak_trial_through_the_shadow_study(storage: Storage, raw: dict[str, Any]) -> None:
    """Each Optuna pruner works on the shadow study's trials (hyperband's bracket studies included)."""
    scheduler = storage.scheduler(raw)
    for size in (1.0, 0.5, 0.25):  # each smaller than the last: none adds nothing to the front
        assert feed(scheduler, storage.new_trial(size), GOOD) == [CONTINUE] * EPOCHS
    weak = storage.new_trial(size=2.0)
    decisions = feed(scheduler, weak, WEAK)
    assert decisions[-1] == STOP
    assert storage.main_trial(weak.config["optuna_trial"]).user_attrs[PRUNED_ATTR] == len(decisions)


# --- a real Ray Tune study ------------------------------------------------------------------


FRONT_CHANCE = {"name": "front_chance", "n_startup_trials": 2, "grace": 2, "patience": 2, "delta": 0.1, "min_gain": 0.0}


def test_front_chance_stops_what_cannot_reach_the_front_and_keeps_a_smaller_trial(storage: Storage) -> None:
    scheduler = storage.scheduler(FRONT_CHANCE)
    run_peers(storage, scheduler, [1.0, 1.0])  # f(s) = 0.92 from size 1.0 on
    small, large = storage.new_trial(size=0.5), storage.new_trial(size=2.0)
    assert feed(scheduler, small, WEAK) == [CONTINUE] * EPOCHS  # smaller than every trained trial: on the front
    assert feed(scheduler, large, WEAK) == [CONTINUE, CONTINUE, STOP]  # judged at epochs 2 and 3: patience 2
    attrs = storage.main_trial(large.config["optuna_trial"]).user_attrs
    assert attrs[PRUNED_ATTR] == 3
    assert attrs[STOPPED_BY_ATTR] == (
        "pruner front_chance: P(final > f(s) + eps) 0.00, 0.00 and expected gain 0.00, 0.00 of a typical front point's "
        "at epochs 2..3 (delta 0.1, min_gain 0; f(s) 0.9200, eps 0.005; 3 trained, 0 running counted)")


def test_front_chance_keeps_a_trial_whose_forecast_may_still_beat_the_front(storage: Storage) -> None:
    scheduler = storage.scheduler(FRONT_CHANCE)
    run_peers(storage, scheduler, [1.0])  # f(2.0) = 0.92
    slow = (0.3, 0.4, 0.6, 0.8, 0.95, 0.97)
    assert feed(scheduler, storage.new_trial(size=3.0), slow) == [CONTINUE] * EPOCHS
    late = storage.new_trial(size=2.0)  # far below f(s) at epoch 2, but as slow a starter as a trial that went on
    assert feed(scheduler, late, (0.35, 0.45, 0.6, 0.8, 0.95, 0.97)) == [CONTINUE] * EPOCHS


def test_front_chance_counts_running_trials_at_a_pessimistic_forecast(storage: Storage) -> None:
    options = {**FRONT_CHANCE, "running_quantile": 0.2}
    scheduler = storage.scheduler(options)
    run_peers(storage, scheduler, [1.0, 1.0])
    mediocre = (0.3, 0.4, 0.5, 0.55, 0.6, 0.62)
    assert feed(scheduler, storage.new_trial(size=0.5), mediocre) == [CONTINUE] * EPOCHS  # nothing smaller runs
    strong_small = storage.new_trial(size=0.2)
    assert feed(scheduler, strong_small, GOOD[:3]) == [CONTINUE] * 3  # running, forecast to end near 0.92
    assert feed(scheduler, storage.new_trial(size=0.4), mediocre) == [CONTINUE, CONTINUE, STOP]
    reason = storage.main_trial(4).user_attrs[STOPPED_BY_ATTR]
    assert "f(s) 0.9200" in reason and "1 running counted" in reason
    scheduler = storage.scheduler({**options, "running_quantile": None})  # running trials not counted
    assert feed(scheduler, storage.new_trial(size=0.4), mediocre) == [CONTINUE] * EPOCHS


def test_front_chance_stops_by_expected_gain_by_potential_and_at_chance(storage: Storage) -> None:
    scheduler = storage.scheduler({**FRONT_CHANCE, "delta": 0.0, "min_gain": 0.05})
    run_peers(storage, scheduler, [1.0, 1.0])
    # Just smaller than the trained trials and a little less accurate: on the front, but adds a sliver.
    assert feed(scheduler, storage.new_trial(size=0.95), [a - 0.02 for a in GOOD]) == [CONTINUE, CONTINUE, STOP]
    assert "expected gain 0.02, 0.02 of a typical front point's" in storage.main_trial(2).user_attrs[STOPPED_BY_ATTR]
    assert feed(scheduler, storage.new_trial(size=0.1), [a - 0.02 for a in GOOD]) == [CONTINUE] * EPOCHS  # a decade

    scheduler = storage.scheduler({**FRONT_CHANCE, "min_potential": 0.05})
    assert feed(scheduler, storage.new_trial(size=9.9), GOOD) == [STOP]  # no room below the reference size: 10x 1.0
    assert "could add at most 0.02% of the front's" in storage.main_trial(4).user_attrs[STOPPED_BY_ATTR]

    scheduler = storage.scheduler({**FRONT_CHANCE, "min_accuracy": 0.12})
    assert feed(scheduler, storage.new_trial(size=0.01), WEAK) == [CONTINUE, CONTINUE, STOP]
    assert "at or below min_accuracy 0.12" in storage.main_trial(5).user_attrs[STOPPED_BY_ATTR]


def test_front_chance_survives_pickling_and_forecasts_from_the_ledger_again(storage: Storage) -> None:
    scheduler = storage.scheduler(FRONT_CHANCE)
    run_peers(storage, scheduler, [1.0, 1.0])
    scheduler = pickle.loads(pickle.dumps(scheduler))  # as Ray stores and restores it
    assert feed(scheduler, storage.new_trial(size=2.0), WEAK) == [CONTINUE, CONTINUE, STOP]


@pytest.mark.slow
def test_front_chance_through_launch_and_resume(tmp_path: Path, ray_session: Any) -> None:
    """A real tiny study: the rule stops trials from the ledger's forecast, and a resumed driver goes on with it."""
    import studykit

    from msup.cli import main

    runs = tmp_path / "runs"
    # One trial at a time, so which trials have trained when another is judged does not depend on timing.
    pruner = {"name": "front_chance", "n_startup_trials": 2, "grace": 1, "delta": 0.5, "min_gain": 2.0}
    path = studykit.write_study(tmp_path, "chance", trials=6, epochs=4, max_concurrent=1, pruner=pruner)
    assert main(["study", "launch", str(path), "--runs-dir", str(runs)]) == 0
    studykit.assert_consistent(runs / "chance", "chance", 6)
    assert main(["study", "resume", "chance", "--runs-dir", str(runs), "--num-samples", "10"]) == 0
    table = studykit.assert_consistent(runs / "chance", "chance", 10).table
    pruned = table[table["state"] == "PRUNED"]
    assert len(pruned) >= 1 and (table["state"] == "COMPLETE").sum() >= 2
    assert pruned["stopped_by"].str.startswith("pruner front_chance: ").all()
    assert ((pruned["epochs"] >= 2) & (pruned["epochs"] < 4)).all()  # judged at two epochs in a row, from the first
    assert set(table.loc[table["trial"] >= 6, "state"]) <= {"COMPLETE", "PRUNED"}


@pytest.mark.slow
def test_ray_study_prunes_divergent_trials(tmp_path: Path, ray_session: Any) -> None:
    from msup.search.config.study import parse_study
    from msup.search.driver import launch

    budget = 8
    config = parse_study(
        {
            "name": "diverge",
            "train": {"optim": {"epochs": 5}, "runtime": {"device": "cpu", "num_workers": 0}},
            "search_space": {
                "parameters": {
                    "coats": {"type": "int", "low": 1, "high": 2},
                    "outer_density": {"type": "float", "low": 0.05, "high": 0.5, "log": True},
                    "coat_keep": {"type": "float", "low": 0.3, "high": 0.7},
                    "lr": {"type": "categorical", "choices": [0.1, 1000.0]},
                }
            },
            "trials": budget,
            # One trial at a time: with two, which trials the median is taken over depends on which finishes first.
            "max_concurrent": 1,
            "sampler": {"name": "tpe", "seed": 3, "n_startup_trials": 3},
            "pruner": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 2},
        },
        base_dir=tmp_path,
    )
    outcome = launch(config, runs=tmp_path / "runs")
    counts = outcome.counts
    assert counts["COMPLETE"] + counts["PRUNED"] + counts["FAIL"] == budget
    assert counts["PRUNED"] >= 1 and counts["COMPLETE"] >= 2

    study = optuna.load_study(study_name="diverge", storage=open_storage(f"sqlite:///{outcome.folder.local / 'optuna.db'}"))
    pruned = {t.number for t in study.trials if t.state == TrialState.PRUNED}
    assert all(PRUNED_ATTR in study.trials[n].user_attrs for n in pruned)
    assert any(study.trials[n].user_attrs["values"]["lr"] == 1000.0 for n in pruned)
    table = pd.read_csv(outcome.folder.local / "trials.csv")
    assert set(table.loc[table["state"] == "PRUNED", "trial"]) == pruned
    assert (table.loc[table["state"] == "PRUNED", "epochs"] < 5).all()
    front = {t.number for t in study.best_trials}
    assert front and not front & pruned
    reported = pd.read_csv(outcome.paths["front_csv"])
    assert not set(reported["trial"]) & pruned and not math.isnan(reported["val_acc"].min())


PAUSING = {"name": "size_aware", "n_startup_trials": 2, "n_warmup_steps": 1, "min_peers": 2, "pause_within": 0.1}


def test_size_aware_pauses_the_doubtful_and_ends_the_hopeless(storage: Storage) -> None:
    scheduler = storage.scheduler(PAUSING)
    run_peers(storage, scheduler, [1.0, 2.0])  # their accuracy at epoch 1 is 0.5: the median bar
    main = storage.main()
    for number, size in enumerate([1.0, 2.0]):  # sized and told, as the searcher does: a restarted driver's peers
        main._storage.set_trial_user_attr(main.trials[number]._trial_id, "size_entropy_mib", size)
        main.tell(number, [GOOD[-1], size])
    doubtful, hopeless = storage.new_trial(size=3.0), storage.new_trial(size=3.0)
    assert feed(scheduler, doubtful, [0.45]) == [STOP]  # 0.05 below the bar
    assert feed(scheduler, hopeless, WEAK) == [STOP]  # 0.3 below
    paused = storage.main_trial(doubtful.config["optuna_trial"]).user_attrs
    assert paused[PAUSED_ATTR] == 1 and PRUNED_ATTR not in paused
    assert paused[PAUSED_BY_ATTR].startswith("pruner size_aware: accuracy 0.4500 at epoch 1 below the 50th percentile")
    ended = storage.main_trial(hopeless.config["optuna_trial"]).user_attrs
    assert ended[PRUNED_ATTR] == 1 and PAUSED_ATTR not in ended
    number = doubtful.config["optuna_trial"]
    ledger = StudyLedger(storage.main(), "size_entropy_mib")  # a new driver finds it paused, not orphaned
    assert ledger.paused == {number} and number not in ledger.unfinished
    assert trials_table(storage.main()).set_index("trial").loc[number, "state"] == "PAUSED"

    release_ledgers()  # a restarted driver, whose Ray restored the paused trial: it trained one epoch more
    scheduler = storage.scheduler(PAUSING)
    assert scheduler.on_trial_result(None, doubtful, {"epoch": 2, "val_acc": 0.66}) == STOP
    paused = storage.main_trial(number).user_attrs
    assert paused[PAUSED_ATTR] == 2 and paused["curve.2"] == 0.66  # kept, and the pause moved to it

    ledger = scheduler._open()  # taken up again, as the searcher marks it
    ledger.set_attr(ledger.get(number), RESUMED_ATTR, 2)
    assert number in ledger.unfinished and not ledger.paused
    assert feed(scheduler, doubtful, [0.75], first_epoch=3) == [CONTINUE]  # doubtful again (bar 0.8): never paused twice
    assert feed(scheduler, doubtful, [0.1], first_epoch=4) == [STOP]  # hopeless: ended
    assert storage.main_trial(number).user_attrs[PRUNED_ATTR] == 4


def test_only_msups_own_rules_pause() -> None:
    errors: list[str] = []
    parse_pruner({"name": "median", "pause_within": 0.1}, "pruner", errors)
    assert len(errors) == 1 and "pause_within" in errors[0]
    with pytest.raises(ValueError, match="pause_within"):
        SizeAwarePruner(pause_within=1.5)


def test_mo_asha_pauses_a_trial_a_little_more_accuracy_would_have_kept(storage: Storage) -> None:
    scheduler = storage.scheduler({"name": "mo_asha", "grace": 1, "eta": 2, "pause_within": 0.1})
    first, small = storage.new_trial(size=1.0), storage.new_trial(size=0.5)
    assert feed(scheduler, first, [0.5]) == [CONTINUE] and feed(scheduler, small, [0.45]) == [CONTINUE]
    doubtful, hopeless = storage.new_trial(size=2.0), storage.new_trial(size=2.0)
    assert feed(scheduler, doubtful, [0.45]) == [STOP]  # at 0.55 it would lead the front: kept
    assert feed(scheduler, hopeless, [0.1]) == [STOP]  # at 0.2 still beaten by every other trial
    paused = storage.main_trial(doubtful.config["optuna_trial"]).user_attrs
    assert paused[PAUSED_ATTR] == 1 and PRUNED_ATTR not in paused
    assert paused[PAUSED_BY_ATTR] == "pruner mo_asha: not in the best 1/2 of 3 trials at the rung of epoch 1"
    ended = storage.main_trial(hopeless.config["optuna_trial"]).user_attrs
    assert ended[PRUNED_ATTR] == 1 and PAUSED_ATTR not in ended
