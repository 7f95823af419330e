"""Fixtures for the fault tests: a private PostgreSQL cluster the test may stop and start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pgcluster import PgCluster, missing_reason


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    """A running private cluster with an empty ``intake`` database; removed afterwards."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    cluster = PgCluster()
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.destroy()
