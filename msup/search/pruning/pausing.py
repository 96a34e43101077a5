"""Paused trials: a doubtful trial is set aside with its checkpoint, and taken up again when sampling ends.

Freeze-thaw search, in msup's terms. A pruner that tells doubtful from hopeless
(`LedgerPruner.doubtful`: size_aware with ``pause_within``) has the scheduler
pause a doubtful trial instead of ending it: ``paused_at_epoch`` is stored on the
Optuna trial, which stays RUNNING, and the trial's checkpoint at that epoch is
kept (a study that pauses checkpoints every epoch). When the searcher may start
no new trial (the trial count is reached, or the compute budget has no room
for a whole new one), it judges every paused trial again at its paused epoch,
against the trials finished by then (`review`):

- hopeless now: it ends PRUNED, with the pruner's new reason;
- otherwise it is a candidate, taken up best expected gain per remaining epoch
  first: the area (`front_gain`, accuracy x decades of size) it would add to
  the front of finished trials if it gained from its paused epoch to its last
  what the finished trials gained over those epochs (their median), over the
  epochs it has left; fewer epochs left breaks ties.

A trial resumes once (``resumed_at_epoch``); after that only a hopeless verdict
stops it. Paused trials the budget leaves no room for end PRUNED once no other
trial runs.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np

from msup.search.config.budget import BUDGET_STOP
from msup.search.pruning.base import LedgerPruner
from msup.search.pruning.rules import front_gain
from msup.search.state.keys import PAUSED_ATTR
from msup.search.state.ledger import EpochIndex, StudyLedger, TrialRecord


@dataclass(frozen=True)
class Review:
    """The paused trials judged again: those to end (with why), and the rest, best to resume first."""

    ended: list[tuple[TrialRecord, str]]
    ranked: list[TrialRecord]


def paused_epoch(record: TrialRecord) -> int:
    return int(record.attrs[PAUSED_ATTR])


def review(
    ledger: StudyLedger, pruner: LedgerPruner | None, name: str, epochs_of: Callable[[TrialRecord], int],
    skip: Collection[int] = (),
) -> Review:
    """Judge every paused trial (but ``skip``) again at its paused epoch, from the ledger alone; with no pruner
    that judges from the ledger (the study file's pruner was changed since), none ends."""
    ended: list[tuple[TrialRecord, str]] = []
    ranked: list[tuple[float, int, int, TrialRecord]] = []
    typical: dict[tuple[int, int], float] = {}
    for number in sorted(ledger.paused.difference(skip)):
        record = ledger.trials[number]
        epoch = paused_epoch(record)
        accuracy = record.curve[epoch]  # recorded before the pause was
        epochs = epochs_of(record)
        why = None if pruner is None else pruner.decide_from(ledger, record, epoch, accuracy, epochs)
        if pruner is not None and why is not None and not pruner.doubtful(ledger, record, epoch, accuracy):
            ended.append((record, f"pruner {name}: {why} (paused there, judged again when sampling ended)"))
            continue
        if (epoch, epochs) not in typical:
            typical[epoch, epochs] = typical_gain(ledger, epoch, epochs)
        final_front = (ledger.by_epoch.get(epochs) or EpochIndex()).front()
        gain = front_gain(accuracy + typical[epoch, epochs], record.size, final_front) if record.size else 0.0
        left = max(1, epochs - epoch)
        ranked.append((-gain / left, left, number, record))
    ranked.sort(key=lambda item: item[:3])
    return Review(ended, [record for *_, record in ranked])


def typical_gain(ledger: StudyLedger, epoch: int, epochs: int) -> float:
    """The median accuracy the trained trials of ``epochs`` epochs gained from ``epoch`` to their last (0: none).

    One pass over the ledger's trials, once per review (when sampling is over), not per epoch report.
    """
    gains = [record.curve[epochs] - record.curve[epoch] for record in ledger.trials.values()
             if record.trained and epoch in record.curve and epochs in record.curve]
    return float(np.median(gains)) if gains else 0.0


def no_room_reason(record: TrialRecord) -> str:
    """``stopped_by`` of a paused trial the compute budget left no room to resume."""
    return f"{BUDGET_STOP}: no room left to resume it (paused at epoch {paused_epoch(record)})"
