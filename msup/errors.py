"""Exceptions a user can cause; the CLI prints their message on one line.

`InputError` (a `ValueError`) means the input is wrong and nothing was done:
exit code 2. `RunError` means valid work failed while running: exit code 1.
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad configuration, argument or file, detected before any work starts."""


class RunError(RuntimeError):
    """Valid work that failed at run time (diverged training, missing data, ...)."""
