"""Fixtures of the workflow tests: clusters that are always closed, whatever the test did."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from .support import WorkflowCluster

ClusterFactory = Callable[..., Awaitable[WorkflowCluster]]


@pytest.fixture
async def make_cluster() -> AsyncIterator[ClusterFactory]:
    """`await make_cluster(3, app, apps={3: other_app}, compact_every=20)`: a started cluster
    with a leader and every runtime registered."""
    clusters: list[WorkflowCluster] = []

    async def make(*args: Any, **kwargs: Any) -> WorkflowCluster:
        cluster = WorkflowCluster(*args, **kwargs)
        clusters.append(cluster)
        await cluster.start()
        return cluster

    yield make
    for cluster in clusters:
        await cluster.close()
