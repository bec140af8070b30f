"""The workload of a chaos run: sample workflows with inputs drawn from the seed, and the
output each must have, found by running the same workflow function in-process without Raft.

The expected outcome comes from the registered function itself (`raftoral_lab.samples`), run
once with a context that commits every checkpoint at once: no cluster, no faults. A run on
the cluster must end the same way, whatever was killed or cut off meanwhile. A failing
workflow (an order for an item not in the catalog) is part of the mix: its expected outcome is
the failure, with the error type and message every node commits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from raftoral_lab.errors import CheckpointFailed
from raftoral_lab.samples import app as sample_app
from raftoral_lab.workflow import WorkflowApp, WorkflowContext
from raftoral_lab.workflow.commands import ErrorInfo
from raftoral_lab.workflow.context import Producer
from raftoral_lab.workflow.state_machine import CommittedCheckpoint

ITEMS = ("book", "pen", "lamp", "lamp", "kite")
"""`kite` is not in the catalog (its order fails); `lamp` has 2 in stock (bigger orders are
out of stock)."""


@dataclass(frozen=True, slots=True)
class Expected:
    """How a workflow must end: `completed` with `result`, or `failed` with `error`."""

    status: str
    result: Any = None
    error: ErrorInfo | None = None

    def matches(self, status: str, result: Any, error: ErrorInfo | None) -> bool:
        if status != self.status:
            return False
        if self.status == "completed":
            return bool(result == self.result)
        return error == self.error

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.status} ({self.error.type}: {self.error.message})"
        return f"{self.status} with {self.result!r}"


@dataclass(frozen=True, slots=True)
class Job:
    workflow_id: str
    name: str
    version: int
    input: Any
    """JSON, as the client sends it."""
    expected: Expected


class _Direct:
    """One workflow run without a cluster: every checkpoint commits as proposed (the
    `Execution` protocol of `raftoral_lab.workflow.context`)."""

    def __init__(self, workflow_id: str, name: str, version: int) -> None:
        self.workflow_id = workflow_id
        self.name = name
        self.version = version
        self.node_id = 0
        self.computations = 0
        self._ordinal = 0
        self._failures: dict[int, BaseException] = {}
        self._failure: BaseException | None = None

    @property
    def is_owner(self) -> bool:
        return True

    async def op(
        self, key: str, produce: Producer, *, side_effect: bool = False, run_ahead: bool = True
    ) -> CommittedCheckpoint:
        ordinal = self._ordinal
        self._ordinal += 1
        self._failure = None
        produced = await produce()
        if produced is None:  # only a node that lost ownership says nothing
            raise RuntimeError(f"checkpoint {key!r} produced nothing in a fault-free run")
        value, error = produced
        if self._failure is not None:
            self._failures[ordinal] = self._failure
        return CommittedCheckpoint(ordinal, key, value, error, 1, ordinal + 1)

    def emit(self, kind: str, fields: dict[str, Any]) -> None:
        return None

    def failure(self, ordinal: int) -> BaseException | None:
        return self._failures.get(ordinal)

    def remember_failure(self, error: BaseException) -> None:
        self._failure = error


async def expected_outcome(
    name: str, version: int, value: Any, *, app: WorkflowApp = sample_app
) -> Expected:
    """Run (name, version) on `value` (JSON) in-process, fault-free: how it must end.

    An exception that escapes the function becomes the committed failure the cluster records:
    a failed checkpoint keeps the original error type and message, anything else its own."""
    definition = app.get(name, version)
    payload = definition.input_to_json(value)
    execution = _Direct("expected", name, version)
    try:
        output = await definition.call(
            WorkflowContext(execution), definition.input_from_json(payload)
        )
        return Expected("completed", result=definition.output_to_json(output))
    except CheckpointFailed as error:
        return Expected("failed", error=ErrorInfo(error.error_type, error.message))
    except Exception as error:
        return Expected("failed", error=ErrorInfo.of(error))


def job_input(seed: int, number: int) -> tuple[str, int, Any]:
    """(name, version, JSON input) of workflow `number` of the run with `seed`."""
    rng = random.Random(f"raftoral-chaos-job:{seed}:{number}")
    if rng.random() < 0.5:
        return "ten_steps", 1, rng.randrange(1_000_000)
    order = {
        "order_id": f"order-{seed}-{number}",
        "item": rng.choice(ITEMS),
        "quantity": rng.randint(1, 4),
    }
    return "process_order", 1, order


def workflow_id(seed: int, number: int) -> str:
    return f"chaos-{seed}-{number:05d}"


async def make_job(seed: int, number: int) -> Job:
    name, version, value = job_input(seed, number)
    expected = await expected_outcome(name, version, value)
    return Job(workflow_id(seed, number), name, version, value, expected)
