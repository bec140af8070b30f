"""Malformed payloads on every topic a node or a client listens to (issue 4, part 5).

Not JSON, a wrong schema version, wrong types, a payload over the transport's size limit, an
unknown group, unknown node ids, a Raft message whose `src` is spoofed: each is dropped and
counted (the transport's `stats.malformed` and the node's `message_dropped` events with reason
`malformed`, or a `message_ignored` event), nothing crashes, and afterwards the cluster still
commits, with what it had committed before unchanged. Runs on each transport.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from raftoral_lab.node import Node
from raftoral_lab.node.client import ClusterClient
from raftoral_lab.transport.base import Transport
from raftoral_lab.transport.memory import MemoryNetwork
from raftoral_lab.transport.mqtt import MqttTransport

from .support import CLUSTER, LocalCluster, commands, events_of, wait_until

LIMIT = 64 * 1024
"""The transports' payload limit in this test (`max_payload_bytes`), so "huge" stays cheap."""
HUGE = "x" * (LIMIT + 1)
CLIENT = 1_000_000_777
INJECTOR = 1_000_000_778

Wiring = Callable[..., Transport]


@pytest.fixture(
    params=["memory", "embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)]
)
def wiring(request: pytest.FixtureRequest) -> Wiring:
    """`wiring(node_id, presence=True)`: a transport of this test's network."""
    if request.param == "memory":
        network = MemoryNetwork(codec=True, cluster=CLUSTER, max_payload_bytes=LIMIT)
        return lambda node_id, presence=True: network.transport(node_id, presence=presence)
    fixture = "embedded_broker" if request.param == "embedded" else "mosquitto"
    url: str = request.getfixturevalue(fixture).url
    return lambda node_id, presence=True: MqttTransport(
        node_id, CLUSTER, url, max_payload_bytes=LIMIT, presence=presence
    )


def dumps(body: object) -> bytes:
    return json.dumps(body).encode()


def raft_payloads(leader: int, target: int, other: int, term: int) -> Iterator[bytes]:
    """Payloads for `node/{target}/raft` that the codec must refuse."""
    heartbeat = {"kind": "heartbeat", "group": 0, "src": leader, "dst": target, "term": term,
                 "commit": 0}  # fmt: skip
    yield b"definitely not json"
    yield b"\xff\xfe\xfa\x00"
    yield b""
    yield dumps([heartbeat])  # not an object
    yield dumps({"v": 99, "src": leader, "msgs": [heartbeat]})  # a newer schema
    yield dumps({"v": 0, "src": leader, "msgs": [heartbeat]})
    yield dumps({"v": "1", "src": leader, "msgs": [heartbeat]})  # wrong types...
    yield dumps({"v": 1, "src": "the leader", "msgs": [heartbeat]})
    yield dumps({"v": 1, "src": leader, "msgs": heartbeat})
    yield dumps({"v": 1, "src": leader, "msgs": [heartbeat | {"term": str(term)}]})
    yield dumps({"v": 1, "src": leader, "msgs": [heartbeat | {"commit": None}]})
    yield dumps({"v": 1, "src": leader, "msgs": [heartbeat | {"kind": "explode"}]})
    yield dumps({"v": 1, "src": leader, "msgs": [heartbeat], "padding": HUGE})  # too big
    yield dumps({"v": 1, "src": leader, "msgs": [heartbeat | {"dst": 99}]})  # unknown ids...
    yield dumps({"v": 1, "src": -1, "msgs": [heartbeat | {"src": -1}]})
    yield dumps({"v": 1, "src": other, "msgs": [heartbeat]})  # src spoofed: the leader's


def rpc_envelopes(reply_to: str) -> Iterator[bytes]:
    """Requests for `node/{id}/rpc` refused before any answer (no usable envelope)."""
    status = {"v": 1, "id": "r", "op": "status", "reply_to": reply_to}
    yield b"not json"
    yield b"\x00\x01\x02"
    yield dumps(["status"])
    yield dumps(status | {"v": 2})
    yield dumps(status | {"v": True})
    yield dumps(status | {"v": "1"})
    yield dumps({k: v for k, v in status.items() if k != "v"})
    yield dumps(status | {"id": 5})
    yield dumps(status | {"op": ["status"]})
    yield dumps({k: v for k, v in status.items() if k != "reply_to"})
    yield dumps(status | {"reply_to": "node/+/reply"})
    yield dumps(status | {"reply_to": "node/2/raft"})  # would make the node talk on a raft topic
    yield dumps(status | {"reply_to": "presence/2"})
    yield dumps(status | {"reply_to": "node/abc/reply"})  # not a node id
    yield dumps(status | {"reply_to": "node/-1/reply"})
    yield dumps(status | {"group": "zero"})
    yield dumps(status | {"group": -1})
    yield dumps(status | {"group": True})
    yield dumps(status | {"padding": HUGE})


def rpc_bad_fields(reply_to: str) -> Iterator[tuple[str, bytes, str]]:
    """(request id, payload, error answered): well addressed requests with bad fields."""

    def request(request_id: str, op: str, **fields: Any) -> bytes:
        return dumps({"v": 1, "id": request_id, "op": op, "reply_to": reply_to} | fields)

    yield "b1", request("b1", "propose", data=5), "bad_request"
    yield "b2", request("b2", "propose", data="*** not base64 ***"), "bad_request"
    yield "b3", request("b3", "propose"), "bad_request"
    yield "b4", request("b4", "membership", change="explode", node=1), "bad_request"
    yield "b5", request("b5", "membership", change="remove", node="one"), "bad_request"
    yield "b6", request("b6", "frobnicate"), "unknown_op"


def control_payloads() -> Iterator[bytes]:
    yield b"nope"
    yield dumps(None)
    yield dumps(["heal"])
    yield dumps({"op": "heal"})  # no schema version
    yield dumps({"v": 2, "op": "heal"})
    yield dumps({"v": 1, "op": "explode"})
    yield dumps({"v": 1, "op": "partition", "blocked": "123"})
    yield dumps({"v": 1, "op": "partition", "blocked": "all"})
    yield dumps({"v": 1, "op": "partition", "blocked": [1.5]})
    yield dumps({"v": 1, "op": "partition", "blocked": [True]})
    yield dumps({"v": 1, "op": "partition", "blocked": [-1]})
    yield dumps({"v": 1, "op": "partition", "blocked": {"1": 2}})
    yield dumps({"v": 1, "op": "drop_rate", "rate": "0.5"})
    yield dumps({"v": 1, "op": "drop_rate", "rate": 2})
    yield dumps({"v": 1, "op": "drop_rate"})
    yield dumps({"v": 1, "op": "delay", "low": "x"})
    yield dumps({"v": 1, "op": "delay"})
    yield dumps({"v": 1, "op": "delay", "low": 0.5, "high": 0.1})
    yield dumps({"v": 1, "op": "partition", "blocked": [1, 2, 3], "padding": HUGE})
    yield dumps({"v": 1, "op": "announce", "group": "all"})
    yield dumps({"v": 1, "op": "announce", "group": -1})
    yield dumps({"v": 1, "op": "announce", "group": True})
    yield dumps({"v": 2, "op": "announce"})


def reply_payloads() -> Iterator[bytes]:
    yield b"nope"
    yield dumps([1])
    yield dumps("a string")
    yield dumps({"v": 1})
    yield dumps({"v": 1, "id": 5})
    yield dumps({"v": 2, "id": "x-1"})
    yield dumps({"v": 1, "id": "x-1", "padding": HUGE})


def presence_payloads(member: int) -> Iterator[tuple[str, bytes]]:
    alive = {"v": 1, "node": 5, "alive": True, "cluster": CLUSTER}
    yield "presence/5", b"nope"
    yield "presence/5", dumps([alive])
    yield "presence/5", dumps(alive | {"v": 99})
    yield "presence/5", dumps({k: v for k, v in alive.items() if k != "v"})
    yield "presence/5", dumps(alive | {"alive": "yes"})
    yield "presence/5", dumps({k: v for k, v in alive.items() if k != "node"})
    yield "presence/5", dumps(alive | {"node": 6})  # names another node than its topic
    yield "presence/abc", dumps(alive)  # not a node id
    yield "presence/05", dumps(alive)
    yield "presence/5", dumps(alive | {"padding": HUGE})
    yield f"presence/{member}", dumps(alive | {"node": member, "alive": "false"})


def dropped_events(node: Node) -> int:
    return len(events_of(node, "message_dropped", reason="malformed"))


def ignored_unknown_group(node: Node) -> int:
    return len([e for e in events_of(node, "message_ignored") if "unknown group" in e.reason])  # type: ignore[attr-defined]


async def test_malformed_payloads_are_dropped_counted_and_harmless(wiring: Wiring) -> None:
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, Any]] = []
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    replies: dict[str, dict[str, Any]] = {}

    def on_reply(_topic: str, payload: bytes) -> None:
        body = json.loads(payload)
        replies[body["id"]] = body

    try:
        async with (
            LocalCluster(wiring) as cluster,
            ClusterClient(wiring(CLIENT, presence=False)) as client,
            wiring(INJECTOR, presence=False) as injector,
        ):
            await injector.subscribe(f"node/{INJECTOR}/reply", on_reply)
            leader = await cluster.leader()
            target, other = (n for n in cluster.nodes.values() if n is not leader)
            before = [f"before {i}".encode() for i in range(10)]
            for i, command in enumerate(before):
                await cluster.nodes[1 + i % 3].propose(command, timeout=10)
            assert await cluster.converged() == before
            await wait_until(
                lambda: client.alive() == [1, 2, 3], timeout=10, what="the client to see 3 nodes"
            )
            reply_to = f"node/{INJECTOR}/reply"

            # a well-formed request is answered (the channel itself works)
            await injector.publish(
                f"node/{target.id}/rpc",
                dumps({"v": 1, "id": "ok", "op": "status", "reply_to": reply_to}),
            )
            await wait_until(lambda: "ok" in replies, timeout=10, what="the status answer")
            assert replies["ok"]["ok"] is True and replies["ok"]["result"]["node"] == target.id

            async def refused(
                topic: str, payload: bytes, count: Callable[[], int], what: str
            ) -> None:
                """Publish `payload`; the refusal shows as `count()` going up by one."""
                start = count()
                await injector.publish(topic, payload, qos=1)
                await wait_until(
                    lambda: count() > start,
                    timeout=10,
                    what=f"{what} {payload[:120]!r} to be refused and counted",
                )
                assert count() == start + 1, f"{what} {payload[:120]!r} counted twice"

            # --- node/{id}/raft: the transport counts, the node reports an event
            term = target.status().term
            raft = list(raft_payloads(leader.id, target.id, other.id, term))
            for payload in raft:
                await refused(
                    f"node/{target.id}/raft", payload, lambda: target.transport.stats.malformed,
                    "raft payload",
                )  # fmt: skip
            assert target.malformed["raft"] == len(raft) == dropped_events(target)
            unknown_group = {"kind": "heartbeat", "group": 7, "src": leader.id, "dst": target.id,
                             "term": term, "commit": 0}  # fmt: skip
            await refused(
                f"node/{target.id}/raft",
                dumps({"v": 1, "src": leader.id, "msgs": [unknown_group]}),
                lambda: ignored_unknown_group(target),
                "a message of an unknown group",
            )

            # --- node/{id}/rpc
            envelopes = list(rpc_envelopes(reply_to))
            for payload in envelopes:
                await refused(
                    f"node/{target.id}/rpc", payload, lambda: target.malformed["rpc"], "request"
                )
            bad_fields = list(rpc_bad_fields(reply_to))
            for _, payload, _ in bad_fields:
                await refused(
                    f"node/{target.id}/rpc", payload, lambda: target.malformed["rpc"], "request"
                )
            await refused(
                f"node/{target.id}/rpc",
                dumps({"v": 1, "id": "g7", "op": "status", "reply_to": reply_to, "group": 7}),
                lambda: ignored_unknown_group(target),
                "a request for an unknown group",
            )
            answered = {request_id: error for request_id, _, error in bad_fields} | {
                "g7": "unknown_group"
            }
            await wait_until(
                lambda: set(answered) <= set(replies),
                timeout=10,
                what="answers to the requests with bad fields",
                detail=lambda: replies,
            )
            for request_id, error in answered.items():
                assert replies[request_id]["ok"] is False, replies[request_id]
                assert replies[request_id]["error"] == error, replies[request_id]
            assert set(replies) == {"ok", *answered}, "a refused envelope was answered"

            # --- node/{id}/control: nothing of the fault filter changes
            controls = list(control_payloads())
            for payload in controls:
                await refused(
                    f"node/{target.id}/control", payload, lambda: target.malformed["control"],
                    "control",
                )  # fmt: skip
            assert not target.transport.faults.active, target.transport.faults
            assert not events_of(target, "partitioned") and not events_of(target, "healed")
            # a refused announce reports nothing: the only state_loaded is the startup one
            assert len(events_of(target, "state_loaded")) == 1

            # --- node/{id}/reply: the node's own rpc client
            for payload in reply_payloads():
                await refused(
                    f"node/{target.id}/reply", payload, lambda: target.malformed["reply"], "reply"
                )
            # a well-formed reply nobody waits for (a late one) is ignored, not counted: the
            # malformed one after it must count exactly one
            await injector.publish(
                f"node/{target.id}/reply", dumps({"v": 1, "id": "late-1", "ok": True})
            )
            await refused(
                f"node/{target.id}/reply", b"nope", lambda: target.malformed["reply"], "reply"
            )

            # --- the client: its reply topic and presence/+
            client_replies = list(reply_payloads())
            for payload in client_replies:
                await refused(
                    f"node/{CLIENT}/reply", payload, lambda: client.malformed, "client reply"
                )
            presence = list(presence_payloads(target.id))
            for topic, payload in presence:
                await refused(topic, payload, lambda: client.malformed, f"presence on {topic}")
            assert client.alive() == [1, 2, 3], client.presence
            assert 5 not in client.presence and 6 not in client.presence

            # --- the books: every refusal counted once, and reported as an event
            expected = {
                "raft": len(raft),
                "rpc": len(envelopes) + len(bad_fields),
                "control": len(controls),
                "reply": len(list(reply_payloads())) + 1,
            }
            assert dict(target.malformed) == expected
            # the transport's counter holds every refusal of the endpoint, Raft or not
            assert target.transport.stats.malformed == sum(expected.values())
            assert dropped_events(target) == sum(expected.values())
            assert ignored_unknown_group(target) == 2
            assert client.malformed == len(client_replies) + len(presence)
            assert client.transport.stats.malformed == client.malformed
            for node in (leader, other):
                assert not node.malformed, (node.id, node.malformed, node.last_malformed)

            # --- nothing crashed, and the cluster goes on with its history intact
            assert all(n.running for n in cluster.nodes.values())
            for transport in [*(n.transport for n in cluster.nodes.values()), client.transport]:
                assert transport.running
                assert transport.stats.callback_errors == 0, transport
                assert transport.stats.handler_errors == 0, transport
            after = [f"after {i}".encode() for i in range(10)]
            for i, command in enumerate(after):
                await cluster.nodes[1 + i % 3].propose(command, timeout=10)
            await client.propose(b"from the client", timeout=10)
            final = await cluster.converged()
            assert final == before + after + [b"from the client"], cluster.picture()
            assert all(commands(n) == final for n in cluster.nodes.values())
            statuses = await client.status()
            assert sorted(statuses) == [1, 2, 3] and all(statuses.values()), statuses
    finally:
        gc.collect()  # "exception never retrieved" is reported when a task is collected
        await asyncio.sleep(0)
        loop.set_exception_handler(previous_handler)
    assert not loop_errors, loop_errors
