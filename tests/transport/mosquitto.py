"""The private Mosquitto of the tests, with the skip-or-fail policy of CI.

The broker itself is product code (`raftoral_lab.transport.mosquitto`); here a missing binary
skips the test, unless RAFTORAL_REQUIRE_MOSQUITTO=1 (set by CI) makes that a failure.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import pytest

from raftoral_lab.transport.mosquitto import (
    MosquittoProcess,
    find_mosquitto,
    free_port,
)
from raftoral_lab.transport.mosquitto import running_mosquitto as _running

REQUIRE_ENV = "RAFTORAL_REQUIRE_MOSQUITTO"

__all__ = [
    "MosquittoProcess",
    "find_mosquitto",
    "free_port",
    "require_mosquitto",
    "running_mosquitto",
]


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
async def running_mosquitto(port: int | None = None) -> AsyncIterator[MosquittoProcess]:
    async with _running(port, require_mosquitto()) as broker:
        yield broker
