"""Paused trials judged again when sampling ends: which end, and which resume first."""

from __future__ import annotations

from collections.abc import Mapping

import optuna
from optuna.trial import TrialState, create_trial

from msup.search.pruning.pausing import review, typical_gain
from msup.search.pruning.rules import SizeAwarePruner
from msup.search.state.keys import PAUSED_ATTR, RESUMED_ATTR
from msup.search.state.ledger import StudyLedger

GOOD = {1: 0.5, 2: 0.7, 3: 0.92}


def add(study: optuna.Study, size: float, curve: Mapping[int, float], **attrs: object) -> None:
    state = TrialState.COMPLETE if len(curve) == 3 and not attrs else TrialState.RUNNING
    study.add_trial(create_trial(
        state=state, values=[curve[3], size] if state == TrialState.COMPLETE else None,
        user_attrs={"size_entropy_mib": size, **{f"curve.{e}": a for e, a in curve.items()}, **attrs},
    ))


def test_paused_trials_hopeless_now_end_and_the_rest_resume_by_expected_gain_per_epoch() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for size in (1.0, 1.0, 2.0):
        add(study, size, GOOD)
    add(study, 3.0, {1: 0.45}, **{PAUSED_ATTR: 1})  # 3: still doubtful (bar 0.5), expected to end below the front
    add(study, 1.5, {1: 0.2}, **{PAUSED_ATTR: 1})  # 4: hopeless now
    add(study, 0.9, {1: 0.49, 2: 0.69}, **{PAUSED_ATTR: 2})  # 5: smaller than every peer: would lead the front's left
    add(study, 3.0, {1: 0.48}, **{PAUSED_ATTR: 1, RESUMED_ATTR: 1})  # 6: taken up already: running, not paused
    ledger = StudyLedger(study, "size_entropy_mib")
    assert ledger.paused == {3, 4, 5} and ledger.unfinished == {6}
    assert typical_gain(ledger, 1, 3) == GOOD[3] - GOOD[1]

    pruner = SizeAwarePruner(n_startup_trials=3, n_warmup_steps=1, min_peers=2, pause_within=0.1)
    verdict = review(ledger, pruner, "size_aware", lambda record: 3)
    assert [(record.number, reason.split(":")[0]) for record, reason in verdict.ended] == [(4, "pruner size_aware")]
    assert "judged again when sampling ended" in verdict.ended[0][1]
    assert [record.number for record in verdict.ranked] == [5, 3]
    assert [record.number for record in review(ledger, pruner, "size_aware", lambda record: 3, skip={5}).ranked] == [3]
    # The study file's pruner changed since (to one that cannot judge from the ledger): none ends, all resume.
    assert [record.number for record in review(ledger, None, "median", lambda record: 3).ranked] == [5, 3, 4]
