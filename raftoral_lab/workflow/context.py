"""What a workflow function sees: `WorkflowContext` and the replicated variables it makes.

Every member node runs the function. Each checkpoint operation (`checkpoint`, `set`,
`update`, `checkpoint_compute`, `sleep`, `now`, `random`) gets the next ordinal of the run and
takes its value from the committed sequence: the owner proposes the value first, the others
wait for it. So every node sees the same values in the same order, whoever computed them.

Workflow code must be deterministic given those values: the same calls with the same keys in
the same order on every node. Read the clock and draw random numbers through `ctx.now()` and
`ctx.random()`, wait through `ctx.sleep()`; do side effects only inside `checkpoint_compute`.
"""

from __future__ import annotations

import asyncio
import inspect
import random as _random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast, overload

from raftoral_lab.errors import CheckpointFailed, ConfigError
from raftoral_lab.workflow.app import from_json, to_json
from raftoral_lab.workflow.commands import ErrorInfo
from raftoral_lab.workflow.state_machine import CommittedCheckpoint

T = TypeVar("T")

Produced = tuple[Any, ErrorInfo | None]
"""A value to propose: (JSON value, None) or (None, the failure)."""


class Producer(Protocol):
    async def __call__(self) -> Produced | None:
        """The value to propose; None when the node stopped owning the run meanwhile."""
        ...


class Execution(Protocol):
    """The engine's side of one node's run (implemented in runtime.py)."""

    workflow_id: str
    name: str
    version: int
    node_id: int
    computations: int

    @property
    def is_owner(self) -> bool: ...

    async def op(
        self, key: str, produce: Producer, *, side_effect: bool = False, run_ahead: bool = True
    ) -> CommittedCheckpoint: ...

    def emit(self, kind: str, fields: dict[str, Any]) -> None: ...

    def failure(self, ordinal: int) -> BaseException | None:
        """The original exception of a failed computation at `ordinal`, if it ran here."""
        ...

    def remember_failure(self, error: BaseException) -> None:
        """Keep the exception of a computation of the operation in progress (for chaining)."""
        ...


