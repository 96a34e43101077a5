"""The study file's ``enqueue:`` list in the storage: each configuration a waiting Optuna trial, exactly once.

The sampler's first asks take waiting trials in order (Optuna's ``ask``), so the
listed configurations train first, with the values given and the others sampled.
Each carries its index in the list (``ENQUEUED_ATTR``). A launch enqueues the
list and then marks the study (``ENQUEUED_ALL_ATTR``); a driver that died
between the two leaves the mark unset, and the next resume adds only the
indices the storage lacks. After that mark, a resume reads nothing for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna

from msup.search.state.keys import ENQUEUED_ALL_ATTR, ENQUEUED_ATTR


def enqueue_once(study: optuna.Study, configurations: Sequence[Mapping[str, Any]]) -> int:
    """Add the configurations the storage does not hold yet as waiting trials; returns how many were added."""
    if not configurations or study.user_attrs.get(ENQUEUED_ALL_ATTR):
        return 0
    present = {t.user_attrs.get(ENQUEUED_ATTR) for t in study.get_trials(deepcopy=False)}
    missing = [i for i in range(len(configurations)) if i not in present]
    for index in missing:
        study.enqueue_trial(dict(configurations[index]), user_attrs={ENQUEUED_ATTR: index})
    study.set_user_attr(ENQUEUED_ALL_ATTR, True)
    return len(missing)
