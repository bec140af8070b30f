"""Recording and replay: JSONL with a header, errors that name the line, DataFrames, EventLog."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from raftoral_lab.events import (
    SCHEMA_VERSION,
    ClusterView,
    EventLog,
    EventSchemaError,
    Recorder,
    RecordingError,
    RecordingHeader,
    event_to_json,
    load,
    make_event,
    save,
    to_dataframe,
)
from raftoral_lab.sim import Simulation


@pytest.fixture(scope="module")
def sim() -> Simulation:
    sim = Simulation(3, seed=9)
    sim.run(60)
    for i in range(5):
        sim.propose(b"x%d" % i)
    sim.partition({1}, {2, 3})
    sim.run(60)
    sim.heal()
    sim.run(30)
    return sim


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_a_recording_reads_back_the_same_events_and_header(sim: Simulation, tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    with Recorder(path, cluster="class", config={"seed": 9, "tick": 0.05}) as recorder:
        recorder.extend(sim.events)
    assert recorder.count == len(sim.events) and recorder.closed
    first = json.loads(lines(path)[0])
    assert first["kind"] == "header" and first["schema"] == SCHEMA_VERSION
    assert first["cluster"] == "class" and first["config"] == {"seed": 9, "tick": 0.05}
    assert isinstance(first["created"], str)
    recording = load(path)
    assert recording.events == sim.events and len(recording) == len(sim.events)
    assert recording.header.config == {"seed": 9, "tick": 0.05} and not recording.torn_tail
    assert recording.view() == ClusterView(sim.events)
    assert recording.view(until=30) == ClusterView.at(sim.events, 30)


def test_header_as_a_dict_and_gzip(sim: Simulation, tmp_path: Path) -> None:
    header = {"kind": "header", "schema": 1, "cluster": "c", "config": {"n": 3}, "created": "x"}
    path = save(tmp_path / "run.jsonl.gz", sim.events, header=header)
    with gzip.open(path, "rt") as f:
        assert json.loads(f.readline()) == header
    recording = load(path)
    assert recording.header == RecordingHeader(cluster="c", config={"n": 3}, created="x")
    assert recording.events == sim.events


def test_a_recorder_is_a_node_listener_that_survives_its_own_close(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "r.jsonl", flush_each=True)
    event = make_event("node_crashed", {}, node=2, seq=1, ts=1.0)
    recorder(event)
    assert load(recorder.path).events == [event]  # flushed: readable while still open
    recorder.close()
    recorder(event)  # a listener left behind must not break its node
    assert len(load(recorder.path)) == 1


def write(path: Path, *rows: str | dict[str, object]) -> Path:
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
    path.write_text(text)
    return path


HEADER = RecordingHeader(cluster="c", created="now").to_json()
EVENT = json.loads(event_to_json(make_event("healed", {}, node=0, seq=1, ts=1.0)))


def test_an_unknown_kind_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", HEADER, EVENT, EVENT | {"kind": "role_chnged"})
    expected = r"r\.jsonl, line 3: unknown event kind 'role_chnged'"
    with pytest.raises(RecordingError, match=expected) as info:
        load(path)
    err = info.value
    assert (err.line, err.kind, err.fields) == (3, "role_chnged", ("kind",))
    assert "did you mean 'role_changed'" in str(err)
    assert isinstance(err, EventSchemaError)


def test_a_bad_line_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", HEADER, EVENT, "{not json", EVENT)
    with pytest.raises(RecordingError, match=r"line 3: not a JSON event object"):
        load(path)
    path = write(tmp_path / "r.jsonl", HEADER, EVENT, EVENT | {"node": "one"})
    with pytest.raises(RecordingError, match=r"line 3: bad 'healed' event: field 'node'"):
        load(path)


def test_newer_versions_name_the_line(tmp_path: Path) -> None:
    newer = SCHEMA_VERSION + 1
    header = json.loads(HEADER) | {"schema": newer}
    with pytest.raises(RecordingError, match=rf"line 1: recording schema version {newer} is newer"):
        load(write(tmp_path / "a.jsonl", header, EVENT))
    with pytest.raises(
        RecordingError, match=rf"line 2: .*field 'v': schema version {newer} is newer"
    ):
        load(write(tmp_path / "b.jsonl", HEADER, EVENT | {"v": newer}))
    future_kind = {"kind": "quantum_vote", "v": newer, "node": 1, "seq": 1, "ts": 0}
    with pytest.raises(RecordingError, match=rf"line 3: .*from schema version {newer}"):
        load(write(tmp_path / "c.jsonl", HEADER, EVENT, future_kind))


def test_a_missing_or_bad_header_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="line 1: not a recording header"):
        load(write(tmp_path / "a.jsonl", EVENT))
    with pytest.raises(RecordingError, match="line 1: empty file"):
        load(write(tmp_path / "b.jsonl"))
    with pytest.raises(RecordingError, match="line 1: header field 'cluster'"):
        load(write(tmp_path / "c.jsonl", json.loads(HEADER) | {"cluster": 3}))


def test_a_torn_last_line_is_skipped_and_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", HEADER, EVENT)
    path.write_text(path.read_text() + json.dumps(EVENT)[:20])  # killed mid-write
    recording = load(path)
    assert len(recording) == 1 and recording.torn_tail
    with pytest.raises(RecordingError, match="line 3"):
        load(path, allow_torn_tail=False)


# --- DataFrame and EventLog -------------------------------------------------------------------


def test_dataframe_has_one_row_per_event_and_a_column_per_field(sim: Simulation) -> None:
    frame = EventLog(sim.events).to_dataframe()
    assert len(frame) == len(sim.events)
    assert list(frame.columns[:7]) == ["kind", "node", "group", "seq", "ts", "tick", "v"]
    assert {"term", "role", "src", "dst", "reason", "commit_index"} <= set(frame.columns)
    assert "workflow_id" not in frame.columns  # only the fields of the kinds present
    roles = frame[frame.kind == "role_changed"]
    first = next(e for e in sim.events if e.kind == "role_changed")
    assert roles.iloc[0]["term"] == first.term and roles.iloc[0]["role"] == first.role  # type: ignore[attr-defined]
    assert str(frame["term"].dtype) == "Int64"  # 3, not 3.0
    drops = frame[frame.kind == "message_dropped"].groupby("reason").size()
    assert drops["partition"] == sim.messages_dropped("partition")


def test_dataframe_of_workflow_events_and_of_nothing() -> None:
    event = make_event(
        "checkpoint_committed",
        {"workflow_id": "w", "ordinal": 0, "key": "k", "epoch": 0, "index": 4},
        node=1,
        seq=1,
        ts=0.5,
    )
    frame = to_dataframe([event])
    assert frame.loc[0, "workflow_id"] == "w" and frame.loc[0, "index"] == 4
    assert list(to_dataframe([]).columns) == ["kind", "node", "group", "seq", "ts", "tick", "v"]


def test_event_log_filters_slices_and_bounds(sim: Simulation) -> None:
    log = EventLog(sim.events)
    assert log == sim.events and len(log) == len(sim.events)
    assert log[0] == sim.events[0] and log[-1] == sim.events[-1]
    assert log[5:10] == sim.events[5:10] and isinstance(log[5:10], EventLog)
    roles = log.filter(kinds="role_changed", nodes=[1, 2], until=100)
    assert roles == [
        e for e in sim.events if e.kind == "role_changed" and e.node in (1, 2) and e.ts <= 100
    ]
    assert log.filter(where=lambda e: e.seq == 1, since=0) == [e for e in sim.events if e.seq == 1]
    assert log.kinds()["role_changed"] == sum(e.kind == "role_changed" for e in sim.events)
    assert log.view(until=50) == ClusterView.at(sim.events, 50)
    bounded = EventLog(maxlen=10)
    for e in sim.events[:25]:
        bounded(e)  # a listener
    assert bounded == sim.events[15:25] and bounded.trimmed == 15
    assert repr(log).startswith(f"<EventLog {len(log)} events: message_sent")
