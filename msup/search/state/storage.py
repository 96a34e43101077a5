"""Opening the Optuna storage a study lives in.

A string with ``://`` is an Optuna database URL (``sqlite:///...``,
``postgresql://...``); anything else is the path of an Optuna journal file,
the choice for a shared network file system.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages._rdb import models as rdb_models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.storages.journal import JournalFileBackend
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from msup.errors import InputError, first_line
from msup.folder import Folder

# SQLite waits this long for a lock held by another reader or writer (seconds).
_SQLITE_TIMEOUT_S = 60


def default_storage_url(study_dir: Path) -> str:
    return f"sqlite:///{(study_dir / 'optuna.db').resolve()}"


def study_storage_url(folder: Folder, configured: str | None) -> str:
    """The storage of the study in ``folder``: the configured one, else a SQLite file in a local folder.

    A folder in object storage cannot hold a SQLite database or a journal file
    (neither can be locked or appended to there), so it needs a database URL.
    """
    if folder.local is not None:
        return configured or default_storage_url(folder.local)
    if configured is None or "://" not in configured or configured.startswith("sqlite"):
        given = "the default SQLite file" if configured is None else f"storage {redact(configured)!r}"
        raise InputError(f"study folder {folder.shown} is in object storage, where {given} cannot live: set storage "
                         "(or --storage) to a database every machine reaches, e.g. postgresql://user@db-host/msup")
    return configured


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages."""
    if "://" not in url:
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("://")[0] + "://***"


def open_storage(url: str) -> BaseStorage:
    """An Optuna storage object for ``url`` (database URL or journal file path).

    Environment variables in ``url`` are expanded (``postgresql://msup:${PGPASSWORD}@db/msup``),
    so a password need not be written into study files.
    """
    shown, url = redact(url), os.path.expandvars(url)
    if "://" in url:
        sqlite = url.startswith("sqlite")
        engine = {"connect_args": {"timeout": _SQLITE_TIMEOUT_S}} if sqlite else {}
        try:
            storage = RDBStorage(url, engine_kwargs=engine, heartbeat_interval=None)
            if sqlite:
                _write_ahead(storage)
            return storage
        except (ImportError, ModuleNotFoundError) as exc:
            raise InputError(f"storage {shown!r}: the database driver is not installed ({exc})") from None
        except Exception as exc:  # sqlalchemy's connection errors have no common public base
            raise InputError(f"storage {shown!r}: cannot connect ({redact(first_line(exc))})") from None
    path = Path(url)
    if not path.parent.is_dir():
        raise InputError(f"storage {url!r}: folder {str(path.parent)!r} does not exist")
    return JournalStorage(JournalFileBackend(str(path)))


def set_user_attrs(storage: BaseStorage, trial_id: int, attrs: Mapping[str, Any]) -> None:
    """Several user attributes of one trial, in one transaction on a database storage.

    Optuna commits each attribute on its own, and a commit is the price of a
    write (a round trip, and on PostgreSQL a flush of its log): one commit per
    call instead of one per key. All or none of them are stored.
    """
    backend = getattr(storage, "_backend", storage)  # the RDBStorage behind Optuna's cache
    if not attrs:
        return
    if not isinstance(backend, RDBStorage):
        for key, value in attrs.items():
            storage.set_trial_user_attr(trial_id, key, value)
        return
    with _create_scoped_session(backend.scoped_session, True) as session:
        for key, value in attrs.items():
            backend._set_trial_attr_without_commit(session, rdb_models.TrialUserAttributeModel, trial_id, key, value)


def _write_ahead(storage: RDBStorage) -> None:
    """SQLite in write-ahead-log mode, synced at checkpoints: a commit costs ~0.1 ms instead of an fsync.

    A crash of any process loses nothing committed; only a power loss or an OS
    crash can lose the last commits. WAL needs a local disk (not NFS), which is
    where msup's default SQLite file lives.
    """

    def pragmas(connection: Any, _: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(storage.engine, "connect", pragmas)
    storage.engine.dispose()  # connections opened before the listener get it too


def load_stored_study(storage_url: str, name: str) -> optuna.Study:
    """An existing study of the storage at ``storage_url``."""
    return optuna.load_study(study_name=name, storage=open_storage(storage_url))


def load_or_create(
    storage: BaseStorage, name: str, metric_names: list[str], sampler: optuna.samplers.BaseSampler,
) -> optuna.Study:
    """The main two-objective study (accuracy up, size down), with its metric names set."""
    study = optuna.create_study(
        study_name=name, storage=storage, directions=["maximize", "minimize"], sampler=sampler, load_if_exists=True,
    )
    if study.metric_names != metric_names:
        with warnings.catch_warnings():  # experimental since Optuna 3.2, and what optuna-dashboard reads
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(metric_names)
    return study


def count_trials(storage: BaseStorage, name: str) -> int:
    """Trials the study ``name`` already holds (0 if it does not exist yet)."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))
