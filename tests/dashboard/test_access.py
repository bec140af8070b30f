"""Controls are for this machine, or for whoever has the token (issue 7 item 4).

Served off localhost, a page opened without the token gets no controls, and a control request
from its session (one the page never offered, as a crafted websocket message would be)
changes nothing: the session's controller refuses it before the cluster hears of it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import urllib.request
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from raftoral_lab.cli.demo import BackgroundLoop
from raftoral_lab.dashboard.access import NO_RIGHTS, AccessPolicy, is_local_address
from raftoral_lab.dashboard.app import Dashboard
from raftoral_lab.dashboard.controller import (
    ALL_CAPABILITIES,
    ControlUnavailable,
    GatedController,
    _Base,
)
from raftoral_lab.dashboard.model import Model
from raftoral_lab.dashboard.serve import make_dashboard, request_rights, start_server

from .support import free_port


class RecordingController(_Base):
    """Does nothing but remember what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self._capabilities = frozenset(ALL_CAPABILITIES) - {"simulator"}

    async def kill(self, node: int) -> None:
        self.calls.append(("kill", node))

    async def restart(self, node: int) -> None:
        self.calls.append(("restart", node))

    async def remove(self, node: int) -> None:
        self.calls.append(("remove", node))

    async def join(self) -> int:
        self.calls.append(("join",))
        return 9

    async def partition(self, *sides: Iterable[int]) -> None:
        self.calls.append(("partition", [sorted(s) for s in sides]))

    async def heal(self) -> None:
        self.calls.append(("heal",))

    async def set_drop_rate(self, rate: float) -> None:
        self.calls.append(("drop_rate", rate))

    async def set_delay(self, low: float, high: float | None = None) -> None:
        self.calls.append(("delay", low, high))

    async def set_tick(self, seconds: float) -> None:
        self.calls.append(("tick", seconds))

    async def propose(self, data: bytes, node: int | None = None) -> object:
        self.calls.append(("propose", data, node))
        return 1

    def workflow_names(self) -> list[tuple[str, int]]:
        return [("checkout", 1)]

    async def start_workflow(self, name: str, version: int, input: Any) -> str:
        self.calls.append(("start_workflow", name, version, input))
        return "w1"


class FakeRequest:
    def __init__(self, remote_ip: str, token: str | None = None) -> None:
        self.remote_ip = remote_ip
        self.arguments = {"token": [token.encode()]} if token is not None else {}


async def every_control(controller: Any) -> list[str]:
    """Send every kind of control request; the refusals, by name."""
    refused = []
    calls = {
        "kill": lambda: controller.kill(1),
        "restart": lambda: controller.restart(1),
        "remove": lambda: controller.remove(1),
        "join": lambda: controller.join(),
        "partition": lambda: controller.partition([1], [2, 3]),
        "heal": lambda: controller.heal(),
        "drop_rate": lambda: controller.set_drop_rate(0.5),
        "delay": lambda: controller.set_delay(0.1, 0.2),
        "tick": lambda: controller.set_tick(0.5),
        "propose": lambda: controller.propose(b"x"),
        "workflows": lambda: controller.start_workflow("checkout", 1, {}),
    }
    for name, call in calls.items():
        try:
            await call()
        except ControlUnavailable:
            refused.append(name)
    return refused


def test_the_policy_binds_controls_to_this_machine_unless_a_token_is_given() -> None:
    assert is_local_address(None) and is_local_address("127.0.0.1") and is_local_address("::1")
    assert not is_local_address("0.0.0.0") and not is_local_address("192.0.2.7")
    local = AccessPolicy.for_address("127.0.0.1")
    assert local.token is None
    assert local.allows(token=None, remote_ip="127.0.0.1")
    assert not local.allows(token=None, remote_ip="192.0.2.7")
    assert not local.allows(token="guess", remote_ip="192.0.2.7")
    served = AccessPolicy.for_address("0.0.0.0")
    assert served.token and len(served.token) >= 20
    assert served.token != AccessPolicy.for_address("0.0.0.0").token  # fresh each time
    assert not served.allows(token=None, remote_ip="192.0.2.7")
    assert not served.allows(token="x" + served.token, remote_ip="192.0.2.7")
    assert served.allows(token=served.token, remote_ip="192.0.2.7")
    assert served.url("http://host:5006/").endswith(f"?token={served.token}")
    assert request_rights(served, FakeRequest("192.0.2.7")) is False
    assert request_rights(served, FakeRequest("192.0.2.7", served.token)) is True
    assert request_rights(served, FakeRequest("127.0.0.1")) is True
    assert request_rights(served, None) is True  # a notebook: no request, the kernel's user


