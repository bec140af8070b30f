"""The async shell around the sans-I/O core: one process's Raft node.

A `Node` owns a transport, and per Raft group a storage, a state machine and a `RawNode`. Two
tasks drive it: the ticker (`tick()` every `tick_seconds`, so a class can slow elections down
to watch them) and the pump (every Ready handled in order: persist, send, apply, advance).
Proposals made on a follower are forwarded to the leader over the request topic; every
proposal has a deadline and is retried when the leader changes, so none hangs forever.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from raftoral_lab.core import (
    ConfChange,
    ConfChangeOp,
    Message,
    RaftConfig,
    RawNode,
    Role,
    Status,
    Storage,
)
from raftoral_lab.errors import (
    ConfChangeError,
    ConfChangePending,
    MalformedMessage,
    NodeError,
    NotLeader,
    ProposalDropped,
    ProposalTimeout,
    RaftoralError,
)
from raftoral_lab.events import EventBase, make_event
from raftoral_lab.node.control import announce_group, apply_fault, parse_control
from raftoral_lab.node.group import Group
from raftoral_lab.node.rpc import Request, RpcClient, answer, parse_request, payload_limit
from raftoral_lab.node.state_machine import CommandLog, StateMachine
from raftoral_lab.storage import MemoryStorage
from raftoral_lab.transport.base import Transport
from raftoral_lab.transport.stats import DropReason
from raftoral_lab.transport.topics import reply_suffix

log = logging.getLogger(__name__)

EVENT_HISTORY = 10_000
RETRY = object()
RpcHandler = Callable[[dict[str, Any]], Awaitable[object]]
"""Serves one request op: gets the request's fields, returns a JSON-able result."""
"""What `_ask` returns when the proposal must be tried again (None is a valid answer)."""


