"""Lamport diagrams: sends matched to deliveries, consistent clocks, SVG, Bokeh and ShiViz."""

from __future__ import annotations

import json
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from raftoral_lab.errors import ConfigError
from raftoral_lab.events import (
    SHIVIZ_REGEX,
    EventBase,
    SpaceTime,
    lamport_figure,
    make_event,
    space_time,
    to_shiviz,
    to_svg,
    write_shiviz,
    write_svg,
)
from raftoral_lab.sim import Simulation

from .support import interleave


@pytest.fixture(scope="module")
def sim() -> Simulation:
    sim = Simulation(3, seed=1)
    sim.run(30)
    sim.propose(b"x")
    sim.set_drop_rate(0.3)
    sim.run(10)
    sim.set_drop_rate(0.0)
    sim.partition({1}, {2, 3})
    sim.run(10)
    return sim


class Script:
    """Hand-written message events with ids, each node numbering its own."""

    def __init__(self) -> None:
        self.events: list[EventBase] = []
        self.seq: dict[int, int] = {}

    def add(self, kind: str, node: int, **fields: object) -> None:
        self.seq[node] = self.seq.get(node, 0) + 1
        ts = float(len(self.events))
        self.events.append(make_event(kind, fields, node=node, seq=self.seq[node], ts=ts))

    def send(self, src: int, dst: int, msg_id: int, message: str = "append_entries") -> None:
        self.add("message_sent", src, message=message, src=src, dst=dst, msg_id=msg_id)

    def deliver(self, src: int, dst: int, msg_id: int, message: str = "append_entries") -> None:
        self.add("message_delivered", dst, message=message, src=src, dst=dst, msg_id=msg_id)

    def drop(self, src: int, dst: int, msg_id: int, reason: str = "partition") -> None:
        self.add(
            "message_dropped",
            dst,
            message="append_entries",
            src=src,
            dst=dst,
            reason=reason,
            msg_id=msg_id,
        )


def scripted() -> list[EventBase]:
    s = Script()
    s.send(1, 2, 1)
    s.send(1, 2, 2)  # overtakes message 1 (the network reordered them)
    s.send(1, 3, 3)
    s.deliver(1, 2, 2)
    s.deliver(1, 2, 1)
    s.deliver(1, 2, 1)  # a duplicate of message 1
    s.drop(1, 3, 3)
    s.send(2, 1, 4, "append_response")
    s.deliver(2, 1, 4, "append_response")
    s.send(3, 1, 5, "heartbeat_response")  # still in flight at the end
    return s.events


def test_message_ids_match_exactly_even_when_reordered_or_duplicated() -> None:
    d = space_time(scripted())
    assert d.nodes == (1, 2, 3)
    summary = [
        (a.send.event.msg_id, a.receive.event.seq if a.receive else None, a.dropped)  # type: ignore[attr-defined]
        for a in d.arrows
    ]
    assert summary == [(1, 2, None), (1, 3, None), (2, 1, None), (3, None, "partition"),
                       (4, 4, None), (5, None, None)]  # fmt: skip
    assert [a.in_flight for a in d.arrows].count(True) == 1


def check_clocks(d: SpaceTime) -> None:
    """Lamport's clock condition, and vector clocks that grow by one per event per node."""
    last: dict[int, int] = {}
    for p in sorted(d.points, key=lambda p: (p.node, p.clock_dict()[p.node])):
        own = p.clock_dict()[p.node]
        assert own == last.get(p.node, 0) + 1
        last[p.node] = own
    for a in d.arrows:
        if a.receive is not None:
            sent, got = a.send.clock_dict(), a.receive.clock_dict()
            assert all(got.get(n, 0) >= c for n, c in sent.items())
            assert a.receive.lamport > a.send.lamport


def test_clocks_do_not_depend_on_how_nodes_were_interleaved() -> None:
    events = scripted()
    expected = space_time(events)
    check_clocks(expected)
    rng = random.Random(3)
    for _ in range(10):
        d = space_time(interleave(events, rng))
        check_clocks(d)
        assert {(p.node, p.event.seq, p.clock) for p in d.points} == {
            (p.node, p.event.seq, p.clock) for p in expected.points
        }


def test_without_ids_channels_match_first_in_first_out(sim: Simulation) -> None:
    d = space_time(sim.events)
    check_clocks(d)
    kinds = [e.kind for e in sim.events]
    assert len(d.arrows) == kinds.count("message_sent")
    assert sum(a.receive is not None for a in d.arrows) == kinds.count("message_delivered")
    assert sum(a.dropped is not None for a in d.arrows) == kinds.count("message_dropped")
    for a in d.arrows:
        if a.receive is not None:
            assert (a.receive.event.src, a.receive.event.dst) == (a.src, a.dst)  # type: ignore[attr-defined]
            assert a.receive.event.message == a.message  # type: ignore[attr-defined]
    leaders = [p for p in d.points if p.label.startswith("leader")]
    assert leaders  # role changes are drawn on the lines


def test_a_window_keeps_its_events_and_marks_early_sends(sim: Simulation) -> None:
    d = space_time(sim.events, start=35, end=38, nodes=[1, 2])
    assert all(35 <= p.ts <= 38 and p.node in (1, 2) for p in d.points)
    assert all({a.src, a.dst} <= {1, 2} for a in d.arrows)
    d = space_time(scripted(), start=3)  # sends 1..3 are before the window
    assert [p.label for p in d.points if "before the window" in p.label]


def test_svg_is_a_standalone_document(sim: Simulation, tmp_path: Path) -> None:
    d = space_time(sim.events, start=30, end=45)
    path = write_svg(tmp_path / "lamport.svg", d, title="election & commit")
    root = ET.fromstring(path.read_text())
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    lines = root.findall(f"{ns}line")
    assert len(lines) >= len(d.arrows) + len(d.nodes)
    assert any(
        t.text == "election &amp; commit" or t.text == "election & commit"
        for t in root.iter(f"{ns}text")
    )
    assert len(root.findall(f".//{ns}marker")) >= 1
    dropped = sum(a.dropped is not None for a in d.arrows)
    assert dropped and len(root.findall(f"{ns}path")) == dropped  # an x per dropped message
    assert to_svg(sim.events, start=30, end=45, x="ts").startswith("<svg")
    with pytest.raises(ConfigError, match="x must be"):
        to_svg(d, x="wall")  # type: ignore[arg-type]


def test_bokeh_figure_serializes(sim: Simulation) -> None:
    from bokeh.embed import json_item

    fig = lamport_figure(sim.events, start=25, end=45)
    item = json.dumps(json_item(fig))
    assert "append_entries" in item and "node 1" in item
    assert lamport_figure(space_time(scripted()), x="ts") is not None
    with pytest.raises(ConfigError, match="apply to events"):
        lamport_figure(space_time(scripted()), start=1)


def test_shiviz_lines_match_the_documented_regex(sim: Simulation, tmp_path: Path) -> None:
    text = write_shiviz(tmp_path / "run.log", sim.events, start=25, end=45).read_text()
    pattern = re.compile(SHIVIZ_REGEX.replace("(?<", "(?P<"))  # JavaScript -> Python groups
    last: dict[str, int] = {}
    for line in text.splitlines():
        m = pattern.fullmatch(line)
        assert m, line
        clock = json.loads(m["clock"])
        host = m["host"]
        assert clock[host] == last.get(host, 0) + 1  # ShiViz checks exactly this
        last[host] = clock[host]
    assert "(dropped: " in text
    assert to_shiviz(scripted()).splitlines()[0].startswith('node1 {"node1":1} message_sent')
