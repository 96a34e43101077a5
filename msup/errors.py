"""Exceptions a user can cause; the CLI prints their message on one line.

`InputError` (a `ValueError`) means the input is wrong and nothing was done:
exit code 2. `RunError` means valid work failed while running: exit code 1.
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno


class InputError(ValueError):
    """Bad configuration, argument or file, detected before any work starts."""


class RunError(RuntimeError):
    """Valid work that failed at run time (diverged training, missing data, ...)."""


class Preempted(RunError):
    """The driver got SIGTERM (a preemption notice) and stopped its study at the trials' last checkpoints."""

    def __init__(self, study_name: str) -> None:
        super().__init__(
            f"preempted (SIGTERM): study {study_name!r} stopped with its trials at their last checkpoint; "
            f"`msup study resume {study_name}` continues it"
        )


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc``, or an error it was raised from, says the disk (or the quota) is full.

    Some writers (pyarrow, SQLite) keep only the message, not the errno.
    """
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(current) for text in ("No space left on device", "Disk quota exceeded", "database or disk is full")):
            return True
        current = current.__cause__ or current.__context__
    return False


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (its type's name if it has none): a reason for one line of output."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def last_line(exc: BaseException) -> str:
    """The last line of an error's message (its type's name if it has none): where a traceback text says what failed."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
