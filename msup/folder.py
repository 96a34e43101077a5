"""A study folder that is a local directory or a prefix in object storage (``s3://``, ``gs://``).

Clusters without a shared file system keep their studies in object storage; the
same code reads and writes both kinds through pyarrow's file systems (the ones
Ray Tune uses for its ``storage_path``). Credentials and endpoints come from the
client library's own environment variables and config files (for S3:
``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL``, ...); msup stores
none, and `Folder.shown` hides any written into a URI.

Writes are whole-file and atomic: a local file is written beside its place and
renamed over it; an object store makes an object visible only once it is
complete. There are no directories in object storage, so creating one is a no-op.
"""

from __future__ import annotations

import os
import re
import shutil
from os import PathLike
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from msup.errors import first_line

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class FolderError(Exception):
    """A folder that cannot be reached or read: the message says which and why, without credentials."""


def is_uri(location: str | PathLike[str]) -> bool:
    """True for an object-store URI (``s3://bucket/prefix``); a ``file://`` URI is a local path."""
    text = str(location)
    return bool(_URI.match(text)) and not text.startswith("file://")


def hide_credentials(uri: str) -> str:
    """``uri`` without a user or password written into it (``s3://KEY:SECRET@bucket`` -> ``s3://bucket``)."""
    if not is_uri(uri):
        return uri
    parts = urlsplit(uri)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def split_file(location: str) -> tuple[Folder, str]:
    """The folder of a file's location (a path or URI, options kept) and the file's name."""
    if is_uri(location):
        parts = urlsplit(location)
        head, _, name = parts.path.rpartition("/")
        return Folder(urlunsplit((parts.scheme, parts.netloc, head, parts.query, ""))), name
    path = Path(location)
    return Folder(path.parent), path.name


