"""`raftoral-lab broker`: the embedded MQTT broker alone, for nodes in other processes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

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
        async with EmbeddedBroker(host=args.host, port=args.port) as broker:
            print(f"broker listening on {broker.url} (Ctrl-C stops it)", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0
