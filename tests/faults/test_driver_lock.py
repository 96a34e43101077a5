"""One driver per study across machines: the lease in a PostgreSQL storage (`msup.search.state.driver_lock`).

A second driver is refused while the first runs, with the first's host, pid
and start in the message: on the first's machine as long as its process runs
(however late its renewals), elsewhere while its lease is fresh. After the
first is SIGKILLed, a driver on its machine takes the lease at once; one
elsewhere, once nobody has renewed it for the lease time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import sessions
import sqlalchemy as sa
from studykit import unique_name

from msup.search.state.driver_lock import DriverBusy, DriverLease, process_running
from msup.search.state.driver_lock import _process_name as process_name

pytestmark = [pytest.mark.faults]
LEASE_S, SHORT_LEASE_S = 6.0, 2.0
HOLD = """
import sys, threading
from msup.search.state.driver_lock import DriverLease
DriverLease(sys.argv[1], sys.argv[2], lease_s=float(sys.argv[3])).acquire()
print("held", flush=True)
threading.Event().wait()
"""


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
        assert "msup:msup" not in message and "runs out" not in message  # no password; alive on this machine
        assert second.holder() is not None and second.holder().pid == os.getpid()
    finally:
        first.release()
    assert second.holder() is None
    second.acquire()  # released: free at once
    second.release()


def test_a_driver_on_the_holders_machine_is_refused_while_it_runs_and_takes_the_lease_once_it_died(postgres):
    study = unique_name("lease")
    holder = sessions.start([sys.executable, "-c", HOLD, postgres, study, str(SHORT_LEASE_S)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # the lease is taken: no race with its start
        contender = DriverLease(postgres, study, SHORT_LEASE_S)
        holder_process = process_name(holder.pid)
        os.kill(holder.pid, signal.SIGSTOP)  # alive but renewing nothing, as a driver starved of CPU
        try:
            time.sleep(1.5 * SHORT_LEASE_S)  # its last renewal is older than the lease now
            with pytest.raises(DriverBusy, match=f"pid {holder.pid}, since"):  # its process runs: still busy
                contender.acquire()
            assert process_running(holder_process) is True
        finally:
            os.kill(holder.pid, signal.SIGCONT)
        holder.kill()
        holder.wait()
        contender.acquire()  # the holder's pid is gone on this machine: no need to wait for the lease to run out
        assert contender.holder().pid == os.getpid()
        contender.release()
    finally:
        holder.kill()
        holder.wait()


def test_the_lease_of_a_driver_on_a_machine_that_is_gone_runs_out(postgres):
    """A holder elsewhere cannot be asked whether it lives: only the age of its last renewal counts."""
    study = unique_name("lease")
    lease = DriverLease(postgres, study, LEASE_S)
    lease.holder()  # creates the table
    engine = sa.create_engine(postgres)
    with engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO msup_driver_leases (study, token, host, pid, process, since, renewed) "
            "VALUES (:study, 'other', 'node-7', 4242, 'another-boot/pid:[1]/4242/99', now(), now())"), {"study": study})
    with pytest.raises(DriverBusy, match=r"\(host node-7, pid 4242, since 20.*its lease runs out in [56] s\)"):
        lease.acquire()
    with engine.begin() as connection:  # its last renewal is now older than the lease
        connection.execute(sa.text("UPDATE msup_driver_leases SET renewed = now() - interval '7 seconds' "
                                   "WHERE study = :study"), {"study": study})
    lease.acquire()
    assert lease.holder().host == socket.gethostname()
    lease.release()
    engine.dispose()
