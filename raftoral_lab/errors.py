"""The one exception tree of raftoral_lab.

Every error the package raises on purpose derives from `RaftoralError`, so a caller can catch
them all in one place. This module imports nothing and sits below every layer.
"""

from __future__ import annotations


class RaftoralError(Exception):
    """Base of every error raised by raftoral_lab."""


# --- Raft core -------------------------------------------------------------------------------


class RaftError(RaftoralError):
    """A Raft node was used in a way its protocol does not allow."""


class NotLeader(RaftError):
    """The request needs the leader; `leader` names the one this node knows of, if any."""

    def __init__(self, node: int, leader: int | None, what: str = "proposal") -> None:
        hint = f"node {leader} is the leader" if leader is not None else "no leader is known yet"
        super().__init__(f"node {node} is not the leader and cannot accept this {what}: {hint}")
        self.node = node
        self.leader = leader


class ProposalDropped(RaftError):
    """The leader refused a proposal for a reason other than not leading (e.g. a transfer)."""


class ConfChangeError(RaftError):
    """A membership change that cannot be made now or at all."""


class ConfChangePending(ConfChangeError):
    """A membership change is proposed while the previous one is not yet applied."""


class ReadyError(RaftError):
    """`ready()` and `advance()` were called out of order."""


class InvariantViolation(RaftoralError):
    """A Raft safety property was broken; the message names the rule and the nodes."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail


# --- storage, transport, node ----------------------------------------------------------------


class StorageError(RaftoralError):
    """Durable state could not be read or written."""


class TransportError(RaftoralError):
    """Messages could not be moved (broker unreachable, bad URL, closed transport)."""


class MalformedMessage(TransportError):
    """A payload that does not decode into a valid message; it is dropped and counted."""


class ConfigError(RaftoralError, ValueError):
    """A setting or argument has a value that cannot work; the message says which and why."""


# --- events ----------------------------------------------------------------------------------


class EventSchemaError(RaftoralError, ValueError):
    """An event that does not fit the schema: unknown kind, wrong or missing field, newer version.

    `kind` and `fields` name what was wrong, so the message points at the producer's mistake.
    """

    def __init__(
        self, message: str, *, kind: str | None = None, fields: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.fields = fields


# --- node -------------------------------------------------------------------------------------


class NodeError(RaftoralError):
    """The async node could not do what was asked (stopped, unknown group, no leader in time)."""


class ProposalTimeout(NodeError, TimeoutError):
    """A proposal was not committed in time; it may still commit later (check before retrying)."""


# --- workflows -------------------------------------------------------------------------------


class WorkflowError(RaftoralError):
    """Something about a durable workflow: its definition, its run or its outcome."""


class WorkflowDefinitionError(WorkflowError, ConfigError):
    """A workflow function cannot be registered as written (the message says what to change)."""


class UnknownWorkflow(WorkflowError, LookupError):
    """No node of the cluster registered this (name, version) pair, so nobody can run it."""

    def __init__(self, name: str, version: int, known: list[tuple[str, int]] | None = None) -> None:
        listed = ", ".join(f"{n!r} v{v}" for n, v in sorted(known or [])) or "none"
        super().__init__(
            f"workflow {name!r} version {version} is not registered on any node of the cluster "
            f"(registered: {listed}); register it with @app.workflow({name!r}, version={version})"
        )
        self.name = name
        self.version = version


class WorkflowNotFound(WorkflowError, LookupError):
    """No workflow with this id is known here (never started, or past the retention bound)."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"no workflow with id {workflow_id!r} is known on this node")
        self.workflow_id = workflow_id


class InvalidWorkflowInput(WorkflowError, ValueError):
    """The input does not fit the workflow's declared input type; nothing was started."""


class InvalidWorkflowOutput(WorkflowError, ValueError):
    """The workflow returned a value that does not fit its declared output type (or is not
    JSON data). The owner checks before it proposes the end, so the run commits as failed with
    this type and every node's `run.result()` raises WorkflowFailed naming it."""


class WorkflowIdConflict(WorkflowError):
    """A start reused the id of a workflow of another name or version."""


class NonDeterminismError(WorkflowError):
    """This node's run asked for another checkpoint than the committed one at `ordinal`.

    `expected_key` is the committed key (or "<end>" when the committed run ended there),
    `actual_key` what this node's code asked for. Only this node's run stops; the others go on.
    """

    def __init__(
        self, workflow_id: str, ordinal: int, expected_key: str, actual_key: str, node: int
    ) -> None:
        super().__init__(
            f"workflow {workflow_id!r} diverged on node {node} at checkpoint operation {ordinal}: "
            f"the committed run has key {expected_key!r} there, this node's code asked for "
            f"{actual_key!r}. Workflow code must make the same checkpoint calls in the same "
            "order on every node (register a new version instead of changing a running one)"
        )
        self.workflow_id = workflow_id
        self.ordinal = ordinal
        self.expected_key = expected_key
        self.actual_key = actual_key
        self.node = node


class WorkflowFailed(WorkflowError):
    """The workflow ended with an error; `error_type` and `message` are the owner's, the same
    on every node (the original exception object lived on one node only)."""

    def __init__(self, workflow_id: str, error_type: str, message: str) -> None:
        super().__init__(f"workflow {workflow_id!r} failed: {error_type}: {message}")
        self.workflow_id = workflow_id
        self.error_type = error_type
        self.message = message


class CheckpointFailed(WorkflowError):
    """A `checkpoint_compute` function raised (after its retries) on the owner; the failure was
    committed, so every node raises this same error at the same point of the run."""

    def __init__(
        self, workflow_id: str, key: str, ordinal: int, error_type: str, message: str
    ) -> None:
        super().__init__(
            f"checkpoint {key!r} (operation {ordinal}) of workflow {workflow_id!r} failed: "
            f"{error_type}: {message}"
        )
        self.workflow_id = workflow_id
        self.key = key
        self.ordinal = ordinal
        self.error_type = error_type
        self.message = message


class WorkflowCancelled(WorkflowError):
    """The workflow was cancelled (a committed Cancel) before it ended."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"workflow {workflow_id!r} was cancelled")
        self.workflow_id = workflow_id


class WorkflowAborted(WorkflowError):
    """This node's run of the workflow stopped without an outcome: the node stopped, was
    removed from the cluster, or lost the run's history to a snapshot. The cluster's run goes
    on; ask another node for the result."""


class WorkflowTimeout(WorkflowError, TimeoutError):
    """`result(timeout)` ran out before the workflow ended; it may still end later."""
