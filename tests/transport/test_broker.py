"""EmbeddedBroker: an amqtt broker on loopback that tests (and the Lab) start and stop."""

from __future__ import annotations

import logging
import socket

import aiomqtt
import pytest

from raftoral_lab.errors import ConfigError, TransportError
from raftoral_lab.transport.broker import EmbeddedBroker


async def test_start_gives_a_loopback_url_and_accepts_clients() -> None:
    broker = EmbeddedBroker()
    with pytest.raises(TransportError, match="no port before"):
        _ = broker.url
    async with broker:
        assert broker.running
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        async with aiomqtt.Client("127.0.0.1", broker.port) as client:
            await client.subscribe("t/#")
            await client.publish("t/1", b"hi")
            async for msg in client.messages:
                assert msg.payload == b"hi"
                break
    assert not broker.running


async def test_restart_keeps_the_port() -> None:
    broker = EmbeddedBroker()
    await broker.start()
    port = broker.port
    await broker.stop()
    await broker.stop()  # idempotent
    await broker.start()
    try:
        assert broker.port == port
        async with aiomqtt.Client("127.0.0.1", port):
            pass
    finally:
        await broker.stop()


async def test_busy_port_is_a_transport_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(TransportError, match=f"could not listen on 127.0.0.1:{port}"):
            await EmbeddedBroker(port=port).start()


async def test_amqtt_logging_is_quiet_by_default() -> None:
    logging.getLogger("amqtt").setLevel(logging.NOTSET)
    async with EmbeddedBroker():
        assert logging.getLogger("amqtt").level == logging.WARNING


@pytest.mark.parametrize("port", [-1, 70000, "1883", True])
def test_bad_port_is_a_config_error(port: object) -> None:
    with pytest.raises(ConfigError, match=r"0\.\.65535"):
        EmbeddedBroker(port=port)  # type: ignore[arg-type]
