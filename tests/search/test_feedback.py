"""The sampler wrapper that shows pruned trials at the point they were stopped at."""

from __future__ import annotations

import statistics

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from msup.search.feedback import PrunedAsPoints
from msup.search.ledger import PRUNED_ATTR
from msup.search.study_config import build_sampler

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


def mean_of_samples(learn_from_pruned: bool) -> float:
    source = study_with_good_pruned_trials()
    sampler = build_sampler({"name": "tpe", "seed": 3, "n_startup_trials": 5, "learn_from_pruned": learn_from_pruned})
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.add_trials(source.trials)
    samples = []
    for _ in range(20):
        trial = study.ask()
        samples.append(trial.suggest_float("x", 0.0, 1.0))
        study.tell(trial, state=TrialState.FAIL)  # keep the evidence as it was
    return statistics.mean(samples)


def test_tpe_samples_near_well_placed_pruned_trials_only_with_feedback() -> None:
    # where the good group lies decides where TPE samples: 0.29 on average with feedback, 0.60 without
    assert mean_of_samples(learn_from_pruned=True) < 0.35 < 0.55 < mean_of_samples(learn_from_pruned=False)


def test_the_wrapper_keeps_multi_objective_tpe_and_nsga2_working() -> None:
    for name in ("tpe", "nsga2"):
        sampler = build_sampler({"name": name, "seed": 0, "learn_from_pruned": True})
        assert isinstance(sampler, PrunedAsPoints)
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        study.add_trials(study_with_good_pruned_trials().trials)
        for _ in range(3):
            trial = study.ask()
            study.tell(trial, [trial.suggest_float("x", 0.0, 1.0), 0.5])
        assert len(study.trials) == 24
