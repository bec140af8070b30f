"""A replicated key-value store: the state machine every node applies committed commands to.

Commands are JSON objects, one per log entry:

    {"op": "get", "key": "x", "client": "c1", "request": 7}
    {"op": "put", "key": "x", "value": 3, "client": "c1", "request": 8}
    {"op": "cas", "key": "x", "expected": 3, "value": 4, "client": "c1", "request": 9}

Reads go through the log like writes, so a read sees every write committed before it: the
store is linearizable by construction (at the price of a log entry per read).

Exactly once: a client sends one request at a time, numbered 1, 2, 3 ... A proposal may reach
the log twice (a forwarded proposal whose answer was lost is sent again), so the machine keeps,
per client, the number and the answer of its last request (the *session* table of the Raft
thesis, section 6.3). A repeat of that request gets the saved answer and changes nothing; an
older request is refused as stale. The table is part of the snapshot, so a node that restarts
or installs a snapshot deduplicates exactly like the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard, cast, get_args

from raftoral_lab.core import Entry, EntryKind

Value = str | int | float | bool | None
"""What a key holds. Scalars only: the checker keeps register states in hashable sets."""

Op = Literal["get", "put", "cas"]
OPS: tuple[Op, ...] = get_args(Op)

Answer = dict[str, Any]
"""What `apply` returns for a command (JSON-ready, it may travel back over MQTT):
get `{"value": v}`, put `{"value": v}`, cas `{"swapped": bool, "value": current}`, and
`{"error": "stale" | "bad_command", "message": ...}` for commands that did nothing."""

SNAPSHOT_VERSION = 1


def is_value(value: object) -> TypeGuard[Value]:
    return value is None or isinstance(value, str | int | float | bool)


@dataclass(frozen=True, slots=True)
class Command:
    """One request of one client; `value` is put's value or cas's new value."""

    op: Op
    key: str
    client: str
    request: int
    value: Value = None
    expected: Value = None

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown op {self.op!r}; ops are {', '.join(OPS)}")
        if not isinstance(self.key, str):
            raise ValueError(f"key must be a string, got {self.key!r}")
        if not isinstance(self.client, str) or not self.client:
            raise ValueError(f"client must be a non-empty string, got {self.client!r}")
        if type(self.request) is not int or self.request < 1:
            raise ValueError(f"request must be a positive integer, got {self.request!r}")
        for name in ("value", "expected"):
            if not is_value(getattr(self, name)):
                raise ValueError(f"{name} must be a JSON scalar, got {getattr(self, name)!r}")

    def encode(self) -> bytes:
        body: dict[str, Any] = {
            "op": self.op,
            "key": self.key,
            "client": self.client,
            "request": self.request,
        }
        if self.op != "get":
            body["value"] = self.value
        if self.op == "cas":
            body["expected"] = self.expected
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Command:
        """The command in `data`; ValueError saying what is wrong otherwise."""
        try:
            body = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"not JSON: {error}") from None
        if not isinstance(body, dict):
            raise ValueError(f"a command is a JSON object, got {type(body).__name__}")
        unknown = set(body) - {"op", "key", "client", "request", "value", "expected"}
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)}")
        try:
            return cls(
                op=body["op"],
                key=body["key"],
                client=body["client"],
                request=body["request"],
                value=body.get("value"),
                expected=body.get("expected"),
            )
        except KeyError as missing:
            raise ValueError(f"missing field {missing}") from None


class KVStateMachine:
    """The key-value store: implements the node `StateMachine` protocol (apply, snapshot,
    restore). Deterministic: every node that applies the same log answers the same."""

    def __init__(self) -> None:
        self.data: dict[str, Value] = {}
        self.sessions: dict[str, tuple[int, Answer]] = {}
        """client -> (its last applied request number, the answer it got)."""
        self.repeats = 0
        """Commands this replica answered from the session table (not part of the state)."""

    def apply(self, entry: Entry) -> object:
        if entry.kind is not EntryKind.NORMAL or not entry.data:
            return None  # membership changes and a new leader's empty entry
        try:
            command = Command.decode(entry.data)
        except ValueError as error:
            return {"error": "bad_command", "message": str(error)}
        return self.execute(command)

    def execute(self, command: Command) -> Answer:
        """Run one command with the session check; the answer goes back to the client."""
        session = self.sessions.get(command.client)
        if session is not None:
            last, answer = session
            if command.request == last:
                self.repeats += 1
                return answer  # a repeat: the first answer, and no second effect
            if command.request < last:
                return {
                    "error": "stale",
                    "message": f"client {command.client} is at request {last} already",
                }
        answer = self._run(command)
        self.sessions[command.client] = (command.request, answer)
        return answer

    def _run(self, command: Command) -> Answer:
        current = self.data.get(command.key)
        if command.op == "get":
            return {"value": current}
        if command.op == "put":
            self.data[command.key] = command.value
            return {"value": command.value}
        swapped = current == command.expected and type(current) is type(command.expected)
        if swapped:
            self.data[command.key] = command.value
        return {"swapped": swapped, "value": self.data.get(command.key)}

    def snapshot(self) -> bytes:
        body = {
            "version": SNAPSHOT_VERSION,
            "data": self.data,
            "sessions": {client: [req, ans] for client, (req, ans) in self.sessions.items()},
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def restore(self, data: bytes) -> None:
        if not data:
            self.data, self.sessions = {}, {}
            return
        body = json.loads(data)
        if not isinstance(body, dict) or body.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"not a key-value snapshot of version {SNAPSHOT_VERSION}")
        self.data = cast(dict[str, Value], dict(body["data"]))
        self.sessions = {
            client: (int(req), cast(Answer, ans)) for client, (req, ans) in body["sessions"].items()
        }
