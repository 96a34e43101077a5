"""Servers shared by the whole suite (see `servers`), and no process left behind by a test or an interrupted run."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import FrameType

import pytest
import sessions
from servers import postgres_url, s3_endpoint


def pytest_configure(config: pytest.Config) -> None:
    # A time limit ends a run with SIGTERM, a closed terminal with SIGHUP: either would kill pytest
    # on the spot and leave the studies' process groups (drivers and their Ray clusters) running.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    sessions.stop_all()
    raise KeyboardInterrupt(f"{signal.Signals(signum).name} received")  # pytest tears down and reports


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test() -> Iterator[None]:
    with sessions.scope():
        yield


@pytest.fixture(scope="session")
def s3() -> Iterator[str]:
    """The endpoint of an S3-protocol server on loopback; the AWS variables point at it meanwhile."""
    yield from s3_endpoint()


@pytest.fixture(scope="session")
def postgres() -> str:
    """The URL of the PostgreSQL test server (`MSUP_TEST_POSTGRES`)."""
    return postgres_url()
