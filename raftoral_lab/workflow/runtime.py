"""The engine: runs every started workflow on this node, proposes as owner, fails over.

```python
machine = WorkflowStateMachine()
node = Node(1, transport, voters=[1, 2, 3], state_machine=machine)
runtime = WorkflowRuntime(node, app)          # finds the machine on the node
await node.start(); await runtime.start()    # start() registers this node's (name, version)s
run = await runtime.start_workflow("process_order", 1, Order(item="x"))
receipt = await run.result(timeout=30)
```

How a run goes (DESIGN.md section 4):
- `start_workflow` (any node) proposes a `Start`; once it is committed, every member node that
  registered the (name, version) runs the function (a node without it never runs it and is
  never its owner);
- the owner (by default the Raft leader; when the leader lacks the version, a live node that
  has it) computes each checkpoint operation and proposes it under its owner epoch; every node,
  the owner included, takes the value of operation k from the committed sequence;
- the leader keeps ownership right: a node that becomes leader takes over the running
  workflows (an `OwnerChange` with a new epoch), and a leader without the version moves a
  workflow away from an owner that died or left. An old owner's late proposals are refused as
  stale; the new owner continues from where its own run stands, consuming what is committed
  and computing the rest. Side effects in `checkpoint_compute` are at least once;
- the owner proposes `End` with the result or the error; a node still behind keeps consuming
  the committed values (it holds them) until its own run ends, and never computes them;
- a node whose run asks for another key than the committed one at some ordinal raises
  `NonDeterminismError` there (and can no longer own the run); the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from raftoral_lab.core import Role
from raftoral_lab.errors import (
    CheckpointFailed,
    NodeError,
    NonDeterminismError,
    ProposalTimeout,
    RaftoralError,
    UnknownWorkflow,
    WorkflowAborted,
    WorkflowCancelled,
    WorkflowError,
    WorkflowFailed,
    WorkflowIdConflict,
    WorkflowNotFound,
    WorkflowTimeout,
)
from raftoral_lab.events import EventBase
from raftoral_lab.node import Node
from raftoral_lab.node.liveness import Liveness
from raftoral_lab.workflow.app import WorkflowApp, WorkflowDefinition, to_json
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
    encode,
)
from raftoral_lab.workflow.context import SLEEP_KEY, Producer, WorkflowContext
from raftoral_lab.workflow.state_machine import (
    Change,
    CommittedCheckpoint,
    WorkflowInfo,
    WorkflowRecord,
    WorkflowStateMachine,
    WorkflowStatus,
)

END_KEY = "<end>"
"""The `expected_key` of a divergence where the committed run had already ended."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended: COMPLETED with a JSON result, FAILED with an error, or CANCELLED."""

    status: WorkflowStatus
    result: Any = None
    error: ErrorInfo | None = None

    @classmethod
    def of(cls, record: WorkflowRecord) -> Outcome:
        return cls(record.status, record.result, record.error)


class WorkflowRun:
    """One workflow as seen from one node: `await run.result(timeout)` on any node, any time.

    `result()` returns once this node's own run has finished (if it runs the workflow) and the
    workflow's end is committed; it gives the committed result (typed, when this node has the
    workflow's definition), or raises WorkflowFailed / WorkflowCancelled as committed, or
    NonDeterminismError when this node's run diverged, or WorkflowAborted when it could not
    finish here (node stopped or removed).
    """

    def __init__(self, runtime: WorkflowRuntime, workflow_id: str, name: str, version: int) -> None:
        self.runtime = runtime
        self.workflow_id = workflow_id
        self.name = name
        self.version = version
        self.definition: WorkflowDefinition | None = (
            runtime.app.get(name, version) if (name, version) in runtime.app else None
        )
        self.execution: _Execution | None = None
        self.final: Outcome | None = None
        self.aborted: WorkflowAborted | None = None
        """Set when this node stopped before the end was known (and it runs nothing here)."""
        self._done = asyncio.Event()
        self._ending = False

    @property
    def node_id(self) -> int:
        return self.runtime.node_id

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def status(self) -> WorkflowStatus | None:
        """The committed status as this node knows it (None before its start is applied)."""
        if self.final is not None:
            return self.final.status
        record = self.runtime.state_machine.get(self.workflow_id)
        return record.status if record is not None else None

    @property
    def computations(self) -> int:
        """How many times this node called `checkpoint_compute` functions of this run."""
        return self.execution.computations if self.execution is not None else 0

    @property
    def consumed(self) -> int:
        """How many checkpoint operations this node's run has taken from the committed queue."""
        return self.execution.consumed if self.execution is not None else 0

    def info(self) -> WorkflowInfo:
        return self.runtime.get_workflow(self.workflow_id)

    async def result(self, timeout: float | None = None) -> Any:
        """The committed outcome (see the class); WorkflowTimeout after `timeout` seconds.
        Once the run is done here it returns at once, whatever the timeout."""
        try:
            if not self._done.is_set():
                await asyncio.wait_for(self._done.wait(), timeout)
        except TimeoutError:
            raise WorkflowTimeout(
                f"workflow {self.workflow_id!r} did not end on node {self.node_id} within "
                f"{timeout:g} s (status: {self.status})"
            ) from None
        execution = self.execution
        if execution is not None and execution.fatal is not None:
            raise execution.fatal
        final = self.final
        if final is None:
            raise self.aborted or WorkflowAborted(f"workflow {self.workflow_id!r}: no outcome")
        if final.status is WorkflowStatus.COMPLETED:
            if self.definition is None:
                return final.result
            return self.definition.output_from_json(final.result)
        if final.status is WorkflowStatus.FAILED:
            error = final.error or ErrorInfo("Error", "")
            raise WorkflowFailed(self.workflow_id, error.type, error.message)
        raise WorkflowCancelled(self.workflow_id)

    def _check_done(self) -> None:
        execution = self.execution
        if execution is not None and not execution.finished:
            return
        if (
            (execution is not None and execution.fatal is not None)
            or self.final is not None
            or (execution is None and self.aborted is not None)
        ):
            self._done.set()

    def __repr__(self) -> str:
        return (
            f"WorkflowRun({self.workflow_id!r}, {self.name!r} v{self.version}, "
            f"node {self.node_id}, status {self.status})"
        )


