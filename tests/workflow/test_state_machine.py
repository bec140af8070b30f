"""The workflow state machine alone: pure, replayable, deterministic (no nodes, no asyncio)."""

from __future__ import annotations

from typing import Any

from raftoral_lab.core import ConfChange, ConfChangeOp, Entry, EntryKind
from raftoral_lab.events import make_event
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
from raftoral_lab.workflow.state_machine import WorkflowStateMachine, WorkflowStatus

PAIR = ("order", 1)


class Feeder:
    """Applies commands at increasing indexes and records the events the machine emits."""

    def __init__(self, machine: WorkflowStateMachine | None = None) -> None:
        self.machine = machine or WorkflowStateMachine()
        self.index = 1
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.changes: list[tuple[str, str | None]] = []
        self.machine.emit = self._emit
        self.machine.listener = lambda change, wid: self.changes.append((change, wid))
        self.log: list[Entry] = []

    def _emit(self, kind: str, fields: dict[str, Any]) -> None:
        make_event(kind, fields, node=1, seq=len(self.events) + 1, ts=0.0)  # fits the schema
        self.events.append((kind, fields))

    def __call__(self, command: Command) -> Any:
        return self.entry(Entry(self._next(), 1, encode(command)))

    def entry(self, entry: Entry) -> Any:
        self.log.append(entry)
        return self.machine.apply(entry)

    def _next(self) -> int:
        self.index += 1
        return self.index

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


def started(feed: Feeder, wid: str = "w1", owner: int | None = 1) -> None:
    feed(Register(1, (PAIR,)))
    feed(Register(2, (PAIR,)))
    answer = feed(Start(wid, "order", 1, {"item": "x"}, owner, by=3))
    assert answer["result"] == "started"


def test_commands_round_trip_and_malformed_ones_are_refused() -> None:
    commands: list[Command] = [
        Register(1, (("a", 1), ("b", 2))),
        Start("w", "a", 1, {"x": [1, 2]}, 2, 3),
        Start("w", "a", 1, None, None, None),
        Checkpoint("w", 0, "k", {"v": 1}, 1),
        Checkpoint("w", 1, "k", None, 1, ErrorInfo("ValueError", "bad")),
        OwnerChange("w", 2, 3),
        End("w", 3, 2, {"ok": True}),
        End("w", 3, 2, None, ErrorInfo("KeyError", "'x'")),
        Cancel("w"),
        Diverged("w", 3, 1, "a", "b"),
    ]
    for command in commands:
        assert decode(encode(command)) == command
    machine = WorkflowStateMachine()
    for junk in (b"{", b"[]", b'{"wf": 1, "op": "nope", "id": "w"}', b'{"wf": 2}', b"\xff"):
        answer = machine.apply(Entry(2, 1, junk))
        assert isinstance(answer, dict) and answer["error"] == "malformed"
    assert machine.workflows == {}


def test_start_is_idempotent_by_id() -> None:
    feed = Feeder()
    started(feed)
    again = feed(Start("w1", "order", 1, {"item": "other"}, 2, by=2))
    assert again["result"] == "exists"
    assert feed.machine.workflows["w1"].input == {"item": "x"}
    assert feed.kinds().count("workflow_started") == 1


def test_start_of_an_unregistered_pair_is_refused_and_bad_owner_hint_is_dropped() -> None:
    feed = Feeder()
    feed(Register(1, (PAIR,)))
    answer = feed(Start("w1", "order", 2, None, 1))
    assert answer["error"] == "unregistered" and answer["registered"] == [["order", 1]]
    answer = feed(Start("w2", "order", 1, None, owner=7))  # node 7 registered nothing
    assert answer["owner"] is None and answer["epoch"] == 0


def test_first_committed_value_of_an_ordinal_wins() -> None:
    feed = Feeder()
    started(feed)
    assert feed(Checkpoint("w1", 0, "a", 1, 1))["result"] == "committed"
    assert feed(Checkpoint("w1", 0, "a", 99, 1))["result"] == "duplicate"
    assert feed(Checkpoint("w1", 2, "c", 3, 1))["result"] == "gap"
    assert [c.value for c in feed.machine.workflows["w1"].checkpoints] == [1]
    assert ("checkpoint_duplicate", {"workflow_id": "w1", "ordinal": 0, "key": "a"}) in (
        feed.events
    )


def test_stale_epochs_are_rejected_after_an_owner_change() -> None:
    feed = Feeder()
    started(feed)
    assert feed(OwnerChange("w1", 2, 2))["result"] == "owner"
    answer = feed(Checkpoint("w1", 0, "a", 1, epoch=1))
    assert answer == {"result": "stale", "epoch": 2, "owner": 2}
    assert feed.events[-1] == (
        "checkpoint_stale",
        {"workflow_id": "w1", "ordinal": 0, "epoch": 1, "current_epoch": 2},
    )
    assert feed(OwnerChange("w1", 1, 2))["result"] == "stale"  # epochs only go up
    assert feed(End("w1", 1, 0, "x"))["result"] == "stale"
    assert feed(Checkpoint("w1", 0, "a", 2, epoch=2))["result"] == "committed"


