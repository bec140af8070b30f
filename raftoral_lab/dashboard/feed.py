# mypy: disable-error-code="no-untyped-call"
"""The event feed (newest first, filtered) and the message and drop counters.

`FeedView` and `CountersView` are the Panel `Viewer`s; `render_feed` and `render_counters`
the pure HTML.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Collection, Iterable
from html import escape
from typing import Any

import panel as pn
import param
from panel.viewable import Viewer

from raftoral_lab.dashboard import theme
from raftoral_lab.dashboard.model import Model
from raftoral_lab.dashboard.panes import card, html_pane, set_html
from raftoral_lab.dashboard.roles import looks
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


# --- the Panel views -----------------------------------------------------------------------

DEFAULT_CATEGORIES = ["roles", "log", "lab", "workflows"]
"""Shown at first: message-level events would drown the rest."""


class FeedView(Viewer):
    """The event feed card with its filters (categories, nodes, a search text); a filter
    change redraws at once, new events when the dashboard calls `refresh()`."""

    group = param.Integer(default=0, bounds=(0, None), doc="Whose nodes the node filter offers.")

    def __init__(self, model: Model, **params: Any) -> None:
        super().__init__(**params)
        self.model = model
        self.kinds = pn.widgets.CheckButtonGroup(
            label="Show",
            options=list(CATEGORIES),
            value=list(DEFAULT_CATEGORIES),
            color="primary",
            variant="outline",
            height=40,
            stylesheets=[theme.CONTROL_CSS],
        )
        self.node_filter = pn.widgets.MultiChoice(
            label="",
            options=[],
            value=[],
            placeholder="all nodes",
            width=200,
            stylesheets=[theme.CONTROL_CSS],
        )
        self.search = pn.widgets.TextInput(
            placeholder="search kind or field", width=200, stylesheets=[theme.CONTROL_CSS]
        )
        self.pane = html_pane(css_classes=["feed-pane"])
        for widget in (self.kinds, self.node_filter, self.search):
            widget.param.watch(lambda _e: self.draw(), "value")
        self._layout = card(
            "Events",
            pn.Row(self.kinds, self.node_filter, self.search),
            self.pane,
            subtitle="newest first",
        )
        self.refresh()

    def draw(self) -> None:
        """The feed as the filters now say."""
        nodes = {int(v[1:]) for v in self.node_filter.value} or None
        html = render_feed(self.model, self.kinds.value, nodes, self.search.value or "")
        set_html(self.pane, html)

    def refresh(self) -> None:
        """New events: the feed, and the nodes the filter offers."""
        self.draw()
        nodes = [f"n{look.node}" for look in looks(self.model.view, self.group)]
        if list(self.node_filter.options) != nodes:
            self.node_filter.options = nodes

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


class CountersView(Viewer):
    """The message and drop counters card; `refresh()` redraws it."""

    def __init__(self, model: Model, **params: Any) -> None:
        super().__init__(**params)
        self.model = model
        self.pane = html_pane(css_classes=["counters-pane"])
        self._layout = card("Messages and drops", self.pane)
        self.refresh()

    def refresh(self) -> None:
        set_html(self.pane, render_counters(self.model))

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
