"""The multi-objective rung rule on hand-built rungs, and the mo_asha pruner on a real ledger."""

from __future__ import annotations

import math
import random

import optuna
import pytest
from optuna.trial import TrialState

from msup.search.pruning.rules import MoAshaPruner, parse_pruner
from msup.search.pruning.rungs import (
    TIE_BREAKS,
    front_indices,
    keeps_going,
    position,
    rung_epochs,
    tie_scores,
)
from msup.search.state.ledger import StudyLedger

REFERENCE = (1.0, 0.0)  # (dense size, no useful accuracy)


def brute_force_fronts(points: list[tuple[float, float]]) -> list[int]:
    """Peel fronts the slow way: a point's front is 1 + the deepest front of any point dominating it."""
    def dominates(p: tuple[float, float], q: tuple[float, float]) -> bool:
        return p[0] <= q[0] and p[1] >= q[1] and p != q

    fronts = [-1] * len(points)
    remaining, level = set(range(len(points))), 0
    while remaining:
        layer = {i for i in remaining if not any(dominates(points[j], points[i]) for j in remaining)}
        for i in layer:
            fronts[i] = level
        remaining -= layer
        level += 1
    return fronts


@pytest.mark.parametrize("seed", range(20))
def test_front_indices_match_peeling_fronts_one_by_one(seed: int) -> None:
    rng = random.Random(seed)
    grid = rng.choice([None, 5])  # a coarse grid makes ties and equal sizes common
    points = [
        (rng.randint(1, grid) / 10 if grid else rng.random(), rng.randint(0, grid) / 5 if grid else rng.random())
        for _ in range(rng.randint(1, 40))
    ]
    assert front_indices(points) == brute_force_fronts(points)


def test_a_new_trial_that_dominates_every_other_continues_under_every_tie_break() -> None:
    rung = {n: (0.1 + 0.05 * n, 0.5 + 0.02 * n) for n in range(8)}  # one front of 8
    rung[99] = (0.05, 0.95)  # smaller and more accurate than all
    for tie_break in TIE_BREAKS:
        assert position(rung, 99, tie_break, REFERENCE) == 0
        assert keeps_going(rung, 99, 3, tie_break, REFERENCE)


def test_the_first_trial_at_a_rung_always_continues() -> None:
    for accuracy in (0.0, 0.3):
        assert keeps_going({7: (0.2, accuracy)}, 7, 3, "hypervolume", REFERENCE)


def test_a_dominated_trial_stops_and_the_top_third_of_nine_continues() -> None:
    # fronts by construction: 3 points in front 0, 3 in front 1 (each beaten by one of front 0), 3 in front 2
    rung = {}
    for front, shift in enumerate((0.0, 0.1, 0.2)):
        for k, size in enumerate((0.1, 0.2, 0.4)):
            rung[3 * front + k] = (size + shift / 10, 0.6 + 0.1 * k - shift)
    assert front_indices(list(rung.values())) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    going = [n for n in rung if keeps_going(rung, n, 3, "hypervolume", REFERENCE)]
    assert going == [0, 1, 2]  # ceil(9 / 3) = 3: exactly the first front


def test_ties_share_a_position() -> None:
    rung = {1: (0.2, 0.8), 2: (0.2, 0.8), 3: (0.2, 0.8), 4: (0.4, 0.5)}
    for tie_break in TIE_BREAKS:
        assert {position(rung, n, tie_break, REFERENCE) for n in (1, 2, 3)} == {0}
        assert position(rung, 4, tie_break, REFERENCE) == 3  # dominated by all three copies
        assert all(keeps_going(rung, n, 3, tie_break, REFERENCE) for n in (1, 2, 3))


def test_tie_breaks_order_a_front_as_documented() -> None:
    front = [(0.01, 0.50), (0.02, 0.80), (0.03, 0.81), (0.3, 0.90)]
    hv = tie_scores(front, "hypervolume", REFERENCE)
    expected = [
        math.log10(0.02 / 0.01) * 0.50,
        math.log10(0.03 / 0.02) * (0.80 - 0.50),
        math.log10(0.3 / 0.03) * (0.81 - 0.80),
        math.log10(1.0 / 0.3) * (0.90 - 0.81),
    ]
    assert hv == pytest.approx(expected)
    crowding = tie_scores(front, "crowding", REFERENCE)
    assert crowding[0] == crowding[-1] == math.inf and crowding[1] > crowding[2]  # (0.03, 0.81) is crowded
    net = tie_scores(front, "epsilon_net", REFERENCE)
    assert net[3] == 0.0  # seeded at the most accurate point
    assert net[0] == -1.0  # then the farthest from it
    assert sorted(net) == [-3.0, -2.0, -1.0, 0.0]


