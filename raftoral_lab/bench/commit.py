"""`raftoral-lab bench commit`: commit latency and throughput of a 3-node cluster over MQTT.

Everything is measured in one run, against a baseline taken in the same run on the same
broker with the same client library: the raw round trip of a ping-pong between two
`MqttTransport` clients (QoS 0 `publish_nowait` and `subscribe`, as the Raft traffic).

Setups (the broker always runs in a process of its own: Mosquitto, or the embedded amqtt
broker started as `raftoral-lab broker`):

- in-process: three `Node`s with their own MQTT connections in this process's event loop;
  the load calls `Node.propose` on the leader.
- leader process: the leader is a worker process (a `Node` like `raftoral-lab node`, same
  settings) that also generates the load with `Node.propose`; the two followers are
  `raftoral-lab node` processes. No client hop is measured.
- node processes: three `raftoral-lab node` processes; the load comes from a `ClusterClient`
  in this process (an rpc request to the leader and its answer: one more broker round trip
  than a proposal made on the leader, plus the rpc handling on both ends).
- PySyncObj (when installed): three member processes over TCP on loopback; the leader
  generates the load.

Latency is sequential: one proposal awaited at a time, after a warm-up. Throughput keeps a
fixed number of proposals in flight until all are committed and answered.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import os
import platform
import re
import secrets
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from raftoral_lab.bench.load import PAYLOAD, Pinger, sequential, start_echo, warmup_count, windowed
from raftoral_lab.bench.measure import Latency, Rounds, Throughput, load_average
from raftoral_lab.bench.procs import BenchError, Child, Children, python_argv
from raftoral_lab.bench.syncobj import pysyncobj_version

TARGET_RATIO = 1.5
"""Issue 4: p50 commit latency at most 1.5 x the p50 raw round trip, with Mosquitto."""
TARGET_PER_S = 20_000
"""Issue 4: at least 20,000 commits/s with three node processes."""

CLIENT_SAMPLES = 500
"""At most this many sequential samples for the ClusterClient rows (each is two rpc hops)."""

TICK = 0.05
ELECTION_TICKS = 10
FOLLOWER_ELECTION_TICKS = 100
"""In the leader-process setup the followers wait 5-10 s before campaigning, so the worker
(0.5-1 s) is the one elected."""

NODE_MODULE = "raftoral_lab.cli.main"
WORKER_MODULE = "raftoral_lab.bench.worker"

ProgressFn = Callable[[str, int, int], None]
LogFn = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class CommitConfig:
    broker: str = "mosquitto"
    """`mosquitto` (a private one is started), `embedded` (amqtt, as `raftoral-lab broker`)
    or the URL of a running broker."""
    samples: int = 2_000
    """Round trips and sequential proposals timed per latency row."""
    proposals: int = 10_000
    in_flight: int = 1_000
    rounds: int = 3
    """Throughput rounds per setup; the table shows the median and the spread."""
    processes: bool = True
    pysyncobj: bool | None = None
    """None: compare with PySyncObj when it is installed."""
    progress: ProgressFn | None = None
    log: LogFn | None = None


@dataclass(slots=True)
class CommitResult:
    config: CommitConfig
    broker: str
    """What the broker was, e.g. `mosquitto 2.0.11 (own process)`."""
    latency: dict[str, Latency] = field(default_factory=dict)
    throughput: dict[str, Rounds] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    """Row key -> ClusterClient proposals answered "retry" (not committed within the node's rpc
    deadline) and asked again."""
    notes: dict[str, str] = field(default_factory=dict)
    """Row key -> what else happened during it (e.g. requests the client's queue dropped)."""
    load: tuple[float, float] | None = None
    """1-minute load average at the start and at the end (others' work skews a run)."""


# --- row labels (the test checks them; keep them stable) --------------------------------------

LABELS: dict[str, str] = {
    "ping_local": "baseline: ping-pong, 2 clients in 1 process",
    "ping_remote": "baseline: ping-pong, echo in another process",
    "inproc": "commit: 3 nodes in 1 process, Node.propose",
    "leader_proc": "commit: leader process + 2 node processes",
    "client": "commit: 3 node processes, ClusterClient -> leader",
    "client_any": "commit: 3 node processes, ClusterClient.propose",
    "syncobj": "PySyncObj commit: 3 processes, no batching",
    "syncobj_batch": "PySyncObj commit: 3 processes, batching",
    "tp_inproc": "throughput: 3 nodes in 1 process",
    "tp_leader_proc": "throughput: leader process + 2 node processes",
    "tp_client": "throughput: 3 node processes, ClusterClient",
    "tp_syncobj": "PySyncObj throughput: no batching",
    "tp_syncobj_batch": "PySyncObj throughput: batching",
}


def expected_rows(*, processes: bool, pysyncobj: bool) -> list[str]:
    """The labels a run with these options prints, in order."""
    keys = ["ping_local"]
    if processes:
        keys.append("ping_remote")
    keys.append("inproc")
    if processes:
        keys += ["leader_proc", "client", "client_any"]
    if pysyncobj:
        keys += ["syncobj", "syncobj_batch"]
    keys.append("tp_inproc")
    if processes:
        keys += ["tp_leader_proc", "tp_client"]
    if pysyncobj:
        keys += ["tp_syncobj", "tp_syncobj_batch"]
    return [LABELS[k] for k in keys]


# --- the broker --------------------------------------------------------------------------------


def mosquitto_version(binary: str) -> str:
    try:
        out = subprocess.run(
            [binary, "-h"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "mosquitto"
    found = re.search(r"mosquitto version (\S+)", out)
    return f"mosquitto {found.group(1)}" if found else "mosquitto"


@contextlib.asynccontextmanager
async def bench_broker(spec: str, group: Children) -> AsyncIterator[tuple[str, str]]:
    """(url, description) of the broker the run uses, started here unless given as a URL."""
    if spec == "mosquitto":
        from raftoral_lab.transport.mosquitto import find_mosquitto, running_mosquitto

        binary = find_mosquitto()
        if binary is None:
            raise BenchError(
                "mosquitto is not installed: `apt-get install mosquitto` (or `brew install "
                "mosquitto`), or run with `--broker embedded`"
            )
        try:
            async with running_mosquitto(binary=binary) as broker:
                yield broker.url, f"{mosquitto_version(binary)} at {broker.url} (own process)"
        except RuntimeError as exc:
            raise BenchError(f"could not start mosquitto: {exc}") from exc
        return
    if spec == "embedded":
        from raftoral_lab.transport.mosquitto import free_port

        port = free_port()
        child = await group.spawn(
            "embedded broker",
            python_argv(NODE_MODULE, "broker", "--host", "127.0.0.1", "--port", str(port)),
        )
        try:
            await child.expect(lambda line: "listening" in line, 30, "open its port")
            url = f"mqtt://127.0.0.1:{port}"
            yield url, f"embedded amqtt {metadata.version('amqtt')} at {url} (raftoral-lab broker)"
        finally:
            await child.stop()
        return
    from raftoral_lab.transport.mqtt import parse_broker_url

    address = parse_broker_url(spec)  # ConfigError says what is wrong with it
    yield spec, f"{address.url} (given)"


# --- the run ---------------------------------------------------------------------------------


class _Run:
    def __init__(self, config: CommitConfig, workdir: Path, group: Children) -> None:
        self.config = config
        self.workdir = workdir
        self.group = group
        self.url = ""
        self.token = secrets.token_hex(3)
        self.result: CommitResult | None = None
        self.phase = ""
        """The row being measured (ClusterClient retries are counted per row)."""

    # -- helpers

    def log(self, text: str) -> None:
        if self.config.log is not None:
            self.config.log(text)

    def progress(self, label: str) -> Callable[[int, int], None] | None:
        report = self.config.progress
        if report is None:
            return None
        return lambda done, total: report(label, done, total)

    def forward_progress(self, label: str) -> Callable[[dict[str, Any]], None]:
        report = self.progress(label)

        def forward(doc: dict[str, Any]) -> None:
            if report is not None:
                report(int(doc.get("done", 0)), int(doc.get("total", 0)))

        return forward

    def cluster(self, what: str) -> str:
        return f"bench-{self.token}-{what}"

    def latency_timeout(self) -> float:
        return 60.0 + self.config.samples * 0.25

    def throughput_timeout(self) -> float:
        return 60.0 + self.config.proposals * 0.05

    def record_latency(self, key: str, latency: Latency) -> None:
        assert self.result is not None
        self.result.latency[key] = latency

    async def record_throughput(
        self, key: str, label: str, measure: Callable[[str], Awaitable[Throughput]]
    ) -> None:
        """Run `config.rounds` rounds of `measure` and keep them all."""
        assert self.result is not None
        rounds = self.config.rounds
        done: list[Throughput] = []
        for n in range(rounds):
            done.append(await measure(f"{label} {n + 1}/{rounds}" if rounds > 1 else label))
        self.result.throughput[key] = Rounds(tuple(done))

    async def remote_latency(self, child: Child, label: str, samples: int) -> Latency:
        await child.send({"op": "latency", "samples": samples})
        doc = await child.expect_json(
            "latency", self.latency_timeout(), "answer", self.forward_progress(label)
        )
        return Latency.of(doc["latency"])

    async def remote_throughput(self, child: Child, label: str) -> Throughput:
        total, in_flight = self.config.proposals, self.config.in_flight
        await child.send({"op": "throughput", "total": total, "in_flight": in_flight})
        doc = await child.expect_json(
            "throughput", self.throughput_timeout(), "answer", self.forward_progress(label)
        )
        body = doc["throughput"]
        return Throughput(int(body["operations"]), float(body["seconds"]), in_flight)

    # -- phases

    async def baseline_local(self) -> None:
        from raftoral_lab.transport.mqtt import MqttTransport

        self.log("baseline: ping-pong between two clients in this process")
        cluster = self.cluster("ping")
        ping = MqttTransport(900_001, cluster, self.url, presence=False)
        echo = MqttTransport(900_002, cluster, self.url, presence=False)
        try:
            await ping.start()
            await echo.start()
            await start_echo(echo)
            pinger = Pinger(ping)
            await pinger.start()
            await pinger.wait_for_echo()
            latency = await sequential(
                pinger.round_trip, self.config.samples, self.progress("ping-pong")
            )
        finally:
            await ping.close()
            await echo.close()
        self.record_latency("ping_local", latency)

    async def baseline_remote(self) -> None:
        from raftoral_lab.transport.mqtt import MqttTransport

        self.log("baseline: ping-pong with the echo in another process")
        cluster = self.cluster("ping2")
        child = await self.group.spawn(
            "echo worker",
            python_argv(WORKER_MODULE, "echo", "--broker", self.url, "--cluster", cluster),
        )
        await child.expect_json("ready", 60, "connect")
        ping = MqttTransport(900_003, cluster, self.url, presence=False)
        try:
            await ping.start()
            pinger = Pinger(ping)
            await pinger.start()
            await pinger.wait_for_echo()
            latency = await sequential(
                pinger.round_trip, self.config.samples, self.progress("ping-pong (process)")
            )
        finally:
            await ping.close()
            await child.stop()
        self.record_latency("ping_remote", latency)

    async def in_process(self) -> None:
        from raftoral_lab.core import RaftConfig
        from raftoral_lab.node import Node
        from raftoral_lab.transport.mqtt import MqttTransport

        self.log("cluster: 3 nodes in this process")
        cluster = self.cluster("inproc")
        config = RaftConfig(election_timeout=ELECTION_TICKS, heartbeat_interval=1)
        nodes = [
            Node(i, MqttTransport(i, cluster, self.url), voters=[1, 2, 3], config=config,
                 tick_seconds=TICK)
            for i in (1, 2, 3)
        ]  # fmt: skip
        try:
            for node in nodes:
                await node.start()
            leader = await _elected(nodes, 30.0)

            async def propose() -> object:
                return await leader.propose(PAYLOAD, timeout=30.0)

            latency = await sequential(propose, self.config.samples, self.progress("commit"))
            self.record_latency("inproc", latency)
            self.log("throughput: 3 nodes in this process")

            async def measure(label: str) -> Throughput:
                return await windowed(
                    propose, self.config.proposals, self.config.in_flight, self.progress(label)
                )

            await self.record_throughput("tp_inproc", "throughput", measure)
            await _all_applied(nodes, 30.0)
        finally:
            for node in nodes:
                with contextlib.suppress(Exception):
                    await node.stop()

    def node_argv(self, cluster: str, node_id: int, election_ticks: int) -> list[str]:
        return python_argv(
            NODE_MODULE, "node", "--broker", self.url, "--cluster", cluster,
            "--bootstrap", "--id", str(node_id), "--voters", "1,2,3",
            "--tick", str(TICK), "--election-ticks", str(election_ticks), "--quiet",
        )  # fmt: skip

    async def start_node(self, cluster: str, node_id: int, election_ticks: int) -> Child:
        child = await self.group.spawn(
            f"node {node_id} ({cluster})", self.node_argv(cluster, node_id, election_ticks)
        )
        return child

    async def leader_process(self) -> None:
        self.log("cluster: leader worker process + 2 `raftoral-lab node` processes")
        cluster = self.cluster("leader")
        followers = [await self.start_node(cluster, i, FOLLOWER_ELECTION_TICKS) for i in (2, 3)]
        for child in followers:
            await child.expect(lambda line: "founded" in line, 60, "start")
        leader = await self.group.spawn(
            "leader worker",
            python_argv(
                WORKER_MODULE, "leader", "--broker", self.url, "--cluster", cluster,
                "--id", "1", "--voters", "1,2,3", "--tick", str(TICK),
                "--election-ticks", str(ELECTION_TICKS),
            ),
        )  # fmt: skip
        try:
            await leader.expect_json("ready", 60, "become the leader")
            self.record_latency(
                "leader_proc",
                await self.remote_latency(leader, "commit (leader process)", self.config.samples),
            )
            self.log("throughput: leader worker process + 2 node processes")
            await self.record_throughput(
                "tp_leader_proc",
                "throughput (leader process)",
                lambda label: self.remote_throughput(leader, label),
            )
        finally:
            for child in (leader, *followers):
                await child.stop()

    async def node_processes(self) -> None:
        from raftoral_lab.node.client import ClusterClient, client_id
        from raftoral_lab.transport.mqtt import MqttTransport

        self.log("cluster: 3 `raftoral-lab node` processes, proposals from a ClusterClient")
        cluster = self.cluster("nodes")
        nodes = [await self.start_node(cluster, i, ELECTION_TICKS) for i in (1, 2, 3)]
        try:
            for child in nodes:
                await child.expect(lambda line: "founded" in line, 60, "start")
            transport = MqttTransport(client_id(), cluster, self.url, presence=False)
            async with ClusterClient(transport) as client:
                leader = await _cluster_leader(client, 30.0)
                data = base64.b64encode(PAYLOAD).decode()

                assert self.result is not None
                retries = self.result.retries
                target = [leader]

                async def call() -> object:
                    # like ClusterClient.request: a "retry" answer (not committed within the
                    # node's rpc deadline, 2 s with the default tick) or none at all is asked
                    # again, a "not_leader" one follows the hint; all are counted for the table
                    reply: dict[str, Any] = {}
                    for _ in range(100):
                        node = target[0]
                        try:
                            reply = await client.call(node, "propose", timeout=10.0, data=data)
                        except TimeoutError:  # request or answer lost: ask again
                            retries[self.phase] = retries.get(self.phase, 0) + 1
                            continue
                        if reply.get("ok"):
                            return reply.get("result")
                        hint = reply.get("leader")
                        if reply.get("error") == "not_leader":
                            if isinstance(hint, int):
                                target[0] = hint
                        elif reply.get("error") != "retry":
                            break
                        retries[self.phase] = retries.get(self.phase, 0) + 1
                        await asyncio.sleep(0.1)
                    raise BenchError(f"node {target[0]} refused a proposal: {reply}")

                async def request() -> object:
                    return await client.propose(PAYLOAD, timeout=30.0)

                samples = min(self.config.samples, CLIENT_SAMPLES)
                self.phase = "client"
                self.record_latency(
                    "client", await sequential(call, samples, self.progress("commit (client)"))
                )
                self.record_latency(
                    "client_any",
                    await sequential(
                        request, samples, self.progress("commit (ClusterClient.propose)")
                    ),
                )
                self.log("throughput: 3 node processes, ClusterClient")
                self.phase = "tp_client"

                async def measure(label: str) -> Throughput:
                    return await windowed(
                        call, self.config.proposals, self.config.in_flight, self.progress(label)
                    )

                stats = client.transport.stats
                dropped = stats.publishes_dropped
                await self.record_throughput("tp_client", "throughput (client)", measure)
                dropped = stats.publishes_dropped - dropped
                if dropped:
                    self.result.notes["tp_client"] = (
                        f"the client's publish queue dropped {dropped:,} requests"
                    )
        finally:
            for child in nodes:
                await child.stop()

    async def syncobj(self, *, batch: bool) -> None:
        from raftoral_lab.transport.mosquitto import free_port

        mode = "batching" if batch else "no batching"
        self.log(f"PySyncObj: 3 member processes ({mode})")
        addresses = [f"127.0.0.1:{free_port()}" for _ in range(3)]
        members: list[Child] = []
        try:
            for address in addresses:
                partners = ",".join(a for a in addresses if a != address)
                argv = ["syncobj", "--self", address, "--partners", partners]
                if batch:
                    argv.append("--batch")
                members.append(
                    await self.group.spawn(
                        f"PySyncObj {address}", python_argv(WORKER_MODULE, *argv)
                    )
                )
            leader: Child | None = None
            for member in members:
                doc = await member.expect_json("ready", 60, "see a leader")
                if doc.get("is_leader"):
                    leader = member
            if leader is None:
                raise BenchError("no PySyncObj member says it leads; try again")
            suffix = "_batch" if batch else ""
            # with batching a call waits for the next append period (0.1 s): few samples do
            samples = min(self.config.samples, 50) if batch else self.config.samples
            self.record_latency(
                f"syncobj{suffix}",
                await self.remote_latency(leader, f"PySyncObj commit ({mode})", samples),
            )
            await self.record_throughput(
                f"tp_syncobj{suffix}",
                f"PySyncObj throughput ({mode})",
                lambda label: self.remote_throughput(leader, label),
            )
        finally:
            for member in members:
                await member.stop()


async def _elected(nodes: list[Any], timeout: float) -> Any:
    """The leader, once one leads and every node knows it."""
    from raftoral_lab.core import Role

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leaders = [n for n in nodes if n.status().role is Role.LEADER]
        if len(leaders) == 1 and all(n.leader() == leaders[0].id for n in nodes):
            return leaders[0]
        await asyncio.sleep(0.02)
    raise BenchError(f"no leader known to all {len(nodes)} nodes within {timeout:g} s")


async def _all_applied(nodes: list[Any], timeout: float) -> None:
    """Sanity check after the load: every node applied what the leader committed."""
    target = max(n.status().commit_index for n in nodes)
    deadline = time.monotonic() + timeout
    while any(n.status().applied_index < target for n in nodes):
        if time.monotonic() > deadline:
            behind = {n.id: n.status().applied_index for n in nodes}
            raise BenchError(f"nodes did not apply up to {target} within {timeout:g} s: {behind}")
        await asyncio.sleep(0.05)


async def _cluster_leader(client: Any, timeout: float) -> int:
    """The node that leads, once the three node processes agree on it."""
    deadline = time.monotonic() + timeout
    seen: object = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            status = await client.status(timeout=1.0)
            seen = status
            answers = [s for s in status.values() if s is not None]
            leaders = {s.get("leader") for s in answers}
            lead = [s for s in answers if s.get("role") == "leader"]
            if len(answers) == 3 and len(lead) == 1 and leaders == {lead[0]["node"]}:
                return int(lead[0]["node"])
        await asyncio.sleep(0.1)
    raise BenchError(f"the node processes agreed on no leader within {timeout:g} s: {seen}")


async def run(config: CommitConfig) -> CommitResult:
    """Run every phase the config asks for; children and brokers are stopped on any exit."""
    want_syncobj = config.pysyncobj
    if want_syncobj is None:
        want_syncobj = pysyncobj_version() is not None
    elif want_syncobj and pysyncobj_version() is None:
        raise BenchError(
            "PySyncObj is not installed: `pip install 'raftoral-lab[bench]'` (or `pip install "
            "pysyncobj`), or run with --no-pysyncobj"
        )
    with tempfile.TemporaryDirectory(prefix="raftoral-bench-") as tmp:
        workdir = Path(tmp)
        async with Children(workdir) as group:
            async with bench_broker(config.broker, group) as (url, broker):
                state = _Run(config, workdir, group)
                state.url = url
                state.result = CommitResult(config, broker)
                started_load = load_average()
                await state.baseline_local()
                if config.processes:
                    await state.baseline_remote()
                await state.in_process()
                if config.processes:
                    await state.leader_process()
                    await state.node_processes()
            if want_syncobj:
                await state.syncobj(batch=False)
                await state.syncobj(batch=True)
        result = state.result
        ended_load = load_average()
        if started_load is not None and ended_load is not None:
            result.load = (started_load, ended_load)
        return result


# --- the table -------------------------------------------------------------------------------


def header(result: CommitResult) -> str:
    c = result.config
    cores = os.cpu_count() or 0
    load = ""
    if result.load is not None:
        load = f"; load average {result.load[0]:.1f} at start, {result.load[1]:.1f} at end"
    return (
        f"bench commit on {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, {cores} cores{load}\nbroker: {result.broker}\n"
        f"16-byte commands; latency: {c.samples} sequential operations after "
        f"{warmup_count(c.samples)} untimed (ClusterClient rows: "
        f"{min(c.samples, CLIENT_SAMPLES)}); throughput: {c.proposals:,} proposals, "
        f"{c.in_flight:,} in flight"
    )


def _ratio(value: float, base: float) -> str:
    if not (math.isfinite(value) and math.isfinite(base)) or base <= 0:
        return ""
    return f"{value / base:.2f}x"


def rows(result: CommitResult) -> list[tuple[object, ...]]:
    """(measure, p50 ms, p99 ms, ops/s, ratio, note) for every figure the run took."""
    lat, tp = result.latency, result.throughput
    out: list[tuple[object, ...]] = []
    local = lat.get("ping_local")
    remote = lat.get("ping_remote")
    ours_process = lat.get("leader_proc")
    ours_tp = tp.get("tp_leader_proc") or tp.get("tp_inproc")
    ours_lat = ours_process or lat.get("inproc")

    def latency_row(key: str, base: Latency | None, base_name: str, note: str = "") -> None:
        item = lat.get(key)
        if item is None:
            return
        ratio = _ratio(item.p50_ms, base.p50_ms) if base is not None else ""
        if ratio and base_name:
            ratio = f"{ratio} {base_name}"
        if result.retries.get(key):
            note = f"{note}; {result.retries[key]:,} asked again (no answer, retry, new leader)"
        out.append((LABELS[key], item.p50_ms, item.p99_ms, "", ratio, note))

    def throughput_row(key: str, ratio: str = "", note: str = "") -> None:
        item = tp.get(key)
        if item is None:
            return
        if len(item.rounds) > 1:
            spread = f"median of {len(item.rounds)}: {item.low:,.0f}-{item.high:,.0f}"
            note = f"{spread}; {note}" if note else spread
        if result.retries.get(key):
            note = f"{note}; {result.retries[key]:,} asked again (no answer, retry, new leader)"
        if result.notes.get(key):
            note = f"{note}; {result.notes[key]}"
        out.append((LABELS[key], "", "", item.per_second, ratio, note))

    if local is not None:
        out.append((LABELS["ping_local"], local.p50_ms, local.p99_ms, "", "1.00x",
                    f"{local.count} round trips"))  # fmt: skip
    if remote is not None:
        out.append((LABELS["ping_remote"], remote.p50_ms, remote.p99_ms, "", "1.00x",
                    f"{remote.count} round trips"))  # fmt: skip
    target = f"target <= {TARGET_RATIO}x"
    latency_row("inproc", local, "RT", target)
    latency_row("leader_proc", remote, "RT", target)
    client, leader_proc = lat.get("client"), lat.get("leader_proc")
    hop = ""
    if client is not None and leader_proc is not None:
        hop = f"client hop adds {client.p50_ms - leader_proc.p50_ms:+.2f} ms p50"
    latency_row("client", remote, "RT", hop)
    latency_row("client_any", remote, "RT", "asks a random node, follows the hint")
    for key, name in (("syncobj", "appendEntriesUseBatch=False"),
                      ("syncobj_batch", "default: batch every 0.1 s")):  # fmt: skip
        theirs = lat.get(key)
        if theirs is not None and ours_lat is not None:
            ratio = f"ours/theirs {_ratio(ours_lat.p50_ms, theirs.p50_ms)}"
            out.append((LABELS[key], theirs.p50_ms, theirs.p99_ms, "", ratio,
                        f"{name}, {theirs.count} calls"))  # fmt: skip
    throughput_row("tp_inproc")
    throughput_row("tp_leader_proc", note=f"target >= {TARGET_PER_S:,}/s")
    throughput_row("tp_client", note=f"target >= {TARGET_PER_S:,}/s")
    for key in ("tp_syncobj", "tp_syncobj_batch"):
        theirs_tp = tp.get(key)
        if theirs_tp is not None and ours_tp is not None:
            throughput_row(
                key, ratio=f"ours/theirs {_ratio(ours_tp.per_second, theirs_tp.per_second)}"
            )
    return out


def verdicts(result: CommitResult) -> list[str]:
    """One line per target of issue 4: the figure, the target and whether it is met."""
    lat, tp = result.latency, result.throughput
    lines: list[str] = []
    pairs = (
        ("inproc", "ping_local", "in-process"),
        ("leader_proc", "ping_remote", "leader process"),
    )
    for key, base_key, name in pairs:
        ours, base = lat.get(key), lat.get(base_key)
        if ours is None or base is None:
            continue
        ratio = ours.p50_ms / base.p50_ms
        met = "met" if ratio <= TARGET_RATIO else "missed"
        if result.config.broker != "mosquitto":
            met = f"{met} (the target is set for Mosquitto)"
        lines.append(
            f"commit p50 / round-trip p50 ({name}): {ratio:.2f}x, target <= {TARGET_RATIO}x "
            f"with Mosquitto: {met}"
        )
    for key, name in (("tp_leader_proc", "leader process + 2 node processes"),
                      ("tp_client", "3 node processes via ClusterClient")):  # fmt: skip
        item = tp.get(key)
        if item is None:
            continue
        met = "met" if item.per_second >= TARGET_PER_S else "missed"
        lines.append(
            f"throughput ({name}): {item.per_second:,.0f}/s, target >= {TARGET_PER_S:,}/s: {met}"
        )
    return lines


SETUPS = """\
setups (the broker runs in its own process in every setup):
  in 1 process      three Nodes, each with its own MQTT connection, in this process's event loop;
                    the load calls Node.propose on the leader
  leader process    the leader is a worker process (a Node set up as `raftoral-lab node`) that
                    also makes the load with Node.propose; the followers are `raftoral-lab node`
                    processes: no client hop
  node processes    three `raftoral-lab node` processes; the load is rpc from a ClusterClient in
                    this process (ClusterClient -> leader: straight to the known leader)
  PySyncObj         three member processes over TCP on loopback; the leader makes the load
  RT                the p50 of the ping-pong baseline of the same kind (1 process, or echo in
                    another process); ours/theirs compares the leader-process figures"""
