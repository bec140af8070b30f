"""`KVClient`: get, put and compare-and-set through Raft, each recorded in a `History`.

```python
history = History()
a, b = KVClient(lab, history), KVClient(lab, history)      # a Lab, or one Node
await a.put("x", 1); await b.cas("x", 1, 2); await a.get("x")
print(check(history))
```

A client has one request open at a time. A request that fails on the way (its node crashed,
the leader changed) is proposed again *with the same request number*, so the store applies it
once whatever happens. When the deadline passes the outcome is unknown: the history says
`info`, the call raises `OutcomeUnknown`, and the client carries on as a new process.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from typing import Protocol

from raftoral_lab.errors import NodeError, ProposalTimeout, RaftError
from raftoral_lab.kv.history import Args, History
from raftoral_lab.kv.machine import Answer, Command, Op, Value


class Proposer(Protocol):
    """What a client talks to: a `Node`, or a `Lab` (it proposes through the leader)."""

    async def propose(self, data: bytes, *, timeout: float = ...) -> object: ...


class OutcomeUnknown(ProposalTimeout):
    """The operation was not answered in time: it may have taken effect, or may yet."""


class CommandRefused(NodeError):
    """The store answered that it did nothing (a stale or malformed command)."""


class KVClient:
    def __init__(
        self,
        target: Proposer,
        history: History | None = None,
        *,
        client: str | None = None,
        timeout: float = 5.0,
        retry_delay: float = 0.05,
    ) -> None:
        """`target` carries the commands (a Lab or a Node); `history` records every operation
        (share one among the clients of a test); `timeout` bounds each operation."""
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.target = target
        self.history = history if history is not None else History()
        self.client = client or uuid.uuid4().hex[:12]
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.process = self.history.new_process()
        self._requests = itertools.count(1)

    async def get(self, key: str) -> Value:
        answer = await self._call("get", key, ())
        return answer["value"]  # type: ignore[no-any-return]

    async def put(self, key: str, value: Value) -> None:
        await self._call("put", key, (value,))

    async def cas(self, key: str, expected: Value, new: Value) -> bool:
        """Set `key` to `new` if it holds `expected`; True if it did."""
        answer = await self._call("cas", key, (expected, new))
        return bool(answer["swapped"])

    async def _call(self, op: Op, key: str, args: Args) -> Answer:
        value = args[-1] if op != "get" else None
        expected = args[0] if op == "cas" else None
        command = Command(op, key, self.client, next(self._requests), value, expected)
        process = self.process
        self.history.invoke(process, op, key, args)
        try:
            answer = await self._replicate(command)
        except BaseException:  # timeout, cancellation: nobody knows whether it happened
            self.history.info(process)
            self.process = self.history.new_process()
            raise
        if "error" in answer:
            self.history.fail(process)
            raise CommandRefused(f"{command.op} {command.key!r}: {answer.get('message')}")
        result: Value = (
            answer["swapped"] if op == "cas" else answer["value"] if op == "get" else None
        )
        self.history.ok(process, result)
        return answer

    async def _replicate(self, command: Command) -> Answer:
        data = command.encode()
        deadline = time.monotonic() + self.timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                answer = await self.target.propose(data, timeout=remaining)
            except (NodeError, RaftError):  # the node died, lost leadership, timed out
                await asyncio.sleep(min(self.retry_delay, max(deadline - time.monotonic(), 0)))
                continue
            if not isinstance(answer, dict):
                raise NodeError(
                    f"the cluster answered {answer!r}, not a key-value answer: start its nodes "
                    "with state_machine=KVStateMachine()"
                )
            return answer
        raise OutcomeUnknown(
            f"client {self.client}: {command.op} {command.key!r} (request {command.request}) "
            f"not answered within {self.timeout:g} s; it may still take effect"
        )
