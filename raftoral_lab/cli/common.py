"""Flags every command that talks to a broker shares, and the transport they describe."""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
from pathlib import Path

from raftoral_lab.errors import ConfigError
from raftoral_lab.transport.mqtt import MqttTransport


def add_broker_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("--cluster", default="lab", help="cluster name: the topic root (default lab)")
    p.add_argument(
        "--broker",
        required=required,
        help="broker URL, e.g. mqtt://127.0.0.1:1883 or mqtts://host:8883",
    )
    p.add_argument("--username", help="MQTT user name")
    p.add_argument(
        "--password",
        default=os.environ.get("RAFTORAL_MQTT_PASSWORD"),
        help="MQTT password (default: $RAFTORAL_MQTT_PASSWORD)",
    )
    p.add_argument("--tls", action="store_true", help="use TLS even for an mqtt:// URL")
    p.add_argument("--tls-ca", help="CA certificate of the broker (implies TLS)")
    p.add_argument(
        "--secret",
        default=os.environ.get("RAFTORAL_SECRET") or None,
        help="cluster secret: every payload is signed and checked (default: $RAFTORAL_SECRET; "
        "prefer it or --secret-file, since a flag shows in ps)",
    )
    p.add_argument("--secret-file", type=Path, help="file holding the cluster secret")


def mqtt_transport(
    args: argparse.Namespace, node_id: int, *, presence: bool = True
) -> MqttTransport:
    return MqttTransport(
        node_id,
        args.cluster,
        args.broker,
        username=args.username,
        password=args.password,
        tls=args.tls,
        tls_ca_file=args.tls_ca,
        secret=cluster_secret(args),
        presence=presence,
    )


def cluster_secret(args: argparse.Namespace) -> str | None:
    """The secret from --secret-file, else --secret / $RAFTORAL_SECRET, else None."""
    path: Path | None = args.secret_file
    flag: str | None = args.secret
    if path is not None:
        try:
            secret = path.read_text().strip()
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path, or not text
            raise ConfigError(f"cannot read the secret file {path}: {exc}") from None
        if not secret:
            raise ConfigError(f"the secret file {path} is empty")
        return secret
    return flag.strip() if flag else None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def port_number(text: str) -> int:
    """A TCP port, 0 to 65535 (0: any free port)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected a port number from 0 to 65535 (0: any free port), got {value}"
        )
    return value


_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


def listen_address(text: str) -> str:
    """An address to serve or bind on: an IP address or a host name (checked for its form
    only; whether it resolves is found when listening)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if len(text) > 253 or not _HOSTNAME.fullmatch(text):
            raise argparse.ArgumentTypeError(
                f"expected an IP address or a host name, e.g. 127.0.0.1 or 0.0.0.0, got {text!r}"
            ) from None
    return text


def existing_file(text: str) -> Path:
    """A path to a file that exists (checked before any work starts)."""
    path = Path(text)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):  # a NUL in the path, a name too long
        is_file = False
    if not is_file:
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    return path


def new_file(text: str) -> Path:
    """A file to write: its directory must exist, and it must not be a directory."""
    path = Path(text)
    try:
        ok = bool(text) and path.parent.is_dir() and not path.is_dir()
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(
            f"cannot write {text!r}: give a file in an existing directory"
        )
    return path


def check_broker_args(args: argparse.Namespace) -> None:
    """Check --broker, --cluster, TLS and the secret before any work starts: building a
    transport checks them all (ConfigError saying what is wrong) and connects nothing."""
    mqtt_transport(args, 1, presence=False)
