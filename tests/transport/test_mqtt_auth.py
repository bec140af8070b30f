"""MQTT credentials and TLS, end to end against a private Mosquitto.

A broker with a password file lets the right user in and refuses the rest; the transport says
so at once (a TransportError naming the cause, never the password) instead of retrying until
its connect timeout. A TLS listener with a private CA works with `tls_ca_file` (or a context),
and an unknown certificate fails at once, saying so. Signing rides on top unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from raftoral_lab.core.messages import Heartbeat, Message
from raftoral_lab.errors import ConfigError, TransportError
from raftoral_lab.transport.mosquitto import MosquittoProcess
from raftoral_lab.transport.mosquitto import running_mosquitto as _running
from raftoral_lab.transport.mqtt import MqttTransport

from .mosquitto import require_mosquitto

pytestmark = pytest.mark.mosquitto

USER, PASSWORD = "teacher", "correct horse battery staple"
SECRET = "9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a49"


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A directory Mosquitto can read after dropping root privileges (it runs as `mosquitto`
    when started as root, and pytest's own temporary directories are private)."""
    path = Path(tempfile.mkdtemp(prefix="raftoral-auth-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _readable(*files: Path) -> None:
    for f in files:
        f.chmod(0o644)  # throwaway test material only


@contextlib.asynccontextmanager
async def broker_with_passwords(workdir: Path) -> AsyncIterator[MosquittoProcess]:
    binary = require_mosquitto()
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not os.access(tool, os.X_OK):
        pytest.skip("mosquitto_passwd not found")
    passwords = workdir / "passwords"
    subprocess.run([tool, "-c", "-b", str(passwords), USER, PASSWORD], check=True)
    _readable(passwords)
    async with _running(
        None, binary, allow_anonymous=False, config=f"password_file {passwords}"
    ) as broker:
        yield broker


def transport(node: int, url: str, **kw: Any) -> MqttTransport:
    kw.setdefault("backoff_initial", 0.05)
    kw.setdefault("backoff_max", 0.5)
    kw.setdefault("connect_timeout", 30.0)  # long: a refusal must not wait for it
    return MqttTransport(node, "lab", url, **kw)


async def exchange(a: MqttTransport, b: MqttTransport) -> None:
    """a sends b one heartbeat and b gets it (and a topic message)."""
    got: list[Message] = []
    topics: list[bytes] = []
    b.on_message = got.append

    def on_topic(_topic: str, payload: bytes) -> None:
        topics.append(payload)

    await b.subscribe("events/+", on_topic)
    a.send([Heartbeat(0, a.node_id, b.node_id, 1, 0)])
    await a.publish(f"events/{a.node_id}", '{"hello":1}')
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not (got and topics):
        assert loop.time() < deadline, "nothing arrived"
        await asyncio.sleep(0.02)
    assert got == [Heartbeat(0, a.node_id, b.node_id, 1, 0)] and topics == [b'{"hello":1}']


async def refused_quickly(t: MqttTransport) -> str:
    started = time.monotonic()
    with pytest.raises(TransportError) as info:
        await t.start()
    assert time.monotonic() - started < 5.0, "a refusal must not wait for connect_timeout"
    assert not t.running
    return str(info.value)


# --- user name and password --------------------------------------------------------------------


async def test_the_right_credentials_connect_and_carry_signed_traffic(
    world_readable_dir: Path,
) -> None:
    async with broker_with_passwords(world_readable_dir) as broker:
        a = transport(1, broker.url, username=USER, password=PASSWORD, secret=SECRET)
        b = transport(2, broker.url, username=USER, password=PASSWORD, secret=SECRET)
        async with a, b:
            await exchange(a, b)
            assert b.stats.dropped_total == 0


async def test_credentials_in_the_url_work_too(world_readable_dir: Path) -> None:
    async with broker_with_passwords(world_readable_dir) as broker:
        url = f"mqtt://{USER}:{PASSWORD.replace(' ', '%20')}@127.0.0.1:{broker.port}"
        a, b = transport(1, url), transport(2, url)
        async with a, b:
            await exchange(a, b)
        assert PASSWORD not in a.broker_url and PASSWORD not in repr(a)


@pytest.mark.parametrize(
    ("username", "password", "who"),
    [
        (USER, "wrong password", f"user name {USER!r}"),
        ("intruder", PASSWORD, "user name 'intruder'"),
        (None, None, "no user name"),
    ],
)
async def test_wrong_credentials_fail_at_once_and_say_so(
    world_readable_dir: Path, username: str | None, password: str | None, who: str
) -> None:
    async with broker_with_passwords(world_readable_dir) as broker:
        text = await refused_quickly(transport(1, broker.url, username=username, password=password))
    assert "refused the credentials" in text and who in text, text
    assert "--password" in text and "$RAFTORAL_MQTT_PASSWORD" in text
    assert PASSWORD not in text and "wrong password" not in text


async def test_a_refusal_after_a_good_start_is_retried_not_fatal(
    world_readable_dir: Path,
) -> None:
    """Credentials that worked once may work again (the teacher fixes the password file):
    later refusals are logged and retried, never a crash."""
    async with broker_with_passwords(world_readable_dir) as broker:
        t = transport(1, broker.url, username=USER, password=PASSWORD)
        async with t:
            (world_readable_dir / "passwords").write_text("")
            await broker.restart()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while "refused the credentials" not in (t.last_error or ""):
                assert loop.time() < deadline, t.last_error
                await asyncio.sleep(0.05)
            assert t.running and not t.connected


# --- TLS ---------------------------------------------------------------------------------------


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture
def certificates(world_readable_dir: Path) -> dict[str, Path]:
    """A private CA and a server certificate for 127.0.0.1, made with the openssl tool."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not found")
    d = world_readable_dir
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=raftoral test CA", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"),
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"),
    )  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "x509", "-req", "-days", "2", "-in", str(d / "server.csr"), "-CA", str(d / "ca.crt"),
        "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "server.crt"),
        "-extfile", str(d / "san.ext"),
    )  # fmt: skip
    files = {name: d / f"{name}" for name in ("ca.crt", "server.crt", "server.key")}
    _readable(*files.values())
    return files


@contextlib.asynccontextmanager
async def tls_broker(certs: dict[str, Path]) -> AsyncIterator[MosquittoProcess]:
    listener = (
        f"cafile {certs['ca.crt']}\ncertfile {certs['server.crt']}\nkeyfile {certs['server.key']}"
    )
    async with _running(None, require_mosquitto(), listener_config=listener) as broker:
        yield broker


async def test_tls_with_the_private_ca_works(certificates: dict[str, Path]) -> None:
    async with tls_broker(certificates) as broker:
        url = f"mqtts://127.0.0.1:{broker.port}"
        a = transport(1, url, tls_ca_file=certificates["ca.crt"], secret=SECRET)
        context = ssl.create_default_context(cafile=str(certificates["ca.crt"]))
        b = transport(2, f"mqtt://127.0.0.1:{broker.port}", tls=context, secret=SECRET)
        async with a, b:
            await exchange(a, b)


async def test_an_unknown_certificate_fails_at_once_and_says_so(
    certificates: dict[str, Path],
) -> None:
    async with tls_broker(certificates) as broker:
        text = await refused_quickly(transport(1, f"mqtts://127.0.0.1:{broker.port}"))
    assert "TLS certificate was not accepted" in text and "tls_ca_file" in text, text


def test_tls_options_are_checked_up_front(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CA file"):
        MqttTransport(1, tls_ca_file=tmp_path / "missing.crt")
    with pytest.raises(ConfigError, match="not both"):
        MqttTransport(1, tls=ssl.create_default_context(), tls_ca_file=tmp_path / "x.crt")
