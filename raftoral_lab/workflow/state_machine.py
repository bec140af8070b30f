"""The replicated state of the workflow layer: pure, replayable, deterministic.

Every node applies the same committed commands (see `commands.py`) in the same order and so
holds the same state: which nodes can run which (name, version), and per workflow its status,
owner and owner epoch, its input, the committed checkpoint sequence while it runs, and its
outcome once it ended. `apply` answers the proposer with a JSON-ready dict.

The rules (DESIGN.md section 4):
- a workflow is identified by its id; a second start of an id answers `exists` and changes
  nothing, so a workflow never runs twice (within the retention bound of finished workflows);
- checkpoint operation k of a run is committed once: the first value for ordinal k wins, a
  later one is dropped (`duplicate`), one that skips ahead is refused (`gap`);
- only the current owner epoch may add checkpoints or end the run: a proposal of an older
  epoch is refused (`stale`); an owner change must raise the epoch and name a node that
  registered the (name, version) pair and did not diverge on this workflow;
- a finished workflow drops its checkpoint sequence (nodes still running it keep their own
  reference to it) and keeps its outcome; at most `retain_finished` finished workflows are
  kept, the oldest forgotten first.

Nothing here does I/O or reads a clock. Two hooks let the engine watch without breaking that:
`emit(kind, fields)` reports typed events, `listener(change, workflow_id)` says what changed.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from raftoral_lab.core import ConfChange, ConfChangeOp, Entry, EntryKind
from raftoral_lab.errors import ConfChangeError
from raftoral_lab.workflow.commands import (
    Cancel,
    Checkpoint,
    Command,
    Diverged,
    End,
    ErrorInfo,
    OwnerChange,
    Register,
    Start,
    decode,
)

SNAPSHOT_VERSION = 1
DEFAULT_RETAIN_FINISHED = 1000

Answer = dict[str, Any]
Change = Literal["started", "checkpoint", "owner", "ended", "capabilities", "restored"]
EmitHook = Callable[[str, dict[str, Any]], None]
ChangeHook = Callable[[Change, "str | None"], None]


class WorkflowStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class CommittedCheckpoint:
    """The committed value (or failure) of operation `ordinal`, written at log `index`."""

    ordinal: int
    key: str
    value: Any
    error: ErrorInfo | None
    epoch: int
    index: int


@dataclass(slots=True)
class WorkflowRecord:
    workflow_id: str
    name: str
    version: int
    input: Any
    owner: int | None
    epoch: int
    started_index: int
    started_by: int | None = None
    status: WorkflowStatus = WorkflowStatus.RUNNING
    checkpoints: list[CommittedCheckpoint] = field(default_factory=list)
    """The committed sequence while running. Replaced (never cleared in place) at the end, so
    a node's run that holds the list keeps consuming it."""
    checkpoint_count: int = 0
    result: Any = None
    error: ErrorInfo | None = None
    ended_index: int | None = None
    excluded: set[int] = field(default_factory=set)
    """Nodes whose run diverged: never owners of this workflow again."""

    @property
    def running(self) -> bool:
        return self.status is WorkflowStatus.RUNNING


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    """A read-only picture of one workflow, as this node's state machine has it."""

    workflow_id: str
    name: str
    version: int
    status: WorkflowStatus
    owner: int | None
    epoch: int
    checkpoint_count: int
    checkpoints: tuple[CommittedCheckpoint, ...]
    """The committed sequence so far (empty once the workflow ended)."""
    input: Any
    result: Any
    error: ErrorInfo | None
    started_index: int
    ended_index: int | None
    excluded: frozenset[int]

    @property
    def finished(self) -> bool:
        return self.status is not WorkflowStatus.RUNNING

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "name": self.name,
            "version": self.version,
            "status": self.status.value,
            "owner": self.owner,
            "epoch": self.epoch,
            "checkpoint_count": self.checkpoint_count,
            "result": self.result,
            "error": self.error.to_json() if self.error else None,
            "started_index": self.started_index,
            "ended_index": self.ended_index,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkflowInfo:
        """The picture another node sent (`to_json`): without the checkpoint values, the
        input or the excluded nodes, which stay on the cluster that runs the workflow."""
        error = data.get("error")
        ended = data.get("ended_index")
        return cls(
            workflow_id=str(data["workflow_id"]),
            name=str(data["name"]),
            version=int(data["version"]),
            status=WorkflowStatus(data["status"]),
            owner=None if data.get("owner") is None else int(data["owner"]),
            epoch=int(data["epoch"]),
            checkpoint_count=int(data["checkpoint_count"]),
            checkpoints=(),
            input=None,
            result=data.get("result"),
            error=ErrorInfo.from_json(error) if error is not None else None,
            started_index=int(data["started_index"]),
            ended_index=None if ended is None else int(ended),
            excluded=frozenset(),
        )


