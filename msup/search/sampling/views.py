"""What a sampler is shown of a study: pruned trials as points, and a bounded history.

Both are sampler wrappers that hand the wrapped sampler a view of the study;
the storage is never changed, the view exists only inside ``ask``.

`PrunedAsPoints`: Optuna's multi-objective TPE ranks COMPLETE trials by
non-dominated sort and puts PRUNED ones after them, wherever they stood, so a
pruner that stops small, slow-learning networks also teaches the sampler to
avoid them: the small end of the front goes unexplored. This view shows each
pruned trial with a recorded learning curve as COMPLETE, with the values it had
when stopped: (accuracy at its last epoch, size). Its rank then follows its
point, which is what a rung rule judged it by. A trial rejected before training
(no curve) stays PRUNED, and its constraint (`Trial.set_constraint`) still
marks it infeasible.

`RecentTrials`: multi-objective TPE fits its densities to every finished trial
at every ask, so its cost grows linearly with the study (about 65 ms per ask
at 1,000 trials, see BENCHMARKS.md). This view shows it only the most recent
``max_history`` trials that completed or were pruned (and every running one),
which bounds the cost at what that many trials cost.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Sequence
from typing import Any, cast

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from msup.search.state.keys import PRUNED_ATTR
from msup.search.state.ledger import curve_of


class ViewSampler(BaseSampler):
    """Wraps ``sampler`` and shows it the study's trials through `shown`.

    A sampler reads the trials many times for one ask (TPE: twice per parameter). What was shown is kept
    for the trial being sampled, so the study is read once per ask and states asked for, not each time.
    """

    def __init__(self, sampler: BaseSampler) -> None:
        self.sampler = sampler
        self._shown_for = -1  # the id of the trial being sampled, which `_shown` holds the views for
        self._shown: dict[tuple[frozenset[TrialState] | None, bool], list[FrozenTrial]] = {}

    def __str__(self) -> str:
        return f"{type(self).__name__}({self.sampler})"

    def shown(self, trials: list[FrozenTrial], states: Collection[TrialState] | None) -> list[FrozenTrial]:
        """What the wrapped sampler sees of ``trials`` (the study's, in the ``states`` it asked for)."""
        raise NotImplementedError

    def asked_states(self, states: Collection[TrialState] | None) -> Collection[TrialState] | None:
        """The states to read from the study so that `shown` can answer for ``states``."""
        return states

    def _study(self, study: optuna.Study, trial: FrozenTrial) -> optuna.Study:
        if self._shown_for != trial._trial_id:
            self._shown_for, self._shown = trial._trial_id, {}
        return cast(optuna.Study, _StudyView(study, self, self._shown))  # a Study in all but its trials

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.sampler.infer_relative_search_space(self._study(study, trial), trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        return self.sampler.sample_relative(self._study(study, trial), trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution,
    ) -> Any:
        return self.sampler.sample_independent(self._study(study, trial), trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.sampler.before_trial(self._study(study, trial), trial)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None,
    ) -> None:
        self.sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()


class PrunedAsPoints(ViewSampler):
    """Shows each pruned trial where it stood when stopped; ``size_key`` names its size objective's attribute."""

    def __init__(self, sampler: BaseSampler, size_key: str) -> None:
        super().__init__(sampler)
        self._size_key = size_key
        self._seen: dict[int, FrozenTrial] = {}  # trial id -> its view; a pruned trial never changes again

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

    def asked_states(self, states: Collection[TrialState] | None) -> Collection[TrialState] | None:
        if states is None:
            return None
        return set(states) | ({TrialState.PRUNED} if TrialState.COMPLETE in states else set())

    def shown(self, trials: list[FrozenTrial], states: Collection[TrialState] | None) -> list[FrozenTrial]:
        viewed = [self.view(t) for t in trials]
        return viewed if states is None else [t for t in viewed if t.state in states]


_EVIDENCE = (TrialState.COMPLETE, TrialState.PRUNED)


class RecentTrials(ViewSampler):
    """Shows the trials from the ``max_history``-th most recent COMPLETE or PRUNED one on, and every unfinished one.

    Failed trials teach a sampler nothing, so they do not count towards the history.
    """

    def __init__(self, sampler: BaseSampler, max_history: int) -> None:
        super().__init__(sampler)
        self.max_history = max_history

    def shown(self, trials: list[FrozenTrial], states: Collection[TrialState] | None) -> list[FrozenTrial]:
        """A scan back from the newest trial (they come in the order of their numbers): O(max_history) per call,
        which matters as TPE reads the trials twice per parameter it samples.

        A request for every trial, whatever its state, gets every trial: its callers index the list by trial
        number (NSGA-II's generation bookkeeping since Optuna 5.1). TPE asks by state, and gets the window.
        """
        if states is None:
            return trials
        start, evidence = len(trials), 0
        while start > 0 and evidence < self.max_history:
            start -= 1
            evidence += trials[start].state in _EVIDENCE
        if start == 0:
            return trials
        if all(state.is_finished() for state in states):
            return trials[start:]
        return [t for t in trials[:start] if not t.state.is_finished()] + trials[start:]


class _StudyView:
    """The study, except that its trials are shown through `ViewSampler.shown` (kept in ``shown`` while one
    trial is sampled; copies, asked for with ``deepcopy``, are made afresh)."""

    def __init__(self, study: optuna.Study, sampler: ViewSampler,
                 shown: dict[tuple[frozenset[TrialState] | None, bool], list[FrozenTrial]]) -> None:
        self._real = study
        self._sampler = sampler
        self._shown = shown

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def _get_trials(
        self, deepcopy: bool = True, states: Collection[TrialState] | None = None, use_cache: bool = False,
    ) -> list[FrozenTrial]:
        wanted = None if states is None else frozenset(states)
        if deepcopy or (wanted, use_cache) not in self._shown:
            trials = self._real._get_trials(deepcopy, self._sampler.asked_states(wanted), use_cache)
            if deepcopy:
                return self._sampler.shown(trials, wanted)
            self._shown[wanted, use_cache] = self._sampler.shown(trials, wanted)
        return self._shown[wanted, use_cache]

    def get_trials(self, deepcopy: bool = True, states: Collection[TrialState] | None = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy, states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()
