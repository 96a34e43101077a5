"""The driver's ledger: per-epoch indexes against brute force, and size-aware decisions replayed.

The replay records a study's curves (synthetic, interleaved as concurrent trials
report) and feeds them through the rule as first written (reading every
completed trial at every epoch) and through the ledger-backed scheduler, with a
driver restart halfway: the decisions must be identical, one by one.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ray.tune.schedulers import TrialScheduler

from msup.search.execution.scheduler import PruningScheduler
from msup.search.execution.trial_config import TrialConfig
from msup.search.pruning.rules import front_gain, parse_pruner
from msup.search.state.ledger import EpochIndex, StudyLedger, curve_of, release_ledgers
from msup.search.state.storage import load_or_create, open_storage

points = st.lists(st.tuples(st.sampled_from([0.5, 1.0, 2.0, 4.0, 8.0]), st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9])),
                  min_size=1, max_size=30)


@given(points, st.sampled_from([0.5, 1.0, 3.0, 8.0, 9.0]))
@settings(max_examples=200, deadline=None)
def test_index_peers_and_front_match_brute_force(pts: list[tuple[float, float]], size: float) -> None:
    index = EpochIndex()
    for s, a in pts:
        index.add(s, a)
    assert sorted(index.peers(size)) == sorted(a for s, a in pts if s <= size)
    front = [(s, a) for s, a in index.front() if a > 0 or s != index.max_size]
    dominated = [(s, a) for s, a in set(pts) if any(s2 <= s and a2 >= a and (s2, a2) != (s, a) for s2, a2 in pts)]
    assert set(front) == set(pts) - set(dominated)
    for accuracy in (0.2, 0.6, 0.95):
        assert math.isclose(front_gain(accuracy, size, index.front()), front_gain(accuracy, size, pts), abs_tol=1e-12)


def test_curves_are_read_from_either_layout() -> None:
    assert curve_of({"curve": {"1": 0.2, "2": 0.3}, "curve.3": 0.4, "other": 1}) == {1: 0.2, 2: 0.3, 3: 0.4}


def first_rule(shadow: optuna.Study, trial: optuna.trial.FrozenTrial, options: dict[str, Any]) -> bool:
    """The size-aware rule as first written: every completed trial read at every epoch."""
    step = trial.last_step
    if step < options["n_warmup_steps"]:
        return False
    completed = shadow.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(completed) < options["n_startup_trials"]:
        return False
    size, accuracy = trial.user_attrs["size"], trial.intermediate_values[step]
    front = [(t.user_attrs["size"], t.intermediate_values[step]) for t in completed if step in t.intermediate_values]
    peers = [a for s, a in front if s <= size]
    if len(peers) >= options["min_peers"] and accuracy < np.percentile(peers, options["percentile"]):
        return True
    return options["min_gain"] > 0 and front_gain(accuracy, size, front) < options["min_gain"]


@dataclass
class RayTrial:
    config: dict[str, Any] = field(default_factory=dict)


def synthetic_events(trials: int, epochs: int, concurrency: int, seed: int) -> list[tuple[int, int, float]]:
    """(trial, epoch, accuracy) in the order concurrent trials would report them."""
    rng = random.Random(seed)
    curves = {}
    for n in range(trials):
        top, speed = rng.uniform(0.3, 0.98), rng.uniform(0.5, 3.0)
        curves[n] = [top * (1 - math.exp(-e / speed)) + rng.gauss(0, 0.02) for e in range(1, epochs + 1)]
    events, waiting, active = [], list(range(trials)), {}
    while waiting or active:
        while waiting and len(active) < concurrency:
            active[waiting.pop(0)] = 0
        n = rng.choice(sorted(active))
        active[n] += 1
        events.append((n, active[n], curves[n][active[n] - 1]))
        if active[n] == epochs:
            del active[n]
    return events


@pytest.mark.parametrize("percentile, min_gain", [(20.0, 0.0), (50.0, 0.002)])
def test_ledger_decisions_equal_the_first_rule_through_a_restart(tmp_path, percentile: float, min_gain: float) -> None:
    options = {"name": "size_aware", "percentile": percentile, "n_startup_trials": 5, "n_warmup_steps": 2,
               "min_peers": 3, "min_gain": min_gain}
    trials, epochs = 80, 6
    rng = random.Random(3)
    sizes = {n: 10 ** rng.uniform(-3, -1) for n in range(trials)}
    events = synthetic_events(trials, epochs, concurrency=6, seed=3)

    # The first rule, on a shadow study of its own.
    shadow = optuna.create_study(direction="maximize")
    shadow_trials, stopped_first, first = {}, set(), []
    for n, epoch, accuracy in events:
        if n in stopped_first:
            continue
        if n not in shadow_trials:
            shadow_trials[n] = shadow.ask()
            shadow_trials[n].set_user_attr("size", sizes[n])
        shadow_trials[n].report(accuracy, epoch)
        if epoch == epochs:
            shadow.tell(shadow_trials[n], accuracy)
            first.append((n, epoch, False))
            continue
        stop = first_rule(shadow, shadow._storage.get_trial(shadow_trials[n]._trial_id), options)
        first.append((n, epoch, stop))
        if stop:
            stopped_first.add(n)
            shadow.tell(shadow_trials[n], state=optuna.trial.TrialState.PRUNED)

    # The ledger-backed scheduler, on a real storage, with a new driver (nothing in memory) halfway.
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    second, stopped = through_scheduler(url, options, events, sizes, epochs, restart_at=len(events) // 2)

    assert second == first
    assert 5 < len(stopped) < trials - 5  # the replay exercises both outcomes
    ledger = StudyLedger(optuna.load_study(study_name="replay", storage=url), "size_entropy_mib")
    assert ledger.trained == trials - len(stopped) and not ledger.unfinished


def through_scheduler(url: str, options: dict[str, Any], events: list[tuple[int, int, float]], sizes: dict[int, float],
                      epochs: int, restart_at: int | None) -> tuple[list[tuple[int, int, bool]], set[int]]:
    """Every (trial, epoch, stopped?) decision of the ledger-backed scheduler, on a real storage, with a new driver
    (nothing in memory) at event ``restart_at``; and the trials it stopped."""
    main = load_or_create(open_storage(url), "replay", ["val_acc", "size_entropy_mib"], optuna.samplers.RandomSampler(seed=0))
    spec = parse_pruner(options, "pruner", [])
    scheduler = PruningScheduler(url, "replay", spec, "val_acc", "size_entropy_mib")
    ray_trials: dict[int, RayTrial] = {}
    stopped, decisions = set(), []
    for i, (n, epoch, accuracy) in enumerate(events):
        if i == restart_at:
            release_ledgers()
            scheduler = PruningScheduler(url, "replay", spec, "val_acc", "size_entropy_mib")
        if n in stopped:
            continue
        if n not in ray_trials:
            trial = main.ask()
            trial.set_user_attr("size_entropy_mib", sizes[n])  # as the searcher stores it when it samples
            number = trial.number
            config = TrialConfig(optuna_trial=number, train={}, values={}, sizes={"size_entropy_mib": sizes[n]}, epochs=epochs)
            ray_trials[n] = RayTrial(config.to_dict())
        decision = scheduler.on_trial_result(None, ray_trials[n], {"epoch": epoch, "val_acc": accuracy})
        decisions.append((n, epoch, decision == TrialScheduler.STOP))
        if decision == TrialScheduler.STOP:
            stopped.add(n)
            main.tell(ray_trials[n].config["optuna_trial"], state=optuna.trial.TrialState.PRUNED)
        elif epoch == epochs:
            main.tell(ray_trials[n].config["optuna_trial"], [accuracy, sizes[n]])
    release_ledgers()
    return decisions, stopped


def test_front_chance_decides_the_same_through_a_restart(tmp_path) -> None:
    """The forecast is rebuilt from the storage: a restarted driver stops exactly the trials the first one would."""
    options = {"name": "front_chance", "delta": 0.2, "n_startup_trials": 5, "running_quantile": 0.2}
    trials, epochs = 60, 6
    rng = random.Random(4)
    sizes = {n: 10 ** rng.uniform(-3, -1) for n in range(trials)}
    events = synthetic_events(trials, epochs, concurrency=4, seed=4)
    straight, stopped = through_scheduler(f"sqlite:///{tmp_path / 'a.db'}", options, events, sizes, epochs, None)
    for restart_at in (len(events) // 3, 2 * len(events) // 3):
        restarted, _ = through_scheduler(f"sqlite:///{tmp_path / f'b{restart_at}.db'}", options, events, sizes, epochs,
                                         restart_at)
        assert restarted == straight
    assert 5 < len(stopped) < trials - 5  # the replay exercises both outcomes


@pytest.mark.parametrize("layout", ["per-epoch keys", "one dict (older studies)"])
def test_a_rebuilt_ledger_holds_what_was_written(tmp_path, layout: str) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = load_or_create(open_storage(url), "rebuilt", ["val_acc", "size_entropy_mib"], optuna.samplers.RandomSampler(seed=0))
    done, running = study.ask(), study.ask()
    for trial, curve in ((done, {1: 0.5, 2: 0.7}), (running, {1: 0.4})):
        trial.set_user_attr("size_entropy_mib", 0.01 * (trial.number + 1))
        if layout == "per-epoch keys":
            for epoch, accuracy in curve.items():
                trial.set_user_attr(f"curve.{epoch}", accuracy)
        else:
            trial.set_user_attr("curve", {str(e): a for e, a in curve.items()})
    study.tell(done, [0.7, 0.01])
    ledger = StudyLedger(study, "size_entropy_mib")
    assert ledger.trials[0].curve == {1: 0.5, 2: 0.7} and ledger.trials[1].curve == {1: 0.4}
    assert ledger.trained == 1 and ledger.unfinished == {1}
    assert list(ledger.by_epoch[2].peers(1.0)) == [0.7] and ledger.trials[1].size == 0.02


def test_the_trial_budget_counts_enqueued_trials_once_asked_for_and_rejected_ones_only_if_told(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = load_or_create(open_storage(url), "counted", ["val_acc", "size_entropy_mib"], optuna.samplers.RandomSampler(seed=0))
    for x in (0.1, 0.2, 0.3):
        study.enqueue_trial({"x": x})
    ledger = StudyLedger(study, "size_entropy_mib")
    assert ledger.waiting == {0, 1, 2} and ledger.counted(with_rejected=True) == 0  # a longer list than the budget
    asked = study.ask()
    ledger.add_new(asked.number, asked._trial_id)
    ledger.set_attr(ledger.trials[asked.number], "rejected", "size 0.02 MiB over the budget 0.01 MiB")
    assert ledger.counted(with_rejected=True) == 1 and ledger.counted(with_rejected=False) == 0
    rebuilt = StudyLedger(study, "size_entropy_mib")
    assert rebuilt.waiting == {1, 2} and rebuilt.rejected == 1 and rebuilt.counted(with_rejected=True) == 1
