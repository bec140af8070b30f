"""The child processes of `raftoral-lab bench commit` (not a user command).

    python -m raftoral_lab.bench.worker echo    --broker URL --cluster NAME
    python -m raftoral_lab.bench.worker leader  --broker URL --cluster NAME --voters 1,2,3
    python -m raftoral_lab.bench.worker syncobj --self HOST:PORT --partners HOST:PORT,...

A worker prints one JSON object per line on stdout: `{"ready": ...}` once it can work, then
the answer to each command it reads on stdin (`{"op": "latency", "samples": N}` or
`{"op": "throughput", "total": N, "in_flight": K}`), `{"progress": ...}` lines on the way and
`{"error": "..."}` when something fails. It stops at end of input or on SIGTERM.

- `echo` is the far end of the baseline ping-pong, in a process of its own.
- `leader` is a cluster node like `raftoral-lab node` (same Node, MqttTransport, memory
  storage, CommandLog, tick and trace settings) that also generates the load: it proposes with
  `Node.propose` in its own event loop, so no client hop is measured. It is given the short
  election timeout, and the followers a long one, so it is the one elected.
- `syncobj` is one member of a PySyncObj cluster (pure-Python Raft over TCP) with a replicated
  counter; the one that leads generates the same load with PySyncObj's own calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from raftoral_lab.bench.load import PAYLOAD, sequential, start_echo, windowed
from raftoral_lab.bench.measure import Latency

ProgressOut = Callable[[str, int, int], None]


def say(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def progress_printer(phase: str) -> Callable[[int, int], None]:
    last = [-1]

    def show(done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if tenth != last[0]:
            last[0] = tenth
            say({"progress": phase, "done": done, "total": total})

    return show


def latency_doc(latency: Latency) -> dict[str, Any]:
    return {"latency": list(latency.samples)}


# --- MQTT workers (asyncio) -------------------------------------------------------------------


async def _stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def _echo(args: argparse.Namespace) -> None:
    from raftoral_lab.transport.mqtt import MqttTransport

    transport = MqttTransport(
        args.node_id, args.cluster, args.broker, presence=False, client_id=None
    )
    await transport.start()
    try:
        await start_echo(transport)
        say({"ready": True})
        commands = await _stdin_lines()
        while await commands.readline():
            pass
    finally:
        await transport.close()


async def _leader(args: argparse.Namespace) -> None:
    from raftoral_lab.core import RaftConfig, Role
    from raftoral_lab.node import Node
    from raftoral_lab.transport.mqtt import MqttTransport

    voters = sorted({int(v) for v in args.voters.split(",")})
    config = RaftConfig(
        election_timeout=args.election_ticks,
        heartbeat_interval=max(1, args.election_ticks // 10),
    )
    node = Node(
        args.id,
        MqttTransport(args.id, args.cluster, args.broker),
        voters=voters,
        config=config,
        tick_seconds=args.tick,
    )
    await node.start()
    try:
        deadline = time.monotonic() + args.lead_timeout
        while node.status().role is not Role.LEADER:
            if time.monotonic() > deadline:
                say({"error": f"node {args.id} was not elected within {args.lead_timeout:g} s "
                              f"(leader: {node.leader()})"})  # fmt: skip
                return
            await asyncio.sleep(0.02)
        say({"ready": True, "leader": args.id})

        async def propose() -> object:
            return await node.propose(PAYLOAD, timeout=args.op_timeout)

        commands = await _stdin_lines()
        while line := await commands.readline():
            try:
                command = json.loads(line)
                op = command["op"]
                if op == "latency":
                    samples = int(command["samples"])
                    latency = await sequential(propose, samples, progress_printer("latency"))
                    say(latency_doc(latency))
                elif op == "throughput":
                    total, in_flight = int(command["total"]), int(command["in_flight"])
                    result = await windowed(
                        propose, total, in_flight, progress_printer("throughput")
                    )
                    say({"throughput": {"operations": result.operations,
                                        "seconds": result.seconds}})  # fmt: skip
                elif op == "status":
                    say({"status": {"commit_index": node.status().commit_index}})
                else:
                    say({"error": f"unknown command {op!r}"})
            except Exception as exc:  # report, do not hang the benchmark
                say({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        await node.stop()


# --- PySyncObj worker (threads) -------------------------------------------------------------


def _syncobj(args: argparse.Namespace) -> None:
    from raftoral_lab.bench.syncobj import make_member, syncobj_latency, syncobj_throughput

    partners = [p for p in args.partners.split(",") if p]
    member = make_member(args.self_address, partners, batch=args.batch)
    try:
        deadline = time.monotonic() + args.lead_timeout
        while member.leader() is None:
            if time.monotonic() > deadline:
                say({"error": f"PySyncObj member {args.self_address} saw no leader "
                              f"within {args.lead_timeout:g} s"})  # fmt: skip
                return
            time.sleep(0.02)
        say({"ready": True, "is_leader": member.is_leader(), "leader": member.leader()})
        for line in sys.stdin:
            try:
                command = json.loads(line)
                op = command["op"]
                if op == "latency":
                    latency = syncobj_latency(
                        member, int(command["samples"]), progress_printer("latency")
                    )
                    say(latency_doc(latency))
                elif op == "throughput":
                    result = syncobj_throughput(
                        member,
                        int(command["total"]),
                        int(command["in_flight"]),
                        progress_printer("throughput"),
                        timeout=args.op_timeout * 10,
                    )
                    say({"throughput": {"operations": result.operations,
                                        "seconds": result.seconds}})  # fmt: skip
                elif op == "status":
                    say({"status": {"is_leader": member.is_leader(), "leader": member.leader()}})
                else:
                    say({"error": f"unknown command {op!r}"})
            except Exception as exc:
                say({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        member.destroy()


# --- entry point -----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m raftoral_lab.bench.worker")
    roles = p.add_subparsers(dest="role", required=True)
    echo = roles.add_parser("echo")
    echo.add_argument("--broker", required=True)
    echo.add_argument("--cluster", required=True)
    echo.add_argument("--node-id", type=int, default=999_999)
    leader = roles.add_parser("leader")
    leader.add_argument("--broker", required=True)
    leader.add_argument("--cluster", required=True)
    leader.add_argument("--id", type=int, default=1)
    leader.add_argument("--voters", default="1,2,3")
    leader.add_argument("--tick", type=float, default=0.05)
    leader.add_argument("--election-ticks", type=int, default=10)
    leader.add_argument("--lead-timeout", type=float, default=30.0)
    leader.add_argument("--op-timeout", type=float, default=30.0)
    syncobj = roles.add_parser("syncobj")
    syncobj.add_argument("--self", dest="self_address", required=True)
    syncobj.add_argument("--partners", required=True)
    syncobj.add_argument("--batch", action="store_true", help="appendEntriesUseBatch=True")
    syncobj.add_argument("--lead-timeout", type=float, default=30.0)
    syncobj.add_argument("--op-timeout", type=float, default=30.0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # SIGTERM ends the worker through its finally blocks, like end of input
    import signal

    def stop(_signo: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        if args.role == "syncobj":
            _syncobj(args)
        else:
            asyncio.run(_echo(args) if args.role == "echo" else _leader(args))
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        say({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