class Node:
    def __init__(
        self,
        node_id: int,
        transport: Transport,
        *,
        voters: list[int] | None = None,
        learners: list[int] | None = None,
        max_voters: int | None = None,
        storage: Storage | None = None,
        state_machine: StateMachine | None = None,
        config: RaftConfig | None = None,
        tick_seconds: float = 0.05,
        compact_every: int | None = None,
        auto_promote: bool = True,
        message_events: bool = False,
        on_event: Callable[[EventBase], None] | None = None,
        on_crash: Callable[[], None] | None = None,
    ) -> None:
        """`voters` (and founding `learners`) bootstraps a founding member of group 0 when
        `storage` holds nothing yet; a node started without voters and with empty storage
        waits for a leader to add it. `max_voters` caps how many voters the auto-promotion of
        learners makes in group 0 (a management group keeps a small voter set).
        `message_events` emits `message_sent` and `message_delivered` for every Raft message
        (what a dashboard draws link rates from; it costs a few microseconds per message).

        `on_crash` runs when a `crash` control arrives (a node process exits at once); by
        default the node stops without saying goodbye, as a crash would.
        """
        if transport.node_id != node_id:
            raise NodeError(f"node {node_id} was given the transport of node {transport.node_id}")
        if tick_seconds <= 0:
            raise NodeError(f"tick_seconds must be positive, got {tick_seconds}")
        self.id = node_id
        self.transport = transport
        self.tick_seconds = tick_seconds
        self.config = config or RaftConfig()
        self.auto_promote = auto_promote
        self.events: deque[EventBase] = deque(maxlen=EVENT_HISTORY)
        self.listeners: list[Callable[[EventBase], None]] = [on_event] if on_event else []
        """Called with every event this node emits, in order (must not block)."""
        self.on_crash = on_crash
        self._seq = itertools.count(1)
        self.compact_every = compact_every
        self.message_events = message_events
        self.groups: dict[int, Group] = {}
        self._install_group(
            0,
            state_machine if state_machine is not None else CommandLog(),
            storage,
            voters=voters,
            learners=learners,
            max_voters=max_voters,
        )
        self.rpc = RpcClient(
            transport,
            reply_suffix(node_id),
            on_malformed=lambda reason: self._malformed("reply", reason),
        )
        self.max_payload_bytes = payload_limit(transport)
        """Requests and controls above this size are refused, like Raft payloads."""
        self.malformed: Counter[str] = Counter()
        """Refused payloads per channel (raft, rpc, control, reply), each also an event."""
        self.last_malformed: str | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._promoting = False
        self._running = False
        self.rpc_handlers: dict[str, RpcHandler] = {}
        """Extra request ops served on `node/{id}/rpc` by upper layers (workflows)."""
        self.announcers: list[Callable[[], None]] = []
        """Called by `announce()` after the Raft state: upper layers (workflows, a scaled
        cluster's manager) report their own current state as events here (must not block)."""

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._running:
            return
        transport = self.transport
        transport.on_message = self._on_raft_message
        transport.on_drop = self._on_drop
        transport.on_malformed = self._on_malformed
        transport.on_connection = self._on_connection
        if not transport.running:
            await transport.start()
        await transport.subscribe(f"node/{self.id}/rpc", self._on_rpc)
        await transport.subscribe(f"node/{self.id}/control", self._on_control)
        await self.rpc.start()
        self._running = True
        for group_id, group in self.groups.items():  # what an observer cannot otherwise know
            self.emit(group_id, "state_loaded", loaded_state(group.raft))
        self._tasks = [
            asyncio.create_task(self._ticker(), name=f"node-{self.id}-ticker"),
            asyncio.create_task(self._pump(), name=f"node-{self.id}-pump"),
        ]
        self._wake.set()

    async def stop(self, *, crash: bool = False) -> None:
        """Stop ticking and close the transport (without goodbye when `crash`); durable state
        stays in storage."""
        if not self._running:
            return
        self._running = False
        # a stop may run in one of the node's own tasks (a `crash` control): never cancel that
        current = asyncio.current_task()
        tasks = [t for t in [*self._tasks, *self._background] if t is not current]
        # Cancel until every task is done: on Python 3.11 `asyncio.wait_for` can swallow one
        # cancellation, so a single cancel() is not always enough.
        pending = set(tasks)
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.1)
        for task in tasks:
            if not task.cancelled():
                task.exception()  # retrieved: a failure during shutdown is not worth a warning
        reason = f"node {self.id} {'crashed' if crash else 'stopped'}"
        for group in self.groups.values():
            group.fail_all(NodeError(reason))
        self.rpc.close(reason)
        abort = getattr(self.transport, "abort", None)
        if crash and abort is not None:
            await abort()
        else:
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
        await self.stop()

    @property
    def running(self) -> bool:
        return self._running

    # --- what users call ---------------------------------------------------------------------

    def group(self, group: int = 0) -> Group:
        try:
            return self.groups[group]
        except KeyError:
            raise NodeError(
                f"node {self.id} has no group {group}; it has {sorted(self.groups)}"
            ) from None

    def add_group(
        self,
        group: int,
        state_machine: StateMachine,
        storage: Storage | None = None,
        *,
        voters: list[int] | None = None,
        max_voters: int | None = None,
    ) -> Group:
        """Host one more Raft group (an execution cluster) on this node, running or not.

        With `voters` and empty storage this node is a founding member; without, it waits
        for the group's leader to add it. Messages of a group not hosted here are ignored.
        """
        if group in self.groups:
            raise NodeError(f"node {self.id} already hosts group {group}")
        hosted = self._install_group(
            group, state_machine, storage, voters=voters, max_voters=max_voters
        )
        if self._running:
            self.emit(group, "state_loaded", loaded_state(hosted.raft))
            self._wake.set()
        return hosted

    def remove_group(self, group: int) -> None:
        """Stop hosting `group` here (its storage is the caller's to keep or delete); what
        waits on it fails with NodeError."""
        if group == 0:
            raise NodeError("group 0 is the node's own group; stop the node instead")
        hosted = self.groups.pop(group, None)
        if hosted is not None:
            hosted.fail_all(NodeError(f"node {self.id} no longer hosts group {group}"))

    def _install_group(
        self,
        group: int,
        state_machine: StateMachine,
        storage: Storage | None,
        *,
        voters: list[int] | None,
        learners: list[int] | None = None,
        max_voters: int | None = None,
    ) -> Group:
        storage = storage if storage is not None else MemoryStorage()
        if voters is not None and storage.load().snapshot is None:
            bootstrap = getattr(storage, "bootstrap", None)
            if bootstrap is None:
                raise NodeError("this storage cannot bootstrap a new group; give it state")
            bootstrap(voters, learners or ())
        hosted = Group(
            self.id,
            group,
            storage,
            state_machine,
            self.transport,
            self.config,
            self.emit,
            compact_every=self.compact_every,
        )
        hosted.max_voters = max_voters
        hosted.report_messages = self.message_events
        self.groups[group] = hosted
        return hosted

    def status(self, group: int = 0) -> Status:
        return self.group(group).raft.status()

    def leader(self, group: int = 0) -> int | None:
        return self.group(group).raft.leader

    async def wait_for_leader(self, group: int = 0, timeout: float = 10.0) -> int:
        """The leader's id once this node knows one; ProposalTimeout after `timeout`."""
        deadline = time.monotonic() + timeout
        while (leader := self.leader(group)) is None:
            self._check_running()
            if time.monotonic() > deadline:
                raise ProposalTimeout(
                    f"node {self.id} learned no leader of group {group} in {timeout:g} s"
                )
            await asyncio.sleep(self.tick_seconds)
        return leader

    async def propose(self, data: bytes, *, group: int = 0, timeout: float = 10.0) -> object:
        """Replicate `data` and return what the state machine answered for it.

        On a follower the proposal is forwarded to the leader; when the leader changes it is
        retried. A forwarded proposal whose answer was lost may be retried and so commit twice:
        make commands idempotent where that matters (workflows carry ids for this reason).
        """
        self._check_running()
        target = self.group(group)
        if target.raft.role is Role.LEADER:
            # The common case, kept lean: no forwarding request, no timer per proposal (the
            # ticker sweeps deadlines), so a leader takes tens of thousands per second.
            deadline = time.monotonic() + timeout
            try:
                future = self.propose_here(data, group=group, timeout=timeout)
            except (NotLeader, ProposalDropped):
                pass
            else:
                try:
                    return await future
                except ProposalDropped:  # a new leader replaced the entry: try through it
                    timeout = deadline - time.monotonic()
                    if timeout <= 0:
                        raise ProposalTimeout(
                            f"node {self.id}: proposal in group {group} not done in time"
                        ) from None
        encoded = base64.b64encode(data).decode()
        return await self._on_leader(
            group,
            timeout,
            "proposal",
            lambda g: g.propose(data),
            {"op": "propose", "data": encoded},
            size=len(data),
        )

    def propose_here(
        self, data: bytes, *, group: int = 0, timeout: float = 10.0
    ) -> asyncio.Future[object]:
        """Append `data` to this leader's log now and return the future of its answer: no
        forwarding and no retry, so proposals made one after the other keep their order in the
        log (a workflow owner running ahead of its commits needs that). NotLeader otherwise."""
        self._check_running()
        future = self.group(group).propose(data, timeout=timeout)
        self._wake.set()
        return future

    async def change_membership(
        self, change: ConfChange, *, group: int = 0, timeout: float = 10.0
    ) -> None:
        """Add a learner, promote it, or remove a member, through the leader; returns once the
        leader has applied it. Waits while another change is pending."""
        await self._on_leader(
            group,
            timeout,
            f"{change.op.value} of node {change.node}",
            lambda g: g.propose_conf_change(change),
            {"op": "membership", "change": change.op.value, "node": change.node},
        )

    async def leave(self, *, timeout: float = 10.0) -> None:
        """Remove this node from the cluster through the log (a clean Ctrl-C), then stop."""
        with contextlib.suppress(ConfChangeError):  # already gone
            await self.change_membership(ConfChange(ConfChangeOp.REMOVE, self.id), timeout=timeout)
        await self.stop()

    async def _on_leader(
        self,
        group: int,
        timeout: float,
        what: str,
        local: Callable[[Group], Awaitable[object]],
        request: dict[str, Any],
        *,
        size: int | None = None,
    ) -> object:
        """Run `local` if this node leads `group`, else send `request` to the leader; retry on
        a leader change until `timeout`."""
        self._check_running()
        target = self.group(group)
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            self._check_running()  # a node stopped meanwhile ends the wait at once
            try:
                future = local(target)
            except NotLeader as refused:
                if refused.leader is not None and refused.leader != self.id:
                    if size is not None:
                        self.emit(group, "proposal_forwarded", {"to": refused.leader, "size": size})
                    reply = await self._ask(refused.leader, request | {"group": group}, remaining)
                    if reply is not RETRY:
                        return reply
            except (ProposalDropped, ConfChangePending):
                pass
            else:
                self._wake.set()
                # given up on after a timeout, the entry may still fail later: nobody waits then
                asyncio.ensure_future(future).add_done_callback(_quietly)
                try:
                    return await asyncio.wait_for(asyncio.shield(future), remaining)
                except (ProposalDropped, TimeoutError):
                    pass
            await asyncio.sleep(min(self.tick_seconds, max(deadline - time.monotonic(), 0)))
        raise ProposalTimeout(
            f"node {self.id}: {what} in group {group} not done within {timeout:g} s"
        )

    async def _ask(self, leader: int, request: dict[str, Any], remaining: float) -> object:
        """The leader's answer, or RETRY (no answer, or it no longer leads); None is an answer."""
        wait = min(remaining, max(self.tick_seconds * self.config.election_timeout, 0.5))
        fields = dict(request)
        op = fields.pop("op")
        try:
            reply = await self.rpc.call(leader, op, timeout=wait, **fields)
        except TimeoutError:
            return RETRY
        if reply.get("ok"):
            return reply.get("result")
        if reply.get("error") in ("not_leader", "retry"):
            return RETRY
        if reply.get("error") == "conf_change":
            raise ConfChangeError(str(reply.get("message")))
        raise NodeError(f"node {leader} refused {op}: {reply.get('message')}")

    # --- the two loops -------------------------------------------------------------------------

    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        ticks = 0
        while self._running:
            next_tick += self.tick_seconds
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            now = time.monotonic()
            for group in list(self.groups.values()):
                group.raft.tick()
                group.expire(now)
            ticks += 1
            if self.auto_promote and ticks % self.config.election_timeout == 0:
                self._promote_caught_up_learners()
            self._wake.set()

    async def _pump(self) -> None:
        while self._running:
            await self._wake.wait()
            self._wake.clear()
            self._process_readies()
            groups = [group for group in self.groups.values() if group.holding]
            if groups:
                # One loop iteration for the callers a commit just answered: what they propose
                # now goes out in an append that also carries the commit index (Group._held).
                await asyncio.sleep(0)
                self._process_readies()
                for group in groups:
                    group.release()

    def _process_readies(self) -> None:
        for group in list(self.groups.values()):
            while group.process_ready():
                pass

    def _on_raft_message(self, message: Message) -> None:
        group = self.groups.get(message.group)
        if group is None:
            reason = f"unknown group {message.group}"
            self.transport.stats.dropped[DropReason.UNKNOWN_GROUP] += 1
            self.emit(
                message.group,
                "message_ignored",
                {"message": message.kind, "src": message.src, "reason": reason},
            )
            return
        if self.message_events:
            fields = {"message": message.kind, "src": message.src, "dst": message.dst}
            self.emit(message.group, "message_delivered", fields)
        group.raft.step(message)
        self._wake.set()

    def _promote_caught_up_learners(self) -> None:
        """The leader promotes a learner once its log has caught up with the commit index."""
        if self._promoting:
            return
        for group_id, group in list(self.groups.items()):
            raft = group.raft
            if raft.role is not Role.LEADER:
                continue
            if group.max_voters is not None and len(raft.conf.voters) >= group.max_voters:
                continue
            for learner in sorted(raft.conf.learners):
                progress = raft.progress.get(learner)
                if progress is not None and progress.match_index >= raft.commit_index:
                    change = ConfChange(ConfChangeOp.ADD_VOTER, learner)
                    self._promoting = True
                    self._spawn(self._promote(change, group_id))
                    return

    async def _promote(self, change: ConfChange, group: int) -> None:
        try:
            await self.change_membership(change, group=group, timeout=self.tick_seconds * 100)
        except RaftoralError:
            pass  # tried again on a later tick
        finally:
            self._promoting = False

    # --- requests from other nodes and clients ---------------------------------------------------

    async def _serve_with(self, handler: RpcHandler, request: Request) -> None:
        """An op served by an upper layer (e.g. the workflow runtime's `start`, `result`)."""
        try:
            result = await handler(dict(request.fields))
        except NotLeader as refused:
            answer(self.transport, request, ok=False, error="not_leader", leader=refused.leader)
        except RaftoralError as error:
            answer(
                self.transport,
                request,
                ok=False,
                error=type(error).__name__,
                message=str(error),
            )
        except (ValueError, KeyError, TypeError) as error:
            self._malformed("rpc", f"{request.op}: {error}")
            answer(self.transport, request, ok=False, error="bad_request", message=str(error))
        else:
            answer(self.transport, request, ok=True, result=_jsonable(result))

    def _on_rpc(self, _topic: str, payload: bytes) -> None:
        try:
            request = parse_request(payload, max_bytes=self.max_payload_bytes)
        except MalformedMessage as error:
            self._malformed("rpc", str(error))
            return
        self._spawn(self._serve(request))

    async def _serve(self, request: Request) -> None:
        fields = request.fields
        handler = self.rpc_handlers.get(request.op)
        if handler is not None:
            await self._serve_with(handler, request)
            return
        group = self.groups.get(fields.get("group", 0))
        if group is None:
            reason = f"unknown group {fields.get('group')}"
            self.emit(
                0, "message_ignored", {"message": f"rpc {request.op}", "src": -1, "reason": reason}
            )
            answer(self.transport, request, ok=False, error="unknown_group", message=reason)
            return
        try:
            if request.op == "status":
                answer(self.transport, request, ok=True, result=status_dict(group.raft.status()))
                return
            if request.op == "propose":
                future = group.propose(base64.b64decode(fields["data"], validate=True))
            elif request.op == "membership":
                change = ConfChange(ConfChangeOp(fields["change"]), int(fields["node"]))
                future = group.propose_conf_change(change)
            elif request.op == "join":
                node_id = self._next_node_id(group)
                future = group.propose_conf_change(ConfChange(ConfChangeOp.ADD_LEARNER, node_id))
                self._wake.set()
                await asyncio.wait_for(future, self.tick_seconds * self.config.election_timeout * 4)
                answer(self.transport, request, ok=True, result={"node_id": node_id})
                return
            else:
                message = f"unknown op {request.op[:80]!r}"
                self._malformed("rpc", message)
                answer(self.transport, request, ok=False, error="unknown_op", message=message)
                return
            self._wake.set()
            result = await asyncio.wait_for(
                future, self.tick_seconds * self.config.election_timeout * 4
            )
            answer(self.transport, request, ok=True, result=_jsonable(result))
        except NotLeader as refused:
            answer(self.transport, request, ok=False, error="not_leader", leader=refused.leader)
        except ConfChangePending as busy:
            answer(self.transport, request, ok=False, error="retry", message=str(busy))
        except ConfChangeError as refused:
            answer(self.transport, request, ok=False, error="conf_change", message=str(refused))
        except (ProposalDropped, TimeoutError, NodeError) as error:
            answer(self.transport, request, ok=False, error="retry", message=str(error))
        except (ValueError, KeyError, TypeError) as error:
            message = f"rpc {request.op[:80]}: bad or missing field ({error})"
            self._malformed("rpc", message)
            answer(self.transport, request, ok=False, error="bad_request", message=message)

    def _next_node_id(self, group: Group) -> int:
        """A fresh id for a joiner: above every member and every id seen in this node's log."""
        raft = group.raft
        if raft.role is not Role.LEADER:
            raise NotLeader(self.id, raft.leader, "join")
        seen = set(raft.conf.members)
        for entry in raft.log.entries:
            with contextlib.suppress(ConfChangeError):
                if entry.kind.value == "conf_change":
                    seen.add(ConfChange.decode(entry.data).node)
        return max(seen, default=0) + 1

    def _on_control(self, _topic: str, payload: bytes) -> None:
        try:
            body = parse_control(payload, max_bytes=self.max_payload_bytes)
            if body["op"] == "announce":
                self.announce(announce_group(body))
                return
            if body["op"] == "crash":
                self.emit(0, "node_crashed", {})
                if self.on_crash is not None:
                    self.on_crash()
                else:
                    self._spawn(self.stop(crash=True))
                return
            apply_fault(self.transport.faults, body)
        except MalformedMessage as error:
            self._malformed("control", str(error))
            return
        if body["op"] == "partition":
            blocked = sorted(self.transport.faults.blocked)
            self.emit(0, "partitioned", {"sides": [[self.id], blocked]})
        elif body["op"] == "heal":
            self.emit(0, "healed", {})

    # --- events --------------------------------------------------------------------------------

    def announce(self, group: int | None = None) -> None:
        """Report this node's current state as events, for observers that came late.

        Nodes emit events when something changes, so an observer that connects to a quiet
        cluster would otherwise never learn roles, terms, logs and memberships. For each hosted
        group (or only `group`; one not hosted here reports nothing) this emits what startup
        emits, `state_loaded` (term, log, commit and applied index, voters and learners, as
        they are now), then `role_changed` with the current role, term and known leader, which
        `state_loaded` does not carry. Without a `group`, a node that blocks peers (a
        partition control) says so again with `partitioned`, and the `announcers` of upper
        layers add theirs. Nothing here changes the node: it only reports.
        """
        groups = sorted(self.groups) if group is None else [group]
        for group_id in groups:
            hosted = self.groups.get(group_id)
            if hosted is None:
                continue
            raft = hosted.raft
            self.emit(group_id, "state_loaded", loaded_state(raft))
            self.emit(
                group_id,
                "role_changed",
                {"role": raft.role.value, "term": raft.term, "leader": raft.leader},
            )
        if group is not None:
            return
        blocked = self.transport.faults.blocked
        if blocked:
            self.emit(0, "partitioned", {"sides": [[self.id], sorted(blocked)]})
        for announcer in list(self.announcers):
            try:
                announcer()
            except Exception:  # an upper layer's bug must not stop the others nor the node
                log.exception("node %d: announcer %r failed", self.id, announcer)

    def emit(self, group: int, kind: str, fields: dict[str, Any]) -> None:
        """Emit a typed event from this node (the workflow layer reports through this too)."""
        event = make_event(
            kind, fields, node=self.id, group=group, seq=next(self._seq), ts=time.time()
        )
        self.events.append(event)
        for listener in self.listeners:
            listener(event)

    def _on_drop(self, kind: str, src: int, dst: int, reason: str) -> None:
        self.emit(0, "message_dropped", {"message": kind, "src": src, "dst": dst, "reason": reason})

    def _on_connection(self, connected: bool, reason: str | None) -> None:
        """The transport lost its broker or got it back. The disconnect cannot go out while
        the broker is away: it is recorded here at once, and an `EventPublisher` holds it (and
        what follows) until `broker_reconnected`, so observers see the outage in order."""
        broker = str(getattr(self.transport, "broker_url", "") or "")
        if connected:
            self.emit(0, "broker_reconnected", {"broker": broker})
        else:
            fields = {"broker": broker, "reason": reason or "connection lost"}
            self.emit(0, "broker_disconnected", fields)

    def _on_malformed(self, reason: str) -> None:
        """The transport refused a Raft payload (and counted it in `transport.stats`)."""
        self._report_malformed("raft", reason)

    def _malformed(self, channel: str, reason: str) -> None:
        """The node refused a payload on `channel` (rpc, control, reply): counted in the
        transport's stats like a refused Raft payload, so one number tells them all."""
        stats = self.transport.stats
        stats.malformed += 1
        stats.last_malformed = f"{channel}: {reason}"
        self._report_malformed(channel, reason)

    def _report_malformed(self, channel: str, reason: str) -> None:
        """Count per channel, keep the reason for a person to read, and emit the event."""
        self.malformed[channel] += 1
        self.last_malformed = f"{channel}: {reason}"
        self.emit(
            0,
            "message_dropped",
            {"message": channel, "src": -1, "dst": self.id, "reason": "malformed"},
        )

    def _spawn(self, work: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _check_running(self) -> None:
        if not self._running:
            raise NodeError(f"node {self.id} is not running; await node.start() first")


def loaded_state(raft: RawNode) -> dict[str, Any]:
    """The fields of a `state_loaded` event: what a Raft node starts from."""
    log = raft.log
    return {
        "term": raft.term,
        "commit_index": log.commit_index,
        "applied_index": log.applied_index,
        "snapshot_index": log.offset,
        "snapshot_term": log.offset_term,
        "last_index": log.last_index,
        "last_term": log.last_term,
        "voters": sorted(raft.conf.voters),
        "learners": sorted(raft.conf.learners),
    }


def _quietly(future: asyncio.Future[object]) -> None:
    """Retrieve the outcome of a future nobody awaits any more, so asyncio does not warn."""
    if not future.cancelled():
        future.exception()


def status_dict(status: Status) -> dict[str, Any]:
    """A JSON-ready picture of one node's Raft state (for `raftoral-lab status`)."""
    return {
        "node": status.id,
        "group": status.group,
        "role": status.role.value,
        "term": status.term,
        "leader": status.leader,
        "commit_index": status.commit_index,
        "applied_index": status.applied_index,
        "first_index": status.first_index,
        "last_index": status.last_index,
        "voters": sorted(status.voters),
        "learners": sorted(status.learners),
    }


def _jsonable(value: object) -> object:
    return (
        value
        if isinstance(value, str | int | float | bool | list | dict | type(None))
        else repr(value)
    )
