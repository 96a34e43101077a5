"""Warm start: an earlier study's finished trials, shown to the sampler of a new study on the same space.

A study file's ``warm_start: OTHER`` (a study name under the runs folder, a
study folder, or its ``s3://`` URI) reads the COMPLETE and PRUNED trials of
that study once, when the sampler is built. `WarmStart` shows them to the
wrapped sampler before the study's own trials, so a model-based sampler
starts from what the earlier study learnt: TPE skips its random start-up
trials and fits its densities to them at once.

They are shown to the sampler only: they never enter the new study's storage,
its trial counts, budget, front or ``trials.csv``, and a resumed driver reads
them again from the earlier study (which must still exist).

Unless ``warm_start: {study: OTHER, front_first: false}``, the configurations
of the earlier study's Pareto front are also trained first: a launch appends
them to the study's ``enqueue:`` list (`with_earlier_front`), so the new front
starts where the earlier one ended instead of rebuilding it from samples.

Only samplers that read trials by state can use them (TPE, GP): NSGA-II keeps
its generations by trial number, and random sampling reads nothing, so both
are refused, as is an earlier study with another space or other objectives.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, replace
from functools import cache

import optuna
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from msup.errors import InputError
from msup.search.config.space import Param
from msup.search.config.study import StudyConfig
from msup.search.sampling.views import ViewSampler
from msup.search.state.storage import load_stored_study, study_storage_url
from msup.search.study import find_study_dir, load_study_folder

WARM_SAMPLERS = ("tpe", "gp")
WARM_START_ATTR = "warm_start"  # study attribute: the earlier study and how many of its trials the sampler saw
_EVIDENCE = (TrialState.COMPLETE, TrialState.PRUNED)


class WarmStart(ViewSampler):
    """Shows ``earlier`` (finished trials of another study) before the study's own trials."""

    def __init__(self, sampler: BaseSampler, earlier: Sequence[FrozenTrial], source: str = "") -> None:
        super().__init__(sampler)
        self.earlier = [t for t in earlier if t.state in _EVIDENCE]
        self.source = source

    def shown(self, trials: list[FrozenTrial], states: Collection[TrialState] | None) -> list[FrozenTrial]:
        """A request for every trial, whatever its state, indexes them by number: it gets the study's own."""
        if states is None:
            return trials
        return [t for t in self.earlier if t.state in states] + trials


def record_warm_start(study: optuna.Study) -> str | None:
    """Note on the study which earlier study its sampler learns from, and from how many trials; a line to log."""
    if not isinstance(study.sampler, WarmStart):
        return None
    source, count = study.sampler.source, len(study.sampler.earlier)
    study.set_user_attr(WARM_START_ATTR, {"study": source, "finished_trials": count})
    return f"msup: warm start from {source}: its {count} finished trials teach the sampler (not counted here)"


def earlier_trials(config: StudyConfig) -> list[FrozenTrial]:
    """The finished trials of ``config.warm_start``, or an `InputError` saying in one line why they cannot seed it."""
    assert config.warm_start is not None
    key = f"warm_start: {config.warm_start}"
    if config.sampler.get("name") not in WARM_SAMPLERS:
        raise InputError(f"{key}: sampler {config.sampler.get('name')} cannot use earlier trials "
                         f"(warm starts feed {' or '.join(WARM_SAMPLERS)})")
    try:
        folder = find_study_dir(config.warm_start, config.runs_dir)
    except InputError as exc:
        raise InputError(f"{key}: {exc}") from None
    earlier = load_study_folder(folder)
    if earlier.name == config.name:
        raise InputError(f"{key}: a study cannot warm-start from itself (resume it instead)")
    if (earlier.accuracy, earlier.size) != (config.accuracy, config.size):
        raise InputError(f"{key}: its objectives ({earlier.accuracy}, {earlier.size}) differ from this study's "
                         f"({config.accuracy}, {config.size})")
    if difference := space_difference(earlier, config):
        raise InputError(f"{key}: it searched another space ({difference})")
    return list(_finished_trials(study_storage_url(folder, earlier.storage), earlier.name))


@cache
def _finished_trials(storage_url: str, name: str) -> tuple[FrozenTrial, ...]:
    """Read once per process: the pre-flight, the driver and its searcher all build the study's sampler."""
    return tuple(load_stored_study(storage_url, name).get_trials(deepcopy=False, states=_EVIDENCE))


def front_configurations(earlier: Sequence[FrozenTrial]) -> list[dict[str, object]]:
    """The sampled values of the earlier study's Pareto front (its COMPLETE trials no other dominates), most accurate
    first: the most accurate point adds the most hypervolume, so the new front grows fastest in that order."""
    done = [t for t in earlier if t.state == TrialState.COMPLETE and t.values is not None]
    front = [t for t in done if not any(o.values[0] >= t.values[0] and o.values[1] <= t.values[1]
                                        and o.values != t.values for o in done)]
    unique = {_key(t.params): t for t in sorted(front, key=lambda t: (-t.values[0], t.values[1]))}
    return [dict(t.params) for t in unique.values()]


def with_earlier_front(config: StudyConfig) -> StudyConfig:
    """``config`` with the earlier study's front appended to its enqueue list (configurations listed already are
    not repeated), where its warm start trains the front first. A launch writes the result into the study's own
    file, so a resume enqueues the same list, however the earlier study has grown since."""
    if config.warm_start is None or not config.warm_front_first:
        return config
    listed = {_key(values) for values in config.enqueue}
    front = [values for values in front_configurations(earlier_trials(config)) if _key(values) not in listed]
    return replace(config, enqueue=(*config.enqueue, *front))


def _key(values: Mapping[str, object]) -> tuple[tuple[str, object], ...]:
    return tuple(sorted(values.items()))


def space_difference(earlier: StudyConfig, config: StudyConfig) -> str | None:
    """The first parameter the two spaces define differently, in words; None when they are the same."""
    theirs, ours = ({p.name: p for p in c.space.params} for c in (earlier, config))
    for name in sorted(theirs.keys() | ours.keys()):
        if name not in theirs or name not in ours:
            return f"{name} is only in {'this' if name in ours else 'that'} study's space"
        if theirs[name] != ours[name]:
            return f"{name} is {{{_shown(ours[name])}}} here, {{{_shown(theirs[name])}}} there"
    return None


def _shown(param: Param) -> str:
    return ", ".join(f"{key} {value!r}" for key, value in asdict(param).items()
                     if key != "name" and value not in (None, (), False))
