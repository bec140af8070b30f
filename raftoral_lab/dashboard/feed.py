"""The event feed (newest first, filtered) and the message and drop counters."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Collection, Iterable
from html import escape

from raftoral_lab.dashboard import theme
from raftoral_lab.dashboard.model import Model
from raftoral_lab.events.models import EVENT_KINDS, MESSAGE_KINDS, WORKFLOW_KINDS, EventBase

CATEGORIES: dict[str, frozenset[str]] = {
    "roles": frozenset(
        {
            "role_changed",
            "election_timeout",
            "election_started",
            "vote_cast",
            "vote_received",
            "check_quorum_failed",
            "leader_transfer_started",
            "leader_transfer_aborted",
            "state_loaded",
        }
    ),
    "log": frozenset(
        {
            "entries_appended",
            "entries_truncated",
            "commit_advanced",
            "entries_applied",
            "snapshot_taken",
            "snapshot_sent",
            "snapshot_installed",
            "membership_changed",
            "proposal_made",
            "proposal_forwarded",
            "proposal_refused",
        }
    ),
    "messages": frozenset(MESSAGE_KINDS | {"message_ignored"}),
    "lab": frozenset(
        {
            "node_crashed",
            "node_restarted",
            "node_joined",
            "node_removed",
            "partitioned",
            "healed",
            "broker_disconnected",
            "broker_reconnected",
        }
    ),
    "workflows": frozenset(WORKFLOW_KINDS),
}
CATEGORY_OF: dict[str, str] = {k: c for c, kinds in CATEGORIES.items() for k in kinds}
for _kind in EVENT_KINDS:
    CATEGORY_OF.setdefault(_kind, "other")

_BASE = frozenset({"kind", "v", "node", "group", "seq", "ts", "tick"})
FEED_ROWS = 30


def details(event: EventBase) -> str:
    parts = []
    for name, value in event:
        if name in _BASE:
            continue
        if isinstance(value, float):
            value = f"{value:.3f}"
        elif isinstance(value, tuple):
            value = "[" + ", ".join(map(str, value)) + "]"
        parts.append(f"{name}={value}")
    return " ".join(parts)


def when(model: Model, event: EventBase) -> str:
    if event.tick is not None:
        return f"tick {event.tick}"
    origin = model.t0 if model.t0 is not None else event.ts
    return f"+{event.ts - origin:.2f} s"


def matches(
    event: EventBase, categories: Collection[str], nodes: Collection[int] | None, text: str
) -> bool:
    if CATEGORY_OF.get(event.kind, "other") not in categories:
        return False
    if nodes is not None and event.node not in nodes:
        return False
    return not text or text in event.kind or text in details(event)


def render_feed(
    model: Model,
    categories: Collection[str],
    nodes: Collection[int] | None = None,
    text: str = "",
    *,
    limit: int = FEED_ROWS,
) -> str:
    rows: list[str] = []
    text = text.strip()
    merged: Iterable[EventBase]
    if "messages" in categories and model.message_feed:
        # newest first across both buffers (each is in arrival order)
        merged = heapq.merge(
            reversed(model.feed), reversed(model.message_feed), key=lambda e: -e.ts
        )
    else:
        merged = reversed(model.feed)
    for event in merged:
        if not matches(event, categories, nodes, text):
            continue
        category = CATEGORY_OF.get(event.kind, "other")
        color = theme.CATEGORY_COLORS.get(category, theme.MUTED)
        rows.append(
            f'<tr data-kind="{event.kind}"><td class="num">{escape(when(model, event))}</td>'
            f"<td><b>n{event.node}</b>{'' if not event.group else f' g{event.group}'}</td>"
            f'<td><span class="kind" style="background:{color}">{event.kind}</span></td>'
            f'<td class="mono">{escape(details(event))}</td></tr>'
        )
        if len(rows) >= limit:
            break
    if not rows:
        return '<div class="note">no events match the filters</div>'
    return (
        '<table class="grid feed"><thead><tr><th>when</th><th>node</th><th>event</th>'
        "<th>details</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def render_counters(model: Model) -> str:
    view = model.view
    sent = sum(c.sent for c in view.messages.values())
    delivered = sum(c.delivered for c in view.messages.values())
    dropped = sum(c.dropped for c in view.messages.values())
    stats = [
        ("events", f"{model.folded:,}"),
        ("messages sent", f"{sent:,}"),
        ("delivered", f"{delivered:,}"),
        ("dropped", f"{dropped:,}"),
    ]
    if model.lost:
        stats.append(("events lost", f"{model.lost:,}"))
    head = "".join(
        f'<div class="stat"><div class="label">{escape(k)}</div><div class="big" '
        f'data-stat="{escape(k)}">{v}</div></div>'
        for k, v in stats
    )
    parts = [head]
    if view.messages:
        rows = "".join(
            f"<tr><td>{escape(kind)}</td><td class='num'>{c.sent:,}</td>"
            f"<td class='num'>{c.delivered:,}</td><td class='num'>{c.dropped:,}</td></tr>"
            for kind, c in sorted(view.messages.items())
        )
        parts.append(
            '<table class="grid compact" style="margin-top:8px"><thead><tr><th>message</th>'
            "<th>sent</th><th>recv'd</th><th>dropped</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
    elif not model.message_events:
        parts.append(
            '<div class="note">These nodes report no message events (only drops, when there '
            "are any).</div>"
        )
    if view.drops:
        rows = "".join(
            f"<tr><td>{escape(reason)}</td><td class='num' data-drop='{escape(reason)}'>"
            f"{n:,}</td></tr>"
            for reason, n in view.drops.most_common()
        )
        parts.append(
            '<table class="grid" style="margin-top:8px"><thead><tr><th>dropped because</th>'
            f"<th>count</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    by_category: Counter[str] = Counter()
    for kind, n in view.counts.items():
        by_category[CATEGORY_OF.get(kind, "other")] += n
    chips = "".join(
        theme.chip(f"{c} {n:,}", theme.CATEGORY_COLORS.get(c, theme.MUTED))
        for c, n in sorted(by_category.items())
    )
    parts.append(f'<div class="legend" style="margin-top:10px">{chips}</div>')
    return "".join(parts)
