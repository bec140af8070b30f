"""Helpers of the node tests: waiting on conditions, in-process clusters, node processes.

Nothing here sleeps for a fixed time to let something happen: every wait polls a condition
until a deadline, and a missed deadline fails with what was last seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from raftoral_lab.core import RaftConfig, Role
from raftoral_lab.events import EventBase
from raftoral_lab.node import Node
from raftoral_lab.node.client import ClusterClient, client_id
from raftoral_lab.transport.base import Transport
from raftoral_lab.transport.mqtt import MqttTransport

TICK = 0.02
"""Seconds per tick in these tests: elections take ~0.2-0.4 s, heartbeats go every 20 ms."""

CLUSTER = "nodetest"


async def wait_until(
    condition: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    interval: float = 0.02,
    detail: Callable[[], object] | None = None,
) -> Any:
    """Poll `condition` (sync or async) until it returns something truthy, which is returned.

    On the deadline, fail with `what` and `detail()` (what the test saw last)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
        except AssertionError as error:  # a condition may assert, to say why it is not met
            result, last = None, error
        else:
            last = result
        if result:
            return result
        if time.monotonic() > deadline:
            shown = detail() if detail is not None else last
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; saw {shown}")
        await asyncio.sleep(interval)


# --- in-process clusters -----------------------------------------------------------------------


def commands(node: Node) -> list[bytes]:
    return list(node.group().state_machine.commands)  # type: ignore[attr-defined]


class LocalCluster:
    """Nodes of one process, each on a transport from `make_transport(node_id)`."""

    def __init__(
        self,
        make_transport: Callable[[int], Transport],
        ids: Sequence[int] = (1, 2, 3),
        *,
        tick: float = TICK,
        **node_options: Any,
    ) -> None:
        self.make_transport = make_transport
        self.ids = list(ids)
        self.tick = tick
        self.node_options = node_options
        self.nodes: dict[int, Node] = {}

    async def start(self) -> LocalCluster:
        for node_id in self.ids:
            node = Node(
                node_id,
                self.make_transport(node_id),
                voters=self.ids,
                tick_seconds=self.tick,
                config=RaftConfig(election_timeout=10),
                **self.node_options,
            )
            self.nodes[node_id] = node
        await asyncio.gather(*(node.start() for node in self.nodes.values()))
        return self

    async def stop(self) -> None:
        await asyncio.gather(*(node.stop() for node in self.nodes.values()), return_exceptions=True)

    async def __aenter__(self) -> LocalCluster:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def running(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.running]

    def picture(self) -> dict[int, tuple[str, int, int | None, int, int]]:
        """node -> (role, term, leader, commit index, number of commands): for messages."""
        return {
            n.id: (
                n.status().role.value,
                n.status().term,
                n.leader(),
                n.status().commit_index,
                len(commands(n)),
            )
            for n in self.nodes.values()
        }

    async def leader(self, among: Iterable[int] | None = None, *, timeout: float = 10.0) -> Node:
        """The node that leads, once all of `among` (default: the running nodes) agree on it."""
        wanted = list(among) if among is not None else [n.id for n in self.running()]

        def agreed() -> Node | None:
            nodes = [self.nodes[i] for i in wanted]
            leaders = {n.leader() for n in nodes}
            if len(leaders) != 1 or None in leaders:
                return None
            (leader,) = leaders
            if leader not in wanted or self.nodes[leader].status().role is not Role.LEADER:
                return None
            return self.nodes[leader]

        leader: Node = await wait_until(
            agreed,
            timeout=timeout,
            what=f"nodes {wanted} to agree on a leader",
            detail=self.picture,
        )
        return leader

    async def converged(
        self, among: Iterable[int] | None = None, *, timeout: float = 10.0
    ) -> list[bytes]:
        """The command list once all of `among` have applied the same commands up to the same
        commit index."""
        wanted = list(among) if among is not None else [n.id for n in self.running()]

        def same() -> tuple[list[bytes]] | None:
            nodes = [self.nodes[i] for i in wanted]
            lists = [commands(n) for n in nodes]
            commits = {n.status().commit_index for n in nodes}
            applied = {n.status().applied_index for n in nodes}
            if len(commits) == 1 and applied == commits and all(x == lists[0] for x in lists):
                return (lists[0],)  # a tuple: truthy even when no command committed yet
            return None

        (result,) = await wait_until(
            same, timeout=timeout, what=f"nodes {wanted} to converge", detail=self.picture
        )
        return list(result)


def events_of(node: Node, kind: str, **fields: object) -> list[EventBase]:
    return [
        e
        for e in node.events
        if e.kind == kind and all(getattr(e, k, None) == v for k, v in fields.items())
    ]


# --- node processes ----------------------------------------------------------------------------


