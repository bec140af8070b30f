"""The commands of the workflow state machine: one JSON object per log entry.

```
{"wf": 1, "op": "register", "node": 2, "workflows": [["process_order", 1]]}
{"wf": 1, "op": "start", "id": "w1", "name": "process_order", "version": 1, "input": {...},
 "owner": 1, "by": 3}
{"wf": 1, "op": "checkpoint", "id": "w1", "ordinal": 0, "key": "status", "value": "new",
 "epoch": 1}                                        # or "error": {"type": ..., "message": ...}
{"wf": 1, "op": "owner", "id": "w1", "owner": 2, "epoch": 2}
{"wf": 1, "op": "end", "id": "w1", "epoch": 2, "checkpoints": 7, "result": {...}}
                                                    # or "error": {"type": ..., "message": ...}
{"wf": 1, "op": "cancel", "id": "w1"}
{"wf": 1, "op": "diverged", "id": "w1", "node": 3, "ordinal": 4, "expected": "a", "actual": "b"}
```

`wf` is the format version. Decoding never trusts its input: a malformed command raises
`ValueError`, which the state machine turns into an answer (a log entry can never crash it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeGuard

FORMAT = 1


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An error as the log carries it: the exception's type name and its message."""

    type: str
    message: str

    @classmethod
    def of(cls, error: BaseException) -> ErrorInfo:
        return cls(type(error).__name__, str(error))

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message}

    @classmethod
    def from_json(cls, data: object) -> ErrorInfo:
        if not isinstance(data, dict):
            raise ValueError(f"an error must be an object, got {data!r}")
        return cls(_str(data, "type"), _str(data, "message", allow_empty=True))


@dataclass(frozen=True, slots=True)
class Register:
    """Node `node` can run these (name, version) pairs (replaces what it said before)."""

    node: int
    workflows: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Start:
    workflow_id: str
    name: str
    version: int
    input: Any
    owner: int | None
    """The proposer's choice of first owner (the leader it knows), checked on apply."""
    by: int | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    workflow_id: str
    ordinal: int
    key: str
    value: Any
    epoch: int
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class OwnerChange:
    workflow_id: str
    owner: int
    epoch: int


@dataclass(frozen=True, slots=True)
class End:
    workflow_id: str
    epoch: int
    checkpoints: int
    """How many checkpoint operations the owner's run consumed: must match the committed ones."""
    result: Any = None
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    workflow_id: str


@dataclass(frozen=True, slots=True)
class Diverged:
    """Node `node`'s run diverged: it may not own the workflow any more."""

    workflow_id: str
    node: int
    ordinal: int
    expected: str
    actual: str


Command = Register | Start | Checkpoint | OwnerChange | End | Cancel | Diverged


def encode(command: Command) -> bytes:
    body: dict[str, Any] = {"wf": FORMAT}
    match command:
        case Register(node, workflows):
            body |= {"op": "register", "node": node, "workflows": [list(p) for p in workflows]}
        case Start(workflow_id, name, version, value, owner, by):
            body |= {
                "op": "start",
                "id": workflow_id,
                "name": name,
                "version": version,
                "input": value,
                "owner": owner,
                "by": by,
            }
        case Checkpoint(workflow_id, ordinal, key, value, epoch, error):
            body |= {
                "op": "checkpoint",
                "id": workflow_id,
                "ordinal": ordinal,
                "key": key,
                "epoch": epoch,
            }
            body |= {"error": error.to_json()} if error is not None else {"value": value}
        case OwnerChange(workflow_id, owner, epoch):
            body |= {"op": "owner", "id": workflow_id, "owner": owner, "epoch": epoch}
        case End(workflow_id, epoch, checkpoints, result, error):
            body |= {"op": "end", "id": workflow_id, "epoch": epoch, "checkpoints": checkpoints}
            body |= {"error": error.to_json()} if error is not None else {"result": result}
        case Cancel(workflow_id):
            body |= {"op": "cancel", "id": workflow_id}
        case Diverged(workflow_id, node, ordinal, expected, actual):
            body |= {
                "op": "diverged",
                "id": workflow_id,
                "node": node,
                "ordinal": ordinal,
                "expected": expected,
                "actual": actual,
            }
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def decode(data: bytes) -> Command:
    """The command in a log entry; ValueError (with the reason) for anything else."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(body, dict) or body.get("wf") != FORMAT:
        raise ValueError(f"not a workflow command of format {FORMAT}")
    op = body.get("op")
    if op == "register":
        raw = body.get("workflows")
        if not isinstance(raw, list):
            raise ValueError("register: workflows must be a list")
        pairs = []
        for pair in raw:
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not isinstance(pair[0], str)
                or not _is_int(pair[1])
            ):
                raise ValueError(f"register: {pair!r} is not a [name, version] pair")
            pairs.append((pair[0], pair[1]))
        return Register(_int(body, "node"), tuple(sorted(set(pairs))))
    workflow_id = _str(body, "id")
    if op == "start":
        owner = body.get("owner")
        by = body.get("by")
        return Start(
            workflow_id,
            _str(body, "name"),
            _int(body, "version"),
            body.get("input"),
            owner if _is_int(owner) else None,
            by if _is_int(by) else None,
        )
    if op == "checkpoint":
        return Checkpoint(
            workflow_id,
            _int(body, "ordinal"),
            _str(body, "key"),
            body.get("value"),
            _int(body, "epoch"),
            _error(body),
        )
    if op == "owner":
        return OwnerChange(workflow_id, _int(body, "owner"), _int(body, "epoch"))
    if op == "end":
        return End(
            workflow_id,
            _int(body, "epoch"),
            _int(body, "checkpoints"),
            body.get("result"),
            _error(body),
        )
    if op == "cancel":
        return Cancel(workflow_id)
    if op == "diverged":
        return Diverged(
            workflow_id,
            _int(body, "node"),
            _int(body, "ordinal"),
            _str(body, "expected"),
            _str(body, "actual"),
        )
    raise ValueError(f"unknown op {op!r}")


def _error(body: dict[str, Any]) -> ErrorInfo | None:
    return ErrorInfo.from_json(body["error"]) if "error" in body else None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if not _is_int(value) or value < 0:
        raise ValueError(f"field {name!r} must be a non-negative int, got {value!r}")
    return value


def _str(body: dict[str, Any], name: str, *, allow_empty: bool = False) -> str:
    value = body.get(name)
    if not isinstance(value, str) or (not value and not allow_empty):
        raise ValueError(f"field {name!r} must be a non-empty string, got {value!r}")
    return value