class _Rewind(Exception):
    """Raised into a run that went ahead on values the log then contradicted."""


class _Execution:
    """This node's run of one workflow: the task running the function and its queue position."""

    def __init__(
        self, runtime: WorkflowRuntime, run: WorkflowRun, definition: WorkflowDefinition
    ) -> None:
        record = runtime.state_machine.get(run.workflow_id)
        assert record is not None
        self.runtime = runtime
        self.run = run
        self.definition = definition
        self.workflow_id = run.workflow_id
        self.name = run.name
        self.version = run.version
        self.node_id = runtime.node_id
        self.seq: list[CommittedCheckpoint] = record.checkpoints
        """The committed sequence: the state machine's own list, so it keeps growing; this node
        holds it after the end too, until its run is done with it."""
        self.ordinal = 0
        self.computations = 0
        self.changed = asyncio.Event()
        self.finished = False
        self.local: Outcome | None = None
        self.fatal: WorkflowError | None = None
        self.stop_reason: WorkflowError | None = None
        self.superseded = False
        self._failures: dict[int, BaseException] = {}
        self._in_op = False
        self.ahead: dict[int, CommittedCheckpoint] = {}
        """The operations this owner took its own value for before the log committed it
        (see `_run_ahead`), by ordinal; each is checked against the committed one."""
        self.ahead_lost = False
        """A run-ahead proposal was refused or lost: `confirm_ahead` proposes again."""
        self.rewind = False
        """The log committed something else than what this run went ahead with: run again."""
        self.task = asyncio.get_running_loop().create_task(
            self._main(), name=f"workflow-{run.workflow_id}-node-{self.node_id}"
        )

    @property
    def consumed(self) -> int:
        """Operations taken from the committed queue (not those it is ahead with)."""
        return self.ordinal - len(self.ahead)

    # --- the Execution protocol of context.py ---------------------------------------------------

    @property
    def is_owner(self) -> bool:
        record = self.runtime.state_machine.get(self.workflow_id)
        return record is not None and self.runtime.acting_owner(record)

    def emit(self, kind: str, fields: dict[str, Any]) -> None:
        self.runtime.emit(kind, fields)

    def failure(self, ordinal: int) -> BaseException | None:
        return self._failures.get(ordinal)

    def remember_failure(self, error: BaseException) -> None:
        self._failures[self.ordinal] = error

    async def op(
        self, key: str, produce: Producer, *, side_effect: bool = False, run_ahead: bool = True
    ) -> CommittedCheckpoint:
        """The committed value of this run's next operation: consumed if committed, else
        (on the owner) produced and proposed, else waited for. A `side_effect` producer runs
        only once everything before it is committed; without `run_ahead` the operation also
        waits for its own commit (see `_run_ahead`)."""
        if self.fatal is not None:
            raise self.fatal
        if self._in_op:
            raise WorkflowError(
                f"workflow {self.workflow_id!r}: checkpoint operations of one run must be "
                "awaited one after the other (concurrent ones get no deterministic order)"
            )
        self._in_op = True
        try:
            return await self._op(key, produce, side_effect, run_ahead)
        finally:
            self._in_op = False

    async def _op(
        self, key: str, produce: Producer, side_effect: bool, run_ahead: bool
    ) -> CommittedCheckpoint:
        runtime = self.runtime
        self._check_ahead()
        if self.ahead_lost or ((side_effect or not run_ahead) and self.ahead):
            await self.confirm_ahead()
        k = self.ordinal
        produced: tuple[Any, ErrorInfo | None] | None = None
        wait_epoch = 0  # after a stale answer: propose again only under a newer epoch
        answered_epoch = -1  # the epoch under which the leader took our proposal
        while True:
            self.changed.clear()
            if k < len(self.seq):
                committed = self.seq[k]
                break
            if runtime._stopped:
                raise self.stop_reason or WorkflowAborted(f"node {self.node_id} stopped")
            record = runtime.state_machine.get(self.workflow_id)
            if record is None or not record.running:
                raise self._ended_while_waiting(record, k, key)
            if (
                runtime.acting_owner(record)
                and record.epoch >= wait_epoch
                and record.epoch != answered_epoch
            ):
                if produced is None:
                    # None: it stopped acting as owner between retries; it computes again
                    # if it acts as owner again before the value is committed
                    produced = await produce()
                    continue  # look again: it may have been committed meanwhile
                epoch = record.epoch
                value, error = produced
                runtime.emit(
                    "checkpoint_proposed",
                    {"workflow_id": self.workflow_id, "ordinal": k, "key": key, "epoch": epoch},
                )
                command = Checkpoint(self.workflow_id, k, key, value, epoch, error)
                if run_ahead and runtime.leads() and k == len(self.seq) + len(self.ahead):
                    return self._run_ahead(command)
                answer = await runtime.propose(
                    Checkpoint(self.workflow_id, k, key, value, epoch, error)
                )
                result = answer.get("result")
                if result == "stale":
                    current = answer.get("epoch")
                    wait_epoch = current if isinstance(current, int) else epoch + 1
                    wait_epoch = max(wait_epoch, epoch + 1)
                elif result is not None:  # committed, duplicate, finished...: wait to apply it
                    answered_epoch = epoch
                continue
            await self.changed.wait()
        if committed.key != key:
            self.runtime.emit(
                "workflow_divergence",
                {
                    "workflow_id": self.workflow_id,
                    "ordinal": k,
                    "expected_key": committed.key,
                    "actual_key": key,
                },
            )
            self.fatal = NonDeterminismError(self.workflow_id, k, committed.key, key, self.node_id)
            raise self.fatal
        self.ordinal = k + 1
        runtime.emit(
            "checkpoint_consumed", {"workflow_id": self.workflow_id, "ordinal": k, "key": key}
        )
        return committed

    def _run_ahead(self, command: Checkpoint) -> CommittedCheckpoint:
        """Propose `command` on this leader and go on with its value at once.

        The owner's next operation then does not wait a commit round trip: its proposals go
        into the log one after the other, in order, and leave in the same appends. The run
        returns nothing before they are committed (`confirm_ahead` before the end), and a side
        effect (`checkpoint_compute`) waits for them too, so an owner cut off from the others
        runs at most the side effect it is in, as without running ahead. If the log commits
        something else for one of them (this owner lost the run meanwhile and another computed
        it differently), the run starts again from the committed values.
        """
        index, answer = self.runtime.propose_here(command)
        carried = decode(encode(command))  # the value exactly as the log will hold it
        assert isinstance(carried, Checkpoint)
        mine = CommittedCheckpoint(
            command.ordinal, command.key, carried.value, carried.error, command.epoch, index
        )
        self.ahead[command.ordinal] = mine
        answer.add_done_callback(self._ahead_answered)
        self.ordinal = command.ordinal + 1
        return mine

    def _ahead_answered(self, answer: asyncio.Future[object]) -> None:
        committed = (
            not answer.cancelled()
            and answer.exception() is None
            and isinstance(result := answer.result(), dict)
            and result.get("result") == "committed"
        )
        if not committed:
            self.ahead_lost = True
        self.changed.set()

    def absorb(self) -> None:
        """Match what this run went ahead with against what is committed now: what agrees is
        consumed; a difference makes the run start again (`rewind`, raised at its next step)."""
        seq = self.seq
        while self.ahead and not self.rewind and (k := min(self.ahead)) < len(seq):
            mine = self.ahead.pop(k)
            committed = seq[k]
            if (committed.key, committed.value, committed.error) != (
                mine.key,
                mine.value,
                mine.error,
            ):
                self.rewind = True
            else:
                self.runtime.emit(
                    "checkpoint_consumed",
                    {"workflow_id": self.workflow_id, "ordinal": k, "key": mine.key},
                )

    def _check_ahead(self) -> None:
        self.absorb()
        if self.rewind:
            raise _Rewind(self.workflow_id)

    async def confirm_ahead(self) -> None:
        """Wait until the log holds every value this run went ahead with. After a lost
        proposal (`ahead_lost`) the owner proposes them again, one at a time. `_Rewind` when
        the log shows something else."""
        runtime = self.runtime
        while True:
            self.changed.clear()
            self._check_ahead()
            if not self.ahead:
                self.ahead_lost = False
                return
            if runtime._stopped:
                raise self.stop_reason or WorkflowAborted(f"node {self.node_id} stopped")
            k = min(self.ahead)  # the next ordinal to commit: they are in order
            mine = self.ahead[k]
            record = runtime.state_machine.get(self.workflow_id)
            if record is None or not record.running:
                raise self._ended_while_waiting(record, k, mine.key)
            if self.ahead_lost and runtime.acting_owner(record):
                await runtime.propose(
                    Checkpoint(self.workflow_id, k, mine.key, mine.value, record.epoch, mine.error)
                )
                continue  # committed, stale or lost: look again
            await self.changed.wait()

    def _ended_while_waiting(
        self, record: WorkflowRecord | None, ordinal: int, key: str
    ) -> WorkflowError:
        """The run ended (as committed) at a point this node's run has not reached."""
        if record is None:
            return WorkflowAborted(
                f"workflow {self.workflow_id!r} is no longer known on node {self.node_id}"
            )
        if record.status is WorkflowStatus.CANCELLED:
            return WorkflowCancelled(self.workflow_id)
        if record.status is WorkflowStatus.FAILED:
            error = record.error or ErrorInfo("Error", "")
            return WorkflowFailed(self.workflow_id, error.type, error.message)
        self.runtime.emit(
            "workflow_divergence",
            {
                "workflow_id": self.workflow_id,
                "ordinal": ordinal,
                "expected_key": END_KEY,
                "actual_key": key,
            },
        )
        self.fatal = NonDeterminismError(self.workflow_id, ordinal, END_KEY, key, self.node_id)
        return self.fatal

    # --- the task --------------------------------------------------------------------------------

    async def _main(self) -> None:
        try:
            record = self.runtime.state_machine.get(self.workflow_id)
            if record is None or not record.running:
                return  # this node learned of the run after its end: nothing left to run
            value = self.definition.input_from_json(record.input)
            while True:
                try:
                    output = await self.definition.call(WorkflowContext(self), value)
                    await self.confirm_ahead()
                    if not self.rewind:  # (workflow code may have swallowed the _Rewind)
                        break
                except _Rewind:
                    pass
                self.runtime.emit(
                    "workflow_rewound",
                    {"workflow_id": self.workflow_id, "committed": len(self.seq)},
                )
                self.ordinal, self.rewind, self.ahead_lost = 0, False, False
                self.ahead.clear()
                self._failures.clear()
            try:
                self.local = Outcome(
                    WorkflowStatus.COMPLETED, self.definition.output_to_json(output)
                )
            except Exception as error:
                self.local = Outcome(WorkflowStatus.FAILED, error=ErrorInfo.of(error))
        except asyncio.CancelledError:
            if self.stop_reason is not None and self.fatal is None:
                self.fatal = self.stop_reason
        except (NonDeterminismError, WorkflowAborted) as error:
            self.fatal = self.fatal or error
        except (WorkflowCancelled, WorkflowFailed):
            pass  # the committed end overtook this run; it tells the outcome
        except Exception as error:
            if self.fatal is None:  # workflow code that swallowed a divergence stays diverged
                self.local = Outcome(WorkflowStatus.FAILED, error=_error_info(error))
        finally:
            self.finished = True
            self.runtime._execution_finished(self)


