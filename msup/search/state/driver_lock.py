"""One driver per study: a file lock in a local study folder, a lease in a database storage.

A file lock (``flock``) means nothing across machines, and a study whose folder is
in object storage has no file to lock. With a database storage (PostgreSQL), the
driver holds a *lease*: a row of ``msup_driver_leases`` naming its host, pid and
start, which it renews every third of the lease time (``$MSUP_DRIVER_LEASE_S``,
default 30 s). A driver on the holder's own machine (same kernel boot and pid
namespace, so a pid means one process) asks the system whether the holder's
process still runs: if it does, the study is busy however late a renewal is; if
not, the lease is free at once. A driver elsewhere cannot ask: it is refused
while the lease is fresh, and takes it once the lease has gone unrenewed for the
lease time (the holder was killed, or its machine is gone). Ages are measured by
the database's clock alone, so the machines' clocks need not agree. A driver that finds its lease taken over (it
could not renew it in time) stops its run as Ctrl-C does.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from msup.errors import InputError, first_line
from msup.search.state.storage import redact

LOCK_FILE = "driver.lock"
log = logging.getLogger(__name__)
LEASE_ENV, DEFAULT_LEASE_S = "MSUP_DRIVER_LEASE_S", 30.0
_METADATA = sa.MetaData()
_LEASES = sa.Table(
    "msup_driver_leases", _METADATA,
    sa.Column("study", sa.String(512), primary_key=True),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("process", sa.String(160), nullable=False),  # `this_process`: boot, pid namespace, pid, start time
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    sa.Column("renewed", sa.DateTime(timezone=True), nullable=False),
)


def uses_lease(storage_url: str) -> bool:
    """True for a database other than SQLite: one every machine of a cluster can reach."""
    return "://" in storage_url and not storage_url.startswith("sqlite")


def lease_seconds() -> float:
    raw = os.environ.get(LEASE_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_LEASE_S
    except ValueError:
        raise InputError(f"{LEASE_ENV}={raw!r} must be a number of seconds") from None
    if not value > 0:
        raise InputError(f"{LEASE_ENV}={raw!r} must be above 0")
    return value


@dataclass(frozen=True)
class Holder:
    """Who drives a study, for the refusal message."""

    host: str
    pid: int
    since: datetime
    expires_in_s: float | None = None  # a lease held elsewhere: when it frees itself if that holder is dead

    def __str__(self) -> str:
        text = f"host {self.host}, pid {self.pid}, since {self.since.strftime('%Y-%m-%d %H:%M:%S %Z').strip()}"
        if self.expires_in_s is not None:
            text += f"; if that driver is dead, its lease runs out in {max(0.0, self.expires_in_s):.0f} s"
        return text


class DriverBusy(InputError):
    def __init__(self, study: str, holder: Holder | None, where: str) -> None:
        self.holder = holder
        who = f" ({holder})" if holder else ""
        super().__init__(f"study {study!r} already has a running driver{who}; lock: {where}")


class DriverLease:
    """The lease of one study in a database storage."""

    def __init__(self, storage_url: str, study: str, lease_s: float | None = None) -> None:
        self.study = study
        self.lease_s = lease_seconds() if lease_s is None else lease_s
        self._shown = redact(storage_url)
        self._engine = sa.create_engine(os.path.expandvars(storage_url), pool_pre_ping=True)
        self._token: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def holder(self) -> Holder | None:
        """The live holder, or None if the study has no driver (or only a dead one whose lease ran out)."""
        self._create_table()
        with self._engine.connect() as connection:
            row = connection.execute(self._current()).first()
        return None if row is None else self._live(row)

    def acquire(self, on_lost: Callable[[str], None] | None = None) -> None:
        """Take the lease, or raise `DriverBusy` naming the live holder; then renew it in the background."""
        self._create_table()
        token = uuid.uuid4().hex
        fields = {"token": token, "host": socket.gethostname(), "pid": os.getpid(), "process": this_process(),
                  "since": sa.func.now(), "renewed": sa.func.now()}
        try:
            with self._engine.begin() as connection:
                row = connection.execute(self._current().with_for_update()).first()
                live = None if row is None else self._live(row)
                if live is not None:
                    raise DriverBusy(self.study, live, f"lease in {self._shown}")
                if row is None:
                    connection.execute(sa.insert(_LEASES).values(study=self.study, **fields))
                else:
                    connection.execute(sa.update(_LEASES).where(_LEASES.c.study == self.study).values(**fields))
        except IntegrityError:  # another driver inserted the first row at the same moment
            raise DriverBusy(self.study, self.holder(), f"lease in {self._shown}") from None
        self._token = token
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_until_stopped, args=(on_lost or _stop_this_driver,),
                                         name=f"msup-lease-{self.study}", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        if self._token is None:
            return
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        try:
            with self._engine.begin() as connection:
                connection.execute(sa.delete(_LEASES).where(_LEASES.c.study == self.study, _LEASES.c.token == self._token))
        except OperationalError:  # the database is gone: the lease runs out by itself
            pass
        self._token = None
        self.close()

    def close(self) -> None:
        """Close the database connections (the lease itself is untouched)."""
        self._engine.dispose()

    # --- internals -----------------------------------------------------------------------

    def _current(self) -> sa.Select:
        return sa.select(_LEASES.c.host, _LEASES.c.pid, _LEASES.c.process, _LEASES.c.since, _LEASES.c.renewed,
                         sa.func.now().label("now")).where(_LEASES.c.study == self.study)

    def _live(self, row: sa.Row) -> Holder | None:
        age = (row.now - row.renewed).total_seconds()
        running = process_running(row.process)
        if running is False or (running is None and age > self.lease_s):
            return None
        return Holder(row.host, row.pid, row.since, None if running else self.lease_s - age)

    def _create_table(self) -> None:
        try:
            _METADATA.create_all(self._engine, checkfirst=True)
        except (IntegrityError, ProgrammingError):  # two drivers created it at the same moment
            pass
        except OperationalError as exc:
            raise InputError(f"storage {self._shown!r}: cannot reach the database for the driver lease "
                             f"({redact(first_line(exc))})") from None

    def _renew_until_stopped(self, on_lost: Callable[[str], None]) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                with self._engine.begin() as connection:
                    renewed = connection.execute(
                        sa.update(_LEASES).where(_LEASES.c.study == self.study, _LEASES.c.token == self._token)
                        .values(renewed=sa.func.now())
                    ).rowcount
            except OperationalError:  # the database is unreachable for now: try again next time
                continue
            if not renewed:
                on_lost(self.study)
                return


def this_process() -> str:
    """This process, named so that another process of the same machine can tell whether it still runs:
    the kernel boot, the pid namespace, the pid and the start time ("" off Linux)."""
    return _process_name(os.getpid()) or ""


def process_running(name: str) -> bool | None:
    """Whether the process `this_process` named runs; None where this process cannot tell (another machine)."""
    place, _, pid = name.rpartition("/")[0].rpartition("/")
    if not name or place != this_process().rsplit("/", 2)[0]:
        return None
    return _process_name(int(pid)) == name


def _process_name(pid: int) -> str | None:
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
        started = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]  # field 22: start time
    except (OSError, IndexError):
        return None
    return f"{boot}/{namespace}/{pid}/{started}"


def _stop_this_driver(study: str) -> None:
    """Another driver took the lease (this one could not renew it in time): end the run as Ctrl-C does."""
    log.warning(f"msup: lost the driver lease of study {study!r} to another driver; stopping this one")
    os.kill(os.getpid(), signal.SIGINT)


@contextmanager
def hold_driver_lock(study: str, folder: Path | None, storage_url: str) -> Iterator[None]:
    """Hold every lock that applies: the file lock of a local folder, the lease of a database storage."""
    with ExitStack() as stack:
        if folder is not None:
            stack.enter_context(_file_lock(study, folder))
        if uses_lease(storage_url):
            lease = DriverLease(storage_url, study)
            lease.acquire()
            stack.callback(lease.release)
        yield


def running_driver(study: str, folder: Path | None, storage_url: str) -> Holder | bool | None:
    """The live driver of a study: its `Holder` from a lease, True from a file lock, None if there is none."""
    if uses_lease(storage_url):
        lease = DriverLease(storage_url, study)
        try:
            holder = lease.holder()
        except InputError:  # the database is unreachable: the caller reports that itself
            holder = None
        finally:
            lease.close()
        if holder is not None:
            return holder
    return True if folder is not None and _file_locked(folder) else None


@contextmanager
def _file_lock(study: str, folder: Path) -> Iterator[None]:
    """Exclusive lock of a local study folder; the OS drops it if the driver dies."""
    handle = open(folder / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = _file_holder(handle.read())
        handle.close()
        raise DriverBusy(study, holder, str(folder / LOCK_FILE)) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}))
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _file_holder(text: str) -> Holder | None:
    try:
        data = json.loads(text)
        return Holder(str(data.get("host", "?")), int(data["pid"]), datetime.fromtimestamp(float(data["started"])).astimezone())
    except (ValueError, KeyError, TypeError):
        return None


def _file_locked(folder: Path) -> bool:
    if not (folder / LOCK_FILE).exists():
        return False
    with open(folder / LOCK_FILE) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
