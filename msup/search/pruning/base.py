"""What msup's own pruners share: they decide from the driver's in-memory ledger, never reading the study back."""

from __future__ import annotations

import abc

from msup.search.state.ledger import StudyLedger, TrialRecord


class LedgerPruner(abc.ABC):
    """A pruner that decides from the driver's in-memory ledger, never reading the study back."""

    @abc.abstractmethod
    def decide_from(
        self, ledger: StudyLedger, record: TrialRecord, epoch: int, accuracy: float, epochs: int,
    ) -> str | None:
        """Why ``record``'s trial stops after ``epoch`` (of ``epochs``), its accuracy then ``accuracy``; None: it goes on."""

    def doubtful(self, ledger: StudyLedger, record: TrialRecord, epoch: int, accuracy: float) -> bool:
        """Whether a stop `decide_from` just decided leaves the trial doubtful rather than hopeless: a study
        that pauses (`msup.search.pruning.pausing`) sets it aside instead of ending it."""
        return False
