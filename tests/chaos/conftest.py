"""Fixtures of the chaos tests: a private Mosquitto the test starts (and the run restarts).

A missing Mosquitto binary skips a test only when RAFTORAL_REQUIRE_MOSQUITTO is not set; CI
sets it, and then a missing binary is a failure (as in tests/node and tests/transport).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from raftoral_lab.transport.mosquitto import MosquittoProcess, find_mosquitto, running_mosquitto

REQUIRE_ENV = "RAFTORAL_REQUIRE_MOSQUITTO"


def require_mosquitto() -> str:
    binary = find_mosquitto()
    if binary is not None:
        return binary
    reason = "mosquitto binary not found (apt-get install mosquitto)"
    if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
        pytest.fail(f"{reason}, and {REQUIRE_ENV} is set: it is required", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
async def mosquitto() -> AsyncIterator[MosquittoProcess]:
    """A private Mosquitto on a free loopback port, started by the test."""
    async with running_mosquitto(None, require_mosquitto()) as broker:
        yield broker