def test_an_owner_must_have_registered_the_pair_and_not_have_diverged() -> None:
    feed = Feeder()
    started(feed)
    feed(Register(3, (("order", 2),)))
    assert feed(OwnerChange("w1", 3, 2))["result"] == "refused"
    assert feed(Diverged("w1", 1, 0, "a", "b"))["result"] == "excluded"
    record = feed.machine.workflows["w1"]
    assert record.owner is None and record.epoch == 2  # the diverged owner's epoch is over
    assert feed(OwnerChange("w1", 1, 3))["result"] == "refused"
    assert feed(OwnerChange("w1", 2, 3))["result"] == "owner"


def test_removed_nodes_lose_their_capabilities() -> None:
    feed = Feeder()
    started(feed)
    feed.entry(Entry(50, 1, ConfChange(ConfChangeOp.REMOVE, 2).encode(), EntryKind.CONF_CHANGE))
    assert feed.machine.capable_nodes("order", 1) == {1}
    assert feed(OwnerChange("w1", 2, 2))["result"] == "refused"


def test_end_needs_the_committed_count_then_keeps_the_outcome_not_the_queue() -> None:
    feed = Feeder()
    started(feed)
    feed(Checkpoint("w1", 0, "a", 1, 1))
    queue = feed.machine.workflows["w1"].checkpoints
    assert feed(End("w1", 1, 0, "done"))["result"] == "mismatch"
    assert feed(End("w1", 1, 1, "done"))["result"] == "ended"
    record = feed.machine.workflows["w1"]
    assert record.status is WorkflowStatus.COMPLETED and record.result == "done"
    assert record.checkpoints == [] and record.checkpoint_count == 1
    assert [c.value for c in queue] == [1]  # a run still consuming keeps its list
    assert feed(Checkpoint("w1", 1, "b", 2, 1))["result"] == "finished"
    assert feed(Cancel("w1"))["result"] == "finished"
    assert feed.kinds()[-1] == "workflow_completed"


def test_failure_and_cancel_outcomes() -> None:
    feed = Feeder()
    started(feed, "w1")
    started(feed, "w2")
    feed(End("w1", 1, 0, None, ErrorInfo("ValueError", "boom")))
    assert feed.machine.workflows["w1"].status is WorkflowStatus.FAILED
    assert feed.events[-1] == (
        "workflow_failed",
        {"workflow_id": "w1", "error_type": "ValueError", "message": "boom"},
    )
    assert feed(Cancel("w2"))["result"] == "cancelled"
    assert feed.machine.workflows["w2"].status is WorkflowStatus.CANCELLED
    assert ("ended", "w2") in feed.changes


def test_retention_of_finished_workflows_is_bounded() -> None:
    feed = Feeder(WorkflowStateMachine(retain_finished=2))
    for n in range(5):
        started(feed, f"w{n}")
    for n in range(4):
        feed(End(f"w{n}", 1, 0, n))
    assert sorted(feed.machine.workflows) == ["w2", "w3", "w4"]  # 2 finished + 1 running


def test_snapshot_restore_keeps_running_queues_and_equals_a_replay() -> None:
    feed = Feeder()
    started(feed, "w1")
    started(feed, "w2")
    for k in range(5):
        feed(Checkpoint("w1", k, "step", k * 10, 1))
    feed(OwnerChange("w1", 2, 2))
    feed(Checkpoint("w1", 5, "step", 50, 2))
    feed(End("w2", 1, 0, {"ok": True}))
    data = feed.machine.snapshot()

    restored = WorkflowStateMachine()
    changes: list[tuple[str, str | None]] = []
    restored.listener = lambda change, wid: changes.append((change, wid))
    restored.restore(data)
    assert changes == [("restored", None)]
    assert restored.snapshot() == data
    w1 = restored.workflows["w1"]
    assert [c.value for c in w1.checkpoints] == [0, 10, 20, 30, 40, 50]
    assert (w1.owner, w1.epoch, w1.status) == (2, 2, WorkflowStatus.RUNNING)
    assert restored.workflows["w2"].result == {"ok": True}

    replayed = WorkflowStateMachine()
    for entry in feed.log:
        replayed.apply(entry)
    assert replayed.snapshot() == data  # deterministic: the same log gives the same state

    # the restored machine goes on exactly like the original
    for machine in (feed.machine, restored):
        machine.apply(Entry(feed.index + 1, 1, encode(Checkpoint("w1", 6, "step", 60, 2))))
    assert restored.snapshot() == feed.machine.snapshot()


def test_empty_snapshot_and_empty_entries() -> None:
    machine = WorkflowStateMachine()
    machine.restore(b"")
    assert machine.apply(Entry(2, 1, b"")) == {"result": "empty", "index": 2}
    assert machine.workflows == {} and machine.last_index == 2
