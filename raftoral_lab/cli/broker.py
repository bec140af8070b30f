"""`raftoral-lab broker`: the embedded MQTT broker alone, for nodes in other processes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from raftoral_lab.cli.common import listen_address, port_number
from raftoral_lab.transport.broker import EmbeddedBroker


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("broker", help="run the embedded MQTT broker (amqtt) until Ctrl-C")
    p.add_argument(
        "--host", type=listen_address, default="127.0.0.1", help="address to bind (127.0.0.1)"
    )
    p.add_argument(
        "--port", type=port_number, default=1883, help="port (default 1883; 0: any free one)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    async def serve() -> None:
        stop = asyncio.Event()
        # SIGTERM (a service manager, a test's teardown) stops it as cleanly as Ctrl-C
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with EmbeddedBroker(host=args.host, port=args.port) as broker:
            print(f"broker listening on {broker.url} (Ctrl-C stops it)", flush=True)
            await stop.wait()
        print("broker stopped", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0
