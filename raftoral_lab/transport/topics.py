"""The MQTT topic scheme (DESIGN section 5), in one place so nodes, tools and tests agree.

raftoral/{cluster}/node/{id}/raft      Raft batches for node id (QoS 0)
raftoral/{cluster}/node/{id}/rpc       requests to node id (QoS 1)
raftoral/{cluster}/node/{id}/reply     answers to the requests node or client id made (QoS 1)
raftoral/{cluster}/node/{id}/control   lab controls for node id (QoS 1)
raftoral/{cluster}/events/{id}         node id's event stream
raftoral/{cluster}/presence/{id}       retained liveness, with a last will
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from raftoral_lab.errors import ConfigError

ROOT = "raftoral"
DEFAULT_CLUSTER = "lab"

TopicKind = Literal["raft", "rpc", "reply", "control", "events", "presence"]
NODE_CHANNELS: tuple[TopicKind, ...] = ("raft", "rpc", "reply", "control")
_CHANNEL_KIND: dict[str, TopicKind] = {k: k for k in NODE_CHANNELS}

_CLUSTER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_MAX_ID_DIGITS = 19
"""A node id in a topic has at most this many digits (client ids have 10): a longer one is
no id of ours, and converting thousands of digits would raise instead of saying None."""


def validate_cluster(name: object) -> str:
    """Return `name` if it can be one topic level; a ConfigError says what is wrong otherwise.

    Wildcards (`+`, `#`) or a `/` would make one cluster's subscriptions see another's traffic.
    """
    if not isinstance(name, str):
        raise ConfigError(f"cluster name must be a string, got {name!r}")
    if not _CLUSTER_RE.fullmatch(name):
        raise ConfigError(
            f"invalid cluster name {name!r}: use 1 to 64 characters from letters, digits, "
            "'_', '-' and '.', starting with a letter or digit (no '/', '+', '#' or spaces)"
        )
    return name


def validate_node_id(node: object) -> int:
    if type(node) is not int or node < 0:
        raise ConfigError(f"node id must be a non-negative integer, got {node!r}")
    return node


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic builders for one cluster: `Topics("lab").raft(2) == "raftoral/lab/node/2/raft"`."""

    cluster: str = DEFAULT_CLUSTER

    def __post_init__(self) -> None:
        validate_cluster(self.cluster)

    @property
    def root(self) -> str:
        return f"{ROOT}/{self.cluster}"

    @property
    def everything(self) -> str:
        """Filter for all traffic of the cluster (what `mosquitto_sub` would watch)."""
        return f"{ROOT}/{self.cluster}/#"

    def raft(self, node: int) -> str:
        return f"{ROOT}/{self.cluster}/node/{validate_node_id(node)}/raft"

    def rpc(self, node: int) -> str:
        return f"{ROOT}/{self.cluster}/node/{validate_node_id(node)}/rpc"

    def control(self, node: int) -> str:
        return f"{ROOT}/{self.cluster}/node/{validate_node_id(node)}/control"

    def reply(self, node: int) -> str:
        return f"{ROOT}/{self.cluster}/{reply_suffix(node)}"

    def events(self, node: int | None = None) -> str:
        """One node's event topic, or the filter for every node's events."""
        tail = "+" if node is None else str(validate_node_id(node))
        return f"{ROOT}/{self.cluster}/events/{tail}"

    def presence(self, node: int | None = None) -> str:
        """One node's presence topic, or the filter for every node's presence."""
        tail = "+" if node is None else str(validate_node_id(node))
        return f"{ROOT}/{self.cluster}/presence/{tail}"

    def topic(self, suffix: str) -> str:
        """The full topic (or filter) for a suffix below the cluster root, e.g. `events/+`."""
        if not suffix or suffix.startswith("/"):
            raise ConfigError(f"topic suffix must be non-empty and relative, got {suffix!r}")
        return f"{ROOT}/{self.cluster}/{suffix}"

    def suffix(self, topic: str) -> str | None:
        """The part of `topic` below this cluster's root, or None for another cluster's topic."""
        prefix = f"{ROOT}/{self.cluster}/"
        return topic[len(prefix) :] if topic.startswith(prefix) else None


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    cluster: str
    kind: TopicKind
    node: int


def parse_topic(topic: str) -> ParsedTopic | None:
    """Split a topic of the scheme into (cluster, kind, node); None for any other topic."""
    parts = topic.split("/", 2)
    if len(parts) < 3 or parts[0] != ROOT or not _CLUSTER_RE.fullmatch(parts[1]):
        return None
    parsed = parse_suffix(parts[2])
    return None if parsed is None else ParsedTopic(parts[1], *parsed)


def parse_suffix(suffix: str) -> tuple[TopicKind, int] | None:
    """(kind, node) of a topic below the cluster root, e.g. `node/3/reply` -> ("reply", 3),
    as the node layer sees topics; None for any other suffix (a wildcard, a node id with a
    sign, a leading zero or non-ASCII digits, an unknown channel)."""
    parts = suffix.split("/")
    kind: TopicKind
    if len(parts) == 3 and parts[0] == "node" and parts[2] in _CHANNEL_KIND:
        kind = _CHANNEL_KIND[parts[2]]
        node_text = parts[1]
    elif len(parts) == 2 and parts[0] in ("events", "presence"):
        kind = "events" if parts[0] == "events" else "presence"
        node_text = parts[1]
    else:
        return None
    if (
        not node_text.isascii()
        or not node_text.isdigit()
        or (len(node_text) > 1 and node_text[0] == "0")
        or len(node_text) > _MAX_ID_DIGITS
    ):
        return None
    return kind, int(node_text)


def reply_suffix(node: int) -> str:
    """`node/{id}/reply` below the cluster root: where node or client `id` hears the answers to
    its requests (the `reply_to` of a request must be such a topic)."""
    return f"node/{validate_node_id(node)}/reply"


def validate_topic_filter(topic_filter: str) -> str:
    """Return `topic_filter` if it is a valid MQTT filter; a ConfigError otherwise.

    `+` must fill a whole level and `#` must be the whole last level (MQTT 3.1.1, 4.7.1). A
    broker answers an invalid filter by dropping the connection, and a transport that subscribes
    again on every reconnection would never stay connected, so this is checked up front.
    """
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ConfigError(
                f"invalid topic filter {topic_filter!r}: '#' must be a whole level and the last one"
            )
        if "+" in level and level != "+":
            raise ConfigError(f"invalid topic filter {topic_filter!r}: '+' must be a whole level")
    return topic_filter


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching (`+` one level, `#` the rest), used to route subscriptions."""
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    for i, level in enumerate(f_levels):
        if level == "#":
            return True
        if i >= len(t_levels):
            return False
        if level != "+" and level != t_levels[i]:
            return False
    return len(f_levels) == len(t_levels)
