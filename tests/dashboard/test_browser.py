"""The dashboard in a real browser: `raftoral-lab demo` and `raftoral-lab replay` as a class
sees them (issue 7). Each test drives the page only (buttons, slider) and reads what the page
draws; each keeps a screenshot in $RAFTORAL_ARTIFACTS/screenshots/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raftoral_lab.events.recording import load, save
from raftoral_lab.events.view import ClusterView
from raftoral_lab.sim import Simulation

from .support import DashboardPage, Server, ServerPool, eventually, shot


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The servers of this module, each started shortly before its test needs it (each takes
    seconds to import and start); a test waits for its own with `with servers[name]`."""
    path, first, second = recording(tmp_path_factory.mktemp("replay") / "failover.jsonl")
    pool = ServerPool(
        {
            "load": ("demo", "--nodes", "3"),
            "kill": ("demo",),
            # without CheckQuorum a cut-off leader keeps believing it leads: the stale leader
            "partition": ("demo", "--no-check-quorum"),
            "join": ("demo",),
            "workflow": ("demo",),
            "replay": ("replay", str(path)),
        }
    )
    try:
        yield {"recording": (path, first, second), **{n: _Lazy(pool, n) for n in pool.specs}}
    finally:
        pool.close()


class _Lazy:
    """`with servers["kill"] as server:` starts (if need be) and waits for that server."""

    def __init__(self, pool: ServerPool, name: str) -> None:
        self.pool = pool
        self.name = name

    def __enter__(self) -> Server:
        return self.pool[self.name].__enter__()

    def __exit__(self, *exc: object) -> None:
        self.pool[self.name].__exit__(*exc)


def open_demo(page: Any, url: str, nodes: int = 3) -> DashboardPage:
    page.goto(url)
    dash = DashboardPage(page)
    dash.wait_loaded(nodes)
    return dash


def write(dash: DashboardPage, via: str = "leader", times: int = 1) -> None:
    dash.page.locator(".write-via select").select_option(via)
    for _ in range(times):
        dash.click("Write an entry")
        eventually(lambda: "write through" in dash.status() and "⏳" not in dash.status())


def test_demo_loads_with_three_nodes_and_one_leader(page: Any, servers: dict[str, Any]) -> None:
    with servers["load"] as server:
        dash = open_demo(page, server.url)
        nodes = dash.nodes()
        assert sorted(nodes) == [1, 2, 3]
        leader = dash.leader()
        assert leader is not None
        assert [n for n, r in nodes.items() if r["role"] == "leader"] == [leader]
        assert dash.header_leader() == leader
        assert "embedded" in server.output() or "mqtt://127.0.0.1" in server.output()
        shot(page, "demo-loaded")


def test_kill_the_leader_greys_it_and_a_new_leader_appears(
    page: Any, servers: dict[str, Any]
) -> None:
    with servers["kill"] as server:
        dash = open_demo(page, server.url)
        old = dash.leader()
        assert old is not None
        dash.click(f"Kill n{old}")
        eventually(lambda: dash.role(old) == "dead")
        new = eventually(lambda: (leader := dash.leader()) not in (None, old) and leader)
        assert dash.nodes()[old]["status"] == "crashed"
        eventually(lambda: dash.header_leader() == new)  # the header redraws on its own beat
        assert dash.button(f"Restart n{old}").is_enabled()
        shot(page, "demo-kill-leader")


def test_partition_the_leader_then_heal(page: Any, servers: dict[str, Any]) -> None:
    with servers["partition"] as server:
        dash = open_demo(page, server.url)
        old = dash.leader()
        assert old is not None
        write(dash, times=2)
        page.locator(".side-picker").get_by_role("button", name=f"n{old}", exact=True).click()
        dash.click("Partition: A | rest")
        # the majority elects a leader of a newer term; the old one still leads its minority
        new = eventually(lambda: (leader := dash.leader()) not in (None, old) and leader)
        nodes = dash.nodes()
        assert nodes[old]["role"] == "leader" and nodes[old]["stale"] == "true"
        assert page.locator("svg.topology").get_attribute("data-sides") == "2"
        before = dash.logs()[old]
        # a write through the old leader is appended there but never committed...
        write(dash, via=f"n{old}")
        eventually(lambda: dash.logs()[old]["last"] > dash.logs()[old]["commit"])
        # ...while the majority goes on committing
        write(dash, times=2)
        eventually(lambda: dash.logs()[new]["commit"] > before["commit"])
        assert dash.logs()[old]["commit"] == before["commit"]
        shot(page, "demo-partition")
        dash.click("Heal")
        eventually(lambda: page.locator("svg.topology").get_attribute("data-sides") == "1")
        eventually(lambda: [n for n, r in dash.nodes().items() if r["role"] == "leader"] == [new])

        def converged() -> bool:
            logs = dash.logs()
            return (
                len({r["tail"] for r in logs.values()}) == 1  # log matching: equal logs
                and len({r["commit"] for r in logs.values()}) == 1
                and logs[old]["overwritten"] >= 1
            )

        eventually(converged, timeout=20)
        shot(page, "demo-partition-healed")