class NodeProcess:
    """`raftoral-lab node ...` in a child process; output goes to a file (never a pipe that
    could fill up), shown in assertion messages with `output()`."""

    def __init__(self, name: str, broker_url: str, data_dir: Path, *extra: str) -> None:
        self.name = name
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{name}.log"
        self.args = [
            sys.executable,
            "-m",
            "raftoral_lab.cli.main",
            "node",
            "--cluster",
            CLUSTER,
            "--broker",
            broker_url,
            "--data-dir",
            str(data_dir),
            "--tick",
            str(TICK),
            *extra,
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self, *extra: str) -> NodeProcess:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} still runs"
        self.runs += 1
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with self.log_path.open("ab") as log:
            log.write(f"--- run {self.runs}: {' '.join(self.args[3:] + list(extra))}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [*self.args, *extra],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def node_id(self) -> int | None:
        """The id the node wrote to its data directory (a joiner learns it from the leader)."""
        try:
            return int(json.loads((self.data_dir / "node.json").read_text())["node_id"])
        except (OSError, ValueError, KeyError):
            return None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(sig)

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    async def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        proc = self.proc
        code = await wait_until(
            lambda: proc.poll() is not None and [proc.returncode],
            timeout=timeout,
            what=f"{self.name} to exit",
        )
        return int(code[0])

    def terminate(self) -> None:
        """Teardown: SIGKILL whatever still runs (a test never leaves a child behind)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)


def founder(
    broker_url: str, tmp_path: Path, node_id: int, founders: Sequence[int], *extra: str
) -> NodeProcess:
    """Founding member `node_id` of a cluster of `founders` (`--bootstrap`), with its data
    directory `tmp_path/node{id}` and `extra` flags (e.g. `--app`, `--compact-every`)."""
    return NodeProcess(
        f"node{node_id}",
        broker_url,
        tmp_path / f"node{node_id}",
        "--bootstrap",
        "--id",
        str(node_id),
        "--voters",
        ",".join(map(str, founders)),
        *extra,
    )


def outputs(processes: Iterable[NodeProcess]) -> str:
    """Every process's output, for an assertion message."""
    return "\n".join(f"===== {p.name} =====\n{p.output()}" for p in processes)


def client_transport(broker_url: str, *, cluster: str = CLUSTER, **options: Any) -> MqttTransport:
    return MqttTransport(client_id(), cluster, broker_url, presence=False, **options)


def make_client(broker_url: str, *, cluster: str = CLUSTER) -> ClusterClient:
    return ClusterClient(client_transport(broker_url, cluster=cluster))


async def node_status(
    client: ClusterClient, node: int, *, timeout: float = 1.0
) -> dict[str, Any] | None:
    """A node's status through the `status` rpc, or None when it did not answer."""
    try:
        reply = await client.call(node, "status", timeout=timeout)
    except TimeoutError:
        return None
    result = reply.get("result")
    return result if reply.get("ok") and isinstance(result, dict) else None


@contextlib.contextmanager
def explained(processes: Iterable[NodeProcess]) -> Any:
    """Re-raise a failure with the output of every node process appended."""
    processes = list(processes)
    try:
        yield
    except Exception as error:
        raise AssertionError(f"{type(error).__name__}: {error}\n{outputs(processes)}") from error


async def statuses(
    client: ClusterClient, nodes: Iterable[int], *, timeout: float = 1.0
) -> dict[int, dict[str, Any] | None]:
    nodes = list(nodes)
    answers = await asyncio.gather(*(node_status(client, n, timeout=timeout) for n in nodes))
    return dict(zip(nodes, answers, strict=True))


async def agreed_leader(
    client: ClusterClient, nodes: Iterable[int], *, timeout: float = 20.0, not_: int | None = None
) -> int:
    """The leader all of `nodes` name (and which says it leads), polled through `status`."""
    nodes = list(nodes)
    seen: dict[int, Any] = {}

    async def check() -> int | None:
        seen.clear()
        seen.update(await statuses(client, nodes))
        if any(s is None for s in seen.values()):
            return None
        leaders = {s["leader"] for s in seen.values() if s is not None}
        if len(leaders) != 1:
            return None
        (leader,) = leaders
        if leader is None or leader == not_ or leader not in seen:
            return None
        own = seen[leader]
        return int(leader) if own is not None and own["role"] == "leader" else None

    return int(
        await wait_until(
            check, timeout=timeout, what=f"nodes {nodes} to agree on a leader", detail=lambda: seen
        )
    )


async def caught_up(
    client: ClusterClient, nodes: Iterable[int], *, at_least: int = 0, timeout: float = 20.0
) -> int:
    """The commit index once all of `nodes` report the same commit index (>= `at_least`) and
    have applied it."""
    nodes = list(nodes)
    seen: dict[int, Any] = {}

    async def check() -> int | None:
        seen.clear()
        seen.update(await statuses(client, nodes))
        if any(s is None for s in seen.values()):
            return None
        commits = {s["commit_index"] for s in seen.values() if s is not None}
        applied = {s["applied_index"] for s in seen.values() if s is not None}
        if len(commits) == 1 and commits == applied and min(commits) >= max(at_least, 1):
            return int(min(commits))
        return None

    return int(
        await wait_until(
            check,
            timeout=timeout,
            what=f"nodes {nodes} to commit and apply the same index (at least {at_least})",
            detail=lambda: {n: brief(s) for n, s in seen.items()},
        )
    )


BRIEF = ("role", "term", "leader", "commit_index", "applied_index", "last_index", "voters",
         "learners")  # fmt: skip


def brief(status: dict[str, Any] | None) -> dict[str, Any] | None:
    """The parts of a status reply worth showing in a failure message."""
    return None if status is None else {k: status.get(k) for k in BRIEF}


async def status_command(broker_url: str) -> str:
    """The output of `raftoral-lab status` for the test's cluster."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "raftoral_lab.cli.main", "status", "--cluster", CLUSTER,
        "--broker", broker_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    return text
