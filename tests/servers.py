"""Real servers for the tests that need them: PostgreSQL and an S3-protocol object store on loopback.

`.ci/run` starts both and sets ``MSUP_TEST_POSTGRES`` (a postgresql:// URL) and
``MSUP_TEST_S3`` (the object store's endpoint). Without ``MSUP_TEST_S3``, the
object store is started here from the ``moto`` package (its server mode), when
it is installed. A test whose server is missing is skipped with the reason.
The S3 client everywhere is pyarrow's, the one Ray Tune uses; it finds the
endpoint and credentials in the standard AWS environment variables set here.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator

import optuna
import pytest
import sessions

POSTGRES_ENV, S3_ENV = "MSUP_TEST_POSTGRES", "MSUP_TEST_S3"
S3_SETTINGS = {  # what a user sets for MinIO, Ceph or another S3 service; moto accepts any key
    "AWS_ACCESS_KEY_ID": "msup-test", "AWS_SECRET_ACCESS_KEY": "msup-test-secret", "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def postgres_url() -> str:
    """The test server's URL, or a skip that says why there is none."""
    from msup.errors import InputError
    from msup.search.state.storage import open_storage

    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set (a postgresql:// URL; .ci/run starts a local server and sets it)")
    try:
        optuna.get_all_study_names(open_storage(url))
    except InputError as exc:
        pytest.skip(f"the PostgreSQL server of {POSTGRES_ENV} does not answer: {exc}")
    return url


def s3_endpoint() -> Iterator[str]:
    """An S3 endpoint on loopback, with the AWS variables pointing at it for this process and its children."""
    endpoint, server = os.environ.get(S3_ENV), None
    if not endpoint:
        if importlib.util.find_spec("moto") is None:
            pytest.skip(f"{S3_ENV} is not set and moto is not installed (pip install 'moto[server]')")
        port = _free_port()
        server = sessions.start([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        endpoint = f"http://127.0.0.1:{port}"
    previous = {key: os.environ.get(key) for key in [*S3_SETTINGS, "AWS_ENDPOINT_URL"]}
    os.environ.update({**S3_SETTINGS, "AWS_ENDPOINT_URL": endpoint})
    try:
        if not _answers(endpoint, server):
            pytest.skip(f"the S3 server at {endpoint} does not answer")
        yield endpoint
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if server is not None:
            sessions.kill_group(server.pid)
            server.wait(timeout=30)


def new_bucket() -> str:
    """A bucket of its own for one test (the server may be shared between runs)."""
    from pyarrow import fs

    name = f"msup-test-{uuid.uuid4().hex[:12]}"
    filesystem, _ = fs.FileSystem.from_uri(f"s3://{name}?allow_bucket_creation=true")
    filesystem.create_dir(name)
    return name


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(endpoint: str, server: subprocess.Popen | None, timeout: float = 60) -> bool:
    """Wait for a server that is starting up (it is not a race: the test begins once it answers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            return False
        try:
            urllib.request.urlopen(endpoint, timeout=5).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False