def _error_info(error: BaseException) -> ErrorInfo:
    """A committed compute failure that escaped the workflow keeps its original type."""
    if isinstance(error, CheckpointFailed):
        return ErrorInfo(error.error_type, error.message)
    return ErrorInfo.of(error)


class WorkflowRuntime:
    """Runs the workflows of `app` on `node`, whose state machine is a WorkflowStateMachine.

    One runtime per Node instance: a restarted node gets a new Node, a new
    WorkflowStateMachine and a new runtime. Call `await start()` after (or before)
    `node.start()`, and `await stop()` before or after stopping the node.
    """

    def __init__(
        self,
        node: Node,
        app: WorkflowApp,
        *,
        group: int = 0,
        propose_timeout: float = 5.0,
        abort_on_removal: bool = True,
    ) -> None:
        """`abort_on_removal`: a node removed from the group ends its runs (WorkflowAborted).
        An execution cluster's member turns it off: it may be removed and added again, and a
        replayed log holds such removals; whoever hosts the group stops the runtime instead."""
        machine = node.group(group).state_machine
        if not isinstance(machine, WorkflowStateMachine):
            raise WorkflowError(
                f"node {node.id} applies its log to {type(machine).__name__}, not to a "
                "WorkflowStateMachine: create the node with "
                "Node(..., state_machine=WorkflowStateMachine())"
            )
        self.node = node
        self.app = app
        self.group = group
        self.propose_timeout = propose_timeout
        self.abort_on_removal = abort_on_removal
        self.state_machine = machine
        self._runs: dict[str, WorkflowRun] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dirty = asyncio.Event()
        self._owner_inflight: dict[str, int] = {}
        self._to_end: set[str] = set()
        """Runs that finished here with an outcome while the workflow still runs."""
        self._active: dict[str, _Execution] = {}
        """This node's runs in progress."""
        self._liveness = Liveness(node, group)
        self._started = False
        self._stopped = False
        self._closed = False
        self._registered = False
        self._registration: asyncio.Task[Any] | None = None
        machine.emit = self.emit
        machine.listener = self._on_change

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def node_id(self) -> int:
        return self.node.id

    @property
    def registered(self) -> bool:
        """Whether this node's (name, version) pairs are committed (owners need them)."""
        return self._registered

    async def start(self, *, wait: bool = True, timeout: float = 10.0) -> None:
        """Start running workflows here and register this node's (name, version) pairs
        through the log; with `wait`, return once the registration is committed (a node
        that joins waits for the leader to know it)."""
        if self._stopped:
            raise WorkflowError("this runtime was stopped; create a new one for a new node")
        if not self._started:
            self._started = True
            self.node.listeners.append(self._on_event)
            self.node.announcers.append(self._announce)
            self._spawn(self._manage())
            self._reconcile()
        if self._registration is None:
            self._registration = self._spawn(self._register())
        if wait and not self._registered:
            try:
                await asyncio.wait_for(asyncio.shield(self._registration), timeout)
            except TimeoutError:
                raise WorkflowTimeout(
                    f"node {self.id} could not register its workflows within {timeout:g} s "
                    "(no leader, or this node is not a member yet); it keeps trying"
                ) from None

    async def stop(self) -> None:
        """Stop this node's runs (their `result()` raises WorkflowAborted here)."""
        if self._closed:
            return
        self._closed = self._stopped = True
        with contextlib.suppress(ValueError):
            self.node.listeners.remove(self._on_event)
        self.state_machine.listener = None
        self._abort_all(f"the workflow runtime of node {self.node_id} stopped")
        pending = {*self._tasks, *(r.execution.task for r in self._runs.values() if r.execution)}
        # Cancel until they are gone: on Python 3.11 `asyncio.wait_for` may swallow a
        # cancellation that arrives as its inner future completes (fixed in 3.12).
        while pending:
            for task in pending:
                task.cancel()
            for execution in self._active.values():
                execution.changed.set()
            _, pending = await asyncio.wait(pending, timeout=0.1)

    # --- what users call -----------------------------------------------------------------------

    async def start_workflow(
        self,
        name: str,
        version: int,
        input: Any = None,
        *,
        workflow_id: str | None = None,
        timeout: float = 10.0,
    ) -> WorkflowRun:
        """Start (name, version) with `input` from this node; returns at once with a handle
        once the start is committed. Starting an id that exists returns the existing run."""
        self._check_started()
        if (name, version) not in self.app and not self.state_machine.capable_nodes(name, version):
            known = sorted(set(self.app.pairs()) | set(self.state_machine.registered_pairs()))
            raise UnknownWorkflow(name, version, known)
        payload = self.app.input_json(name, version, input)
        if workflow_id is None:
            workflow_id = uuid.uuid4().hex
        elif not isinstance(workflow_id, str) or not workflow_id:
            raise WorkflowError(f"workflow_id must be a non-empty string, got {workflow_id!r}")
        existing = self.state_machine.get(workflow_id)
        if existing is not None:
            _check_same(workflow_id, existing.name, existing.version, name, version)
            return self._run_for(workflow_id, existing.name, existing.version)
        start = Start(workflow_id, name, version, payload, self._owner_hint(name, version), self.id)
        answer = await self.propose(start, timeout=timeout, retry=False)
        if answer.get("error") == "unregistered":
            raise UnknownWorkflow(name, version, _pairs(answer.get("registered")))
        if answer.get("result") not in ("started", "exists"):
            raise WorkflowError(f"start of {workflow_id!r} answered {answer!r}")
        got_name, got_version = answer.get("name", name), answer.get("version", version)
        _check_same(workflow_id, got_name, got_version, name, version)
        return self._run_for(workflow_id, name, version)

    def get_run(self, workflow_id: str) -> WorkflowRun:
        """The handle of a workflow this node knows of (WorkflowNotFound otherwise)."""
        run = self._runs.get(workflow_id)
        if run is not None:
            return run
        record = self.state_machine.get(workflow_id)
        if record is None:
            raise WorkflowNotFound(workflow_id)
        return self._run_for(workflow_id, record.name, record.version)

    async def find_run(self, workflow_id: str, *, timeout: float = 10.0) -> WorkflowRun:
        """The handle of `workflow_id` once this node knows of it: a node that is catching up
        (it just joined, restarted or healed) learns of runs a little later than the others.
        WorkflowNotFound after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                return self.get_run(workflow_id)
            except WorkflowNotFound:
                if loop.time() >= deadline:
                    raise
            await asyncio.sleep(self.node.tick_seconds)

    def list_workflows(self) -> list[WorkflowInfo]:
        """Every workflow this node's state knows of, in start order."""
        return self.state_machine.infos()

    def get_workflow(self, workflow_id: str) -> WorkflowInfo:
        """Status, owner, epoch and checkpoints so far of one workflow."""
        info = self.state_machine.info(workflow_id)
        if info is None:
            raise WorkflowNotFound(workflow_id)
        return info

    async def cancel(self, workflow_id: str, *, timeout: float = 10.0) -> bool:
        """Cancel a running workflow; False when it had ended already. Every node's run
        stops and `result()` raises WorkflowCancelled."""
        self._check_started()
        answer = await self.propose(Cancel(workflow_id), timeout=timeout, retry=False)
        if answer.get("result") == "unknown":
            raise WorkflowNotFound(workflow_id)
        return answer.get("result") == "cancelled"

    # --- requests from outside (for a node's rpc topic: `raftoral-lab run` and friends) --------

    RPC_OPS = (
        "workflow.start",
        "workflow.result",
        "workflow.get",
        "workflow.list",
        "workflow.cancel",
    )

    async def serve(self, op: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Answer a client's request with JSON: what a node's rpc handler calls for the ops
        in RPC_OPS. Errors come back as {"error": type, "message": ...}, never raised.

        - workflow.start {name, version, input?, workflow_id?} -> {workflow_id, status}
        - workflow.result {workflow_id, wait?} -> {status, result} or {status, error}; `wait`
          is how long the node holds the request for a run still going (seconds)
        - workflow.get {workflow_id} -> the WorkflowInfo as JSON; workflow.list -> {workflows}
        - workflow.cancel {workflow_id} -> {cancelled: bool}
        """
        if not self._started:  # a node answers requests from the moment it is connected
            return {"error": "retry", "message": f"node {self.id}: the runtime is starting"}
        try:
            if op == "workflow.start":
                run = await self.start_workflow(
                    str(fields["name"]),
                    int(fields["version"]),
                    fields.get("input"),
                    workflow_id=fields.get("workflow_id"),
                )
                status = run.status
                return {"workflow_id": run.workflow_id, "status": status.value if status else None}
            if op == "workflow.result":
                run = self.get_run(str(fields["workflow_id"]))
                wait = fields.get("wait")
                try:
                    value = await run.result(float(wait) if wait is not None else None)
                except (WorkflowFailed, WorkflowCancelled):
                    info = self.get_workflow(run.workflow_id)
                    error = info.error.to_json() if info.error else None
                    return {"status": info.status.value, "error": error}
                return {"status": WorkflowStatus.COMPLETED.value, "result": to_json(value)}
            if op == "workflow.get":
                return self.get_workflow(str(fields["workflow_id"])).to_json()
            if op == "workflow.list":
                return {"workflows": [info.to_json() for info in self.list_workflows()]}
            if op == "workflow.cancel":
                return {"cancelled": await self.cancel(str(fields["workflow_id"]))}
            return {"error": "unknown_op", "message": f"unknown op {op!r}"}
        except RaftoralError as error:  # workflow errors, and a node that could not propose
            return {"error": type(error).__name__, "message": str(error)}
        except (KeyError, TypeError, ValueError) as error:
            return {"error": "bad_request", "message": f"{op}: {error!r}"}

    # --- proposing -----------------------------------------------------------------------------

    async def propose(
        self, command: Command, *, timeout: float | None = None, retry: bool = True
    ) -> dict[str, Any]:
        """Replicate `command`; the state machine's answer, or {} after a timeout (`retry`:
        the caller looks again and retries) or ProposalTimeout (without `retry`)."""
        try:
            answer = await self.node.propose(
                encode(command), group=self.group, timeout=timeout or self.propose_timeout
            )
        except ProposalTimeout:
            if retry:
                return {}
            raise
        except NodeError as error:
            raise WorkflowAborted(f"node {self.node_id} cannot propose: {error}") from None
        return answer if isinstance(answer, dict) else {}

    def leads(self) -> bool:
        """Whether this node is the group's leader now (its proposals need no forwarding)."""
        return self.node.group(self.group).raft.role is Role.LEADER

    def propose_here(self, command: Command) -> tuple[int, asyncio.Future[object]]:
        """Append `command` to this leader's log now: its index and the future answer."""
        answer = self.node.propose_here(
            encode(command), group=self.group, timeout=self.propose_timeout
        )
        return self.node.group(self.group).raft.log.last_index, answer

    def emit(self, kind: str, fields: dict[str, Any]) -> None:
        self.node.emit(self.group, kind, fields)

    def _announce(self) -> None:
        """Report each running workflow as this node knows it, for an observer that came late
        (`Node.announce` calls this): what a ClusterView folds into the workflow's entry (name,
        version, owner, committed checkpoints) and this node's own progress and sleep."""
        if not self._started or self._stopped:
            return
        for record in self.state_machine.running():
            wid = record.workflow_id
            named = {"workflow_id": wid, "name": record.name, "version": record.version}
            self.emit("workflow_started", {**named, "owner": record.owner})
            if record.owner is not None and record.epoch > 1:  # a start gives epoch 1 at most
                owner = {"workflow_id": wid, "owner": record.owner, "epoch": record.epoch}
                self.emit("owner_changed", owner)
            for cp in list(record.checkpoints):
                op = {"workflow_id": wid, "ordinal": cp.ordinal, "key": cp.key}
                self.emit("checkpoint_committed", {**op, "epoch": cp.epoch, "index": cp.index})
            run = self._runs.get(wid)
            execution = run.execution if run is not None else None
            if execution is None or execution.finished:
                continue
            consumed = execution.seq[: execution.consumed]
            for cp in consumed:
                op = {"workflow_id": wid, "ordinal": cp.ordinal, "key": cp.key}
                self.emit("checkpoint_consumed", op)
            taken = execution.ordinal  # the last operation the run took: consumed, or ahead
            last = execution.ahead.get(taken - 1) or (consumed[-1] if consumed else None)
            if last is not None and last.key == SLEEP_KEY and not execution._in_op:
                sleep = {"workflow_id": wid, "ordinal": last.ordinal, "until": float(last.value)}
                self.emit("workflow_sleeping", sleep)

    def acting_owner(self, record: WorkflowRecord) -> bool:
        """Whether this node may compute and propose for `record` now.

        Owning it in the local state is not enough: that state may be old (a restarted node
        replays a log in which it still owns the run). So an owner acts only as the leader
        that has applied an entry of its own term (its state then holds every earlier owner
        change), or, when the leader cannot run the workflow and handed it over, while it
        follows that leader.
        """
        if not record.running or record.owner != self.id or not self.node.running:
            return False
        raft = self.node.group(self.group).raft
        if raft.role is Role.LEADER:
            return raft.log.term(raft.applied_index) == raft.term
        leader = raft.leader
        return leader is not None and not self.state_machine.can_own(record, leader)

    @property
    def id(self) -> int:
        return self.node.id

    # --- reacting to the state machine ----------------------------------------------------------

    def _on_change(self, change: Change, workflow_id: str | None) -> None:
        if not self._started or self._stopped:
            return
        if change == "restored":
            self._reconcile()
            self._dirty.set()
            return
        if change == "capabilities":
            self._dirty.set()
            return
        assert workflow_id is not None
        record = self.state_machine.get(workflow_id)
        if change == "started":
            if record is not None:
                stale = self._runs.get(workflow_id)
                if stale is not None and stale.done:
                    # an id forgotten past `retain_finished`, started again: a new run
                    del self._runs[workflow_id]
                self._begin(record)
            self._dirty.set()
            return
        run = self._runs.get(workflow_id)
        execution = run.execution if run is not None else None
        if execution is not None:
            execution.absorb()
            execution.changed.set()
        if change == "owner":
            self._dirty.set()
            if run is not None:
                self._maybe_end(run)
        elif change == "ended" and record is not None:
            if run is None:
                run = self._run_for(workflow_id, record.name, record.version)
            run.final = Outcome.of(record)
            if execution is not None and not execution.finished:
                if record.status is WorkflowStatus.CANCELLED:
                    execution.task.cancel()
            elif execution is not None:
                self._check_consistency(execution)
            run._check_done()
            self._prune()

    def _begin(self, record: WorkflowRecord) -> None:
        """A committed start (or a snapshot) shows a running workflow: run it if we can."""
        run = self._run_for(record.workflow_id, record.name, record.version)
        if run.execution is None and run.definition is not None and self.id not in record.excluded:
            run.execution = _Execution(self, run, run.definition)
            self._active[record.workflow_id] = run.execution

    def _reconcile(self) -> None:
        """After a restore: relink or settle the runs in progress, start the running ones."""
        machine = self.state_machine
        for workflow_id, run in list(self._runs.items()):
            record = machine.get(workflow_id)
            execution = run.execution
            if record is not None and record.running:
                if execution is not None:
                    execution.seq = record.checkpoints  # the same history, maybe longer
                    execution.changed.set()
                continue
            if record is not None:
                run.final = Outcome.of(record)
            if execution is not None and not execution.finished:
                # the snapshot ended the run and no longer holds its checkpoints
                execution.superseded = True
                if record is None:
                    execution.stop_reason = WorkflowAborted(
                        f"workflow {workflow_id!r} was forgotten by node {self.id}'s snapshot"
                    )
                execution.task.cancel()
            run._check_done()
        for record in machine.running():
            self._begin(record)

    def _execution_finished(self, execution: _Execution) -> None:
        run = execution.run
        self._active.pop(run.workflow_id, None)
        if not self._stopped:
            self._check_consistency(execution)
            if isinstance(execution.fatal, NonDeterminismError):
                self._spawn(self._report_divergence(execution.fatal))
            elif execution.local is not None:
                self._to_end.add(run.workflow_id)
                self._maybe_end(run)
        run._check_done()

    def _check_consistency(self, execution: _Execution) -> None:
        """A run that ended before consuming every committed operation diverged."""
        if execution.fatal is not None or execution.local is None:
            return
        if execution.ordinal < len(execution.seq):
            expected = execution.seq[execution.ordinal].key
            self.emit(
                "workflow_divergence",
                {
                    "workflow_id": execution.workflow_id,
                    "ordinal": execution.ordinal,
                    "expected_key": expected,
                    "actual_key": END_KEY,
                },
            )
            execution.fatal = NonDeterminismError(
                execution.workflow_id, execution.ordinal, expected, END_KEY, self.id
            )
            if not self._stopped:
                self._spawn(self._report_divergence(execution.fatal))

    def _maybe_end(self, run: WorkflowRun) -> None:
        execution = run.execution
        if run._ending or execution is None or execution.local is None or execution.fatal:
            return
        record = self.state_machine.get(run.workflow_id)
        if record is not None and self.acting_owner(record):
            run._ending = True
            self._spawn(self._propose_end(run, execution))

    async def _propose_end(self, run: WorkflowRun, execution: _Execution) -> None:
        local = execution.local
        assert local is not None
        try:
            while not self._stopped:
                record = self.state_machine.get(run.workflow_id)
                if record is None or not self.acting_owner(record):
                    return
                answer = await self.propose(
                    End(
                        run.workflow_id,
                        record.epoch,
                        execution.ordinal,
                        local.result,
                        local.error,
                    )
                )
                if answer.get("result") == "mismatch":
                    committed = answer.get("committed")
                    self.emit(
                        "workflow_divergence",
                        {
                            "workflow_id": run.workflow_id,
                            "ordinal": execution.ordinal,
                            "expected_key": str(committed),
                            "actual_key": END_KEY,
                        },
                    )
                    execution.fatal = NonDeterminismError(
                        run.workflow_id,
                        execution.ordinal,
                        f"<{committed} operations>",
                        END_KEY,
                        self.id,
                    )
                    run._check_done()
                    await self._report_divergence(execution.fatal)
                    return
                if answer:  # ended, stale, finished: the state machine tells the rest
                    return
        except WorkflowAborted:
            return
        finally:
            run._ending = False

    async def _report_divergence(self, error: NonDeterminismError) -> None:
        """Tell the cluster this node may not own the run any more."""
        command = Diverged(
            error.workflow_id, self.id, error.ordinal, error.expected_key, error.actual_key
        )
        with contextlib.suppress(WorkflowError, NodeError):
            for _ in range(3):
                if await self.propose(command):
                    return

    def _abort_all(self, reason: str) -> None:
        for run in self._runs.values():
            execution = run.execution
            if execution is not None and not execution.finished:
                execution.stop_reason = WorkflowAborted(reason)
                execution.task.cancel()
            elif execution is None and run.final is None:
                run.aborted = WorkflowAborted(reason)
                run._check_done()

    def _prune(self) -> None:
        """Forget handles of ended runs the state machine forgot (callers keep theirs)."""
        limit = 2 * max(self.state_machine.retain_finished, 64)
        if len(self._runs) <= limit:
            return
        for workflow_id in [
            w for w, r in self._runs.items() if r.done and self.state_machine.get(w) is None
        ]:
            del self._runs[workflow_id]

    # --- ownership: the leader's job -------------------------------------------------------------

    def _on_event(self, event: EventBase) -> None:
        if event.group != self.group:
            return  # another Raft group hosted on the same node (an execution cluster)
        if event.kind == "role_changed":
            self._dirty.set()
        elif event.kind == "membership_changed":
            self._dirty.set()
            removed = getattr(event, "op", None) == "remove"
            if removed and self.abort_on_removal and getattr(event, "target", None) == self.id:
                self._abort_all(f"node {self.id} was removed from the cluster")

    async def _manage(self) -> None:
        """Every tick (and at once on a relevant change): if this node leads, make sure each
        running workflow has a live owner that can run it."""
        loop = asyncio.get_running_loop()
        while not self._stopped:
            with contextlib.suppress(TimeoutError):  # a lesson may change the tick meanwhile
                await asyncio.wait_for(self._dirty.wait(), self.node.tick_seconds)
            self._dirty.clear()
            if not self.node.running:
                self._abort_all(f"node {self.id} stopped")
                self._stopped = True  # stop() still tidies up
                return
            if self.node.leader(self.group) == self.id:
                now = loop.time()
                self._liveness.sample(now)
                self._ensure_owners(now)
            self._wake_owned()
            for workflow_id in list(self._to_end):
                run = self._runs.get(workflow_id)
                record = self.state_machine.get(workflow_id)
                if run is None or record is None or not record.running:
                    self._to_end.discard(workflow_id)
                else:
                    self._maybe_end(run)

    def _wake_owned(self) -> None:
        """Runs this node owns look again each tick: acting as owner depends on the Raft role
        and on how far this node has applied, which change without a workflow command."""
        machine = self.state_machine
        for execution in self._active.values():
            record = machine.get(execution.workflow_id)
            if record is not None and record.owner == self.id:
                execution.changed.set()

    def _ensure_owners(self, now: float) -> None:
        machine = self.state_machine
        raft = self.node.group(self.group).raft
        if raft.log.term(raft.applied_index) != raft.term:
            return  # a new leader's state may be old until it applied an entry of its term
        members = raft.conf.members
        for record in machine.running():
            if self._owner_inflight.get(record.workflow_id) == record.epoch:
                continue  # a change is on its way
            candidates = {
                n
                for n in machine.capable_nodes(record.name, record.version)
                if n in members and n not in record.excluded
            }
            if not candidates:
                continue
            if self.id in candidates:
                desired = self.id
            elif record.owner in candidates and self._liveness.alive(record.owner, now):
                continue
            else:
                alive = sorted(n for n in candidates if self._liveness.alive(n, now))
                if not alive:
                    continue
                desired = alive[0]
            if desired == record.owner:
                continue
            self._owner_inflight[record.workflow_id] = record.epoch
            self._spawn(self._propose_owner(record.workflow_id, desired, record.epoch))

    async def _propose_owner(self, workflow_id: str, owner: int, epoch: int) -> None:
        timeout = max(1.0, 4 * self.node.config.election_timeout * self.node.tick_seconds)
        try:
            if self.node.leader(self.group) == self.id:  # only a leader moves ownership
                await self.propose(OwnerChange(workflow_id, owner, epoch + 1), timeout=timeout)
        except WorkflowAborted:
            pass
        finally:
            if self._owner_inflight.get(workflow_id) == epoch:
                del self._owner_inflight[workflow_id]
            self._dirty.set()

    def _owner_hint(self, name: str, version: int) -> int | None:
        """The first owner a start proposes: the leader when it can run the workflow (else
        the leader picks one as soon as the start is applied)."""
        leader = self.node.leader(self.group)
        capable = self.state_machine.capable_nodes(name, version)
        if leader is not None and (
            leader in capable or (leader == self.id and self._can(name, version))
        ):
            return leader
        return None

    def _can(self, name: str, version: int) -> bool:
        return (name, version) in self.app

    # --- plumbing ------------------------------------------------------------------------------

    async def _register(self) -> None:
        """Propose this node's (name, version) pairs until they are committed."""
        command = Register(self.id, tuple(self.app.pairs()))
        while not self._stopped:
            try:
                answer = await self.propose(command)
            except WorkflowAborted:
                await asyncio.sleep(self.node.tick_seconds * 10)
                continue
            if answer.get("result") == "registered":
                self._registered = True
                self._dirty.set()
                return

    def _run_for(self, workflow_id: str, name: str, version: int) -> WorkflowRun:
        run = self._runs.get(workflow_id)
        if run is None:
            run = WorkflowRun(self, workflow_id, name, version)
            self._runs[workflow_id] = run
            record = self.state_machine.get(workflow_id)
            if record is not None and not record.running:
                run.final = Outcome.of(record)
                run._check_done()
        return run

    def _check_started(self) -> None:
        if not self._started:
            raise WorkflowError("the runtime is not started: await runtime.start() first")
        if self._stopped:
            raise WorkflowAborted(f"the workflow runtime of node {self.id} is stopped")

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _check_same(workflow_id: str, name: object, version: object, want: str, want_v: int) -> None:
    if name != want or version != want_v:
        raise WorkflowIdConflict(
            f"workflow id {workflow_id!r} belongs to {name!r} v{version}, "
            f"not to {want!r} v{want_v}; use another id"
        )


def _pairs(raw: object) -> list[tuple[str, int]]:
    if not isinstance(raw, list):
        return []
    return [(str(p[0]), int(p[1])) for p in raw if isinstance(p, list) and len(p) == 2]
