"""A history of client operations, as Jepsen records them.

Each operation leaves two events in the history: an `invoke` when the client sends it, then
one completion:

- `ok`    it happened, and `result` is what it returned;
- `fail`  it certainly did not happen (nothing was proposed, or the store refused it);
- `info`  nobody knows (a timeout, a crash): it may have happened, at any time after its
          invocation, or never. The process that issued it is considered crashed and the
          client goes on under a new process id, so a process has one operation open at most.

The order of events in the list is the real-time order the checker uses; `time` (seconds, or
simulator ticks) is for people reading the history.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from raftoral_lab.kv.machine import Op, Value

EventType = Literal["invoke", "ok", "fail", "info"]

Args = tuple[Value, ...]
"""get (), put (value,), cas (expected, new)."""


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    type: EventType
    process: int
    op: Op
    key: str
    args: Args
    result: Value = None
    """get: the value read; put: None; cas: True if it swapped. Set on `ok` only."""
    time: float = 0.0

    def __str__(self) -> str:
        done = f" -> {self.result!r}" if self.type == "ok" else ""
        return f"{self.type:6} p{self.process} {describe(self.op, self.key, self.args)}{done}"


@dataclass(frozen=True, slots=True)
class Operation:
    """An invocation paired with its completion; `ret` is None while unknown (info, or none)."""

    process: int
    op: Op
    key: str
    args: Args
    status: Literal["ok", "fail", "info"]
    result: Value
    call: int
    """Position of the invoke event in the history."""
    ret: int | None
    """Position of the completion event; None when the outcome is unknown."""
    call_time: float = 0.0
    ret_time: float | None = None

    @property
    def mutates(self) -> bool:
        """May change the value: a put, or a cas not known to have failed."""
        if self.op == "cas":
            return not (self.status == "ok" and not self.result)
        return self.op == "put"

    @property
    def changes(self) -> bool:
        """Like `mutates`, but False for a cas that would write the value it expects."""
        if self.op == "cas":
            expected, new = self.args
            if type(expected) is type(new) and expected == new:
                return False
        return self.mutates

    def __str__(self) -> str:
        text = f"p{self.process} {describe(self.op, self.key, self.args)}"
        if self.status == "ok":
            text += f" -> {self.result!r}"
        else:
            text += f" ({'unknown outcome' if self.status == 'info' else 'failed'})"
        end = "end" if self.ret is None else f"#{self.ret}"
        return f"{text}  [events #{self.call}..{end}]"


def describe(op: Op, key: str, args: Args) -> str:
    if op == "get":
        return f"get({key!r})"
    if op == "put":
        return f"put({key!r}, {args[0]!r})"
    return f"cas({key!r}, {args[0]!r} -> {args[1]!r})"


@dataclass
class History:
    """Events in the order they happened. Share one History among all clients of a test."""

    clock: Callable[[], float] = time.monotonic
    events: list[HistoryEvent] = field(default_factory=list)
    _open: dict[int, HistoryEvent] = field(default_factory=dict, repr=False)
    _processes: Iterator[int] = field(default_factory=itertools.count, repr=False)

    def new_process(self) -> int:
        """A process id never used before in this history."""
        used = {e.process for e in self.events}
        while (process := next(self._processes)) in used:
            pass
        return process

    def invoke(self, process: int, op: Op, key: str, args: Args = ()) -> None:
        if process in self._open:
            raise ValueError(
                f"process {process} already has an operation open: {self._open[process]}"
            )
        event = HistoryEvent("invoke", process, op, key, tuple(args), None, self.clock())
        self._open[process] = event
        self.events.append(event)

    def ok(self, process: int, result: Value = None) -> None:
        self._complete(process, "ok", result)

    def fail(self, process: int) -> None:
        self._complete(process, "fail", None)

    def info(self, process: int) -> None:
        self._complete(process, "info", None)

    def _complete(self, process: int, kind: EventType, result: Value) -> None:
        invoked = self._open.pop(process, None)
        if invoked is None:
            raise ValueError(f"process {process} has no operation open to complete with {kind}")
        self.events.append(
            HistoryEvent(kind, process, invoked.op, invoked.key, invoked.args, result, self.clock())
        )

    def operations(self) -> list[Operation]:
        return operations(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def __str__(self) -> str:
        return "\n".join(f"#{i:<4} {event}" for i, event in enumerate(self.events))


def operations(events: list[HistoryEvent]) -> list[Operation]:
    """Pair invocations with completions, in order of invocation. An invocation that never
    completed counts as `info`: its outcome is unknown."""
    open_calls: dict[int, tuple[int, HistoryEvent]] = {}
    done: dict[int, Operation] = {}
    for position, event in enumerate(events):
        if event.type == "invoke":
            if event.process in open_calls:
                raise ValueError(
                    f"event #{position}: process {event.process} invoked {event.op} while its "
                    f"operation from event #{open_calls[event.process][0]} is still open"
                )
            open_calls[event.process] = (position, event)
            continue
        if event.process not in open_calls:
            raise ValueError(
                f"event #{position}: {event.type} of process {event.process} completes nothing"
            )
        call, invoked = open_calls.pop(event.process)
        known = event.type != "info"
        done[call] = Operation(
            invoked.process,
            invoked.op,
            invoked.key,
            invoked.args,
            event.type,
            event.result if event.type == "ok" else None,
            call,
            position if known else None,
            invoked.time,
            event.time if known else None,
        )
    for call, invoked in open_calls.values():
        done[call] = Operation(
            invoked.process,
            invoked.op,
            invoked.key,
            invoked.args,
            "info",
            None,
            call,
            None,
            invoked.time,
            None,
        )
    return [done[call] for call in sorted(done)]