def test_join_adds_a_fourth_node_whose_log_fills(page: Any, servers: dict[str, Any]) -> None:
    with servers["join"] as server:
        dash = open_demo(page, server.url)
        write(dash, times=3)
        leader = dash.leader()
        assert leader is not None
        dash.click("Join a new node")
        eventually(lambda: sorted(dash.nodes()) == [1, 2, 3, 4])

        def filled() -> bool:
            logs = dash.logs()
            return (
                4 in logs
                and logs[4]["last"] >= 4
                and logs[4]["tail"] == logs[leader]["tail"]
                and logs[4]["commit"] == logs[leader]["commit"]
            )

        eventually(filled, timeout=30)
        eventually(lambda: dash.role(4) == "follower", timeout=30)  # promoted from learner
        shot(page, "demo-join")


def test_start_a_workflow_and_watch_its_checkpoint_queues(
    page: Any, servers: dict[str, Any]
) -> None:
    """The demo's Lab runs the sample workflows: start `checkout` from the page, select its
    row, and watch its checkpoint queue on each of the 3 nodes fill until it completes."""
    with servers["workflow"] as server:
        dash = open_demo(page, server.url)
        shot(page, "demo-workflow-before")
        unavailable = page.locator('[data-unavailable="workflows"]')
        assert unavailable.count() == 0, (
            "the demo cannot start workflows: " + unavailable.first.inner_text()
        )
        page.locator(".workflow-name select").select_option("checkout v1")
        dash.click("Start workflow")
        row = page.locator(".workflow-table .tabulator-row").first
        eventually(lambda: row.count() == 1 and "running" in row.inner_text())
        row.click()
        head = page.locator(".queues-pane .queues-head")
        eventually(lambda: head.count() == 1)
        eventually(lambda: page.locator(".queues-pane g.queue").count() == 3)
        eventually(
            lambda: (
                int(page.locator(".queues-pane g.queue").first.get_attribute("data-consumed")) >= 1
            )
        )
        shot(page, "demo-workflow-running")
        eventually(lambda: head.get_attribute("data-status") == "completed", timeout=30)
        eventually(lambda: "completed" in row.inner_text())
        shot(page, "demo-workflow-completed")


def recording(path: Path) -> tuple[Path, int, int]:
    """A simulated run with one failover: node `first` leads, crashes, `second` takes over."""
    sim = Simulation(nodes=3, seed=5)
    sim.run_until(lambda s: s.leader() is not None)
    for i in range(4):
        sim.propose(b"a%d" % i)
        sim.run(3)
    first = sim.leader()
    assert first is not None
    sim.run(60)
    sim.crash(first)
    sim.run_until(lambda s: s.leader() not in (None, first))
    second = sim.leader()
    assert second is not None
    for i in range(4):
        sim.propose(b"b%d" % i)
        sim.run(3)
    sim.run(80)
    save(path, sim.events, cluster="sim", config={"seed": 5})
    return path, first, second


def test_replay_slider_shows_the_leader_of_each_moment(page: Any, servers: dict[str, Any]) -> None:
    path, first, second = servers["recording"]
    events = list(load(path).events)
    with servers["replay"] as server:
        page.goto(server.url)
        dash = DashboardPage(page)
        track = page.locator(".time-slider .noUi-target").first
        handle = page.locator(".time-slider .noUi-handle").first
        eventually(lambda: track.bounding_box() is not None)
        seen: dict[float, int | None] = {}
        for fraction in (0.25, 0.95):
            box = track.bounding_box()
            assert box is not None
            page.mouse.click(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)
            eventually(lambda: float(handle.get_attribute("aria-valuenow") or 0) > 0)
            t = float(handle.get_attribute("aria-valuenow") or 0)
            expected = ClusterView.at(events, t).leader()
            eventually(lambda expected=expected: dash.header_leader() == expected)
            assert dash.leader() == expected
            seen[t] = expected
            time.sleep(0.2)
            shot(page, f"replay-at-{fraction:.2f}")
        assert list(seen.values()) == [first, second], seen
