"""Moving Raft messages between nodes: in memory, or through an MQTT broker.

`MqttTransport` and `EmbeddedBroker` are imported on first use, so code that only needs the
memory transport or the codec does not load aiomqtt and amqtt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raftoral_lab.transport.base import DropHandler, MalformedHandler, MessageHandler, Transport
from raftoral_lab.transport.codec import (
    SCHEMA_VERSION,
    decode_batch,
    encode_batch,
    message_from_dict,
    message_to_dict,
)
from raftoral_lab.transport.faults import FaultFilter, Verdict
from raftoral_lab.transport.memory import MemoryNetwork, MemoryTransport
from raftoral_lab.transport.signing import MIN_SECRET_BYTES, Signer, generate_secret
from raftoral_lab.transport.stats import DropReason, TransportStats
from raftoral_lab.transport.topics import ParsedTopic, Topics, parse_topic, validate_cluster

if TYPE_CHECKING:
    from raftoral_lab.transport.broker import EmbeddedBroker
    from raftoral_lab.transport.mqtt import MqttTransport, parse_broker_url

_LAZY = {
    "MqttTransport": "raftoral_lab.transport.mqtt",
    "parse_broker_url": "raftoral_lab.transport.mqtt",
    "EmbeddedBroker": "raftoral_lab.transport.broker",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "MIN_SECRET_BYTES",
    "SCHEMA_VERSION",
    "DropHandler",
    "DropReason",
    "EmbeddedBroker",
    "FaultFilter",
    "MalformedHandler",
    "MemoryNetwork",
    "MemoryTransport",
    "MessageHandler",
    "MqttTransport",
    "ParsedTopic",
    "Signer",
    "Topics",
    "Transport",
    "TransportStats",
    "Verdict",
    "decode_batch",
    "encode_batch",
    "generate_secret",
    "message_from_dict",
    "message_to_dict",
    "parse_broker_url",
    "parse_topic",
    "validate_cluster",
]