async def test_a_session_without_the_token_changes_nothing() -> None:
    inner = RecordingController()
    gate = GatedController(inner, lambda: False, NO_RIGHTS)
    assert gate.capabilities == frozenset()
    refused = await every_control(gate)
    assert set(refused) == (set(ALL_CAPABILITIES) - {"simulator"}) | {"heal"}
    assert inner.calls == [] and gate.refused == len(refused)
    open_gate = GatedController(inner, lambda: True, NO_RIGHTS)
    assert await every_control(open_gate) == []
    assert len(inner.calls) == 11


def test_a_page_without_rights_draws_no_controls() -> None:
    inner = RecordingController()
    locked = make_dashboard(Model(), inner, allowed=False)
    opened = make_dashboard(Model(), inner, allowed=True)
    try:
        assert locked.controls.caps == frozenset()
        assert not hasattr(locked.controls, "join_button")
        assert "Controls locked" in str(locked.controls.__panel__().objects[-1].object)
        assert opened.controls.caps and hasattr(opened.controls, "join_button")
    finally:
        locked.stop()
        opened.stop()


def lan_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
            address = str(s.getsockname()[0])
        except OSError:
            return None
    return None if ipaddress.ip_address(address).is_loopback else address


@pytest.fixture
def served_off_localhost() -> Iterator[tuple[str, AccessPolicy, RecordingController, list[Any]]]:
    address = lan_address()
    if address is None:
        pytest.skip("this machine has no address but loopback to reach the server from")
    inner = RecordingController()
    policy = AccessPolicy.for_address("0.0.0.0")
    made: list[Dashboard] = []
    background = BackgroundLoop("test-dashboard-server")
    background.start()
    port = free_port()

    def factory() -> Dashboard:
        from raftoral_lab.dashboard.serve import current_request

        dashboard = make_dashboard(Model(), inner, request_rights(policy, current_request()))
        made.append(dashboard)
        return dashboard

    async def serve() -> Any:
        return start_server(factory, port=port, address="0.0.0.0")

    server = background.call(serve(), 30)
    try:
        yield f"http://{address}:{port}/", policy, inner, made
    finally:

        async def stop() -> None:
            server.stop()

        background.call(stop(), 10)
        background.close()


def test_served_off_localhost_a_request_without_the_token_changes_nothing(
    served_off_localhost: tuple[str, AccessPolicy, RecordingController, list[Dashboard]],
) -> None:
    url, policy, inner, made = served_off_localhost
    with urllib.request.urlopen(url, timeout=30) as reply:
        page = reply.read().decode()
    assert reply.status == 200 and "raftoral-lab" in page
    stranger = made[-1]
    assert stranger.controller.capabilities == frozenset()
    loop = asyncio.new_event_loop()
    try:
        refused = loop.run_until_complete(every_control(stranger.controller))
    finally:
        loop.close()
    assert set(refused) == (set(ALL_CAPABILITIES) - {"simulator"}) | {"heal"}
    assert inner.calls == []  # nothing reached the cluster

    assert policy.token is not None
    with urllib.request.urlopen(policy.url(url), timeout=30) as reply:
        assert reply.status == 200
    trusted = made[-1]
    assert trusted is not stranger and "kill" in trusted.controller.capabilities
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(trusted.controller.kill(2))
    finally:
        loop.close()
    assert inner.calls == [("kill", 2)]
