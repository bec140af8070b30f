"""Talking to a cluster from outside it: find the nodes on `presence/+`, then send requests.

Used by `raftoral-lab status`, by a node process that joins, and by benchmarks. A client has
an id of its own only for its reply topic; it announces no presence and leaves no last will.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from types import TracebackType
from typing import Any, Self

from raftoral_lab.errors import MalformedMessage, NodeError, ProposalTimeout
from raftoral_lab.node.rpc import RpcClient, load_json_object, payload_limit
from raftoral_lab.transport.base import PRESENCE_VERSION, Transport
from raftoral_lab.transport.topics import parse_suffix, reply_suffix

CLIENT_ID_BASE = 1_000_000_000
"""Client ids live above this, far from node ids, so their reply topics never collide."""


def client_id() -> int:
    return CLIENT_ID_BASE + random.SystemRandom().randrange(CLIENT_ID_BASE)


class ClusterClient:
    def __init__(self, transport: Transport) -> None:
        if transport.presence:
            raise NodeError("a cluster client's transport must be created with presence=False")
        self.transport = transport
        self.rpc = RpcClient(
            transport, reply_suffix(transport.node_id), on_malformed=self._count_malformed
        )
        self.presence: dict[int, dict[str, Any]] = {}
        self.malformed = 0
        """Refused payloads (presence documents and replies); `last_malformed` says why."""
        self.last_malformed: str | None = None

    async def start(self) -> None:
        if not self.transport.running:
            await self.transport.start()
        await self.transport.subscribe("presence/+", self._on_presence)
        await self.rpc.start()

    async def close(self) -> None:
        self.rpc.close("client closed")
        await self.transport.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def alive(self) -> list[int]:
        """Nodes whose presence says alive, lowest id first."""
        return sorted(n for n, doc in self.presence.items() if doc.get("alive"))

    async def discover(self, *, timeout: float = 5.0, settle: float = 0.3) -> list[int]:
        """Wait until at least one live node is known (then a little longer for the others)."""
        deadline = time.monotonic() + timeout
        while not self.alive():
            if time.monotonic() > deadline:
                raise NodeError(
                    f"no live node announced itself on {self.transport.topics.presence()} within "
                    f"{timeout:g} s: is the cluster name right and is a node running?"
                )
            await asyncio.sleep(0.05)
        await asyncio.sleep(settle)
        return self.alive()

    async def call(
        self, node: int, op: str, /, *, timeout: float = 5.0, **fields: Any
    ) -> dict[str, Any]:
        return await self.rpc.call(node, op, timeout=timeout, **fields)

    async def status(self, *, timeout: float = 2.0) -> dict[int, dict[str, Any] | None]:
        """Each live node's Raft status (None for a node that did not answer in time)."""
        nodes = await self.discover()

        async def one(node: int) -> dict[str, Any] | None:
            try:
                reply = await self.call(node, "status", timeout=timeout)
            except TimeoutError:
                return None
            result = reply.get("result")
            return result if reply.get("ok") and isinstance(result, dict) else None

        answers = await asyncio.gather(*(one(n) for n in nodes))
        return dict(zip(nodes, answers, strict=True))

    async def request(self, op: str, /, *, timeout: float = 10.0, **fields: Any) -> object:
        """Send `op` to the leader (found by asking any node and following the hints)."""
        deadline = time.monotonic() + timeout
        target: int | None = None
        while (remaining := deadline - time.monotonic()) > 0:
            nodes = self.alive() or await self.discover(timeout=remaining)
            node = target if target in nodes else random.choice(nodes)
            try:
                reply = await self.call(node, op, timeout=min(remaining, 2.0), **fields)
            except TimeoutError:
                target = None
                continue
            if reply.get("ok"):
                return reply.get("result")
            if reply.get("error") == "not_leader":
                hint = reply.get("leader")
                target = hint if isinstance(hint, int) else None
                if target is None:
                    await asyncio.sleep(0.1)
                continue
            if reply.get("error") == "retry":
                await asyncio.sleep(0.1)
                continue
            raise NodeError(f"node {node} refused {op}: {reply.get('message')}")
        raise ProposalTimeout(f"{op} not answered by a leader within {timeout:g} s")

    async def join(self, *, timeout: float = 30.0) -> int:
        """Ask the leader for a fresh node id; it is committed as a learner before the answer."""
        result = await self.request("join", timeout=timeout)
        if not isinstance(result, dict) or not isinstance(result.get("node_id"), int):
            raise NodeError(f"the leader answered the join with {result!r}")
        return int(result["node_id"])

    async def propose(self, data: bytes, *, timeout: float = 10.0) -> object:
        return await self.request("propose", timeout=timeout, data=base64.b64encode(data).decode())

    def _on_presence(self, topic: str, payload: bytes) -> None:
        """Keep each node's presence document; an empty payload (a cleared retained message)
        means the node is gone. Anything malformed is counted and changes nothing."""
        try:
            node, doc = parse_presence(topic, payload, max_bytes=payload_limit(self.transport))
        except MalformedMessage as error:
            self._count_malformed(str(error))
            return
        self.presence[node] = doc if doc is not None else {"node": node, "alive": False}

    def _count_malformed(self, reason: str) -> None:
        """Counted here and in the transport's stats (as refused Raft payloads are)."""
        self.malformed += 1
        self.last_malformed = reason
        self.transport.stats.malformed += 1
        self.transport.stats.last_malformed = reason


def parse_presence(
    topic: str, payload: bytes, *, max_bytes: int
) -> tuple[int, dict[str, Any] | None]:
    """(node id, its presence document) of a `presence/{id}` message; the document is None
    for an empty payload (a cleared retained message). MalformedMessage when the topic names
    no node, or the document is not a presence document of that node (version, `node`, a
    boolean `alive`)."""
    node = _presence_node(topic)
    if not payload:
        return node, None
    doc = load_json_object(payload, "presence document", max_bytes, PRESENCE_VERSION)
    if doc.get("node") != node or type(doc.get("node")) is not int:
        raise MalformedMessage(f"presence document on {topic} names node {doc.get('node')!r}")
    if not isinstance(doc.get("alive"), bool):
        raise MalformedMessage(
            f"presence field alive must be true or false, got {doc.get('alive')!r}"
        )
    return node, doc


def _presence_node(topic: str) -> int:
    """The node id of a `presence/{id}` topic suffix, or MalformedMessage."""
    parsed = parse_suffix(topic)
    if parsed is None or parsed[0] != "presence":
        raise MalformedMessage(f"presence topic {topic[:80]!r} does not name a node id")
    return parsed[1]
