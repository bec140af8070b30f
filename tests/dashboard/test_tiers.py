"""The two tiers of a scaled cluster on the dashboard (issue 9): the management group above
one box per execution cluster, each with its members and its own leader, dead nodes grey.

Read from what Panel hands to Bokeh (the HTML model's text, parsed as XML) for a real scaled
Lab, and from the pure renderer for states a Lab would take long to reach.
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from html import unescape
from typing import Any

import raftoral_lab.samples
from raftoral_lab.dashboard import Dashboard, lab_dashboard
from raftoral_lab.dashboard.model import ListSource, Model, ReplayModel
from raftoral_lab.dashboard.tiers import TiersView, is_scaled, render_tiers
from raftoral_lab.events import ClusterView, EventBase, make_event
from raftoral_lab.lab import Lab
from raftoral_lab.sim import Simulation


def parse(html: str) -> ET.Element:
    return ET.fromstring(f"<root>{html}</root>")


def items(root: ET.Element, cls: str) -> list[dict[str, str]]:
    return [
        {k.removeprefix("data-"): v for k, v in el.attrib.items() if k.startswith("data-")}
        for el in root.iter()
        if cls in el.attrib.get("class", "").split()
    ]


def bokeh_tiers(dashboard: Dashboard) -> ET.Element:
    """The tiers SVG as the browser gets it: the text of the Bokeh model of the whole page."""
    from bokeh.models import Model as BokehModel

    root = dashboard.__panel__().get_root()
    texts = [
        unescape(str(m.text))
        for m in root.references()
        if isinstance(m, BokehModel) and 'class="tiers"' in unescape(str(getattr(m, "text", "")))
    ]
    assert len(texts) == 1, f"expected one tiers pane on the page, found {len(texts)}"
    return parse(texts[0])


async def settle(dashboard: Dashboard, check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        dashboard.refresh()
        if check():
            return
        assert time.monotonic() < deadline, "the dashboard never showed it"
        await asyncio.sleep(0.05)


async def test_a_scaled_lab_shows_management_and_execution_clusters_with_their_leaders() -> None:
    lab = Lab(
        nodes=15,
        execution_cluster_size=5,
        app=raftoral_lab.samples.app,
        broker="memory",
        tick_seconds=0.02,
        message_events=False,
    )
    async with lab:
        dashboard = lab_dashboard(lab)
        try:
            await lab.wait_for_clusters(count=3)
            clusters = lab.clusters()
            leaders = {c: lab.cluster_leader(c) for c in clusters}
            manager = await lab.wait_for_leader()
            view = dashboard.model.view
            await settle(
                dashboard,
                lambda: (
                    view.cluster_leaders() == leaders
                    and view.leader(0) == manager
                    and view.execution_clusters == {c: x.members for c, x in clusters.items()}
                ),
            )
            assert dashboard.tiers.visible
            svg = bokeh_tiers(dashboard)
            boxes = {int(b["cluster"]): b for b in items(svg, "cluster")}
            assert sorted(boxes) == [1, 2, 3]
            for c, cluster in clusters.items():
                assert boxes[c]["members"] == ",".join(map(str, cluster.members))
                assert boxes[c]["leader"] == str(leaders[c])
            members = items(svg, "member")
            for c, leader in leaders.items():
                mine = [m for m in members if m["cluster"] == str(c)]
                starred = [m["node"] for m in mine if m["leader"] == "true"]
                assert starred == [str(leader)]
                roles = {m["node"]: m["role"] for m in mine}
                assert roles[str(leader)] == "leader"
                assert set(roles.values()) <= {"leader", "follower", "learner"}
            tier = {int(n["node"]): n for n in items(svg, "tier-node")}
            assert sorted(tier) == list(range(1, 16))
            assert [n for n, t in tier.items() if t["leader"] == "true"] == [manager]
            assert sorted(n for n, t in tier.items() if t["voter"] == "true") == [1, 2, 3, 4, 5]
            assert {t["role"] for n, t in tier.items() if t["voter"] == "false"} == {"learner"}
            assert all(t["seen"] == "true" for t in tier.values())

            # kill a follower of cluster 1: grey at once, on both tiers
            victim = next(m for m in clusters[1].members if m not in (leaders[1], manager))
            await lab.kill(victim)
            await settle(dashboard, lambda: view.nodes[victim].status == "crashed")
            svg = bokeh_tiers(dashboard)
            tier = {int(n["node"]): n for n in items(svg, "tier-node")}
            assert tier[victim]["role"] == "dead" and tier[victim]["status"] == "crashed"
            for member in items(svg, "member"):
                if member["node"] == str(victim):  # until the manager plans it away
                    assert member["role"] == "dead" and member["leader"] == "false"

            # the manager notices, and replaces it in cluster 1
            await settle(dashboard, lambda: victim not in view.execution_clusters.get(1, ()))
            svg = bokeh_tiers(dashboard)
            tier = {int(n["node"]): n for n in items(svg, "tier-node")}
            assert tier[victim]["seen"] == "false"
            drawn = svg.find("svg")
            assert drawn is not None
            assert drawn.attrib["data-version"] == str(view.management_version)
        finally:
            dashboard.stop()


def test_a_plain_cluster_looks_as_before() -> None:
    sim = Simulation(nodes=3, seed=1)
    sim.run(80)
    dashboard = Dashboard(Model(ListSource(sim.events), time_unit="tick"), start=False)
    assert not dashboard.tiers.visible
    assert not is_scaled(dashboard.model.view)
    root = dashboard.__panel__().get_root()
    texts = [unescape(str(getattr(m, "text", ""))) for m in root.references()]
    assert not any('class="tiers"' in text for text in texts)  # nothing drawn, nothing sent


# --- synthetic states ------------------------------------------------------------------------


class Events:
    def __init__(self) -> None:
        self.out: list[EventBase] = []
        self.seq: dict[int, int] = {}

    def __call__(self, kind: str, node: int, ts: float, group: int = 0, **fields: Any) -> None:
        self.seq[node] = self.seq.get(node, 0) + 1
        self.out.append(make_event(kind, fields, node=node, group=group, seq=self.seq[node], ts=ts))

    def roles(self, group: int, members: list[int], leader: int | None, ts: float) -> None:
        for n in members:
            role = "leader" if n == leader else "follower"
            self("role_changed", n, ts, group, role=role, term=1, leader=leader)

    def plan(
        self, version: int, clusters: dict[int, list[int]], live: list[int], ts: float
    ) -> None:
        self(
            "clusters_planned",
            1,
            ts,
            version=version,
            cluster_ids=sorted(clusters),
            clusters=[clusters[c] for c in sorted(clusters)],
            live=live,
        )


def six_nodes() -> Events:
    """Group 0 (voters 1-3) led by n1; cluster 1 = 1,2,3 led by n2; cluster 2 = 3,4,5 with no
    leader yet and n6 still in its Raft config (leaving); n6 crashed; n3 in both clusters."""
    e = Events()
    e.roles(0, [1, 2, 3, 4, 5, 6], 1, 1.0)
    e(
        "membership_changed",
        1,
        1.1,
        op="add_learner",
        target=6,
        voters=[1, 2, 3],
        learners=[4, 5, 6],
    )
    e.plan(1, {1: [1, 2, 3], 2: [3, 4, 5]}, [1, 2, 3, 4, 5], 2.0)
    e.roles(1, [1, 2, 3], 2, 3.0)
    e("membership_changed", 4, 3.5, 2, op="add_learner", target=3, voters=[4, 5, 6], learners=[3])
    e("node_crashed", 6, 4.0)
    return e


def test_shared_leaving_crashed_and_leaderless_are_drawn_as_the_events_say() -> None:
    events = six_nodes()
    events("node_crashed", 5, 4.5)  # a planned member of cluster 2, not replanned yet
    view = ClusterView(events.out)
    svg = parse(render_tiers(view))
    boxes = {b["cluster"]: b for b in items(svg, "cluster")}
    assert boxes["1"]["leader"] == "2" and boxes["2"]["leader"] == ""
    members = {(m["cluster"], m["node"]): m for m in items(svg, "member")}
    assert members[("1", "3")]["shared"] == "2" and members[("2", "3")]["shared"] == "1"
    assert members[("2", "6")]["planned"] == "false"  # still in the group's config: leaving
    assert members[("2", "6")]["role"] == "dead"
    assert members[("2", "5")]["role"] == "dead" and members[("2", "5")]["planned"] == "true"
    assert members[("1", "2")]["leader"] == "true" and members[("1", "2")]["role"] == "leader"
    tier = {t["node"]: t for t in items(svg, "tier-node")}
    assert tier["6"]["seen"] == "false" and tier["6"]["role"] == "dead"
    assert tier["1"]["leader"] == "true" and tier["3"]["clusters"] == "1,2"
    assert [t["node"] for t in tier.values() if t["voter"] == "true"] == ["1", "2", "3"]
    assert "no leader" in render_tiers(view)


def test_tiers_view_follows_a_replay_back_and_forth() -> None:
    events = six_nodes()
    events.plan(2, {1: [1, 2, 3], 2: [3, 4, 5], 3: [4, 5, 6]}, [1, 2, 3, 4, 5], 6.0)
    model = ReplayModel(events.out)
    tiers = TiersView(model)
    assert not tiers.visible  # at the first event there is no plan yet
    model.seek(5.0)
    tiers.update()
    assert tiers.visible
    assert len(items(parse(str(tiers.pane.object)), "cluster")) == 2
    model.seek(7.0)
    tiers.update()
    assert len(items(parse(str(tiers.pane.object)), "cluster")) == 3
    model.seek(2.5)  # backwards: folded again from the start
    tiers.update()
    assert len(items(parse(str(tiers.pane.object)), "cluster")) == 2
    model.seek(0.0)
    tiers.update()
    assert not tiers.visible


def test_tiers_view_over_a_plain_cluster_view_and_its_empty_state() -> None:
    assert 'data-clusters="0"' in render_tiers(ClusterView())
    parse(render_tiers(ClusterView()))
    view = ClusterView(six_nodes().out)
    tiers = TiersView(view)
    assert tiers.visible and 'data-cluster="2"' in str(tiers.pane.object)
    assert TiersView(lambda: view).visible


def test_demo_builds_a_scaled_lab_only_when_asked() -> None:
    from raftoral_lab.cli.demo import make_lab
    from raftoral_lab.cli.main import build_parser

    parser = build_parser()
    scaled_args = parser.parse_args(
        ["demo", "--nodes", "15", "--execution-cluster-size", "5", "--broker", "memory"]
    )
    assert scaled_args.execution_cluster_size == 5
    lab, with_app = make_lab(scaled_args)
    assert with_app and lab.policy is not None and lab.policy.target_size == 5
    assert lab.size == 15 and lab.management_voters == 5
    plain, _ = make_lab(parser.parse_args(["demo", "--broker", "memory"]))
    assert plain.policy is None and plain.size == 3  # the default demo is unchanged