def test_points_no_better_than_min_accuracy_rank_behind_every_useful_point() -> None:
    rung = {1: (0.001, 0.10), 2: (0.2, 0.7), 3: (0.3, 0.75), 4: (0.5, 0.2)}
    floor = (1.0, 0.1)
    assert position(rung, 1, "hypervolume", floor) == 3  # smallest of all, but at chance accuracy
    assert not keeps_going(rung, 1, 3, "hypervolume", floor)
    assert position(rung, 1, "hypervolume", REFERENCE) == 0  # with no floor it is on the front


def test_every_decision_agrees_with_a_brute_force_rank_on_random_rungs() -> None:
    rng = random.Random(0)
    for _ in range(200):
        rung = {n: (round(rng.uniform(0.01, 0.5), 2), round(rng.uniform(0.05, 1.0), 1)) for n in range(rng.randint(1, 15))}
        fronts = dict(zip(rung, brute_force_fronts(list(rung.values()))))
        new = max(rung)
        ahead_front = sum(f < fronts[new] for f in fronts.values())
        same = [p for n, p in rung.items() if fronts[n] == fronts[new]]
        scores = dict(zip(same, tie_scores(same, "hypervolume", REFERENCE)))
        expected = ahead_front + sum(scores[p] > scores[rung[new]] for p in same)
        assert position(rung, new, "hypervolume", REFERENCE) == expected
        assert keeps_going(rung, new, 3, "hypervolume", REFERENCE) == (expected < math.ceil(len(rung) / 3))


@pytest.mark.parametrize(("grace", "eta", "epochs", "rungs"), [
    (1, 3, 20, [1, 3, 9]), (2, 2, 20, [2, 4, 8, 16]), (1, 3, 1, []), (3, 1.5, 10, [3, 4, 7]),
])
def test_rungs_sit_at_grace_times_powers_of_eta(grace: int, eta: float, epochs: int, rungs: list[int]) -> None:
    assert rung_epochs(grace, eta, epochs) == rungs


def test_explicit_rungs_replace_the_geometric_ones() -> None:
    assert MoAshaPruner(rungs=[6, 2, 2]).rung_epochs(epochs=20) == [2, 6]
    assert MoAshaPruner(rungs=[2, 30]).rung_epochs(epochs=20) == [2]
    assert MoAshaPruner(grace=2, eta=2).rung_epochs(epochs=20) == [2, 4, 8, 16]


@pytest.mark.parametrize("options", [{"grace": 0}, {"eta": 1}, {"tie_break": "random"}, {"min_accuracy": 1.0},
                                     {"grace": 1.5}, {"rungs": []}, {"rungs": [0, 2]}, {"rungs": 3}])
def test_mo_asha_rejects_bad_settings(options: dict) -> None:
    errors: list[str] = []
    parse_pruner({"name": "mo_asha", **options}, "pruner", errors)
    assert len(errors) == 1 and "mo_asha" in errors[0] and next(iter(options)) in errors[0]


def test_mo_asha_decides_from_the_ledger_with_running_and_stopped_trials_as_peers() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    ledger = StudyLedger(study, "size_entropy_mib")
    pruner = MoAshaPruner(grace=1, eta=2)
    records = []
    for size, curve in [(0.1, [0.80, 0.85]), (0.2, [0.30]), (0.05, [0.90])]:
        trial = study.ask()
        record = ledger.add_new(trial.number, trial._trial_id)
        ledger.set_attr(record, "size_entropy_mib", size)
        ledger.set_attr(record, "dense_mib", 0.33)
        records.append((record, curve))
    decisions = []
    for record, curve in records:  # all three still running: peers all the same
        ledger.record_epoch(record, 1, curve[0], final=False)
        decisions.append(pruner.decide_from(ledger, record, 1, curve[0], epochs=4))
    # first at the rung goes on; the second is dominated (1 of ceil(2/2)=1 ahead); the third dominates both
    assert decisions == [None, "not in the best 1/2 of 2 trials at the rung of epoch 1", None]
    assert pruner.decide_from(ledger, records[0][0], 2, 0.85, epochs=4) is None  # epoch 2 is no rung at eta 2
    study.tell(records[1][0].number, state=TrialState.PRUNED)
    rebuilt = StudyLedger(study, "size_entropy_mib")  # a restarted driver sees the same rung
    assert rebuilt.reached[1] == ledger.reached[1]

