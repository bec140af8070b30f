"""Flags every command that talks to a broker shares, and the transport they describe."""

from __future__ import annotations

import argparse
import os
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
        except OSError as exc:
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
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value
