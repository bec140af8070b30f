"""The driver of a chaos run: node processes on a broker, a workload of sample workflows, the
seeded fault plan carried out on them, then recovery and the checks.

1. Start the broker (our own Mosquitto unless a URL was given) and one `raftoral-lab node`
   process per node, each founding the cluster from its own data directory; wait for a leader
   and for a first workflow to complete.
2. For `duration` seconds, start workflows at `rate` per second (each until it is
   acknowledged, then wait for its result) while the plan's episodes kill -9 nodes (the leader
   too) and restart them, partition and heal through the control topic, and restart the
   broker. A watcher notices a node process that dies by itself.
3. Heal, start the broker and every dead node again, wait for every workflow's result and for
   the nodes to agree on one commit index; stop the nodes (SIGTERM) and read their SQLite
   files.
4. Check (`checks.py`) and report (`report.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

from raftoral_lab.chaos.checks import (
    check_logs_agree,
    check_states_agree,
    check_workflows,
    read_logs,
    replay,
)
from raftoral_lab.chaos.config import MAX_WORKFLOWS, ChaosConfig, check_data_dir
from raftoral_lab.chaos.processes import NodeProcess
from raftoral_lab.chaos.report import ChaosReport, Fault, FaultType
from raftoral_lab.chaos.schedule import Episode, EpisodeKind, Plan, choose, make_plan
from raftoral_lab.chaos.workload import Job, make_job
from raftoral_lab.cli.run import RemoteWorkflowError, workflow_call, workflow_result
from raftoral_lab.errors import ConfigError, RaftoralError, TransportError
from raftoral_lab.node.client import ClusterClient, client_id
from raftoral_lab.node.remote_control import RemoteController
from raftoral_lab.transport import mqtt
from raftoral_lab.transport.mosquitto import MosquittoProcess, find_mosquitto
from raftoral_lab.transport.mqtt import MqttTransport
from raftoral_lab.workflow.commands import ErrorInfo

STARTUP_TIMEOUT = 90.0
"""Seconds for the first leader and the first workflow (node processes import a lot)."""
LEADER_WAIT = 10.0
"""Seconds an episode that needs the leader waits for one."""
OVERRUN = 30.0
"""Seconds the fault phase may run past `duration` when episodes started late."""
CONVERGE_TIMEOUT = 60.0
PROGRESS_EVERY = 5.0
RECONNECT_WAIT = 30.0
"""Seconds for the nodes to announce themselves again after a broker restart."""


class ChaosRunner:
    """One chaos run; `await run()` returns its report (it never raises for a failed check,
    only for bad settings or a broker that cannot be started at all)."""

    def __init__(
        self,
        config: ChaosConfig,
        out: TextIO | None = None,
        *,
        broker: MosquittoProcess | None = None,
    ) -> None:
        """`broker`: a Mosquitto started by the caller (a test) for the run to use and
        restart, instead of one of its own; it must be running, and is left running."""
        if broker is not None and not config.own_broker:
            raise ConfigError("give either a broker process or a broker URL, not both")
        self.config = config
        self.given_broker = broker
        self.out = out if out is not None else sys.stdout
        self.plan: Plan = make_plan(config.seed, config.duration, config.nodes)
        self.ids = list(range(1, config.nodes + 1))
        self.cluster = config.cluster or f"chaos-{secrets.token_hex(4)}"
        self.nodes: dict[int, NodeProcess] = {}
        self.broker: MosquittoProcess | None = None
        self.controller: RemoteController | None = None
        self.jobs: dict[str, Job] = {}
        self.acknowledged: set[str] = set()
        self.client_problems: list[str] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.broker_down = False
        self.crashes: list[str] = []
        """Node processes that exited without being told to (a failure each)."""
        self.trouble: list[str] = []
        """What the run could not do as planned (the broker would not restart, ...)."""
        self.t0 = time.monotonic()
        self.deadline = self.t0
        self.report = ChaosReport(
            seed=config.seed,
            nodes=config.nodes,
            duration=config.duration,
            rate=config.rate,
            broker=config.broker,
            data_dir="",
        )

    # --- the run ---------------------------------------------------------------------------------

    async def run(self) -> ChaosReport:
        config, report = self.config, self.report
        binary = find_mosquitto()
        if config.own_broker and self.given_broker is None and binary is None:
            raise ConfigError(
                "--broker mosquitto needs the mosquitto binary (apt-get install mosquitto), "
                "or pass --broker URL of a running broker"
            )
        data_dir, temporary = self._data_dir()
        report.data_dir = str(data_dir)
        began = time.monotonic()
        self._say(
            f"raftoral-lab chaos: seed {config.seed}, {config.nodes} node processes, "
            f"{config.duration:g} s at {config.rate:g} workflows/s, cluster {self.cluster!r}"
        )
        self._say(f"data and node logs in {data_dir}")
        self._say(f"fault plan ({len(self.plan.episodes)} episodes):")
        for line in self.plan.describe():
            self._say(f"  {line}")
        try:
            async with contextlib.AsyncExitStack() as stack:
                url = await self._start_broker(stack, data_dir, binary)
                client = await self._start_client(stack, url)
                stack.callback(self._kill_all)
                self._start_nodes(url, data_dir)
                if await self._bring_up(client):
                    await self._chaos(client)
                    await self._recover(client)
                else:
                    await self._cancel_workload()
                await self._stop_nodes()
                self._check(data_dir)
        except BaseException:
            if temporary and not self.nodes:  # nothing ran: no logs worth keeping
                shutil.rmtree(data_dir, ignore_errors=True)
            raise
        finally:
            report.elapsed = time.monotonic() - began
        if temporary and report.ok:
            shutil.rmtree(data_dir, ignore_errors=True)
            report.data_dir = f"{data_dir} (removed: the run passed)"
        return report

    def _data_dir(self) -> tuple[Path, bool]:
        if self.config.data_dir is None:
            return Path(tempfile.mkdtemp(prefix="raftoral-chaos-")), True
        path = Path(self.config.data_dir)
        check_data_dir(path)
        path.mkdir(parents=True, exist_ok=True)
        return path, False

    async def _start_broker(
        self, stack: contextlib.AsyncExitStack, data_dir: Path, binary: str | None
    ) -> str:
        if not self.config.own_broker:
            self.report.notes.append(
                f"broker {self.config.broker} is not ours: broker restarts are skipped "
                "(use --broker mosquitto to include them)"
            )
            self._say(f"broker: {self.config.broker} (not ours: broker restarts are skipped)")
            return self.config.broker
        if self.given_broker is not None:
            if not self.given_broker.running:
                raise ConfigError("the broker process given to the chaos run is not running")
            self.broker = self.given_broker
            self._say(f"broker: the given mosquitto on {self.broker.url}")
            return self.broker.url
        assert binary is not None
        workdir = data_dir / "broker"
        workdir.mkdir(exist_ok=True)
        broker = MosquittoProcess(binary, workdir)
        try:
            await broker.start()
        except RuntimeError as error:
            raise TransportError(f"could not start mosquitto: {error}") from None
        self.broker = broker
        stack.push_async_callback(broker.stop)
        self._say(f"broker: our own mosquitto on {broker.url} (config and log in {workdir})")
        return broker.url

    async def _start_client(self, stack: contextlib.AsyncExitStack, url: str) -> ClusterClient:
        transport = MqttTransport(
            client_id(),
            self.cluster,
            url,
            presence=False,
            backoff_initial=0.05,
            backoff_max=0.5,
            operation_timeout=5.0,
        )
        # the MQTT client's own log (see MqttTransport): a broker restart we stage is no error
        logging.getLogger(f"{mqtt.__name__}.client.{transport.node_id}").addFilter(
            lambda _record: not self.broker_down
        )
        controller = RemoteController(transport, request_timeout=5.0)
        await controller.start()
        stack.push_async_callback(controller.close)
        controller.extra_nodes = set(self.ids)  # controls reach every node, presence or not
        self.controller = controller
        return controller.client

    def _start_nodes(self, url: str, data_dir: Path) -> None:
        config = self.config
        for node_id in self.ids:
            node = NodeProcess(
                node_id,
                cluster=self.cluster,
                broker_url=url,
                voters=self.ids,
                data_dir=data_dir / f"node{node_id}",
                tick=config.tick,
                election_ticks=config.election_ticks,
                compact_every=config.compact_every,
            )
            self.nodes[node_id] = node
            node.start()
        self._say(f"started {len(self.nodes)} node processes")

    def _kill_all(self) -> None:
        for node in self.nodes.values():
            node.kill9()

    # --- bring-up --------------------------------------------------------------------------------

    async def _bring_up(self, client: ClusterClient) -> bool:
        """A leader, and a first workflow completed (every node registered the samples)."""
        began = time.monotonic()
        deadline = began + STARTUP_TIMEOUT
        problems: list[str] = []
        leader = await self._leader(client, timeout=STARTUP_TIMEOUT)
        if leader is None:
            problems.append(f"no leader within {STARTUP_TIMEOUT:g} s")
            problems += self._exits_so_far()
        else:
            self._say(f"node {leader} leads; starting a first workflow")
            job = await make_job(self.config.seed, 0)
            self.jobs[job.workflow_id] = job
            self.deadline = deadline
            while time.monotonic() < deadline:
                try:
                    await self._start(client, job)
                    break
                except RemoteWorkflowError as error:
                    if error.error_type != "UnknownWorkflow":  # registrations still commit
                        problems.append(f"the first workflow could not start: {error}")
                        break
                    await asyncio.sleep(0.2)
                except TimeoutError:
                    break
            if job.workflow_id not in self.acknowledged and not problems:
                problems.append(f"the first workflow was not started within {STARTUP_TIMEOUT:g} s")
            if not problems:
                problem = await self._await_result(client, job)
                if problem is not None:
                    problems.append(problem)
        detail = f"in {time.monotonic() - began:.1f} s" if not problems else ""
        self.report.add_check("the cluster came up and ran a first workflow", problems, detail)
        return not problems

    # --- the chaos phase -------------------------------------------------------------------------

    async def _chaos(self, client: ClusterClient) -> None:
        config = self.config
        self.t0 = time.monotonic()
        self.deadline = self.t0 + config.duration + OVERRUN + config.settle_timeout
        self._say(
            f"chaos for {config.duration:g} s (the clock restarts: plan times count from here)"
        )
        helpers = [
            asyncio.create_task(self._watch(), name="chaos-watch"),
            asyncio.create_task(self._progress(), name="chaos-progress"),
        ]
        launcher = asyncio.create_task(self._launch(client), name="chaos-launch")
        try:
            await self._faults(client)
            await launcher
        finally:
            launcher.cancel()
            for task in helpers:
                task.cancel()
            await asyncio.gather(launcher, *helpers, return_exceptions=True)
        self._say(
            f"faults done: {len(self.report.faults)} injected; {len(self.jobs)} workflows attempted"
        )

    async def _launch(self, client: ClusterClient) -> None:
        config = self.config
        interval = 1.0 / config.rate
        number = 1
        next_at = time.monotonic()
        end = self.t0 + config.duration
        while time.monotonic() < end and len(self.jobs) < MAX_WORKFLOWS:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            if len(self.tasks) >= config.in_flight:
                continue  # the cluster is behind (a fault): skip this slot
            job = await make_job(config.seed, number)
            number += 1
            self.jobs[job.workflow_id] = job
            task = asyncio.create_task(self._one(client, job), name=job.workflow_id)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _one(self, client: ClusterClient, job: Job) -> None:
        try:
            node = await self._start(client, job)
        except TimeoutError:
            self.client_problems.append(
                f"{job.workflow_id}: its start was not acknowledged by the deadline"
            )
            self.report.client_outcomes["never acknowledged"] += 1
            return
        except RaftoralError as error:
            self.client_problems.append(f"{job.workflow_id}: its start was refused: {error}")
            self.report.client_outcomes["start refused"] += 1
            return
        problem = await self._await_result(client, job, prefer=node)
        if problem is not None:
            self.client_problems.append(problem)

    async def _start(self, client: ClusterClient, job: Job) -> int:
        """Start `job` (the same id every time: a retried start is the same start); the node
        that acknowledged it. TimeoutError at the deadline."""
        _, node = await workflow_call(
            client,
            "workflow.start",
            deadline=self.deadline,
            name=job.name,
            version=job.version,
            input=job.input,
            workflow_id=job.workflow_id,
        )
        self.acknowledged.add(job.workflow_id)
        self.report.workflows_started = len(self.acknowledged)
        return node

    async def _await_result(
        self, client: ClusterClient, job: Job, prefer: int | None = None
    ) -> str | None:
        """Wait for `job`'s outcome; a problem line when it is not the expected one."""
        outcomes = self.report.client_outcomes
        try:
            answer = await workflow_result(
                client, job.workflow_id, deadline=self.deadline, prefer=prefer
            )
        except TimeoutError:
            outcomes["no result by the deadline"] += 1
            return f"{job.workflow_id}: no result by the deadline"
        except RaftoralError as error:
            outcomes["error"] += 1
            return f"{job.workflow_id}: asking for its result failed: {error}"
        status = str(answer.get("status"))
        raw_error = answer.get("error")
        try:
            error_info = ErrorInfo.from_json(raw_error) if raw_error is not None else None
        except ValueError:
            outcomes["malformed answer"] += 1
            return f"{job.workflow_id}: the result answer carries a malformed error {raw_error!r}"
        if job.expected.matches(status, answer.get("result"), error_info):
            outcomes[f"{status} as expected"] += 1
            return None
        outcomes["wrong outcome"] += 1
        return (
            f"{job.workflow_id}: the client was told {status} "
            f"{answer.get('result') if error_info is None else error_info}, expected "
            f"{job.expected.describe()}"
        )

    async def _cancel_workload(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    # --- faults ----------------------------------------------------------------------------------

    def _now(self) -> float:
        return time.monotonic() - self.t0

    async def _faults(self, client: ClusterClient) -> None:
        last_start = self.config.duration + OVERRUN
        for episode in self.plan.episodes:
            await asyncio.sleep(max(0.0, episode.at - self._now()))
            if self._now() > last_start:
                self.report.skipped["episode (the fault phase ran out of time)"] += 1
                continue
            undo = await self._inject(client, episode)
            if undo is None:
                continue
            await asyncio.sleep(episode.length)
            await undo()
        await asyncio.sleep(max(0.0, self.config.duration - self._now()))

    async def _inject(
        self, client: ClusterClient, episode: Episode
    ) -> Callable[[], Awaitable[None]] | None:
        """Inject the episode's fault; the coroutine function that undoes it (None when it
        was not injected)."""
        kind = episode.kind
        if kind is EpisodeKind.BROKER_RESTART:
            return await self._stop_broker(episode)
        needs_leader = kind in (EpisodeKind.KILL_LEADER, EpisodeKind.ISOLATE_LEADER)
        leader = await self._leader(client, timeout=LEADER_WAIT if needs_leader else 2.0)
        if needs_leader and leader is None:
            self.report.skipped[f"{kind.value} (no leader within {LEADER_WAIT:g} s)"] += 1
            self._say(f"episode {episode.number}: no leader to hit, skipped")
            return None
        live = [n for n, p in self.nodes.items() if p.alive]
        others = [n for n in live if n != leader]
        if kind in (EpisodeKind.KILL_LEADER, EpisodeKind.KILL_FOLLOWER):
            if kind is EpisodeKind.KILL_LEADER:
                assert leader is not None
                victims = [leader, *choose(others, episode.picks[1:], episode.size - 1)]
            else:
                victims = choose(others, episode.picks, episode.size)
            if not victims:
                self.report.skipped[f"{kind.value} (no running node to hit)"] += 1
                return None
            return self._kill(victims, leader)
        if kind is EpisodeKind.ISOLATE_LEADER:
            assert leader is not None
            side = [leader, *choose(others, episode.picks[1:], episode.size - 1)]
        else:
            side = choose(self.ids, episode.picks, episode.size)
        return await self._partition(side)

    def _kill(self, victims: list[int], leader: int | None) -> Callable[[], Awaitable[None]]:
        for node_id in victims:
            self.nodes[node_id].kill9()
            fault = FaultType.KILL_LEADER if node_id == leader else FaultType.KILL_FOLLOWER
            self._fault(fault, (node_id,))

        async def restart() -> None:
            for node_id in victims:
                node = self.nodes[node_id]
                if not node.alive:
                    node.start()
                    self._fault(FaultType.RESTART, (node_id,), "from its data directory")

        return restart

    async def _partition(self, side: list[int]) -> Callable[[], Awaitable[None]] | None:
        assert self.controller is not None
        rest = [n for n in self.ids if n not in side]
        try:
            await self.controller.partition(side, rest)
        except RaftoralError as error:
            self.trouble.append(f"partition {side} | {rest} could not be sent: {error}")
            return self._heal
        self._fault(FaultType.PARTITION, tuple(side), f"cut off from {', '.join(map(str, rest))}")
        return self._heal

    async def _heal(self) -> None:
        assert self.controller is not None
        try:
            await self.controller.heal()
        except RaftoralError as error:
            self.trouble.append(f"a heal could not be sent: {error}")
            return
        self._fault(FaultType.HEAL)

    async def _stop_broker(self, episode: Episode) -> Callable[[], Awaitable[None]] | None:
        broker = self.broker
        if broker is None:
            self.report.skipped["broker restart (the broker is not ours: --broker URL)"] += 1
            return None
        self.broker_down = True  # the client's MQTT log stays quiet about it
        await broker.stop()
        assert self.controller is not None
        # retained presence is gone with the broker: learn who is alive afresh
        self.controller.client.presence.clear()
        self._fault(FaultType.BROKER_RESTART, note=f"down {episode.length:.1f} s")

        async def start_again() -> None:
            try:
                await broker.start()
            except RuntimeError as error:
                self.trouble.append(f"the broker could not be started again: {error}")
                return
            await self._announced(RECONNECT_WAIT)
            self.broker_down = False

        return start_again

    async def _announced(self, timeout: float) -> bool:
        """Wait until every running node announced itself (after a broker restart)."""
        assert self.controller is not None
        client = self.controller.client
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = {n for n, p in self.nodes.items() if p.alive}
            if running <= set(client.alive()):
                return True
            await asyncio.sleep(0.1)
        missing = sorted({n for n, p in self.nodes.items() if p.alive} - set(client.alive()))
        self.trouble.append(f"nodes {missing} did not reconnect within {timeout:g} s")
        return False

    def _fault(self, fault_type: FaultType, nodes: tuple[int, ...] = (), note: str = "") -> None:
        fault = Fault(round(self._now(), 1), fault_type, nodes, note)
        self.report.faults.append(fault)
        self._say(f"fault: {fault.describe()}")

    # --- watching --------------------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            self._exits_so_far()
            await asyncio.sleep(0.25)

    def _exits_so_far(self) -> list[str]:
        found: list[str] = []
        for node in self.nodes.values():
            if not node.expected_exit and not node.alive:
                node.expected_exit = True  # reported once
                line = (
                    f"node {node.id} exited by itself with status {node.exit_code}; "
                    f"the end of its log:\n{node.output_tail()}"
                )
                self.crashes.append(line)
                found.append(line)
                self._say(f"node {node.id} exited by itself (status {node.exit_code})")
        return found

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            outcomes = self.report.client_outcomes
            ended = sum(outcomes.values())
            dead = [n for n, p in self.nodes.items() if not p.alive]
            self._say(
                f"progress: {len(self.jobs)} workflows attempted, {len(self.acknowledged)} "
                f"started, {ended} answered, {len(self.tasks)} in flight; "
                f"{len(self.report.faults)} faults so far" + (f"; down: {dead}" if dead else "")
            )

    async def _statuses(self, client: ClusterClient) -> dict[int, dict[str, Any] | None]:
        async def one(node: int) -> dict[str, Any] | None:
            if not self.nodes[node].alive:
                return None
            try:
                reply = await client.call(node, "status", timeout=1.0)
            except TimeoutError:
                return None
            result = reply.get("result")
            return result if reply.get("ok") and isinstance(result, dict) else None

        answers = await asyncio.gather(*(one(n) for n in self.ids))
        return dict(zip(self.ids, answers, strict=True))

    async def _leader(self, client: ClusterClient, *, timeout: float) -> int | None:
        """The node that says it leads in the highest term among the running nodes."""
        deadline = time.monotonic() + timeout
        while True:
            statuses = await self._statuses(client)
            leaders = [
                (int(s["term"]), n)
                for n, s in statuses.items()
                if s is not None and s.get("role") == "leader"
            ]
            if leaders:
                return max(leaders)[1]
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.1)

    # --- recovery --------------------------------------------------------------------------------

    async def _recover(self, client: ClusterClient) -> None:
        self._say("recovery: broker up, heal, restart every dead node")
        if self.broker is not None and not self.broker.running:
            try:
                await self.broker.start()
            except RuntimeError as error:
                self.trouble.append(f"the broker could not be started for recovery: {error}")
        with contextlib.suppress(RaftoralError):
            assert self.controller is not None
            await self.controller.heal()
        for node in self.nodes.values():
            if not node.alive:
                node.start()
                self.report.notes.append(f"node {node.id} was down at the end: restarted")
        pending = list(self.tasks)
        if pending:
            self._say(f"waiting for {len(pending)} workflows in flight")
            _, late = await asyncio.wait(
                pending, timeout=max(1.0, self.deadline - time.monotonic())
            )
            for task in late:
                task.cancel()
                self.client_problems.append(f"{task.get_name()}: no result by the deadline")
                self.report.client_outcomes["no result by the deadline"] += 1
            await asyncio.gather(*late, return_exceptions=True)
        self.report.add_check(
            "every workflow's client got the expected outcome",
            self.client_problems,
            f"{len(self.jobs)} workflows" if not self.client_problems else "",
        )
        await self._converge(client)

    async def _converge(self, client: ClusterClient) -> None:
        """Every node answers, with one leader, the same commit index applied, twice running."""
        deadline = time.monotonic() + CONVERGE_TIMEOUT
        last: dict[int, dict[str, Any] | None] = {}
        previous: int | None = None
        next_heal = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            self._exits_so_far()
            for node in self.nodes.values():  # a node that died by itself is started again
                if not node.alive:
                    node.start()
            last = await self._statuses(client)
            commits = {s["commit_index"] for s in last.values() if s is not None}
            applied = {s["applied_index"] for s in last.values() if s is not None}
            leaders = {s["leader"] for s in last.values() if s is not None}
            if (
                all(s is not None for s in last.values())
                and len(commits) == 1
                and commits == applied
                and len(leaders) == 1
                and None not in leaders
            ):
                (commit,) = commits
                if commit == previous:
                    self.report.add_check(
                        "the nodes converged", [], f"commit index {commit} on all {len(last)}"
                    )
                    return
                previous = commit
            else:
                previous = None
            if time.monotonic() > next_heal:  # a heal sent while a node reconnected is lost
                next_heal = time.monotonic() + 5.0
                with contextlib.suppress(RaftoralError):
                    assert self.controller is not None
                    await self.controller.heal()
            await asyncio.sleep(0.3)
        seen = {
            n: None if s is None else {k: s.get(k) for k in ("role", "term", "leader",
                                                               "commit_index", "applied_index")}
            for n, s in last.items()
        }  # fmt: skip
        self.report.add_check(
            "the nodes converged",
            [f"no agreement on one commit index within {CONVERGE_TIMEOUT:g} s; last seen {seen}"],
        )

    async def _stop_nodes(self) -> None:
        results = await asyncio.gather(*(node.stop() for node in self.nodes.values()))
        for node, clean in zip(self.nodes.values(), results, strict=True):
            if not clean:
                self.crashes.append(
                    f"node {node.id} did not stop cleanly on SIGTERM (status {node.exit_code})"
                )
        self._say("nodes stopped; reading their data directories")

    # --- checks ----------------------------------------------------------------------------------

    def _check(self, data_dir: Path) -> None:
        report = self.report
        report.add_check("no node process died by itself", self.crashes)
        report.add_check("the fault plan was carried out", self.trouble)
        logs, unreadable = read_logs({n: data_dir / f"node{n}" for n in self.ids})
        agreement = check_logs_agree(logs)
        report.add_check(
            "the committed logs of all nodes agree",
            unreadable + agreement.problems,
            f"{agreement.compared} committed (pair, index) places compared",
        )
        replays = [replay(log) for log in logs]
        problems = list(unreadable) + check_workflows(
            self.jobs, replays, acknowledged=self.acknowledged
        )
        ended = len(set().union(*(set(r.endings) for r in replays))) if replays else 0
        report.add_check(
            "every workflow started and ended once with the expected output, on every node",
            problems,
            f"{ended} workflows on {len(replays)} nodes",
        )
        report.add_check(
            "the nodes hold the same workflow outcomes",
            list(unreadable) + check_states_agree(replays),
        )
        report.workflows_attempted = len(self.jobs)

    # --- output ----------------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        print(f"[{self._now():6.1f}s] {text}", file=self.out, flush=True)


async def run_chaos(
    config: ChaosConfig, out: TextIO | None = None, *, broker: MosquittoProcess | None = None
) -> ChaosReport:
    """Run one chaos run with `config`, printing progress to `out` (default stdout);
    `broker` is a running Mosquitto to use (and restart) instead of starting one."""
    return await ChaosRunner(config, out, broker=broker).run()
