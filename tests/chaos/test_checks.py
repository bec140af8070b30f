"""The end-of-run checks of `raftoral-lab chaos` find what they are there to find: logs that
disagree, a workflow that ended twice or with the wrong output, one missing or unknown, nodes
that hold different outcomes, and a node whose durable state cannot be read. And the expected
outcomes come from a real fault-free run of the sample workflows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from raftoral_lab.chaos.checks import (
    NodeLog,
    check_logs_agree,
    check_states_agree,
    check_workflows,
    read_logs,
    read_node_log,
    replay,
)
from raftoral_lab.chaos.workload import Expected, Job, expected_outcome, job_input, make_job
from raftoral_lab.core import Entry
from raftoral_lab.core.ready import Ready
from raftoral_lab.core.types import HardState
from raftoral_lab.errors import StorageError
from raftoral_lab.samples import Order, expected_receipt, expected_ten_steps
from raftoral_lab.storage import SQLiteStorage
from raftoral_lab.workflow.commands import End, ErrorInfo, Register, Start, encode

PAIRS = (("ten_steps", 1), ("process_order", 1))


def job(workflow_id: str, result: Any = 7) -> Job:
    return Job(workflow_id, "ten_steps", 1, 1, Expected("completed", result=result))


def commands(*items: Register | Start | End) -> list[bytes]:
    return [encode(c) for c in items]


def start(workflow_id: str) -> Start:
    return Start(workflow_id, "ten_steps", 1, 1, owner=1, by=1)


def end(workflow_id: str, result: Any = 7) -> End:
    return End(workflow_id, epoch=1, checkpoints=0, result=result)


def node_log(node: int, data: list[bytes], *, term: int = 2, commit: int | None = None) -> NodeLog:
    """A log after the bootstrap snapshot (index 1): register, then `data`, all of `term`."""
    payloads = [encode(Register(1, PAIRS)), *data]  # node 1 can run them: it owns them
    entries = tuple(Entry(2 + i, term, d) for i, d in enumerate(payloads))
    last = entries[-1].index
    return NodeLog(node, last if commit is None else commit, 1, 1, b"", entries)


def with_entry(log: NodeLog, index: int, entry: Entry) -> NodeLog:
    entries = tuple(entry if e.index == index else e for e in log.entries)
    return NodeLog(
        log.node, log.commit_index, log.snapshot_index, log.snapshot_term, log.snapshot_data,
        entries,
    )  # fmt: skip


# --- the logs --------------------------------------------------------------------------------


def test_identical_logs_agree_and_are_compared() -> None:
    data = commands(start("w1"), end("w1"))
    result = check_logs_agree([node_log(1, data), node_log(1, data), node_log(1, data)])
    assert result.problems == []
    assert result.compared == 3 * 4  # three pairs, indexes 1 (snapshot) to 4


def test_a_term_disagreement_at_a_committed_index_is_found() -> None:
    data = commands(start("w1"), end("w1"))
    a = node_log(1, data)
    b = with_entry(node_log(1, data), 3, Entry(3, 3, data[0]))
    (problem,) = check_logs_agree([a, b]).problems
    assert "disagree at committed index 3: term 2 against term 3" in problem


def test_different_data_under_one_term_is_found() -> None:
    data = commands(start("w1"), end("w1"))
    a = node_log(1, data)
    b = with_entry(node_log(1, data), 4, Entry(4, 2, encode(end("w1", result=8))))
    (problem,) = check_logs_agree([a, b]).problems
    assert "different entries at committed index 4" in problem


def test_uncommitted_differences_are_not_disagreements() -> None:
    data = commands(start("w1"), end("w1"))
    a = node_log(1, data, commit=3)
    b = with_entry(node_log(1, data), 4, Entry(4, 3, b"other"))
    assert check_logs_agree([a, b]).problems == []


def test_a_commit_index_beyond_the_log_is_found() -> None:
    log = node_log(1, commands(start("w1")), commit=9)
    assert any("beyond its last entry" in p for p in check_logs_agree([log]).problems)


def test_logs_with_no_common_committed_index_are_a_failure_not_a_pass() -> None:
    a = NodeLog(1, 0, 0, 0, b"", ())
    b = NodeLog(2, 0, 0, 0, b"", ())
    assert check_logs_agree([a, b]).problems, "a comparison of nothing must not pass"


# --- the workflows ---------------------------------------------------------------------------


def test_every_workflow_once_with_the_expected_output_passes() -> None:
    log = node_log(1, commands(start("w1"), end("w1"), start("w2"), end("w2", result=9)))
    jobs = {"w1": job("w1"), "w2": job("w2", result=9)}
    replays = [replay(log), replay(log)]
    assert check_workflows(jobs, replays, acknowledged=jobs) == []
    assert check_states_agree(replays) == []


def test_a_double_completion_is_found() -> None:
    # nodes forget old finished workflows: a retried start of a forgotten id runs it again
    data = commands(start("w1"), end("w1"), start("w2"), end("w2"), start("w1"), end("w1"))
    replayed = replay(node_log(1, data), retain_finished=1)
    problems = check_workflows({"w1": job("w1"), "w2": job("w2")}, [replayed])
    assert any("w1 (ten_steps) was started 2 times" in p for p in problems), problems
    assert any("w1 (ten_steps) ended 2 times (at indexes 4, 8)" in p for p in problems), problems


def test_a_wrong_output_is_found() -> None:
    log = node_log(1, commands(start("w1"), end("w1", result=8)))
    (problem,) = check_workflows({"w1": job("w1", result=7)}, [replay(log)])
    assert "ended completed with 8, expected completed with 7" in problem


def test_a_failure_where_a_result_was_expected_is_found() -> None:
    failed = End("w1", epoch=1, checkpoints=0, error=ErrorInfo("LookupError", "no such item"))
    (problem,) = check_workflows(
        {"w1": job("w1")}, [replay(node_log(1, commands(start("w1"), failed)))]
    )
    assert "ended failed (LookupError: no such item), expected completed with 7" in problem


def test_a_workflow_still_running_or_missing_is_found() -> None:
    running = replay(node_log(1, commands(start("w1"))))
    empty = replay(node_log(2, []))
    problems = check_workflows({"w1": job("w1")}, [running, empty])
    assert any("node 1: workflow w1 (ten_steps) still running" in p for p in problems), problems
    assert any("node 2: workflow w1 (ten_steps) is not in the committed log" in p for p in problems)


def test_an_acknowledged_start_missing_from_every_log_is_found() -> None:
    problems = check_workflows({"w1": job("w1")}, [replay(node_log(1, []))], acknowledged={"w1"})
    assert problems == ["node 1: workflow w1 (ten_steps) is not in the committed log"]


def test_a_workflow_the_run_never_started_is_found() -> None:
    log = node_log(1, commands(start("stranger"), end("stranger")))
    (problem,) = check_workflows({}, [replay(log)])
    assert "'stranger' was never started by the run" in problem


def test_no_node_at_all_is_a_failure_not_a_pass() -> None:
    assert check_workflows({"w1": job("w1")}, [])


def test_nodes_with_different_outcomes_are_found() -> None:
    a = replay(node_log(1, commands(start("w1"), end("w1", result=7))))
    b = replay(node_log(2, commands(start("w1"), end("w1", result=8))))
    (problem,) = check_states_agree([a, b])
    assert "nodes 1 and 2 hold different outcomes for w1" in problem


def test_ends_committed_before_a_snapshot_count_once() -> None:
    before = replay(node_log(1, commands(start("w1"), end("w1"))))
    from raftoral_lab.workflow.state_machine import WorkflowStateMachine

    machine = WorkflowStateMachine()
    for entry in node_log(1, commands(start("w1"), end("w1"))).entries:
        machine.apply(entry)
    compacted = NodeLog(1, 6, 4, 2, machine.snapshot(), (Entry(5, 2, b""), Entry(6, 2, b"")))
    after = replay(compacted)
    assert check_workflows({"w1": job("w1")}, [before, after]) == []
    assert after.endings["w1"][0].index == 4


# --- durable state on disk -------------------------------------------------------------------


def test_a_node_log_is_read_from_its_sqlite_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "node1"
    data_dir.mkdir()
    payloads = commands(start("w1"), end("w1"))
    with SQLiteStorage(data_dir / "raft.db") as storage:
        storage.bootstrap([1, 2, 3])
        entries = tuple(Entry(2 + i, 2, d) for i, d in enumerate(payloads))
        storage.persist(Ready(HardState(2, 1, 3), entries, None, (), (), (), ()))
    log = read_node_log(1, data_dir)
    assert (log.commit_index, log.snapshot_index, log.last_index) == (3, 1, 3)
    assert [e.data for e in log.entries] == payloads


def test_a_missing_storage_file_is_reported_not_skipped(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="has no storage file"):
        read_node_log(2, tmp_path)
    logs, problems = read_logs({2: tmp_path / "nowhere"})
    assert logs == [] and len(problems) == 1 and "node 2" in problems[0]


def test_a_damaged_storage_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "raft.db").write_bytes(b"this is not a database" * 100)
    logs, problems = read_logs({1: tmp_path})
    assert logs == [] and "cannot read its durable state" in problems[0]


# --- the expected outcomes -------------------------------------------------------------------


async def test_expected_outcomes_come_from_a_fault_free_run_of_the_samples() -> None:
    assert await expected_outcome("ten_steps", 1, 5) == Expected(
        "completed", result=expected_ten_steps(5)
    )
    order = Order(order_id="o-1", item="lamp", quantity=3)
    assert await expected_outcome("process_order", 1, order.model_dump()) == Expected(
        "completed", result=expected_receipt(order).model_dump()
    )
    failed = await expected_outcome(
        "process_order", 1, {"order_id": "o-2", "item": "kite", "quantity": 1}
    )
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.type == "LookupError" and "'kite'" in failed.error.message


async def test_the_workload_is_seeded() -> None:
    assert [job_input(4, i) for i in range(20)] == [job_input(4, i) for i in range(20)]
    assert [job_input(4, i) for i in range(20)] != [job_input(5, i) for i in range(20)]
    jobs = [await make_job(4, i) for i in range(40)]
    assert {j.name for j in jobs} == {"ten_steps", "process_order"}
    assert {j.expected.status for j in jobs} == {"completed", "failed"}  # the mix has both