class WorkflowStateMachine:
    """Implements the node's `StateMachine` protocol (apply, snapshot, restore).

    Use one instance per `Node` instance (a restarted node gets a new one, rebuilt from its
    storage). `retain_finished` must be the same on every node.

    `retain_finished` bounds the memory of finished workflows, and with it "an id never runs
    twice": once that many later workflows have finished, a finished id is forgotten, and a
    start with that id is a new run that executes the function again. Keep it above the
    number of workflows that can end while a caller may still retry a start, or use ids that
    never come back.
    """

    def __init__(self, *, retain_finished: int = DEFAULT_RETAIN_FINISHED) -> None:
        if retain_finished < 0:
            raise ValueError(f"retain_finished must be >= 0, got {retain_finished}")
        self.retain_finished = retain_finished
        self.emit: EmitHook | None = None
        self.listener: ChangeHook | None = None
        self.workflows: dict[str, WorkflowRecord] = {}
        """By id, in start order."""
        self._running: dict[str, WorkflowRecord] = {}
        self.capabilities: dict[int, frozenset[tuple[str, int]]] = {}
        self.last_index = 0
        """Index of the last entry applied (deliberately not `applied_index`: that name tells
        the node the state is durable, and this one lives in memory)."""
        self._finished: deque[str] = deque()

    # --- the StateMachine protocol -------------------------------------------------------------

    def apply(self, entry: Entry) -> object:
        self.last_index = entry.index
        # Never answer None: the node layer takes a None answer of a forwarded proposal for
        # "no answer" and proposes it again.
        if entry.kind is EntryKind.CONF_CHANGE:
            self._apply_conf_change(entry.data)
            return {"result": "conf_change", "index": entry.index}
        if not entry.data:
            return {"result": "empty", "index": entry.index}  # a new leader's empty entry
        try:
            command = decode(entry.data)
        except (ValueError, KeyError, TypeError) as error:
            return {"error": "malformed", "message": str(error)}
        return self._apply(command, entry.index)

    def snapshot(self) -> bytes:
        body = {
            "v": SNAPSHOT_VERSION,
            "last_index": self.last_index,
            "retain_finished": self.retain_finished,
            "capabilities": [
                [node, [list(pair) for pair in sorted(pairs)]]
                for node, pairs in sorted(self.capabilities.items())
            ],
            "workflows": [_record_to_json(r) for r in self.workflows.values()],
            "finished": list(self._finished),
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def restore(self, data: bytes) -> None:
        self.workflows = {}
        self._running = {}
        self.capabilities = {}
        self._finished = deque()
        self.last_index = 0
        if data:
            body = json.loads(data)
            if not isinstance(body, dict) or body.get("v") != SNAPSHOT_VERSION:
                raise ValueError(
                    f"not a workflow snapshot of version {SNAPSHOT_VERSION}: the nodes of one "
                    "cluster must run the same workflow state machine"
                )
            self.last_index = int(body["last_index"])
            self.capabilities = {
                int(node): frozenset((str(n), int(v)) for n, v in pairs)
                for node, pairs in body["capabilities"]
            }
            for raw in body["workflows"]:
                record = _record_from_json(raw)
                self.workflows[record.workflow_id] = record
                if record.running:
                    self._running[record.workflow_id] = record
            self._finished = deque(str(i) for i in body["finished"])
        self._changed("restored", None)

    # --- reading -------------------------------------------------------------------------------

    def get(self, workflow_id: str) -> WorkflowRecord | None:
        return self.workflows.get(workflow_id)

    def running(self) -> list[WorkflowRecord]:
        """The running workflows, in start order."""
        return list(self._running.values())

    def capable_nodes(self, name: str, version: int) -> set[int]:
        """Nodes that registered (name, version)."""
        pair = (name, version)
        return {node for node, pairs in self.capabilities.items() if pair in pairs}

    def registered_pairs(self) -> list[tuple[str, int]]:
        return sorted(set().union(*self.capabilities.values())) if self.capabilities else []

    def can_own(self, record: WorkflowRecord, node: int) -> bool:
        return node in self.capable_nodes(record.name, record.version) and (
            node not in record.excluded
        )

    def info(self, workflow_id: str) -> WorkflowInfo | None:
        record = self.workflows.get(workflow_id)
        return None if record is None else _info(record)

    def infos(self) -> list[WorkflowInfo]:
        return [_info(r) for r in self.workflows.values()]

    # --- applying commands ---------------------------------------------------------------------

    def _apply(self, command: Command, index: int) -> Answer:
        match command:
            case Register():
                return self._register(command)
            case Start():
                return self._start(command, index)
            case Checkpoint():
                return self._checkpoint(command, index)
            case OwnerChange():
                return self._owner_change(command)
            case End():
                return self._end(command, index)
            case Cancel():
                return self._cancel(command, index)
            case Diverged():
                return self._diverged(command)

    def _register(self, command: Register) -> Answer:
        pairs = frozenset(command.workflows)
        if self.capabilities.get(command.node) != pairs:
            self.capabilities[command.node] = pairs
            self._changed("capabilities", None)
        return {"result": "registered", "node": command.node}

    def _start(self, command: Start, index: int) -> Answer:
        existing = self.workflows.get(command.workflow_id)
        if existing is not None:
            return {"result": "exists"} | _summary(existing)
        capable = self.capable_nodes(command.name, command.version)
        if not capable:
            return {
                "error": "unregistered",
                "message": f"no node registered workflow {command.name!r} "
                f"version {command.version}",
                "registered": [list(p) for p in self.registered_pairs()],
            }
        owner = command.owner if command.owner in capable else None
        record = WorkflowRecord(
            command.workflow_id,
            command.name,
            command.version,
            command.input,
            owner,
            epoch=1 if owner is not None else 0,
            started_index=index,
            started_by=command.by,
        )
        self.workflows[record.workflow_id] = record
        self._running[record.workflow_id] = record
        self._emit(
            "workflow_started",
            workflow_id=record.workflow_id,
            name=record.name,
            version=record.version,
            owner=owner,
        )
        self._changed("started", record.workflow_id)
        return {"result": "started"} | _summary(record)

    def _checkpoint(self, command: Checkpoint, index: int) -> Answer:
        record, refusal = self._running_record(command.workflow_id)
        if record is None:
            return refusal
        if command.epoch != record.epoch:
            self._emit(
                "checkpoint_stale",
                workflow_id=record.workflow_id,
                ordinal=command.ordinal,
                epoch=command.epoch,
                current_epoch=record.epoch,
            )
            return {"result": "stale", "epoch": record.epoch, "owner": record.owner}
        committed = len(record.checkpoints)
        if command.ordinal < committed:
            self._emit(
                "checkpoint_duplicate",
                workflow_id=record.workflow_id,
                ordinal=command.ordinal,
                key=command.key,
            )
            return {"result": "duplicate", "ordinal": command.ordinal}
        if command.ordinal > committed:
            return {"result": "gap", "next": committed}
        record.checkpoints.append(
            CommittedCheckpoint(
                command.ordinal, command.key, command.value, command.error, command.epoch, index
            )
        )
        record.checkpoint_count = committed + 1
        self._emit(
            "checkpoint_committed",
            workflow_id=record.workflow_id,
            ordinal=command.ordinal,
            key=command.key,
            epoch=command.epoch,
            index=index,
        )
        self._changed("checkpoint", record.workflow_id)
        return {"result": "committed", "ordinal": command.ordinal, "index": index}

    def _owner_change(self, command: OwnerChange) -> Answer:
        record, refusal = self._running_record(command.workflow_id)
        if record is None:
            return refusal
        if command.epoch <= record.epoch:
            return {"result": "stale", "epoch": record.epoch, "owner": record.owner}
        if not self.can_own(record, command.owner):
            return {
                "result": "refused",
                "message": f"node {command.owner} cannot run {record.name!r} v{record.version}",
            }
        record.owner = command.owner
        record.epoch = command.epoch
        self._emit(
            "owner_changed",
            workflow_id=record.workflow_id,
            owner=command.owner,
            epoch=command.epoch,
        )
        self._changed("owner", record.workflow_id)
        return {"result": "owner", "owner": record.owner, "epoch": record.epoch}

    def _end(self, command: End, index: int) -> Answer:
        record, refusal = self._running_record(command.workflow_id)
        if record is None:
            return refusal
        if command.epoch != record.epoch:
            return {"result": "stale", "epoch": record.epoch, "owner": record.owner}
        if command.checkpoints != len(record.checkpoints):
            return {"result": "mismatch", "committed": len(record.checkpoints)}
        if command.error is None:
            record.status = WorkflowStatus.COMPLETED
            record.result = command.result
        else:
            record.status = WorkflowStatus.FAILED
            record.error = command.error
        self._finish(record, index)
        if command.error is None:
            self._emit(
                "workflow_completed",
                workflow_id=record.workflow_id,
                name=record.name,
                result=_short_json(record.result),
            )
        else:
            self._emit(
                "workflow_failed",
                workflow_id=record.workflow_id,
                error_type=command.error.type,
                message=command.error.message,
            )
        self._changed("ended", record.workflow_id)
        return {"result": "ended"} | _summary(record)

    def _cancel(self, command: Cancel, index: int) -> Answer:
        record, refusal = self._running_record(command.workflow_id)
        if record is None:
            return refusal
        record.status = WorkflowStatus.CANCELLED
        self._finish(record, index)
        self._emit("workflow_cancelled", workflow_id=record.workflow_id)
        self._changed("ended", record.workflow_id)
        return {"result": "cancelled"} | _summary(record)

    def _diverged(self, command: Diverged) -> Answer:
        record = self.workflows.get(command.workflow_id)
        if record is None:
            return {"result": "unknown"}
        record.excluded.add(command.node)
        if record.running and record.owner == command.node:
            record.owner = None
            record.epoch += 1  # whatever the diverged owner still proposes is stale now
            self._changed("owner", record.workflow_id)
        return {"result": "excluded", "node": command.node}

    def _running_record(self, workflow_id: str) -> tuple[WorkflowRecord | None, Answer]:
        """The record of a running workflow, or None and the answer that refuses the command
        (an unknown id, or a workflow that has ended)."""
        record = self.workflows.get(workflow_id)
        if record is None:
            return None, {"result": "unknown"}
        if not record.running:
            return None, {"result": "finished", "status": record.status.value}
        return record, {}

    def _finish(self, record: WorkflowRecord, index: int) -> None:
        record.ended_index = index
        record.checkpoint_count = len(record.checkpoints)
        record.checkpoints = []  # a new list: runs still consuming keep the old one
        self._running.pop(record.workflow_id, None)
        self._finished.append(record.workflow_id)
        while len(self._finished) > self.retain_finished:
            forgotten = self._finished.popleft()
            self.workflows.pop(forgotten, None)

    def _apply_conf_change(self, data: bytes) -> None:
        try:
            change = ConfChange.decode(data)
        except ConfChangeError:
            return
        if change.op is ConfChangeOp.REMOVE and change.node in self.capabilities:
            del self.capabilities[change.node]  # a removed node owns nothing any more
            self._changed("capabilities", None)

    # --- hooks ---------------------------------------------------------------------------------

    def _emit(self, kind: str, **fields: Any) -> None:
        if self.emit is not None:
            self.emit(kind, fields)

    def _changed(self, change: Change, workflow_id: str | None) -> None:
        if self.listener is not None:
            self.listener(change, workflow_id)


def _summary(record: WorkflowRecord) -> Answer:
    return {
        "workflow_id": record.workflow_id,
        "name": record.name,
        "version": record.version,
        "status": record.status.value,
        "owner": record.owner,
        "epoch": record.epoch,
    }


def _info(record: WorkflowRecord) -> WorkflowInfo:
    return WorkflowInfo(
        workflow_id=record.workflow_id,
        name=record.name,
        version=record.version,
        status=record.status,
        owner=record.owner,
        epoch=record.epoch,
        checkpoint_count=max(record.checkpoint_count, len(record.checkpoints)),
        checkpoints=tuple(record.checkpoints),
        input=record.input,
        result=record.result,
        error=record.error,
        started_index=record.started_index,
        ended_index=record.ended_index,
        excluded=frozenset(record.excluded),
    )


def _record_to_json(record: WorkflowRecord) -> dict[str, Any]:
    return {
        "id": record.workflow_id,
        "name": record.name,
        "version": record.version,
        "input": record.input,
        "owner": record.owner,
        "epoch": record.epoch,
        "started": record.started_index,
        "by": record.started_by,
        "status": record.status.value,
        "checkpoints": [
            [c.ordinal, c.key, c.value, c.error.to_json() if c.error else None, c.epoch, c.index]
            for c in record.checkpoints
        ],
        "count": record.checkpoint_count,
        "result": record.result,
        "error": record.error.to_json() if record.error else None,
        "ended": record.ended_index,
        "excluded": sorted(record.excluded),
    }


def _record_from_json(raw: dict[str, Any]) -> WorkflowRecord:
    return WorkflowRecord(
        workflow_id=raw["id"],
        name=raw["name"],
        version=raw["version"],
        input=raw["input"],
        owner=raw["owner"],
        epoch=raw["epoch"],
        started_index=raw["started"],
        started_by=raw["by"],
        status=WorkflowStatus(raw["status"]),
        checkpoints=[
            CommittedCheckpoint(
                ordinal, key, value, ErrorInfo.from_json(error) if error else None, epoch, index
            )
            for ordinal, key, value, error, epoch, index in raw["checkpoints"]
        ],
        checkpoint_count=raw["count"],
        result=raw["result"],
        error=ErrorInfo.from_json(raw["error"]) if raw["error"] else None,
        ended_index=raw["ended"],
        excluded=set(raw["excluded"]),
    )


def _short_json(value: Any, limit: int = 120) -> str:
    """A workflow's result as short JSON text for its event (a dashboard shows it)."""
    text = json.dumps(value, separators=(",", ":"), default=repr)
    return text if len(text) <= limit else text[: limit - 1] + "…"