@dataclass(frozen=True, slots=True)
class Retry:
    """Retries of a `checkpoint_compute` function on the owner, with exponential backoff.

    `attempts` counts the first call too. Only the last failure is committed; the retries
    happen on the owner alone and stop when it loses ownership (the new owner starts over).
    """

    attempts: int = 3
    initial_delay: float = 0.1
    multiplier: float = 2.0
    max_delay: float = 10.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError(f"Retry.attempts must be at least 1, got {self.attempts}")
        if self.initial_delay < 0 or self.multiplier < 1 or self.max_delay < 0:
            raise ConfigError("Retry delays must be >= 0 and the multiplier >= 1")

    def delay(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failed attempt."""
        return min(self.max_delay, self.initial_delay * self.multiplier ** (failures - 1))

    def should_retry(self, error: BaseException, failures: int) -> bool:
        return failures < self.attempts and isinstance(error, self.retry_on)


NO_RETRY = Retry(attempts=1)

SLEEP_KEY = "@sleep"
NOW_KEY = "@now"
RANDOM_KEY = "@random"


class WorkflowContext:
    """The handle a workflow function gets as its first argument."""

    def __init__(self, execution: Execution) -> None:
        self._x = execution

    @property
    def workflow_id(self) -> str:
        return self._x.workflow_id

    @property
    def name(self) -> str:
        return self._x.name

    @property
    def version(self) -> int:
        return self._x.version

    @property
    def node_id(self) -> int:
        """The node this copy of the run executes on."""
        return self._x.node_id

    @property
    def is_owner(self) -> bool:
        """Whether this node owns the run now. For logs and displays only: branching on it
        makes the run take different paths on different nodes."""
        return self._x.is_owner

    async def checkpoint(self, key: str, value: T, *, type_: Any = None) -> ReplicatedVar[T]:
        """A replicated variable holding `value` as committed (the owner's value).

        `value` must be JSON data or a pydantic model (or anything `type_` describes for
        pydantic); every node gets the committed value back in that type.
        """
        tp = type_ if type_ is not None else _model_type(value)
        encoded = to_json(value, tp)
        committed = await self._x.op(key, _constant(encoded))
        return ReplicatedVar(self, key, cast(T, from_json(committed.value, tp)), tp)

    @overload
    async def checkpoint_compute(
        self,
        key: str,
        fn: Callable[[], Awaitable[T]],
        *,
        retry: Retry | int | None = None,
        result_type: Any = None,
    ) -> T: ...

    @overload
    async def checkpoint_compute(
        self,
        key: str,
        fn: Callable[[], T],
        *,
        retry: Retry | int | None = None,
        result_type: Any = None,
    ) -> T: ...

    async def checkpoint_compute(
        self,
        key: str,
        fn: Callable[[], Any],
        *,
        retry: Retry | int | None = None,
        result_type: Any = None,
    ) -> Any:
        """Run `fn` (sync or async) on the owner only and return its committed result.

        The other nodes never call `fn`: they wait for the committed value. If `fn` raises
        (after the retries of `retry`), the failure is committed and every node raises the
        same `CheckpointFailed(error_type, message)` here.

        At least once, not exactly once: when the owner fails over while `fn` runs (or after
        it ran but before its result committed), the new owner calls `fn` again. Make side
        effects idempotent (e.g. pass the workflow id as an idempotency key).

        `result_type` turns the committed JSON back into a type (a pydantic model...).
        """
        policy = _policy(retry)
        x = self._x

        async def produce() -> Produced | None:
            failures = 0
            while True:
                x.computations += 1
                try:
                    outcome = fn()
                    if inspect.isawaitable(outcome):
                        outcome = await outcome
                except Exception as error:
                    failures += 1
                    if policy.should_retry(error, failures):
                        await _sleep(policy.delay(failures))
                        if not x.is_owner:
                            return None  # the new owner computes it
                        continue
                    return None, _remember(x, error)
                try:
                    return to_json(outcome, result_type), None
                except Exception as error:  # a result the log cannot carry fails the same way
                    return None, _remember(x, error)

        committed = await x.op(key, produce, side_effect=True)
        if committed.error is not None:
            failure = CheckpointFailed(
                x.workflow_id, key, committed.ordinal, committed.error.type, committed.error.message
            )
            raise failure from x.failure(committed.ordinal)
        return from_json(committed.value, result_type)

    async def sleep(self, seconds: float) -> None:
        """A durable timer: the wake-up time is committed, so a new owner after a failover
        wakes at the same moment (and a node catching up later does not wait again)."""
        if seconds < 0:
            raise ValueError(f"sleep takes a non-negative number of seconds, got {seconds}")
        wake_at = _constant_call(lambda: time.time() + seconds)
        committed = await self._x.op(SLEEP_KEY, wake_at, run_ahead=False)
        until = float(committed.value)
        self._x.emit(
            "workflow_sleeping",
            {"workflow_id": self.workflow_id, "ordinal": committed.ordinal, "until": until},
        )
        delay = until - time.time()
        if delay > 0:
            await _sleep(delay)

    async def now(self) -> float:
        """The owner's wall clock (seconds since the epoch), the same on every node."""
        committed = await self._x.op(NOW_KEY, _constant_call(time.time))
        return float(committed.value)

    async def random(self) -> float:
        """A random float in [0, 1), the same on every node."""
        committed = await self._x.op(RANDOM_KEY, _constant_call(_random.random))
        return float(committed.value)


class ReplicatedVar(Generic[T]):
    """A value replicated through the log: each `set` is one checkpoint operation."""

    def __init__(self, ctx: WorkflowContext, key: str, value: T, type_: Any) -> None:
        self._ctx = ctx
        self.key = key
        self._value = value
        self._type = type_

    @property
    def value(self) -> T:
        """The committed value (the same on every node at this point of the run)."""
        return self._value

    async def set(self, value: T) -> T:
        """Commit a new value; returns it as committed."""
        encoded = to_json(value, self._type)
        committed = await self._ctx._x.op(self.key, _constant(encoded))
        self._value = cast(T, from_json(committed.value, self._type))
        return self._value

    async def update(self, fn: Callable[[T], T]) -> T:
        """`set(fn(value))`: `fn` runs on every node (keep it deterministic)."""
        return await self.set(fn(self._value))

    def __repr__(self) -> str:
        return f"ReplicatedVar({self.key!r}, {self._value!r})"


def _model_type(value: object) -> Any:
    return type(value) if hasattr(value, "__pydantic_serializer__") else None


def _policy(retry: Retry | int | None) -> Retry:
    if retry is None:
        return NO_RETRY
    if isinstance(retry, Retry):
        return retry
    if isinstance(retry, int) and not isinstance(retry, bool):
        return Retry(attempts=retry)
    raise ConfigError(f"retry must be a Retry, an int (attempts) or None, got {retry!r}")


def _remember(x: Execution, error: BaseException) -> ErrorInfo:
    info = ErrorInfo.of(error)
    x.remember_failure(error)
    return info


def _constant(value: Any) -> Producer:
    async def produce() -> Produced | None:
        return value, None

    return produce


def _constant_call(fn: Callable[[], Any]) -> Producer:
    async def produce() -> Produced | None:
        return fn(), None

    return produce


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)
