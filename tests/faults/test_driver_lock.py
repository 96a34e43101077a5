"""One driver per study across machines: the lease in a PostgreSQL storage (`msup.search.driver_lock`).

A second driver is refused while the first renews its lease, with the first's
host, pid and start in the message; after the first is SIGKILLed, nobody renews
it, and a new driver takes the lease once it has run out.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from servers import postgres_url
from studykit import unique_name

from msup.search.driver_lock import DriverBusy, DriverLease

pytestmark = [pytest.mark.faults]
LEASE_S = 6.0
HOLD = """
import sys, threading
from msup.search.driver_lock import DriverLease
DriverLease(sys.argv[1], sys.argv[2], lease_s=float(sys.argv[3])).acquire()
print("held", flush=True)
threading.Event().wait()
"""


@pytest.fixture(scope="module")
def postgres() -> str:
    return postgres_url()


def test_a_second_driver_is_refused_naming_the_holder_and_gets_the_lease_once_released(postgres):
    study = unique_name("lease")
    first, second = DriverLease(postgres, study, LEASE_S), DriverLease(postgres, study, LEASE_S)
    first.acquire()
    try:
        with pytest.raises(DriverBusy) as refusal:
            second.acquire()
        message = str(refusal.value)
        assert message.startswith(f"study {study!r} already has a running driver (host {socket.gethostname()}, "
                                  f"pid {os.getpid()}, since 20") and "\n" not in message
        assert "msup:msup" not in message and "its lease runs out in" in message  # no password in the message
        assert second.holder() is not None and second.holder().pid == os.getpid()
    finally:
        first.release()
    assert second.holder() is None
    second.acquire()  # released: free at once
    second.release()


def test_the_lease_of_a_killed_driver_frees_itself_within_the_lease_time(postgres):
    study = unique_name("lease")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, postgres, study, str(LEASE_S)],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # the lease is taken: no race with its start
        contender = DriverLease(postgres, study, LEASE_S)
        with pytest.raises(DriverBusy, match=f"pid {holder.pid}, since"):
            contender.acquire()
        holder.kill()
        holder.wait()
        killed = time.monotonic()
        while True:  # the lease runs out LEASE_S after the dead driver's last renewal, which came before the kill
            try:
                contender.acquire()
                break
            except DriverBusy:
                assert time.monotonic() - killed < 2 * LEASE_S, "the dead driver's lease did not run out"
                time.sleep(0.2)
        assert time.monotonic() - killed <= LEASE_S + 1.0
        assert contender.holder().pid == os.getpid()
        contender.release()
    finally:
        holder.kill()
        holder.wait()
