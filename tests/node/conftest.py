"""Fixtures of the node tests: brokers (embedded, private Mosquitto) and a tidy event loop.

Every broker is private to its test and listens on a free loopback port. A missing Mosquitto
binary skips the test, unless RAFTORAL_REQUIRE_MOSQUITTO=1 (set by CI) makes it a failure:
the same policy as tests/transport/mosquitto.py.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator

import pytest

from raftoral_lab.transport.broker import EmbeddedBroker
from raftoral_lab.transport.mosquitto import MosquittoProcess, find_mosquitto
from raftoral_lab.transport.mosquitto import running_mosquitto as _running_mosquitto

from .support import NodeProcess

REQUIRE_ENV = "RAFTORAL_REQUIRE_MOSQUITTO"


def require_mosquitto() -> str:
    """The binary's path; skips the test without it, or fails when CI requires it."""
    binary = find_mosquitto()
    if binary is not None:
        return binary
    reason = "mosquitto binary not found (apt-get install mosquitto)"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires it", pytrace=False)
    pytest.skip(reason)


@contextlib.asynccontextmanager
async def running_mosquitto() -> AsyncIterator[MosquittoProcess]:
    async with _running_mosquitto(None, require_mosquitto()) as broker:
        yield broker


@pytest.fixture
async def mosquitto() -> AsyncIterator[MosquittoProcess]:
    """A private Mosquitto on a free loopback port; the test may stop and start it."""
    async with running_mosquitto() as broker:
        yield broker


@pytest.fixture
async def embedded_broker() -> AsyncIterator[EmbeddedBroker]:
    async with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture
def processes() -> Iterator[list[NodeProcess]]:
    """The test's node processes; whatever still runs at the end is killed."""
    started: list[NodeProcess] = []
    yield started
    for process in started:
        process.terminate()
