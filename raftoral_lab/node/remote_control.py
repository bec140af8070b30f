"""RemoteController: the dashboard's `Controller` protocol over MQTT, for a remote cluster.

Faults travel as control messages on `node/{id}/control` (see `raftoral_lab.node.control`):
a kill is `{"op": "crash"}`, a partition is one `{"op": "partition", "blocked": [...]}` per
node (each node drops what comes from the other side), a heal, a drop rate or a delay go to
every node. Membership goes through the leader as a request on `node/{id}/rpc`, as
`raftoral-lab status` does; writes too.

What cannot be done from afar says why (`unavailable`): a crashed node process must be started
again where it ran, a new node is a new process, and a node's tick length is set when it
starts. This module implements the protocol structurally (the node layer may not import the
dashboard, DESIGN.md section 2); `raftoral_lab.dashboard.controller.Controller` names it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from raftoral_lab.core import ConfChangeOp
from raftoral_lab.errors import ConfigError, RaftoralError
from raftoral_lab.node.client import ClusterClient
from raftoral_lab.node.control import CONTROL_VERSION
from raftoral_lab.transport.base import Transport


class RemoteControlError(RaftoralError):
    """A control the remote cluster cannot carry out from here (the reason says why)."""


CAPABILITIES = frozenset({"kill", "remove", "partition", "drop_rate", "delay", "propose"})
UNAVAILABLE = {
    "restart": "a crashed node process must be started again on its machine "
    "(raftoral-lab node ... with the same --data-dir)",
    "join": "a new node is a new process: run `raftoral-lab node --join` where it should run",
    "tick": "node processes set their tick length when they start (--tick)",
    "workflows": "starting workflows remotely is `raftoral-lab run NAME ...`",
    "simulator": "a live cluster runs in real time",
}


class RemoteController:
    """Controls a cluster through its broker. `transport` is a client transport of the
    cluster (`presence=False`); `start()` / `close()` or `async with`."""

    time_unit: Literal["s", "tick"] = "s"

    def __init__(
        self, transport: Transport, *, request_timeout: float = 10.0, qos: int = 1
    ) -> None:
        self.client = ClusterClient(transport)
        self.transport = transport
        self.request_timeout = request_timeout
        self.qos = qos
        self.sent: list[tuple[int, dict[str, Any]]] = []
        """Every control sent, (node, body), oldest first (for the curious and for tests)."""
        self.extra_nodes: set[int] = set()
        """Nodes known from elsewhere (the dashboard's events) besides presence."""

    async def start(self) -> None:
        await self.client.start()

    async def close(self) -> None:
        await self.client.close()

    async def __aenter__(self) -> RemoteController:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- the protocol --------------------------------------------------------------------------

    @property
    def capabilities(self) -> frozenset[str]:
        return CAPABILITIES

    @property
    def unavailable(self) -> Mapping[str, str]:
        return UNAVAILABLE

    def nodes(self) -> list[int]:
        """Nodes to send cluster-wide controls to: those presence says are alive."""
        return sorted(set(self.client.alive()) | self.extra_nodes)

    async def _control(self, node: int, body: dict[str, Any]) -> None:
        message = {"v": CONTROL_VERSION, **body}
        await self.transport.publish(f"node/{node}/control", json.dumps(message), qos=self.qos)
        self.sent.append((node, message))

    async def kill(self, node: int) -> None:
        await self._control(node, {"op": "crash"})

    async def restart(self, node: int) -> None:
        raise RemoteControlError(f"restart n{node}: {UNAVAILABLE['restart']}")

    async def remove(self, node: int) -> None:
        await self.client.request(
            "membership",
            timeout=self.request_timeout,
            change=ConfChangeOp.REMOVE.value,
            node=node,
        )

    async def join(self) -> int:
        raise RemoteControlError(f"join: {UNAVAILABLE['join']}")

    async def partition(self, *sides: Iterable[int]) -> None:
        groups = [set(side) for side in sides]
        named: set[int] = set()
        for side in groups:
            if side & named:
                raise ConfigError(f"node(s) {sorted(side & named)} appear in two partition sides")
            named |= side
        every = set(self.nodes()) | named
        groups += [{n} for n in sorted(every - named)]
        for side in groups:
            for node in sorted(side):
                await self._control(node, {"op": "partition", "blocked": sorted(every - side)})

    async def heal(self) -> None:
        for node in self.nodes():
            await self._control(node, {"op": "heal"})

    async def set_drop_rate(self, rate: float) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"a drop rate is between 0 and 1, got {rate}")
        for node in self.nodes():
            await self._control(node, {"op": "drop_rate", "rate": float(rate)})

    async def set_delay(self, low: float, high: float | None = None) -> None:
        for node in self.nodes():
            await self._control(
                node,
                {"op": "delay", "low": float(low), "high": None if high is None else float(high)},
            )

    async def set_tick(self, seconds: float) -> None:
        raise RemoteControlError(f"tick: {UNAVAILABLE['tick']}")

    async def propose(self, data: bytes, node: int | None = None) -> object:
        if node is not None:
            raise RemoteControlError("remote writes go to the leader; choose 'leader'")
        return await self.client.propose(data, timeout=self.request_timeout)

    def workflow_names(self) -> Sequence[tuple[str, int]]:
        return []

    def workflow_example(self, name: str, version: int) -> str:
        return ""

    async def start_workflow(self, name: str, version: int, input: Any) -> str:
        raise RemoteControlError(f"start workflow: {UNAVAILABLE['workflows']}")

    def workflow_results(self) -> Mapping[str, str]:
        return {}
