"""Multi-objective asynchronous successive halving: a stop/continue rule at rungs of (size, accuracy).

ASHA's rule, with a rank over two objectives instead of one metric: at a rung
(epoch ``grace * eta**k``) a trial goes on only if its point ranks in the top
``1 / eta`` of the points of *every* trial that reached that rung, running,
stopped and finished alike, so the rule acts from the first rung on and never
waits for finished trials. The first trial at a rung always goes on.

The rank: a non-dominated sort of (smaller size, higher accuracy), then, inside
a front, one of three tie-breaks (``TIE_BREAKS``):

- ``hypervolume``: the area, in accuracy x decades of size, that only this
  point dominates within its front (as `msup.analysis.pareto.hypervolume` measures
  a front, reference at accuracy ``min_accuracy`` and the dense size);
- ``crowding``: NSGA-II's crowding distance, the ends of a front first;
- ``epsilon_net``: farthest-point order, from the most accurate point on.

A trial's position is the number of points *strictly* ahead of it, so tied
points share a position and a new trial that dominates every point is first.
A point no more accurate than ``min_accuracy`` ranks behind every useful one:
a non-dominated sort alone would keep the smallest network at chance accuracy.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

TIE_BREAKS = ("hypervolume", "crowding", "epsilon_net")

Point = tuple[float, float]  # (size, accuracy)


def front_indices(points: Sequence[Point]) -> list[int]:
    """The non-dominated front of every point, 0 first, for smaller size and higher accuracy.

    One sort and one binary search per point: within a front sorted by size,
    each point's key (accuracy, -size) is the highest so far, and the last
    keys of successive fronts decrease, so a point joins the first front whose
    last key does not exceed its own (equal keys are duplicates, which do not
    dominate each other).
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    last_keys: list[tuple[float, float]] = []  # negated (accuracy, -size) of each front's last point: ascending
    fronts = [0] * len(points)
    for i in order:
        size, accuracy = points[i]
        key = (-accuracy, size)
        front = bisect.bisect_left(last_keys, key)
        if front == len(last_keys):
            last_keys.append(key)
        else:
            last_keys[front] = key
        fronts[i] = front
    return fronts


def tie_scores(front: Sequence[Point], tie_break: str, reference: Point) -> list[float]:
    """A score per point of one front (higher ranks first); equal points get equal scores."""
    counts = Counter(front)
    unique = sorted(counts)  # by size; along a front accuracy rises with size
    if tie_break == "hypervolume":
        scores = _hypervolume_contributions(unique, reference)
        scores = [0.0 if counts[p] > 1 else s for p, s in zip(unique, scores)]  # a duplicate alone adds nothing
    elif tie_break == "crowding":
        scores = _crowding(unique)
    elif tie_break == "epsilon_net":
        scores = _epsilon_net(unique)
    else:
        raise ValueError(f"tie_break {tie_break!r} is not one of {', '.join(TIE_BREAKS)}")
    by_point = dict(zip(unique, scores))
    return [by_point[p] for p in front]


def _log_points(points: Sequence[Point]) -> np.ndarray:
    return np.array([(math.log10(max(s, 1e-300)), a) for s, a in points], dtype=float).reshape(-1, 2)


def _hypervolume_contributions(front: Sequence[Point], reference: Point) -> list[float]:
    xs, accuracies = _log_points(front).T.tolist()
    right_edge = max(math.log10(reference[0]), xs[-1])
    scores = []
    for i, (x, accuracy) in enumerate(zip(xs, accuracies)):
        right = xs[i + 1] if i + 1 < len(xs) else right_edge
        below = accuracies[i - 1] if i else reference[1]
        scores.append(max(0.0, right - x) * max(0.0, accuracy - below))
    return scores


def _normalised(front: Sequence[Point]) -> np.ndarray:
    values = _log_points(front)
    span = values.max(axis=0) - values.min(axis=0)
    return (values - values.min(axis=0)) / np.where(span > 0, span, 1.0)


def _crowding(front: Sequence[Point]) -> list[float]:
    """NSGA-II's crowding distance along a front sorted by size (so also by accuracy)."""
    if len(front) <= 2:
        return [math.inf] * len(front)
    values = _normalised(front)
    distance = np.zeros(len(front))
    distance[0] = distance[-1] = math.inf
    distance[1:-1] = (values[2:] - values[:-2]).sum(axis=1)
    return distance.tolist()


def _epsilon_net(front: Sequence[Point]) -> list[float]:
    """Farthest-point order, seeded at the most accurate point: the n-th chosen scores -n."""
    values = _normalised(front)
    chosen = [len(front) - 1]  # the front is sorted by accuracy: the last point is the most accurate
    nearest = np.linalg.norm(values - values[chosen[0]], axis=1)
    while len(chosen) < len(front):
        nearest[chosen] = -1.0
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(values - values[pick], axis=1))
    scores = [0.0] * len(front)
    for order, index in enumerate(chosen):
        scores[index] = -float(order)
    return scores


def position(points: Mapping[int, Point], trial: int, tie_break: str, reference: Point) -> int:
    """How many points of the rung rank strictly ahead of ``trial``'s (which ``points`` holds)."""
    mine = points[trial]
    useful_floor = reference[1]
    useful = mine[1] > useful_floor
    group = [p for p in points.values() if (p[1] > useful_floor) == useful]
    ahead = 0 if useful else sum(p[1] > useful_floor for p in points.values())
    fronts = front_indices(group)
    my_front = fronts[group.index(mine)]
    ahead += sum(f < my_front for f in fronts)
    same = [p for p, f in zip(group, fronts) if f == my_front]
    scores = dict(zip(same, tie_scores(same, tie_break, reference)))
    return ahead + sum(scores[p] > scores[mine] for p in same)


def keeps_going(points: Mapping[int, Point], trial: int, eta: float, tie_break: str, reference: Point) -> bool:
    """ASHA's rule: in the top ``ceil(n / eta)`` of the ``n`` points at the rung (the first always is)."""
    return position(points, trial, tie_break, reference) < math.ceil(len(points) / eta)


def rung_epochs(grace: int, eta: float, epochs: int) -> list[int]:
    """The rungs below the last epoch: ``grace * eta**k``, rounded, without repeats."""
    rungs: list[int] = []
    k = 0
    while (epoch := round(grace * eta**k)) < epochs:
        if not rungs or epoch > rungs[-1]:
            rungs.append(epoch)
        k += 1
    return rungs
