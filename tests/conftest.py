"""Servers shared by the whole suite (see `servers`): started once, skipped with the reason where missing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers import postgres_url, s3_endpoint


@pytest.fixture(scope="session")
def s3() -> Iterator[str]:
    """The endpoint of an S3-protocol server on loopback; the AWS variables point at it meanwhile."""
    yield from s3_endpoint()


@pytest.fixture(scope="session")
def postgres() -> str:
    """The URL of the PostgreSQL test server (`MSUP_TEST_POSTGRES`)."""
    return postgres_url()
