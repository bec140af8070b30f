"""The reply topic `node/{id}/reply` is part of the topic scheme (docs/wire-protocol.md): built by
`Topics.reply` and `reply_suffix`, understood by `parse_topic` and `parse_suffix`, and the only
kind of topic a request may name for its answer."""

from __future__ import annotations

import json

import pytest

from raftoral_lab.errors import ConfigError, MalformedMessage
from raftoral_lab.node.client import parse_presence
from raftoral_lab.node.rpc import parse_request
from raftoral_lab.transport.topics import (
    ParsedTopic,
    Topics,
    parse_suffix,
    parse_topic,
    reply_suffix,
)


def test_reply_topics_are_built_and_parsed_like_the_other_node_channels() -> None:
    topics = Topics("lab")
    assert topics.reply(3) == "raftoral/lab/node/3/reply"
    assert reply_suffix(3) == "node/3/reply"
    assert topics.topic(reply_suffix(3)) == topics.reply(3)
    assert parse_topic(topics.reply(3)) == ParsedTopic("lab", "reply", 3)
    assert parse_suffix("node/3/reply") == ("reply", 3)
    client = 1_000_000_123  # clients hear their answers on a reply topic too
    assert parse_topic(topics.reply(client)) == ParsedTopic("lab", "reply", client)


@pytest.mark.parametrize("node", [-1, True, "2", 1.5])
def test_a_reply_topic_needs_a_node_id(node: object) -> None:
    with pytest.raises(ConfigError, match="node id"):
        reply_suffix(node)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="node id"):
        Topics().reply(node)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("suffix", "parsed"),
    [
        ("node/2/raft", ("raft", 2)),
        ("node/2/rpc", ("rpc", 2)),
        ("node/2/control", ("control", 2)),
        ("node/0/reply", ("reply", 0)),
        ("events/7", ("events", 7)),
        ("presence/7", ("presence", 7)),
        ("node/+/reply", None),
        ("node/02/reply", None),
        ("node/-1/reply", None),
        ("node/abc/reply", None),
        ("node/2/reply/x", None),
        ("node/2/replies", None),
        ("reply/2", None),
        ("presence/\uff11", None),
        ("node/" + "9" * 20 + "/reply", None),  # longer than any id, and no int() of it
        ("node/" + "9" * 5000 + "/reply", None),  # int() of this would raise ValueError
        ("", None),
    ],
)
def test_parse_suffix(suffix: str, parsed: tuple[str, int] | None) -> None:
    assert parse_suffix(suffix) == parsed
    assert parse_topic(f"raftoral/lab/{suffix}") == (
        None if parsed is None else ParsedTopic("lab", *parsed)
    )


def request(reply_to: str) -> bytes:
    return json.dumps({"v": 1, "id": "r1", "op": "status", "reply_to": reply_to}).encode()


def test_a_request_may_name_only_a_reply_topic_for_its_answer() -> None:
    assert parse_request(request(reply_suffix(12))).reply_to == "node/12/reply"
    for topic in ("node/2/raft", "node/2/rpc", "node/2/control", "presence/2", "events/2",
                  "node/+/reply", "node/#", "node/" + "1" * 5000 + "/reply"):  # fmt: skip
        with pytest.raises(MalformedMessage, match="reply topic"):
            parse_request(request(topic))


def test_presence_topics_name_their_node() -> None:
    doc = json.dumps({"v": 1, "node": 4, "alive": True}).encode()
    assert parse_presence("presence/4", doc, max_bytes=10_000) == (4, {"v": 1, "node": 4,
                                                                     "alive": True})  # fmt: skip
    for topic in ("presence/04", "presence/x", "node/4/reply", "presence/" + "4" * 5000):
        with pytest.raises(MalformedMessage, match="does not name a node id"):
            parse_presence(topic, doc, max_bytes=10_000)
