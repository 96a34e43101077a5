"""Processes a test starts in a session (and process group) of their own, ended however the test run ends.

A `msup` driver starts Ray's processes in its own group, so killing the driver alone
would leave a Ray cluster behind. Every such group is recorded here and killed
whole: by the test when it is done with it, and by `stop_all` when the run ends,
also when it is interrupted (tests/conftest.py turns SIGTERM and SIGHUP into an
interrupt, so pytest tears its fixtures down instead of dying on the spot).
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

_GROUPS: set[int] = set()  # leaders of the groups started and not yet killed


def start(args: Sequence[str], **popen: Any) -> subprocess.Popen:
    """`subprocess.Popen` of ``args`` in a new session, whose process group `stop_all` will kill."""
    process = subprocess.Popen(args, start_new_session=True, **popen)
    _GROUPS.add(process.pid)
    return process


def run(args: Sequence[str], timeout: float, **popen: Any) -> subprocess.CompletedProcess:
    """Run ``args`` to its end in a session of its own, output captured as text; whatever it leaves running is killed."""
    process = start(args, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        kill_group(process.pid)
        process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def kill_group(pid: int) -> None:
    """SIGKILL what is left of the process group led by ``pid``."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _GROUPS.discard(pid)


@contextmanager
def scope() -> Iterator[None]:
    """On leaving, kill every group started inside (a test's; a session fixture's server outlives it)."""
    before = set(_GROUPS)
    try:
        yield
    finally:
        for pid in _GROUPS - before:
            kill_group(pid)


def stop_all() -> None:
    """Kill every process group started here and still recorded."""
    for pid in list(_GROUPS):
        kill_group(pid)


atexit.register(stop_all)