class Folder:
    """A local directory or an object-store prefix; children are named by ``/``.

    A folder and every folder made from it by ``/`` share one file system
    client, opened on first use (for S3, opening one can cost a request).
    """

    def __init__(self, location: str | PathLike[str] | Folder) -> None:
        if isinstance(location, Folder):
            self.__dict__.update(location.__dict__)
            return
        text = str(location)
        if text.startswith("file://"):
            text = text[len("file://"):]
        if is_uri(text):
            parts = urlsplit(text)
            self._base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
            self._query = parts.query  # pyarrow's options (endpoint_override=...), kept on every child
        else:
            self._base, self._query = os.path.abspath(text), ""
        self._client = _Client(self.uri if self.is_remote else None)
        self._relative = ""  # below the folder the client was opened for

    @property
    def is_remote(self) -> bool:
        return is_uri(self._base)

    @property
    def uri(self) -> str:
        """What Ray Tune and pyarrow are given: an absolute local path, or the URI with its options."""
        return f"{self._base}?{self._query}" if self._query else self._base

    @property
    def shown(self) -> str:
        """The location for messages and tables: no credentials, no options."""
        return hide_credentials(self._base)

    @property
    def name(self) -> str:
        return self._base.rstrip("/").rsplit("/", 1)[-1]

    @property
    def local(self) -> Path | None:
        """The directory on this machine, or None for object storage."""
        return None if self.is_remote else Path(self._base)

    def __truediv__(self, name: str) -> Folder:
        child = Folder.__new__(Folder)
        child._base, child._query, child._client = f"{self._base}/{name}", self._query, self._client
        child._relative = f"{self._relative}/{name}" if self._relative else name
        return child

    def __str__(self) -> str:
        return self.shown

    def __repr__(self) -> str:
        return f"Folder({self.shown!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Folder) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def file_uri(self, name: str) -> str:
        """The location of one file in the folder, in the form `Folder` accepts."""
        return (self / name).uri

    # --- reading -------------------------------------------------------------------------

    def exists(self, name: str = "") -> bool:
        return self._info(name).type.name != "NotFound"

    def is_file(self, name: str) -> bool:
        return self._info(name).type.name == "File"

    def read_bytes(self, name: str) -> bytes:
        try:
            with self._filesystem().open_input_stream(self._path(name)) as stream:
                return stream.read()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise self._error(f"cannot read {name}", exc) from None

    def read_text(self, name: str) -> str:
        return self.read_bytes(name).decode("utf-8")

    def children(self) -> list[str]:
        """Names of the files and folders directly inside (none if the folder does not exist)."""
        from pyarrow import fs

        try:
            infos = self._filesystem().get_file_info(fs.FileSelector(self._path(""), allow_not_found=True))
        except OSError as exc:
            raise self._error("cannot list it", exc) from None
        return sorted(info.base_name for info in infos)

    def download(self, name: str, target: Path) -> Path:
        """Copy one file of the folder to ``target`` on this machine."""
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.local is not None:
            shutil.copyfile(self.local / name, target)
            return target
        try:
            with self._filesystem().open_input_stream(self._path(name)) as stream, open(target, "wb") as out:
                shutil.copyfileobj(stream, out, 1 << 20)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise self._error(f"cannot download {name}", exc) from None
        return target

    # --- writing -------------------------------------------------------------------------

    def make(self) -> None:
        """Create the local directory (object storage needs none)."""
        if self.local is not None:
            self.local.mkdir(parents=True, exist_ok=True)

    def write_bytes(self, name: str, data: bytes) -> str:
        """Write one whole file atomically; returns its location."""
        if self.local is not None:
            target = self.local / name
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f"{target.name}.partial")
            partial.write_bytes(data)
            partial.replace(target)
            return str(target)
        try:
            with self._filesystem().open_output_stream(self._path(name)) as stream:
                stream.write(data)
        except OSError as exc:
            raise self._error(f"cannot write {name}", exc) from None
        return self.file_uri(name)

    def write_text(self, name: str, text: str) -> str:
        return self.write_bytes(name, text.encode("utf-8"))

    def upload(self, source: Path, name: str) -> str:
        """Copy the local file ``source`` into the folder as ``name``, atomically; returns its location."""
        if self.local is not None and (self.local / name).resolve() == source.resolve():
            return str(source)
        if self.local is not None:
            target = self.local / name
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f"{target.name}.partial")
            shutil.copyfile(source, partial)
            partial.replace(target)
            return str(target)
        try:
            with open(source, "rb") as data, self._filesystem().open_output_stream(self._path(name)) as stream:
                shutil.copyfileobj(data, stream, 1 << 20)
        except OSError as exc:
            raise self._error(f"cannot write {name}", exc) from None
        return self.file_uri(name)

    # --- internals -----------------------------------------------------------------------

    def _filesystem(self) -> Any:
        """The folder tree's pyarrow.fs.FileSystem."""
        try:
            return self._client.open()[0]
        except (OSError, ValueError) as exc:  # unknown scheme, a file system pyarrow was built without
            raise self._error("cannot open it", exc) from None

    def _path(self, name: str) -> str:
        """The path of ``name`` in the file system's own terms (``bucket/prefix/...``, or an absolute path)."""
        if self.local is not None:
            return str(self.local / name) if name else str(self.local)
        _, root = self._client.open()
        return "/".join(part for part in (root, self._relative, name) if part)

    def _info(self, name: str) -> Any:
        """pyarrow.fs.FileInfo of ``name``."""
        try:
            return self._filesystem().get_file_info(self._path(name))
        except OSError as exc:
            raise self._error("cannot reach it", exc) from None

    def _error(self, what: str, exc: BaseException) -> FolderError:
        reason = first_line(exc)
        return FolderError(f"{self.shown}: {what} ({reason})")


class _Client:
    """The pyarrow file system of one folder tree, opened once, when first needed."""

    def __init__(self, uri: str | None) -> None:
        self._uri = uri  # None: the local file system
        self._opened: tuple[Any, str] | None = None

    def open(self) -> tuple[Any, str]:
        """(pyarrow.fs.FileSystem, the folder tree's root path in it)."""
        if self._opened is None:
            from pyarrow import fs

            self._opened = fs.FileSystem.from_uri(self._uri) if self._uri else (fs.LocalFileSystem(), "")
        return self._opened
