"""Broker fixtures for the transport tests: each test gets its own broker on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import pytest

from raftoral_lab.transport.broker import EmbeddedBroker

from .mosquitto import MosquittoProcess, running_mosquitto


class Broker(Protocol):
    """What the MQTT tests need of a broker: where it is, and a way to stop and restart it."""

    @property
    def url(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@pytest.fixture
async def embedded_broker() -> AsyncIterator[EmbeddedBroker]:
    async with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture
async def mosquitto_broker() -> AsyncIterator[MosquittoProcess]:
    async with running_mosquitto() as broker:
        yield broker


@pytest.fixture(params=["embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)])
def broker(request: pytest.FixtureRequest) -> Broker:
    """Each MQTT test runs against both brokers (`-m "not mosquitto"` keeps the embedded one)."""
    if request.param == "mosquitto":
        return request.getfixturevalue("mosquitto_broker")  # type: ignore[no-any-return]
    return request.getfixturevalue("embedded_broker")  # type: ignore[no-any-return]
