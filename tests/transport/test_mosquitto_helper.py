"""The private-Mosquitto helper: skip without the binary, fail instead when CI requires it."""

from __future__ import annotations

import pytest

from . import mosquitto


def test_missing_binary_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mosquitto, "find_mosquitto", lambda: None)
    monkeypatch.delenv(mosquitto.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="mosquitto binary not found"):
        mosquitto.require_mosquitto()


def test_missing_binary_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mosquitto, "find_mosquitto", lambda: None)
    monkeypatch.setenv(mosquitto.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="RAFTORAL_REQUIRE_MOSQUITTO=1 requires it"):
        mosquitto.require_mosquitto()


@pytest.mark.mosquitto
async def test_private_broker_uses_its_own_loopback_port_and_restarts() -> None:
    async with mosquitto.running_mosquitto() as broker:
        assert broker.port != 1883 and broker.url.startswith("mqtt://127.0.0.1:")
        assert broker.running
        await broker.restart(downtime=0.1)
        assert broker.running
        await broker.stop()
        assert not broker.running
        assert "Error" not in broker.log_text()
