"""The sampler wrappers: pruned trials shown at the point they were stopped at, and a bounded history."""

from __future__ import annotations

import statistics

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from msup.errors import InputError
from msup.search.sampling.factory import build_sampler
from msup.search.sampling.views import PrunedAsPoints, RecentTrials
from msup.search.state.keys import PRUNED_ATTR

X = FloatDistribution(0.0, 1.0)


def pruned(x: float, curve: list[float], size: float) -> optuna.trial.FrozenTrial:
    attrs = {f"curve.{e}": a for e, a in enumerate(curve, start=1)}
    return create_trial(state=TrialState.PRUNED, params={"x": x}, distributions={"x": X},
                        user_attrs={**attrs, PRUNED_ATTR: len(curve), "size_entropy_mib": size})


def study_with_good_pruned_trials() -> optuna.Study:
    """Finished trials at x > 0.5 are poor; the trials a pruner stopped at x < 0.2 were far better then."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    for i in range(10):
        study.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.2, 1.0], params={"x": 0.6 + 0.04 * i},
                                     distributions={"x": X}, user_attrs={"size_entropy_mib": 1.0}))
        study.add_trial(pruned(0.02 * i, [0.5, 0.9], 0.1))
    study.add_trial(create_trial(state=TrialState.PRUNED, params={"x": 0.5}, distributions={"x": X}))  # no curve
    return study


def test_a_pruned_trial_is_shown_complete_at_its_stopping_point_and_the_storage_is_untouched() -> None:
    study = study_with_good_pruned_trials()
    sampler = PrunedAsPoints(optuna.samplers.RandomSampler(seed=0), "size_entropy_mib")
    shown = [sampler.view(t) for t in study.trials]
    assert [t.values for t in shown if t.params["x"] < 0.2] == [[0.9, 0.1]] * 10
    assert all(t.state == TrialState.COMPLETE for t in shown[:-1])
    assert shown[-1].state == TrialState.PRUNED  # nothing recorded to show it by
    assert sum(t.state == TrialState.PRUNED for t in study.trials) == 11


def mean_of_samples(evidence: list[optuna.trial.FrozenTrial], **sampler_options: object) -> float:
    """Where multi-objective TPE samples x on average, 20 times, given ``evidence`` and ``sampler_options``."""
    sampler = build_sampler({"name": "tpe", "seed": 3, "n_startup_trials": 5, **sampler_options})
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.add_trials(evidence)
    samples = []
    for _ in range(20):
        trial = study.ask()
        samples.append(trial.suggest_float("x", 0.0, 1.0))
        study.tell(trial, state=TrialState.FAIL)  # keep the evidence as it was
    return statistics.mean(samples)


def test_tpe_samples_near_well_placed_pruned_trials_only_with_feedback() -> None:
    # where the good group lies decides where TPE samples: 0.29 on average with feedback, 0.60 without
    evidence = study_with_good_pruned_trials().trials
    assert mean_of_samples(evidence, learn_from_pruned=True) < 0.35 < 0.55 < mean_of_samples(evidence, learn_from_pruned=False)


@pytest.mark.parametrize("name", ["tpe", "nsga2"])
@pytest.mark.parametrize("view", [{"learn_from_pruned": True}, {"max_history": 8}], ids=["pruned-as-points", "recent"])
def test_the_wrappers_keep_multi_objective_tpe_and_nsga2_working(name: str, view: dict) -> None:
    own = {"population_size": 4} if name == "nsga2" else {}  # NSGA-II breeds from the second generation on
    sampler = build_sampler({"name": name, "seed": 0, **own, **view})
    assert isinstance(sampler, PrunedAsPoints if "learn_from_pruned" in view else RecentTrials)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.add_trials(study_with_good_pruned_trials().trials)
    for _ in range(12):
        trial = study.ask()
        study.tell(trial, [trial.suggest_float("x", 0.0, 1.0), 0.5])
    assert len(study.trials) == 33


def study_whose_best_trials_are_old() -> optuna.Study:
    """Trials 0-19 are good at x < 0.2; trials 20-39, poorer, at x > 0.8; trial 40 still runs."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    for i in range(40):
        old = i < 20
        study.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.9 if old else 0.3 + 0.01 * i, 1.0],
                                     params={"x": 0.01 * i if old else 0.8 + 0.005 * (i - 20)}, distributions={"x": X}))
    study.add_trial(create_trial(state=TrialState.RUNNING, params={"x": 0.5}, distributions={"x": X}))
    return study


def test_only_the_most_recent_finished_trials_and_the_running_ones_are_shown() -> None:
    study = study_whose_best_trials_are_old()
    sampler = RecentTrials(optuna.samplers.RandomSampler(seed=0), max_history=15)
    asked = {TrialState.COMPLETE, TrialState.RUNNING}
    assert [t.number for t in sampler.shown(study.get_trials(states=asked), asked)] == [*range(25, 40), 40]
    assert [t.number for t in sampler.shown(study.trials, None)] == list(range(41))  # indexed by number: all
    complete = {TrialState.COMPLETE}
    assert [t.number for t in sampler.shown(study.get_trials(states=complete), complete)] == list(range(25, 40))
    assert len(study.trials) == 41  # the study itself is untouched


def test_tpe_with_a_bounded_history_learns_from_the_recent_trials_only() -> None:
    # 0.05 on average with the whole history (the old, better trials), 0.61 with the recent 20 alone
    evidence = study_whose_best_trials_are_old().trials[:40]
    assert mean_of_samples(evidence) < 0.35 < 0.55 < mean_of_samples(evidence, max_history=20)


def test_a_bounded_history_composes_with_pruned_trials_as_points() -> None:
    sampler = build_sampler({"name": "tpe", "seed": 0, "learn_from_pruned": True, "max_history": 10})
    assert isinstance(sampler, RecentTrials) and isinstance(sampler.sampler, PrunedAsPoints)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.add_trials(study_with_good_pruned_trials().trials)
    trial = study.ask()
    study.tell(trial, [0.5, trial.suggest_float("x", 0.0, 1.0)])
    assert len(study.trials) == 22


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "100"])
def test_a_bad_max_history_is_refused_with_its_key(value) -> None:
    with pytest.raises(InputError, match="sampler.max_history: .* must be a whole number of trials, at least 1"):
        build_sampler({"name": "tpe", "max_history": value})


def test_the_study_is_read_once_per_ask_and_states_however_often_the_sampler_looks() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=build_sampler({"name": "tpe", "seed": 0, "n_startup_trials": 2, "max_history": 10}))
    study.add_trials(study_whose_best_trials_are_old().trials[:40])
    reads, read = [], study._get_trials
    study._get_trials = lambda *args, **kwargs: reads.append(args[1:2]) or read(*args, **kwargs)  # type: ignore[method-assign]
    trial = study.ask()
    for name in "abcdefgh":  # TPE reads the trials twice per parameter it samples
        trial.suggest_float(name, 0.0, 1.0)
    assert 1 <= len(reads) <= 4, reads
