"""The views as pure functions of the events: well-formed SVG that says what the events say.

No browser here: each view renders a string from a `Model`; these tests parse it (as XML, so
an unclosed tag fails at once) and read the same data attributes the browser tests read.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from raftoral_lab.dashboard.app import render_header
from raftoral_lab.dashboard.controller import ObserverController
from raftoral_lab.dashboard.feed import CATEGORY_OF, render_counters, render_feed
from raftoral_lab.dashboard.logs import render_log_legend, render_logs
from raftoral_lab.dashboard.model import ListSource, Model, ReplayModel
from raftoral_lab.dashboard.timeline import render_timeline, render_timeline_legend
from raftoral_lab.dashboard.topology import render_legend, render_topology
from raftoral_lab.dashboard.workflows import (
    MAX_FINISHED_ROWS,
    latest_rows,
    render_queues,
    workflow_rows,
)
from raftoral_lab.events.models import EVENT_KINDS, EventBase, make_event
from raftoral_lab.events.view import ClusterView
from raftoral_lab.sim import Simulation


def parse(html: str) -> ET.Element:
    """The markup as XML (a wrapper makes fragments one document)."""
    return ET.fromstring(f"<root>{html}</root>")


def attrs(root: ET.Element, cls: str) -> list[dict[str, str]]:
    return [
        {k.removeprefix("data-"): v for k, v in el.attrib.items() if k.startswith("data-")}
        for el in root.iter()
        if cls in el.attrib.get("class", "").split()
    ]


def every_view(model: Model) -> list[str]:
    return [
        render_topology(model),
        render_logs(model),
        render_timeline(model),
        render_feed(model, list(CATEGORY_OF.values())),
        render_counters(model),
        render_header(model, 0, ObserverController()),
        render_queues(model, next(iter(model.view.workflows), None)),
    ]


def figure8() -> tuple[Simulation, int, int]:
    """The old leader, cut off, appends entries nobody else has; a new leader overwrites them."""
    sim = Simulation(nodes=3, seed=11)
    sim.run_until(lambda s: s.leader() is not None)
    for i in range(3):
        sim.propose(b"ok%d" % i)
        sim.run(2)
    old = sim.leader()
    assert old is not None
    sim.partition({old}, set(sim.nodes) - {old})
    for i in range(2):
        assert sim.propose(b"lost%d" % i, node=old) is not None
    sim.run_until(lambda s: s.leader() not in (None, old), max_ticks=500)
    new = sim.leader()
    assert new is not None
    sim.propose(b"majority")
    sim.run(5)
    sim.heal()
    sim.run(60)
    return sim, old, new


def test_every_view_is_well_formed_markup_on_every_state() -> None:
    sim, _old, _new = figure8()
    model = Model(ListSource(sim.events), time_unit="tick")
    empty = Model(time_unit="tick")
    for html in every_view(empty):
        parse(html)
    # fold step by step: every intermediate picture must parse too
    for end in range(0, len(sim.events), max(1, len(sim.events) // 25)):
        step = Model(ListSource(sim.events[:end]), time_unit="tick")
        step.refresh()
        for html in every_view(step):
            parse(html)
    model.refresh()
    for html in (
        *every_view(model),
        render_legend(),
        render_log_legend(),
        render_timeline_legend(),
    ):
        parse(html)


def test_topology_marks_roles_the_leader_and_dead_nodes() -> None:
    sim = Simulation(nodes=5, seed=3)
    sim.run_until(lambda s: s.leader() is not None)
    leader = sim.leader()
    assert leader is not None
    sim.crash(leader)
    sim.run_until(lambda s: s.leader() not in (None, leader), max_ticks=500)
    model = Model(ListSource(sim.events), time_unit="tick")
    model.refresh()
    nodes = {int(n["node"]): n for n in attrs(parse(render_topology(model)), "node")}
    assert sorted(nodes) == [1, 2, 3, 4, 5]
    assert nodes[leader]["role"] == "dead" and nodes[leader]["status"] == "crashed"
    leaders = [n for n, a in nodes.items() if a["leader"] == "true"]
    assert leaders == [sim.leader()]
    assert {a["role"] for n, a in nodes.items() if n not in (leader, sim.leader())} == {"follower"}


def test_partition_sides_are_drawn_apart_and_healed_together() -> None:
    sim = Simulation(nodes=5, seed=2)
    sim.run_until(lambda s: s.leader() is not None)
    sim.partition({1, 2}, {3, 4, 5})
    sim.run(5)
    model = Model(ListSource(sim.events), time_unit="tick")
    model.refresh()
    svg = parse(render_topology(model))
    assert svg.find("svg").attrib["data-sides"] == "2"  # type: ignore[union-attr]
    sim.heal()
    sim.run(5)
    model.refresh()
    assert parse(render_topology(model)).find("svg").attrib["data-sides"] == "1"  # type: ignore[union-attr]


def test_message_rates_appear_only_with_message_events() -> None:
    sim = Simulation(nodes=3, seed=1)
    sim.run(80)
    model = Model(ListSource(sim.events), time_unit="tick")
    model.refresh()
    sim.run(20)
    model.refresh()
    assert model.rates and all(rate > 0 for rate in model.rates.values())
    assert "/tick" in render_topology(model)
    quiet = Model(
        ListSource([e for e in sim.events if not e.kind.startswith("message_")]),
        time_unit="tick",
    )
    quiet.refresh()
    svg = render_topology(quiet)
    assert "/tick" not in svg and "no message events" in svg


def test_logs_show_overwritten_entries_struck_out_figure_8() -> None:
    sim, old, new = figure8()
    model = Model(ListSource(sim.events), time_unit="tick")
    model.refresh()
    root = parse(render_logs(model))
    rows = {int(r["node"]): r for r in attrs(root, "logrow")}
    assert int(rows[old]["overwritten"]) >= 2  # the two entries only the old leader had
    ghosts = attrs(root, "overwritten")
    assert ghosts and all(int(g["term"]) < model.view.replica(new).term for g in ghosts)
    # after the heal every log is the same and fully committed
    assert len({r["tail"] for r in rows.values()}) == 1
    assert {int(r["commit"]) for r in rows.values()} == {int(rows[new]["last"])}


def test_uncommitted_entries_are_drawn_apart_from_committed_ones() -> None:
    sim = Simulation(nodes=3, seed=4)
    sim.run_until(lambda s: s.leader() is not None)
    leader = sim.leader()
    assert leader is not None
    sim.partition({leader}, set(sim.nodes) - {leader})
    sim.propose(b"pending", node=leader)
    sim.run(1)
    model = Model(ListSource(sim.events), time_unit="tick")
    model.refresh()
    root = parse(render_logs(model))
    assert attrs(root, "uncommitted"), "the leader's pending entry is drawn as uncommitted"
    row = next(r for r in attrs(root, "logrow") if int(r["node"]) == leader)
    assert int(row["last"]) > int(row["commit"])


def test_timeline_draws_each_leadership_and_election() -> None:
    sim = Simulation(nodes=3, seed=5)
    sim.run_until(lambda s: s.leader() is not None)
    first = sim.leader()
    sim.run(20)
    assert first is not None
    sim.crash(first)
    sim.run_until(lambda s: s.leader() not in (None, first), max_ticks=500)
    sim.run(10)
    model = Model(ListSource(sim.events), time_unit="tick")
    model.refresh()
    root = parse(render_timeline(model))
    spans = attrs(root, "leadership")
    assert [(int(s["node"]), int(s["term"])) for s in spans] == [
        (s.node, s.term) for s in model.view.leaders()
    ]
    assert len(spans) == 2
    assert attrs(root, "vote"), "real elections are marked"


def test_replay_model_moves_back_and_forth_in_time() -> None:
    sim = Simulation(nodes=3, seed=5)
    sim.run_until(lambda s: s.leader() is not None)
    first = sim.leader()
    sim.run(30)
    middle = float(sim.tick - 1)  # the crash below happens at tick `sim.tick`
    assert first is not None
    sim.crash(first)
    sim.run_until(lambda s: s.leader() not in (None, first), max_ticks=500)
    sim.run(10)
    model = ReplayModel(sim.events)
    assert model.time_unit == "tick"
    model.seek(model.end)
    assert model.view.leader() == sim.leader()
    model.seek(middle)
    assert model.view.leader() == first
    assert model.view == ClusterView.at(sim.events, middle)
    model.seek(model.end)
    assert model.view == ClusterView(sim.events)


def wf(kind: str, node: int, seq: int, ts: float, **fields: Any) -> EventBase:
    return make_event(kind, fields, node=node, seq=seq, ts=ts)


def test_workflow_table_and_checkpoint_queues_per_node() -> None:
    events = [
        wf("workflow_started", 1, 1, 1.0, workflow_id="w1", name="checkout", version=1, owner=1),
        wf("workflow_started", 2, 1, 1.0, workflow_id="w1", name="checkout", version=1, owner=1),
        wf("checkpoint_proposed", 1, 2, 1.1, workflow_id="w1", ordinal=0, key="a", epoch=0),
        wf(
            "checkpoint_committed",
            1,
            3,
            1.2,
            workflow_id="w1",
            ordinal=0,
            key="a",
            epoch=0,
            index=5,
        ),
        wf(
            "checkpoint_committed",
            2,
            2,
            1.2,
            workflow_id="w1",
            ordinal=0,
            key="a",
            epoch=0,
            index=5,
        ),
        wf("checkpoint_consumed", 1, 4, 1.3, workflow_id="w1", ordinal=0, key="a"),
        wf("checkpoint_proposed", 1, 5, 1.4, workflow_id="w1", ordinal=1, key="b", epoch=0),
    ]
    model = Model(ListSource(events))
    model.refresh()
    (row,) = workflow_rows(model, {})
    assert row["status"] == "running" and row["owner"] == "n1" and row["checkpoints"] == "1/2"
    root = parse(render_queues(model, "w1"))
    queues = {int(q["node"]): q for q in attrs(root, "queue")}
    assert queues[1]["consumed"] == "1" and queues[1]["pending"] == "0"
    assert queues[2]["consumed"] == "0" and queues[2]["pending"] == "1"  # waiting in its queue
    model.fold([wf("workflow_completed", 1, 6, 2.0, workflow_id="w1", name="checkout")])
    (row,) = workflow_rows(model, {"w1": '{"ok": true}'})
    assert row["status"] == "completed" and row["result / error"] == '{"ok": true}'
    (row,) = workflow_rows(model, {})
    assert row["result / error"] == "(result not in the events)"  # nothing invented
    model.fold(
        [wf("workflow_completed", 2, 3, 2.1, workflow_id="w1", name="checkout", result='"done"')]
    )
    (row,) = workflow_rows(model, {})
    assert row["result / error"] == '"done"'  # the events' own word for it


def test_the_table_keeps_running_workflows_and_the_latest_finished_ones() -> None:
    events: list[EventBase] = []
    total = MAX_FINISHED_ROWS + 50
    for i in range(total):
        w = f"w{i:04}"
        started = {"workflow_id": w, "name": "n", "version": 1, "owner": 1}
        events.append(wf("workflow_started", 1, 2 * i + 1, float(i), **started))
        if i % 10 != 3:  # every tenth stays running
            events.append(wf("workflow_completed", 1, 2 * i + 2, i + 0.5, workflow_id=w, name="n"))
    model = Model(ListSource(events))
    model.refresh()
    rows = workflow_rows(model, {})
    running = {r["id"] for r in rows if r["status"] == "running"}
    shown, left_out = latest_rows(rows)
    ids = [r["id"] for r in shown]
    assert running <= set(ids), "every running workflow stays"
    assert len(shown) - len(running) == MAX_FINISHED_ROWS
    assert left_out == len(rows) - len(shown) > 0
    assert ids == sorted(ids), "start order kept"
    assert "w0000" not in ids and "w0149" in ids, "the oldest finished go first"
    shown, left_out_kept = latest_rows(rows, keep="w0000")
    assert "w0000" in [r["id"] for r in shown] and left_out_kept == left_out - 1


def test_feed_filters_by_category_node_and_text_and_keeps_elections_among_heartbeats() -> None:
    sim = Simulation(nodes=3, seed=1)
    sim.run(2000)  # thousands of heartbeats after the one election
    model = Model(ListSource(sim.events), time_unit="tick")
    model.refresh()
    roles = render_feed(model, ["roles"])
    assert "role_changed" in roles and "heartbeat" not in roles
    assert "heartbeat" in render_feed(model, ["messages"])
    only_two = parse(render_feed(model, ["roles", "log"], nodes={2}))
    assert {td.text for td in only_two.iter("b")} == {"n2"}
    assert "no events match" in render_feed(model, ["roles"], text="no such thing")
    assert set(CATEGORY_OF) == set(EVENT_KINDS)
