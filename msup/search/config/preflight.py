"""The pre-flight check of a study: its search space against its training config, before anything starts.

It builds networks (for their sizes) and validates training configs, so it
imports torch; reading a stored study skips it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna

from msup.config import TrainConfig
from msup.search.config.loggers import logger_problems
from msup.search.config.space import SearchSpace
from msup.search.config.study import StudyConfig, problems, read_study_file
from msup.search.sampling.factory import study_sampler
from msup.sizes import SizeCache


def load_study_config(path: str | Path, **overrides: Any) -> StudyConfig:
    """Read a study file and check it all: its keys, its training config, its space against that config,
    its sampler's options and its loggers' packages. What ``msup study launch`` (and ``--dry-run``) does before
    anything starts."""
    config = read_study_file(path, TrainConfig.problems, **overrides)
    check_study(config, str(path))
    return config


def check_study(config: StudyConfig, source: str) -> None:
    """What a study needs beyond its keys before it runs: a space that trains within its size budget, a
    sampler its options build, and the packages of its loggers."""
    if missing := logger_problems(config.loggers):
        raise problems(source, missing)
    check_space_against_training(config, source)
    study_sampler(config)


# Random configurations checked against the training config before a study starts.
_VALIDATION_SAMPLES = 64


def check_space_against_training(config: StudyConfig, source: str) -> None:
    """Reject a space that can produce an invalid training config, or none within the size budget.

    Its corners plus random draws are checked; sizes need no training, only the network's inventory.
    """
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a throw-away in-memory study: nothing to announce
    try:
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    finally:
        optuna.logging.set_verbosity(verbosity)
    for corner in _corners(config.space):
        study.enqueue_trial(corner)
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    sizes, cache = [], SizeCache()
    for _ in range(len(study.get_trials()) + _VALIDATION_SAMPLES):
        trial = study.ask()
        values = config.space.sample(trial)
        train = config.train_mapping(values)
        checked, lines = TrainConfig.checked(train)
        for line in lines:  # one example per offending key
            found.setdefault(line.split(":")[0], (line, values))
        if config.size_budget is not None and checked is not None:
            sizes.append(cache.sizes(checked)[config.size])
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    if found:
        lines = [f"search_space can produce an invalid training config: {line} (e.g. with {_brief(v)})"
                 for line, v in found.values()]
        raise problems(source, lines)
    if sizes and config.size_budget is not None and all(config.size_budget.rejection(s) for s in sizes):
        raise problems(source, [
            f"size_budget: no configuration of the search space fits {config.size_budget.to_dict()}: its corners and "
            f"{_VALIDATION_SAMPLES} random draws span {min(sizes):.4g} to {max(sizes):.4g} MiB of {config.size}"])


def _corners(space: SearchSpace) -> list[dict[str, Any]]:
    """Parameter sets at the extremes of every distribution (and every categorical choice)."""
    corners = []
    for j in range(max(len(p.corners()) for p in space.params)):
        corner = {p.name: p.corners()[min(j, len(p.corners()) - 1)] for p in space.params if p.kind != "fixed"}
        if "coat_keep" in corner:
            keep = corner.pop("coat_keep")
            corner.update({f"coat_keep_{i}": keep for i in range(2, space.max_coats + 1)})
        corners.append(corner)
    return corners


def _brief(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
