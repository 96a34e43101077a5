"""The sampler a study file names, wrapped in the views msup shows it (`msup.search.sampling.views`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna

from msup.errors import InputError
from msup.search.config.study import StudyConfig
from msup.search.sampling.views import PrunedAsPoints, RecentTrials
from msup.search.sampling.warm_start import WarmStart, earlier_trials


def study_sampler(config: StudyConfig, trials_so_far: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler of ``config``'s study (`build_sampler`), shown the trials of the study it warm-starts from."""
    sampler = build_sampler(config.sampler, trials_so_far, config.size)
    return sampler if config.warm_start is None else WarmStart(sampler, earlier_trials(config), config.warm_start)


def build_sampler(
    spec: Mapping[str, Any], trials_so_far: int = 0, size_key: str = "size_entropy_mib",
) -> optuna.samplers.BaseSampler:
    """The configured sampler. A seeded sampler of a study that already has trials is
    seeded ``seed + trials_so_far``: a resumed driver must not replay the random
    start-up draws of the first one (that would sample the same trials again),
    yet the study stays reproducible from its history."""
    learn_from_pruned, max_history = spec.get("learn_from_pruned", False), spec.get("max_history")
    if not isinstance(learn_from_pruned, bool):
        raise InputError(f"sampler.learn_from_pruned: {learn_from_pruned!r} must be true or false")
    if max_history is not None and (isinstance(max_history, bool) or not isinstance(max_history, int) or max_history < 1):
        raise InputError(f"sampler.max_history: {max_history!r} must be a whole number of trials, at least 1")
    options = {k: v for k, v in spec.items() if k not in ("name", "learn_from_pruned", "max_history")}
    if isinstance(options.get("seed"), int):
        options["seed"] += trials_so_far
    classes = {
        "tpe": optuna.samplers.TPESampler,
        "nsga2": optuna.samplers.NSGAIISampler,
        "gp": optuna.samplers.GPSampler,
        "random": optuna.samplers.RandomSampler,
    }
    try:
        sampler = classes[spec["name"]](**options)
    except TypeError as exc:
        raise InputError(f"sampler: bad option for {spec['name']}: {exc}") from None
    if learn_from_pruned:
        sampler = PrunedAsPoints(sampler, size_key)
    return sampler if max_history is None else RecentTrials(sampler, max_history)
