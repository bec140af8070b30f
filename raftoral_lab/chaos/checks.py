"""The checks at the end of a chaos run, on what the nodes made durable.

Each node's SQLite file is read after the node stopped (`read_node_log`): its commit index,
snapshot and entries. Then:

- `check_logs_agree`: any two nodes hold the same term (and the same data) at every index up to
  the smaller of their commit indexes that both still hold (a snapshot's index counts with the
  snapshot's term): Raft's log matching, on the real files;
- `replay` rebuilds a node's workflow state from its snapshot and committed entries with the
  same state machine the nodes run, noting every start and every end as it is applied;
- `check_workflows`: every workflow the run started is started once and ends once on every
  node, the way the fault-free run ended; nothing else was started;
- `check_states_agree`: the nodes hold the same outcome for every workflow.

Every check returns the problems it found as readable lines (an empty list is a pass). A check
that cannot be made (a node's file is missing or damaged) is reported as a problem, never
skipped.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raftoral_lab.chaos.workload import Job
from raftoral_lab.core.types import Entry
from raftoral_lab.errors import RaftoralError, StorageError
from raftoral_lab.storage import SQLiteStorage
from raftoral_lab.workflow.commands import ErrorInfo
from raftoral_lab.workflow.state_machine import (
    DEFAULT_RETAIN_FINISHED,
    WorkflowStateMachine,
    WorkflowStatus,
)

STORAGE_FILE = "raft.db"
"""The file `raftoral-lab node --data-dir DIR` keeps its Raft state in."""

ENDED = {
    "workflow_completed": WorkflowStatus.COMPLETED,
    "workflow_failed": WorkflowStatus.FAILED,
    "workflow_cancelled": WorkflowStatus.CANCELLED,
}


@dataclass(frozen=True, slots=True)
class NodeLog:
    """What one node made durable: commit index, snapshot point and the entries after it."""

    node: int
    commit_index: int
    snapshot_index: int
    snapshot_term: int
    snapshot_data: bytes
    entries: tuple[Entry, ...]

    @property
    def last_index(self) -> int:
        return self.entries[-1].index if self.entries else self.snapshot_index

    def term_at(self, index: int) -> int | None:
        """The term at `index` (the snapshot's at its index), None where the node holds none."""
        if index == self.snapshot_index:
            return self.snapshot_term
        entry = self.entry_at(index)
        return None if entry is None else entry.term

    def entry_at(self, index: int) -> Entry | None:
        offset = index - self.snapshot_index - 1
        if 0 <= offset < len(self.entries):
            entry = self.entries[offset]
            return entry if entry.index == index else None
        return None


def read_node_log(node: int, data_dir: Path) -> NodeLog:
    """The durable state of the node whose `--data-dir` is `data_dir`; StorageError when the
    file is missing or cannot be read (the check cannot be made: a failure)."""
    path = data_dir / STORAGE_FILE
    if not path.is_file():
        raise StorageError(f"node {node} has no storage file {path}")
    with SQLiteStorage(path) as storage:
        state = storage.load()
    snapshot = state.snapshot
    return NodeLog(
        node=node,
        commit_index=state.hard_state.commit,
        snapshot_index=0 if snapshot is None else snapshot.meta.index,
        snapshot_term=0 if snapshot is None else snapshot.meta.term,
        snapshot_data=b"" if snapshot is None else snapshot.data,
        entries=state.entries,
    )


# --- the logs --------------------------------------------------------------------------------


@dataclass(slots=True)
class LogComparison:
    problems: list[str] = field(default_factory=list)
    compared: int = 0
    """How many (pair, index) places were compared."""


def check_logs_agree(logs: Sequence[NodeLog]) -> LogComparison:
    """Log matching on the durable logs of `logs`, pairwise, up to the smaller commit index."""
    result = LogComparison()
    for log in logs:
        if log.commit_index > log.last_index:
            result.problems.append(
                f"node {log.node}: commit index {log.commit_index} is beyond its last entry "
                f"{log.last_index}"
            )
    for a, b in itertools.combinations(logs, 2):
        upto = min(a.commit_index, b.commit_index)
        start = max(a.snapshot_index, b.snapshot_index, 1)
        for index in range(start, upto + 1):
            term_a, term_b = a.term_at(index), b.term_at(index)
            if term_a is None or term_b is None:
                continue
            result.compared += 1
            if term_a != term_b:
                result.problems.append(
                    f"nodes {a.node} and {b.node} disagree at committed index {index}: "
                    f"term {term_a} against term {term_b}"
                )
                continue
            entry_a, entry_b = a.entry_at(index), b.entry_at(index)
            if (
                entry_a is not None
                and entry_b is not None
                and (entry_a.data != entry_b.data or entry_a.kind != entry_b.kind)
            ):
                result.problems.append(
                    f"nodes {a.node} and {b.node} hold different entries at committed index "
                    f"{index}, both of term {term_a}"
                )
    if len(logs) >= 2 and result.compared == 0 and not result.problems:
        result.problems.append(
            "no committed index could be compared (no two nodes hold a common committed index)"
        )
    return result


# --- the workflows ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ending:
    """One end of a workflow as the committed log has it."""

    index: int | None
    """The log index of the end (None when the node knows it from its snapshot only and the
    snapshot did not say)."""
    status: str
    result: Any
    error: ErrorInfo | None


@dataclass(slots=True)
class Replayed:
    """A node's workflow state, rebuilt from its durable snapshot and committed entries."""

    node: int
    applied_index: int
    starts: Counter[str] = field(default_factory=Counter)
    endings: dict[str, list[Ending]] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def outcomes(self) -> dict[str, tuple[str, Any, ErrorInfo | None]]:
        """workflow id -> (status, result, error) of its last ending."""
        return {
            workflow_id: (ends[-1].status, ends[-1].result, ends[-1].error)
            for workflow_id, ends in self.endings.items()
            if ends
        }


def replay(log: NodeLog, *, retain_finished: int = DEFAULT_RETAIN_FINISHED) -> Replayed:
    """Apply `log`'s snapshot and committed entries to a fresh workflow state machine (the
    one every node runs, with the nodes' `retain_finished`), noting starts and ends."""
    machine = WorkflowStateMachine(retain_finished=retain_finished)
    replayed = Replayed(log.node, log.snapshot_index)
    try:
        machine.restore(log.snapshot_data)
    except (ValueError, KeyError, TypeError) as error:
        replayed.problems.append(f"node {log.node}: its snapshot cannot be read: {error}")
        return replayed
    for record in machine.workflows.values():
        replayed.starts[record.workflow_id] += 1
        if record.running:
            replayed.running.add(record.workflow_id)
        else:
            replayed.endings.setdefault(record.workflow_id, []).append(
                Ending(record.ended_index, record.status.value, record.result, record.error)
            )
    current = log.snapshot_index

    def on_event(kind: str, fields: dict[str, Any]) -> None:
        workflow_id = str(fields.get("workflow_id"))
        if kind == "workflow_started":
            replayed.starts[workflow_id] += 1
            replayed.running.add(workflow_id)
        elif kind in ENDED:
            replayed.running.discard(workflow_id)
            record = machine.workflows.get(workflow_id)
            replayed.endings.setdefault(workflow_id, []).append(
                Ending(
                    current,
                    ENDED[kind].value,
                    None if record is None else record.result,
                    None if record is None else record.error,
                )
            )

    machine.emit = on_event
    for entry in log.entries:
        if entry.index > log.commit_index:
            break
        current = entry.index
        machine.apply(entry)
        replayed.applied_index = entry.index
    return replayed


def check_workflows(
    jobs: Mapping[str, Job],
    replays: Sequence[Replayed],
    *,
    acknowledged: Iterable[str] = (),
) -> list[str]:
    """Every job that was started (acknowledged to the client, or present in any node's log)
    is started once and ends once on every node, as `job.expected` says; no node holds a
    workflow the run did not start. `acknowledged` ids must be in every log."""
    problems: list[str] = []
    if not replays:
        return ["no node's state could be rebuilt: nothing to check the workflows against"]
    acked = set(acknowledged)
    in_logs = set().union(*(set(r.starts) for r in replays))
    for replayed in replays:
        problems.extend(replayed.problems)
        for workflow_id in sorted(set(replayed.starts) - set(jobs)):
            problems.append(
                f"node {replayed.node}: workflow {workflow_id!r} was never started by the run"
            )
    for workflow_id in sorted((acked | in_logs) & set(jobs)):
        job = jobs[workflow_id]
        for replayed in replays:
            where = f"node {replayed.node}: workflow {workflow_id} ({job.name})"
            starts = replayed.starts.get(workflow_id, 0)
            ends = replayed.endings.get(workflow_id, [])
            if starts == 0:
                problems.append(f"{where} is not in the committed log")
                continue
            if starts > 1:
                problems.append(f"{where} was started {starts} times")
            if not ends:
                state = "still running" if workflow_id in replayed.running else "never ended"
                problems.append(f"{where} {state}")
                continue
            if len(ends) > 1:
                at = ", ".join(str(e.index) for e in ends)
                problems.append(f"{where} ended {len(ends)} times (at indexes {at})")
            for end in ends:
                if not job.expected.matches(end.status, end.result, end.error):
                    problems.append(
                        f"{where} ended {_describe(end)}, expected {job.expected.describe()}"
                    )
    return problems


def _describe(end: Ending) -> str:
    if end.error is not None:
        return f"{end.status} ({end.error.type}: {end.error.message})"
    return f"{end.status} with {end.result!r}"


def check_states_agree(replays: Sequence[Replayed]) -> list[str]:
    """The nodes hold the same outcome for every workflow that ended on both."""
    problems: list[str] = []
    for a, b in itertools.combinations(replays, 2):
        ours, theirs = a.outcomes(), b.outcomes()
        for workflow_id in sorted(set(ours) & set(theirs)):
            if ours[workflow_id] != theirs[workflow_id]:
                problems.append(
                    f"nodes {a.node} and {b.node} hold different outcomes for {workflow_id}: "
                    f"{ours[workflow_id]!r} against {theirs[workflow_id]!r}"
                )
    return problems


def read_logs(data_dirs: Mapping[int, Path]) -> tuple[list[NodeLog], list[str]]:
    """The durable logs of the nodes, and a problem line for each one that cannot be read."""
    logs: list[NodeLog] = []
    problems: list[str] = []
    for node, data_dir in sorted(data_dirs.items()):
        try:
            logs.append(read_node_log(node, data_dir))
        except RaftoralError as error:
            problems.append(f"node {node}: cannot read its durable state: {error}")
    return logs, problems
