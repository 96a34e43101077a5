"""Stopped trials as evidence: a sampler wrapper that shows a pruned trial where it stood when stopped.

Optuna's multi-objective TPE ranks COMPLETE trials by non-dominated sort and
puts PRUNED ones after them, wherever they stood, so a pruner that stops
small, slow-learning networks also teaches the sampler to avoid them: the small
end of the front goes unexplored. `PrunedAsPoints` hands the wrapped sampler a
view of the study in which each pruned trial with a recorded learning curve
appears COMPLETE, with the values it had when stopped: (accuracy at its last
epoch, size). Its rank then follows its point, which is what a rung rule
judged it by. A trial rejected before training (no curve) stays PRUNED, and its
constraint (`Trial.set_constraint`) still marks it infeasible.

The storage is never changed: the view exists only inside ``ask``.
"""

from __future__ import annotations

import copy
from collections.abc import Container, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from msup.search.ledger import PRUNED_ATTR, curve_of


class PrunedAsPoints(BaseSampler):
    """Wraps ``sampler``; ``size_key`` names the user attribute holding a trial's size objective."""

    def __init__(self, sampler: BaseSampler, size_key: str) -> None:
        self.sampler = sampler
        self._size_key = size_key
        self._seen: dict[int, FrozenTrial] = {}  # trial id -> its view; a pruned trial never changes again

    def __str__(self) -> str:
        return f"PrunedAsPoints({self.sampler})"

    def view(self, trial: FrozenTrial) -> FrozenTrial:
        """The trial as the wrapped sampler sees it."""
        if trial.state != TrialState.PRUNED:
            return trial
        if trial._trial_id not in self._seen:
            curve = curve_of(trial.user_attrs)
            stopped = trial.user_attrs.get(PRUNED_ATTR, max(curve, default=None))
            size = trial.user_attrs.get(self._size_key, trial.user_attrs.get("size_entropy_mib"))
            if stopped not in curve or size is None:
                self._seen[trial._trial_id] = trial
            else:
                shown = copy.copy(trial)
                shown.state = TrialState.COMPLETE
                shown.values = [curve[stopped], float(size)]
                self._seen[trial._trial_id] = shown
        return self._seen[trial._trial_id]

    def _study(self, study: optuna.Study) -> _StudyView:
        return _StudyView(study, self)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.sampler.infer_relative_search_space(self._study(study), trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self.sampler.sample_relative(self._study(study), trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution,
    ) -> Any:
        return self.sampler.sample_independent(self._study(study), trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.sampler.before_trial(self._study(study), trial)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None,
    ) -> None:
        self.sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()


class _StudyView:
    """The study, except that its trials are shown through `PrunedAsPoints.view`."""

    def __init__(self, study: optuna.Study, sampler: PrunedAsPoints) -> None:
        self._real = study
        self._sampler = sampler

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def _get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None, use_cache: bool = False,
    ) -> list[FrozenTrial]:
        wanted = None if states is None else set(states)
        asked = None if wanted is None else wanted | ({TrialState.PRUNED} if TrialState.COMPLETE in wanted else set())
        shown = [self._sampler.view(t) for t in self._real._get_trials(deepcopy, asked, use_cache)]
        return shown if wanted is None else [t for t in shown if t.state in wanted]

    def get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy, states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()
