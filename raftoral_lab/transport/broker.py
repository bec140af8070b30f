"""An MQTT broker inside the Python process (amqtt), so `pip install` and go needs no Mosquitto.

amqtt speaks MQTT 3.1.1 only, which is all the wire protocol uses. Its `Broker` must be built
inside the running loop (it captures the loop at construction), and its default plugin set
includes $SYS publishing and packet logging we do not want: we pass only anonymous auth.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any, Self

from raftoral_lab.errors import ConfigError, TransportError

_NOISY_LOGGERS = ("amqtt", "transitions")


def _silence_amqtt() -> None:
    """amqtt logs every connection at INFO (and some normal disconnects as errors)."""
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


class EmbeddedBroker:
    """An amqtt broker on `host:port` (port 0: a free one, fixed after the first start).

    `stop()` then `start()` restarts it on the same port, which is how tests take the broker
    away and bring it back. Retained messages do not survive a restart (amqtt keeps them in
    memory only), just like a Mosquitto without persistence.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True) -> None:
        if not isinstance(host, str) or not host:
            raise ConfigError(f"broker host must be a non-empty string, got {host!r}")
        if type(port) is not int or not 0 <= port <= 65535:
            raise ConfigError(f"broker port must be in 0..65535 (0 picks a free one), got {port!r}")
        self.host = host
        self._port = port
        self.quiet = quiet
        self._broker: Any = None  # amqtt.broker.Broker; amqtt ships no type hints we rely on

    @property
    def port(self) -> int:
        if self._port == 0:
            raise TransportError("the embedded broker has no port before its first start()")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtt://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._broker is not None

    def _config(self) -> dict[str, Any]:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{self._port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }

    async def start(self) -> None:
        if self._broker is not None:
            return
        if self.quiet:
            _silence_amqtt()
        # imported late: amqtt pulls in a lot; it ships no type information (no py.typed)
        from amqtt.broker import Broker  # type: ignore[import-untyped]

        asyncio.get_running_loop()  # Broker() captures the running loop: fail clearly if none
        broker = Broker(self._config())
        try:
            await broker.start()
        except Exception as exc:
            raise TransportError(
                f"embedded MQTT broker could not listen on {self.host}:{self._port}: {exc}"
            ) from exc
        if self._port == 0:
            self._port = self._bound_port(broker)
        self._broker = broker

    @staticmethod
    def _bound_port(broker: Any) -> int:
        # amqtt exposes no public accessor for the bound address; its server list has it
        try:
            server = broker._servers["default"].instance
            return int(server.sockets[0].getsockname()[1])
        except (AttributeError, KeyError, IndexError) as exc:
            raise TransportError(
                f"cannot tell which port the embedded broker bound: {exc}"
            ) from exc

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        where = f"{self.host}:{self._port}" if self._port else self.host
        return f"EmbeddedBroker({where}, {'running' if self.running else 'stopped'})"
