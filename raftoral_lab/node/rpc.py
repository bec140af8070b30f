"""Requests between nodes (and from clients) over the transport's topics.

A request goes to `node/{id}/rpc` as JSON `{"v": 1, "id": ..., "op": ..., "reply_to": ...}`
plus the op's fields; the answer goes to the topic the request names, with the same `id`
(MQTT 3.1.1 has no correlation property, so the id travels in the payload). The reply topic
must be a reply topic (`node/{id}/reply`): a request cannot make a node publish on another
node's Raft, control or presence topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from raftoral_lab.errors import MalformedMessage, NodeError, RaftoralError
from raftoral_lab.transport.base import Transport
from raftoral_lab.transport.codec import DEFAULT_MAX_PAYLOAD
from raftoral_lab.transport.topics import parse_suffix

RPC_VERSION = 1


@dataclass(frozen=True, slots=True)
class Request:
    id: str
    op: str
    reply_to: str
    fields: dict[str, Any]


def payload_limit(transport: Transport) -> int:
    """The largest payload `transport` accepts on its Raft topic (`max_payload_bytes` of an
    MQTT transport or of a memory network); the node holds its other topics to it too."""
    for owner in (transport, getattr(transport, "network", None)):
        limit = getattr(owner, "max_payload_bytes", None)
        if type(limit) is int and limit > 0:
            return limit
    return DEFAULT_MAX_PAYLOAD


def load_json_object(payload: bytes, what: str, max_bytes: int, version: int) -> dict[str, Any]:
    """A JSON object of schema `version` no larger than `max_bytes`, or MalformedMessage."""
    if len(payload) > max_bytes:
        raise MalformedMessage(
            f"{what} of {len(payload)} bytes is over the limit of {max_bytes} bytes"
        )
    try:
        body = json.loads(payload)
    except RecursionError:
        raise MalformedMessage(f"{what} is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise MalformedMessage(f"{what} is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedMessage(f"{what} is not a JSON object")
    v = body.get("v")
    if type(v) is not int or v != version:
        raise MalformedMessage(f"{what} has version {v!r}; this node reads {version}")
    return body


def parse_request(payload: bytes, *, max_bytes: int = DEFAULT_MAX_PAYLOAD) -> Request:
    """A request, or MalformedMessage saying what is wrong with it."""
    body = load_json_object(payload, "rpc request", max_bytes, RPC_VERSION)
    try:
        request_id, op, reply_to = body.pop("id"), body.pop("op"), body.pop("reply_to")
    except KeyError as exc:
        raise MalformedMessage(f"rpc request lacks the field {exc}") from None
    if not all(isinstance(x, str) and x for x in (request_id, op, reply_to)):
        raise MalformedMessage("rpc request fields id, op and reply_to must be non-empty strings")
    parsed = parse_suffix(reply_to)
    if parsed is None or parsed[0] != "reply":  # the only topics a request may name for replies
        raise MalformedMessage(
            f"rpc reply topic {reply_to[:80]!r} is not a reply topic (node/<id>/reply)"
        )
    group = body.get("group", 0)
    if type(group) is not int or group < 0:
        raise MalformedMessage(f"rpc field group must be a non-negative integer, got {group!r}")
    body.pop("v")
    return Request(request_id, op, reply_to, body)


def answer(transport: Transport, request: Request, **fields: Any) -> None:
    """Send the reply to `request` (best effort: a lost reply makes the caller retry, and a
    node that stopped meanwhile answers nothing)."""
    with contextlib.suppress(RaftoralError):
        transport.publish_nowait(
            request.reply_to, json.dumps({"v": RPC_VERSION, "id": request.id} | fields), qos=1
        )


class RpcClient:
    """Calls `op` on another node and waits for the matching reply."""

    def __init__(
        self,
        transport: Transport,
        reply_topic: str,
        *,
        on_malformed: Callable[[str], None] | None = None,
    ) -> None:
        """`on_malformed(reason)` hears of every reply that was refused (and counted)."""
        self.transport = transport
        self.reply_topic = reply_topic
        self.on_malformed = on_malformed
        self.max_bytes = payload_limit(transport)
        self._prefix = uuid.uuid4().hex[:8]
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.malformed = 0
        self.last_malformed: str | None = None

    async def start(self) -> None:
        await self.transport.subscribe(self.reply_topic, self._on_reply)

    async def call(self, node: int, op: str, /, *, timeout: float, **fields: Any) -> dict[str, Any]:
        """The reply's fields; TimeoutError when no answer came in `timeout` seconds.

        `node` and `op` are positional-only, so a request may carry fields of those names
        (a membership change names its `node`)."""
        request_id = f"{self._prefix}-{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        body = {"v": RPC_VERSION, "id": request_id, "op": op, "reply_to": self.reply_topic}
        try:
            self.transport.publish_nowait(f"node/{node}/rpc", json.dumps(body | fields), qos=1)
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)

    def close(self, reason: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(NodeError(reason))
        self._pending.clear()

    def _on_reply(self, _topic: str, payload: bytes) -> None:
        """Hand a reply to its caller; a reply nobody waits for (late, after a timeout) is
        ignored, a malformed one is counted."""
        try:
            reply = load_json_object(payload, "rpc reply", self.max_bytes, RPC_VERSION)
            request_id = reply.get("id")
            if not isinstance(request_id, str):
                raise MalformedMessage(f"rpc reply id must be a string, got {request_id!r}")
        except MalformedMessage as error:
            self.malformed += 1
            self.last_malformed = str(error)
            if self.on_malformed is not None:
                self.on_malformed(str(error))
            return
        future = self._pending.get(request_id)
        if future is not None and not future.done():
            future.set_result(reply)
