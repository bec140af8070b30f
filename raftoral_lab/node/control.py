"""Lab controls that arrive on `node/{id}/control`: faults a dashboard anywhere can inject.

`{"v": 1, "op": "partition", "blocked": [2, 3]}`, `{"op": "heal"}`,
`{"op": "drop_rate", "rate": 0.1}`, `{"op": "delay", "low": 0.01, "high": 0.05}` (seconds),
`{"op": "crash"}` (the node stops at once, as if killed), and one that changes nothing:
`{"op": "announce"}` (optionally `"group": N`), which asks the node to report its current state
as events, for an observer that connected after the cluster went quiet. Every control carries
`"v": 1`; anything else (or a payload over the transport's size limit) is refused as malformed.
"""

from __future__ import annotations

from typing import Any

from raftoral_lab.errors import ConfigError, MalformedMessage
from raftoral_lab.node.rpc import load_json_object
from raftoral_lab.transport.codec import DEFAULT_MAX_PAYLOAD
from raftoral_lab.transport.faults import FaultFilter

CONTROL_VERSION = 1
CONTROL_OPS = ("partition", "heal", "drop_rate", "delay", "crash", "announce")


def parse_control(payload: bytes, *, max_bytes: int = DEFAULT_MAX_PAYLOAD) -> dict[str, Any]:
    body = load_json_object(payload, "control message", max_bytes, CONTROL_VERSION)
    if body.get("op") not in CONTROL_OPS:
        raise MalformedMessage(
            f"control op {body.get('op')!r} is not one of {', '.join(CONTROL_OPS)}"
        )
    return body


def apply_fault(faults: FaultFilter, body: dict[str, Any]) -> str:
    """Apply a fault control; returns a line saying what changed. Crash is the caller's."""
    op = body["op"]
    try:
        if op == "partition":
            # the filter checks the ids: a string, floats or booleans are refused, not coerced
            faults.blocked = body.get("blocked", [])
            return f"blocked {sorted(faults.blocked)}"
        if op == "heal":
            faults.heal()
            return "healed"
        if op == "drop_rate":
            faults.drop_rate = body["rate"]
            return f"drop rate {faults.drop_rate:g}"
        if op == "delay":
            faults.set_delay(body["low"], body.get("high"))
            return f"delay {faults.delay}"
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise MalformedMessage(f"control {op}: {exc}") from None
    raise MalformedMessage(f"control op {op!r} is not a fault")


def announce_group(body: dict[str, Any]) -> int | None:
    """The group an `announce` control asks about: None (every group the node hosts), or the
    id in its `group` field. A group that is not an integer id is refused as malformed (a group
    the node does not host is no error: a scaled cluster's observer may ask every node)."""
    if body.get("op") != "announce":
        raise MalformedMessage(f"control op {body.get('op')!r} is not announce")
    group = body.get("group")
    if group is None:
        return None
    if type(group) is not int or group < 0:
        raise MalformedMessage(f"control announce: group must be a group id, got {group!r}")
    return group
