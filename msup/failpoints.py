"""Named fail points: faults injected at exact places of a study, for fault tests and chaos runs.

Activated only by an environment variable; without it `reach` is one dictionary
lookup. Rules are separated by ``;``, each ``POINT[@N]=ACTION``::

    MSUP_FAILPOINTS="trial.after_epoch@3=kill_driver;searcher.before_tell@2=pause"

``@N`` fires on the N-th time the point is reached by any process of the study
(the driver and every trial worker on this machine share one count); without
it, every time. Actions:

- ``kill_driver`` SIGKILL of the study's driver (a crash of the head machine);
- ``term_driver`` SIGTERM of the driver (a preemption notice);
- ``kill_worker`` SIGKILL of the process that reached the point;
- ``raise``       a `FailPointError` at the point;
- ``pause``       stop there until a file ``POINT@K.go`` appears in the fail-point
  folder (K = the hit's number); ``POINT@K.paused``, written first, holds the
  paused process's pid and parent pid, so a test can act at that exact moment.

The fail-point folder is ``$MSUP_FAILPOINTS_DIR``, by default a folder named
after the driver's pid in the system's temporary folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from msup.errors import InputError

ENV, DIR_ENV, DRIVER_ENV = "MSUP_FAILPOINTS", "MSUP_FAILPOINTS_DIR", "MSUP_DRIVER_PID"
POINTS = (
    "searcher.after_ask",       # Optuna asked, the trial's sizes and values not yet stored
    "searcher.after_attrs",     # sizes and values stored, the Ray trial id not yet
    "searcher.before_tell",     # a finished trial's results stored, its state not yet told
    "scheduler.after_prune",    # a stop decision stored, the trial not yet stopped
    "scheduler.after_pause",    # a pause stored, the trial not yet stopped (`msup.search.pruning.pausing`)
    "searcher.after_resume",    # a paused trial marked as taken up again, no Ray trial yet handed it
    "trial.before_checkpoint",  # an epoch trained; its checkpoint (last epoch: and model file) not yet written
    "trial.after_epoch",        # an epoch reported to the driver with its checkpoint
    "trial.after_final_report", # the last epoch reported: the trial's results are with the driver
    "study.before_tables",      # every trial finished, trials.csv not yet written
    "study.between_tables",     # trials.csv written, trials.parquet not yet
)
ACTIONS = ("kill_driver", "term_driver", "kill_worker", "raise", "pause")
_POLL_S = 0.05


class FailPointError(RuntimeError):
    """Raised by a ``raise`` fail point."""


@dataclass(frozen=True)
class Rule:
    point: str
    hit: int | None  # None: every hit
    action: str


def parse(text: str) -> dict[str, list[Rule]]:
    """The rules of a ``MSUP_FAILPOINTS`` value by point; a malformed value raises `InputError`."""
    rules: dict[str, list[Rule]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        where, _, action = part.partition("=")
        point, _, hit = where.strip().partition("@")
        if point not in POINTS:
            raise InputError(f"{ENV}: {point!r} in {part!r} is not a fail point; known: {', '.join(POINTS)}")
        if action.strip() not in ACTIONS:
            raise InputError(f"{ENV}: action {action.strip()!r} in {part!r} is not one of {', '.join(ACTIONS)}")
        if hit and not (hit.isdigit() and int(hit) >= 1):
            raise InputError(f"{ENV}: hit {hit!r} in {part!r} must be a whole number >= 1")
        rules.setdefault(point, []).append(Rule(point, int(hit) if hit else None, action.strip()))
    return rules


_parsed: tuple[str, dict[str, list[Rule]]] = ("", {})


def _rules() -> dict[str, list[Rule]]:
    global _parsed
    text = os.environ.get(ENV, "")
    if text != _parsed[0]:
        _parsed = (text, parse(text))
    return _parsed[1]


def check() -> None:
    """Refuse a malformed ``MSUP_FAILPOINTS`` before any work starts."""
    _rules()


def mark_driver() -> dict[str, str]:
    """Make this process the study's driver; returns the variables its trial workers need (empty when inactive)."""
    if not _rules():
        return {}
    os.environ[DRIVER_ENV] = str(os.getpid())
    os.environ[DIR_ENV] = str(folder())
    return {key: os.environ[key] for key in (ENV, DIR_ENV, DRIVER_ENV)}


def folder() -> Path:
    default = Path(tempfile.gettempdir()) / f"msup-failpoints-{os.environ.get(DRIVER_ENV, os.getpid())}"
    return Path(os.environ.get(DIR_ENV) or default)


def reach(point: str) -> None:
    """Called by the code at ``point``; acts if a rule of ``MSUP_FAILPOINTS`` fires here."""
    rules = _rules().get(point)
    if not rules:
        return
    hit = _count(point)
    for rule in rules:
        if rule.hit is None or rule.hit == hit:
            _act(rule, hit)


def _count(point: str) -> int:
    """This hit's number, counted across every process that shares the fail-point folder."""
    path = folder() / f"{point}.hits"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        hit = int(handle.read() or 0) + 1
        handle.seek(0)
        handle.truncate()
        handle.write(str(hit))
    return hit


def _act(rule: Rule, hit: int) -> None:
    driver = int(os.environ.get(DRIVER_ENV, os.getpid()))
    if rule.action == "kill_driver":
        os.kill(driver, signal.SIGKILL)
    elif rule.action == "term_driver":
        os.kill(driver, signal.SIGTERM)
    elif rule.action == "kill_worker":
        os.kill(os.getpid(), signal.SIGKILL)
    elif rule.action == "raise":
        raise FailPointError(f"fail point {rule.point}@{hit}")
    else:
        base = folder() / f"{rule.point}@{hit}"
        partial = base.with_name(base.name + ".partial")
        partial.write_text(json.dumps({"pid": os.getpid(), "ppid": os.getppid()}), encoding="utf-8")
        partial.replace(base.with_name(base.name + ".paused"))
        go = base.with_name(base.name + ".go")
        while not go.exists():
            time.sleep(_POLL_S)
