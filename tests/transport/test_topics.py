"""The topic scheme of DESIGN section 5: builders, parser, cluster-name validation."""

from __future__ import annotations

import pytest

from raftoral_lab.errors import ConfigError
from raftoral_lab.transport.topics import ParsedTopic, Topics, parse_topic, topic_matches


def test_builders_follow_the_design() -> None:
    t = Topics("lab")
    assert t.raft(2) == "raftoral/lab/node/2/raft"
    assert t.rpc(2) == "raftoral/lab/node/2/rpc"
    assert t.control(2) == "raftoral/lab/node/2/control"
    assert t.events(2) == "raftoral/lab/events/2"
    assert t.presence(2) == "raftoral/lab/presence/2"
    assert t.events() == "raftoral/lab/events/+"
    assert t.presence() == "raftoral/lab/presence/+"
    assert t.everything == "raftoral/lab/#"
    assert Topics().cluster == "lab"


@pytest.mark.parametrize("kind", ["raft", "rpc", "control", "events", "presence"])
def test_parse_inverts_the_builders(kind: str) -> None:
    t = Topics("class-2024.a")
    topic = getattr(t, kind)(17)
    assert parse_topic(topic) == ParsedTopic("class-2024.a", kind, 17)  # type: ignore[arg-type]
    assert t.suffix(topic) is not None
    assert t.topic(t.suffix(topic) or "") == topic


@pytest.mark.parametrize(
    "topic",
    [
        "raftoral/lab/node/2/gossip",
        "raftoral/lab/node/x/raft",
        "raftoral/lab/node/-1/raft",
        "raftoral/lab/node/02/raft",
        "raftoral/lab/node/2/raft/extra",
        "raftoral/lab/events",
        "other/lab/events/1",
        "raftoral/+/events/1",
        "raftoral/lab/presence/\uff11",  # a full-width (non-ASCII) digit one
        "",
    ],
)
def test_parse_returns_none_for_foreign_topics(topic: str) -> None:
    assert parse_topic(topic) is None


@pytest.mark.parametrize("name", ["", "a/b", "a+b", "#", "has space", "-lead", "x" * 65, "é"])
def test_bad_cluster_names_are_config_errors(name: str) -> None:
    with pytest.raises(ConfigError, match="cluster name"):
        Topics(name)


def test_cluster_name_must_be_a_string() -> None:
    with pytest.raises(ConfigError, match="must be a string"):
        Topics(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("node", [-1, True, "2", 1.5])
def test_bad_node_ids_are_config_errors(node: object) -> None:
    with pytest.raises(ConfigError, match="node id"):
        Topics().raft(node)  # type: ignore[arg-type]


def test_suffix_of_another_cluster_is_none() -> None:
    assert Topics("a").suffix(Topics("b").raft(1)) is None
    assert Topics("a").suffix(Topics("ab").raft(1)) is None


@pytest.mark.parametrize(
    ("flt", "topic", "match"),
    [
        ("raftoral/lab/#", "raftoral/lab/node/1/raft", True),
        ("raftoral/lab/#", "raftoral/lab", True),
        ("raftoral/lab/events/+", "raftoral/lab/events/3", True),
        ("raftoral/lab/events/+", "raftoral/lab/events/3/x", False),
        ("raftoral/lab/events/+", "raftoral/lab/events", False),
        ("raftoral/+/node/+/rpc", "raftoral/x/node/2/rpc", True),
        ("raftoral/lab/node/1/rpc", "raftoral/lab/node/1/raft", False),
    ],
)
def test_topic_matching(flt: str, topic: str, match: bool) -> None:
    assert topic_matches(flt, topic) is match
