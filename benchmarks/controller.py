"""msup's driver without Ray workers: its real searcher and pruning scheduler, called as Ray Tune's controller calls them.

`driver_scale.py` times these calls on synthetic curves; `replay.py` answers
them from a curve bank on a simulated clock. Both go through `Controller`, so
they exercise the same code a study's driver runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from optuna.samplers import BaseSampler
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from msup.search.config.study import StudyConfig
from msup.search.execution.scheduler import PruningScheduler
from msup.search.execution.searcher import StudySearcher
from msup.search.state.storage import load_or_create, open_storage


@dataclass
class RayTrial:
    """What the scheduler reads of a Ray trial: its id and config."""

    trial_id: str
    config: dict[str, Any] = field(default_factory=dict)


class Controller:
    """One study's searcher and scheduler; ``sampler`` replaces the study file's (e.g. to time it)."""

    def __init__(self, config: StudyConfig, storage_url: str, folder: str, sampler: BaseSampler | None = None,
                 trial_cap: int | None = None) -> None:
        self.searcher = StudySearcher(config, storage_url, folder, trial_cap)
        if sampler is not None:
            self.searcher._study = load_or_create(open_storage(storage_url), config.name,
                                                  [config.accuracy, config.size], sampler)
        self.scheduler = PruningScheduler(storage_url, config.name, config.pruner, config.accuracy, config.size)
        self._trials: dict[str, RayTrial] = {}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """A new trial's config, or None when the searcher has nothing more to start."""
        config = self.searcher.suggest(trial_id)
        if config is None or config == Searcher.FINISHED:
            return None
        self._trials[trial_id] = RayTrial(trial_id, config)
        return config

    def report(self, trial_id: str, result: dict[str, Any]) -> bool:
        """One epoch's result: the scheduler decides, then the searcher hears it; True to go on."""
        decision = self.scheduler.on_trial_result(None, self._trials[trial_id], result)
        if decision == TrialScheduler.CONTINUE:
            self.searcher.on_trial_result(trial_id, result)
        return decision == TrialScheduler.CONTINUE

    def complete(self, trial_id: str, result: dict[str, Any] | None) -> None:
        """The trial ended (trained out, stopped or failed) with ``result`` as its last report."""
        self._trials.pop(trial_id, None)
        self.searcher.on_trial_complete(trial_id, result)
