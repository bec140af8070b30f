"""A private Mosquitto: own config, own free loopback port, stoppable and restartable.

Tests, benchmarks and `raftoral-lab chaos` start their own broker this way (never the system
one on 1883) so they can also stop it to stage a broker outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from raftoral_lab.errors import TransportError

_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")


def find_mosquitto() -> str | None:
    """The mosquitto binary's path (PATH first, then the usual sbin places), or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in _CANDIDATES if os.access(p, os.X_OK)), None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class MosquittoProcess:
    """One mosquitto process on 127.0.0.1:port; `stop()`/`start()` keep the same port.

    `listener_config` is added below the listener line (e.g. `certfile ...` for TLS) and
    `config` at the end (e.g. `password_file ...`); `allow_anonymous=False` makes the broker
    ask for credentials.
    """

    def __init__(
        self,
        binary: str,
        workdir: Path,
        port: int | None = None,
        *,
        allow_anonymous: bool = True,
        listener_config: str = "",
        config: str = "",
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.allow_anonymous = allow_anonymous
        self.listener_config = listener_config
        self.config = config
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file = workdir / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _write_config(self) -> Path:
        conf = self.workdir / "mosquitto.conf"
        listener = self.listener_config.strip()
        extra = self.config.strip()
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            + (f"{listener}\n" if listener else "")
            + f"allow_anonymous {'true' if self.allow_anonymous else 'false'}\n"
            "persistence false\n"
            "set_tcp_nodelay true\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n" + (f"{extra}\n" if extra else "")
        )
        return conf

    def log_text(self) -> str:
        try:
            return self._log_file.read_text(errors="replace")
        except OSError:
            return ""

    async def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        conf = self._write_config()
        with self._log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, "-c", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self._proc.returncode} on port {self.port}:\n"
                    + self.log_text()
                )
            if _port_open(self.port):
                return
            await asyncio.sleep(0.02)
        await self.stop()
        raise RuntimeError(f"mosquitto did not open port {self.port} within {timeout} s")

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        for _ in range(250):
            if proc.poll() is not None:
                return
            await asyncio.sleep(0.02)
        proc.kill()
        proc.wait()

    async def restart(self, downtime: float = 0.0) -> None:
        await self.stop()
        if downtime:
            await asyncio.sleep(downtime)
        await self.start()


@contextlib.asynccontextmanager
async def running_mosquitto(
    port: int | None = None,
    binary: str | None = None,
    *,
    allow_anonymous: bool = True,
    listener_config: str = "",
    config: str = "",
) -> AsyncIterator[MosquittoProcess]:
    """Start a private mosquitto on a free port (retrying if the port was taken meanwhile);
    the keyword arguments are `MosquittoProcess`'s."""
    binary = binary or find_mosquitto()
    if binary is None:
        raise TransportError("mosquitto is not installed (apt-get install mosquitto)")
    with tempfile.TemporaryDirectory(prefix="raftoral-mosquitto-") as tmp:
        last: Exception | None = None
        for _ in range(3):
            broker = MosquittoProcess(
                binary,
                Path(tmp),
                port,
                allow_anonymous=allow_anonymous,
                listener_config=listener_config,
                config=config,
            )
            try:
                await broker.start()
            except RuntimeError as exc:
                last = exc
                if port is not None:
                    break
                continue
            try:
                yield broker
            finally:
                await broker.stop()
            return
        raise RuntimeError(f"could not start mosquitto: {last}")
