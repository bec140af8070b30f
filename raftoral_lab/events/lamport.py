"""Lamport (space-time) diagrams of the messages between nodes, and ShiViz logs.

One horizontal line per node, time flowing to the right, an arrow for every message from the
send on one line to the delivery on another: the picture in which Lamport explained
"happened before", and the clearest way to show a class what an election or a log repair
actually sends. `space_time(events)` builds the diagram once; it is drawn as a Bokeh figure
(`lamport_figure`), written as plain SVG (`to_svg`, `write_svg`; no browser needed), or
exported for ShiViz (`to_shiviz`, `write_shiviz`), which many distributed-systems courses use.

Matching a delivery to its send: when the events carry `msg_id` (the simulator fills it) the
match is exact, duplicates included. Without it, deliveries and drops are matched to sends of
the same channel (source, destination, message kind) first in, first out, in the order the
events are given; that is exact unless the network reorders a channel (set_delay), where an
arrow may then point at a sibling message of the same kind.

The x axis is, by default, the Lamport clock of each point, which needs no synchronized clocks
and spreads the many events of one simulator tick apart; `x="ts"` uses the event times.
Vector clocks are computed from the window's events alone (a window starts with clean
clocks), so the ShiViz export of a window is self-contained.

ShiViz (https://bestchai.bitbucket.io/shiviz/): paste the output of `to_shiviz` as the log and
this regular expression (`SHIVIZ_REGEX`) as the parser, leaving the delimiter empty:

    (?<host>\\S+) (?<clock>\\{[^}]*\\}) (?<event>.*)
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias
from xml.sax.saxutils import escape

from raftoral_lab.errors import ConfigError
from raftoral_lab.events.models import (
    EventBase,
    MessageDelivered,
    MessageDropped,
    MessageSent,
)

SHIVIZ_REGEX = r"(?<host>\S+) (?<clock>\{[^}]*\}) (?<event>.*)"
"""The parser to paste into ShiViz for `to_shiviz` output (delimiter: leave empty)."""

DEFAULT_LOCAL_KINDS: frozenset[str] = frozenset(
    {"role_changed", "node_crashed", "node_restarted", "snapshot_installed"}
)
"""Events drawn as dots on a node's line besides messages: who became leader, who crashed."""

KIND_COLORS: Mapping[str, str] = {
    "pre_vote": "#9467bd",
    "pre_vote_response": "#c5b0d5",
    "request_vote": "#d62728",
    "vote_response": "#ff9896",
    "append_entries": "#1f77b4",
    "append_response": "#6baed6",
    "heartbeat": "#2ca02c",
    "heartbeat_response": "#98df8a",
    "install_snapshot": "#ff7f0e",
    "timeout_now": "#8c564b",
}
"""A fixed colour per Raft message kind, so every diagram of a course reads the same."""

_SPARE_COLORS = ("#7f7f7f", "#bcbd22", "#17becf", "#e377c2", "#393b79", "#637939")
DROP_COLOR = "#d62728"
LOCAL_COLOR = "#444444"

Axis: TypeAlias = Literal["lamport", "ts"]


@dataclass(frozen=True, slots=True)
class Point:
    """An event on a node's line, with its Lamport time and vector clock in the window."""

    node: int
    lamport: int
    clock: tuple[tuple[int, int], ...]
    """The vector clock as sorted (node, count) pairs (only nodes already seen)."""
    event: EventBase
    label: str

    @property
    def ts(self) -> float:
        return self.event.ts

    def clock_dict(self) -> dict[int, int]:
        return dict(self.clock)


@dataclass(frozen=True, slots=True)
class Arrow:
    """One message: sent at `send`, delivered at `receive` (None: dropped or still in flight).

    A duplicated message (same `msg_id`, delivered twice) is two arrows from one send.
    """

    message: str
    src: int
    dst: int
    send: Point
    receive: Point | None = None
    dropped: str | None = None
    """The drop reason, if the message was dropped."""
    dropped_at: float | None = None
    """When the drop was reported."""

    @property
    def in_flight(self) -> bool:
        return self.receive is None and self.dropped is None


@dataclass(frozen=True)
class SpaceTime:
    """The diagram: the nodes (top to bottom), the points on their lines, the arrows."""

    nodes: tuple[int, ...]
    points: tuple[Point, ...]
    arrows: tuple[Arrow, ...]

    def color(self, message: str) -> str:
        """The colour of a message kind (fixed for Raft's kinds, spare colours otherwise)."""
        known = KIND_COLORS.get(message)
        if known is not None:
            return known
        others = sorted({a.message for a in self.arrows} - set(KIND_COLORS))
        return _SPARE_COLORS[others.index(message) % len(_SPARE_COLORS)]


# --- building the diagram --------------------------------------------------------------------


class _Pending:
    """A point while clocks are computed."""

    __slots__ = ("done", "event", "label", "lamport", "node", "send", "vector")

    def __init__(self, node: int, event: EventBase, label: str) -> None:
        self.node = node
        self.event = event
        self.label = label
        self.send: _Pending | None = None  # for a delivery: its send
        self.done = False
        self.lamport = 0
        self.vector: dict[int, int] = {}


_Outcome: TypeAlias = tuple[MessageDropped | None, _Pending | None]
"""What became of a message: its drop, or its delivery point."""


def _local_label(event: EventBase) -> str:
    fields = {
        k: v for k, v in event.__dict__.items() if k not in ("kind", "v", "node", "group", "seq")
    }
    fields.pop("ts", None)
    fields.pop("tick", None)
    if event.kind == "role_changed":
        return f"{fields['role']} (term {fields['term']})"
    detail = ", ".join(f"{k}={v}" for k, v in fields.items())
    return f"{event.kind}{': ' + detail if detail else ''}"


def space_time(
    events: Iterable[EventBase],
    *,
    start: float | None = None,
    end: float | None = None,
    nodes: Iterable[int] | None = None,
    group: int | None = None,
    local_kinds: Iterable[str] = DEFAULT_LOCAL_KINDS,
) -> SpaceTime:
    """The space-time diagram of the events with `start <= ts <= end` (None: unbounded).

    `nodes` keeps only those lines (and messages between them); `group` only one Raft group.
    """
    keep_nodes = frozenset(nodes) if nodes is not None else None
    local = frozenset(local_kinds)
    message_kinds = ("message_sent", "message_delivered", "message_dropped")

    def wanted(e: EventBase) -> bool:
        if start is not None and e.ts < start:
            return False
        if end is not None and e.ts > end:
            return False
        if group is not None and e.group != group:
            return False
        if e.kind in message_kinds:
            src, dst = getattr(e, "src"), getattr(e, "dst")  # noqa: B009 - message kinds
            if src < 0 or dst < 0:  # malformed input has no sender
                return False
            return keep_nodes is None or (src in keep_nodes and dst in keep_nodes)
        return e.kind in local and e.node > 0 and (keep_nodes is None or e.node in keep_nodes)

    selected = [e for e in events if wanted(e)]

    lines: dict[int, list[_Pending]] = {}
    # one entry per arrow: its send, the send event, its delivery point or its drop
    arrows: list[tuple[_Pending, MessageSent, _Pending | None, MessageDropped | None]] = []
    first_arrow: dict[int, int] = {}  # id(send point) -> index of its first arrow
    sends_by_id: dict[int, tuple[_Pending, MessageSent]] = {}
    channel: dict[tuple[int, int, str], deque[tuple[_Pending, MessageSent]]] = {}
    waiting: dict[tuple[int, int, str], deque[_Outcome]] = {}
    waiting_by_id: dict[int, list[_Outcome]] = {}

    def add(node: int, point: _Pending) -> _Pending:
        lines.setdefault(node, []).append(point)
        return point

    def settle(send: _Pending, sent: MessageSent, outcome: _Outcome) -> None:
        drop, receive = outcome
        slot = first_arrow[id(send)]
        open_slot = arrows[slot][2] is None and arrows[slot][3] is None
        if receive is not None:
            receive.send = send
            if open_slot:
                arrows[slot] = (send, sent, receive, None)
            else:  # a duplicate delivery: a second arrow from the same send
                arrows.append((send, sent, receive, None))
        elif open_slot:
            arrows[slot] = (send, sent, None, drop)

    for e in selected:
        if isinstance(e, MessageSent):
            send = add(e.src, _Pending(e.src, e, f"{e.message} to {e.dst}"))
            first_arrow[id(send)] = len(arrows)
            arrows.append((send, e, None, None))
            if e.msg_id is not None:
                sends_by_id[e.msg_id] = (send, e)
                for parked_outcome in waiting_by_id.pop(e.msg_id, []):
                    settle(send, e, parked_outcome)
                continue
            key = (e.src, e.dst, e.message)
            parked = waiting.get(key)
            if parked:
                settle(send, e, parked.popleft())
            else:
                channel.setdefault(key, deque()).append((send, e))
        elif isinstance(e, MessageDelivered | MessageDropped):
            if isinstance(e, MessageDelivered):
                # on the receiver's line where it happened, whenever its send turns up
                label = f"{e.message} from {e.src}"
                outcome: _Outcome = (None, add(e.dst, _Pending(e.dst, e, label)))
            else:
                outcome = (e, None)
            if e.msg_id is not None:
                found = sends_by_id.get(e.msg_id)
                if found is not None:
                    settle(*found, outcome)
                else:
                    waiting_by_id.setdefault(e.msg_id, []).append(outcome)
                continue
            key = (e.src, e.dst, e.message)
            queue = channel.get(key)
            if queue:
                settle(*queue.popleft(), outcome)
            else:
                waiting.setdefault(key, deque()).append(outcome)
        else:
            add(e.node, _Pending(e.node, e, _local_label(e)))

    # deliveries whose send is outside the window are still events on the receiver's line
    for parked_outcomes in [*waiting.values(), *waiting_by_id.values()]:
        for _, receive in parked_outcomes:
            if receive is not None:
                receive.label += " (sent before the window)"
    for line in lines.values():
        line.sort(key=lambda p: p.event.seq)  # each node's own order

    _assign_clocks(lines)

    frozen: dict[int, Point] = {}

    def point(p: _Pending) -> Point:
        made = frozen.get(id(p))
        if made is None:
            clock = tuple(sorted(p.vector.items()))
            made = frozen[id(p)] = Point(p.node, p.lamport, clock, p.event, p.label)
        return made

    points = sorted(
        (point(p) for line in lines.values() for p in line),
        key=lambda p: (p.lamport, p.node, p.event.seq),
    )
    built = [
        Arrow(
            sent.message,
            sent.src,
            sent.dst,
            point(send),
            point(receive) if receive is not None else None,
            drop.reason if drop is not None else None,
            drop.ts if drop is not None else None,
        )
        for send, sent, receive, drop in sorted(
            arrows, key=lambda a: (first_arrow[id(a[0])], a[2].lamport if a[2] else 0)
        )
    ]
    shown = set(lines) | {a.src for a in built} | {a.dst for a in built}
    return SpaceTime(tuple(sorted(shown)), tuple(points), tuple(built))


def _assign_clocks(lines: dict[int, list[_Pending]]) -> None:
    """Lamport and vector clocks, visiting every node's line in order and a delivery only
    after its send (a delivery can be listed before its send when events of different
    nodes were interleaved by the network)."""
    queues = {node: deque(line) for node, line in sorted(lines.items())}
    lamport = dict.fromkeys(queues, 0)
    vectors: dict[int, dict[int, int]] = {node: {} for node in queues}
    while any(queues.values()):
        progressed = False
        for node, queue in queues.items():
            while queue:
                p = queue[0]
                if p.send is not None and not p.send.done:
                    break
                queue.popleft()
                _tick(p, node, lamport, vectors)
                progressed = True
        if not progressed:  # a cycle only a wrong FIFO match can make: cut it, unmatched
            blocked = next(q[0] for q in queues.values() if q)
            blocked.send = None
            blocked.label += " (send not matched)"


def _tick(
    p: _Pending, node: int, lamport: dict[int, int], vectors: dict[int, dict[int, int]]
) -> None:
    vector = vectors[node]
    clock = lamport[node]
    send = p.send
    if send is not None:
        clock = max(clock, send.lamport)
        for other, count in send.vector.items():
            if count > vector.get(other, 0):
                vector[other] = count
    clock += 1
    vector[node] = vector.get(node, 0) + 1
    lamport[node] = clock
    p.lamport = clock
    p.vector = dict(vector)
    p.done = True


def _diagram(
    source: SpaceTime | Iterable[EventBase],
    start: float | None,
    end: float | None,
    nodes: Iterable[int] | None,
) -> SpaceTime:
    if isinstance(source, SpaceTime):
        if start is not None or end is not None or nodes is not None:
            raise ConfigError("start, end and nodes apply to events, not to a built SpaceTime")
        return source
    return space_time(source, start=start, end=end, nodes=nodes)


# --- layout shared by the Bokeh and SVG renderers --------------------------------------------


@dataclass(frozen=True, slots=True)
class _Segment:
    x0: float
    y0: float
    x1: float
    y1: float
    color: str
    message: str
    style: Literal["delivered", "dropped", "in_flight"]
    label: str


@dataclass(frozen=True, slots=True)
class _Dot:
    x: float
    y: float
    color: str
    label: str
    clock: str
    lamport: int
    ts: float
    local: bool


@dataclass(frozen=True, slots=True)
class _Layout:
    rows: dict[int, int]
    x_min: float
    x_max: float
    segments: tuple[_Segment, ...]
    dots: tuple[_Dot, ...]


def _layout(d: SpaceTime, x: Axis) -> _Layout:
    if x not in ("lamport", "ts"):
        raise ConfigError(f"x must be 'lamport' or 'ts', got {x!r}")
    rows = {node: i for i, node in enumerate(d.nodes)}

    def xpos(p: Point) -> float:
        return float(p.lamport) if x == "lamport" else p.ts

    xs = [xpos(p) for p in d.points] or [0.0]
    x_min, x_max = min(xs), max(xs)
    pad = 1.0 if x == "lamport" else max((x_max - x_min) * 0.03, 0.5)
    x_max_drawn = x_max + pad
    segments: list[_Segment] = []
    for a in d.arrows:
        color = d.color(a.message)
        y0 = float(rows[a.src])
        y1 = float(rows[a.dst])
        x0 = xpos(a.send)
        if a.receive is not None:
            segments.append(
                _Segment(
                    x0, y0, xpos(a.receive), y1, color, a.message, "delivered",
                    f"{a.message} {a.src}→{a.dst}",
                )
            )  # fmt: skip
        elif a.dropped is not None:
            x1 = x0 + 0.5 if x == "lamport" or a.dropped_at is None else max(a.dropped_at, x0)
            segments.append(
                _Segment(
                    x0, y0, x1, (y0 + y1) / 2, color, a.message, "dropped",
                    f"{a.message} {a.src}→{a.dst} dropped: {a.dropped}",
                )
            )  # fmt: skip
        else:
            segments.append(
                _Segment(
                    x0, y0, x_max_drawn, y0 + (y1 - y0) * 0.3, color, a.message, "in_flight",
                    f"{a.message} {a.src}→{a.dst} in flight",
                )
            )  # fmt: skip
    dots = tuple(
        _Dot(
            xpos(p),
            float(rows[p.node]),
            LOCAL_COLOR if p.event.kind not in _MESSAGE_POINT_KINDS else d.color(_msg(p.event)),
            p.label,
            json.dumps({f"node{n}": c for n, c in p.clock}),
            p.lamport,
            p.ts,
            p.event.kind not in _MESSAGE_POINT_KINDS,
        )
        for p in d.points
    )
    return _Layout(rows, x_min - pad, x_max_drawn, tuple(segments), dots)


_MESSAGE_POINT_KINDS = frozenset({"message_sent", "message_delivered"})


def _msg(event: EventBase) -> str:
    return str(getattr(event, "message", ""))


# --- Bokeh ---------------------------------------------------------------------------------


def lamport_figure(
    source: SpaceTime | Iterable[EventBase],
    *,
    start: float | None = None,
    end: float | None = None,
    nodes: Iterable[int] | None = None,
    x: Axis = "lamport",
    width: int = 900,
    height: int | None = None,
    title: str | None = None,
) -> Any:
    """A Bokeh figure of the diagram: a line per node, an arrow per message coloured by kind,
    dropped messages dashed and crossed, hover for labels and vector clocks.

    `source` is a `SpaceTime` or events (then `start`, `end` and `nodes` pick the window).
    """
    from bokeh.models import ColumnDataSource, HoverTool, Range1d
    from bokeh.models.annotations import Arrow as BokehArrow
    from bokeh.models.annotations import NormalHead
    from bokeh.plotting import figure

    d = _diagram(source, start, end, nodes)
    lay = _layout(d, x)
    n = max(len(d.nodes), 1)
    fig = figure(
        width=width,
        height=height or 80 + 60 * n,
        title=title or "Messages between nodes (Lamport diagram)",
        x_axis_label="Lamport time" if x == "lamport" else "time (s)",
        y_range=Range1d(start=n - 0.5, end=-0.5),
        tools="pan,xwheel_zoom,box_zoom,reset,save",
        toolbar_location="above",
    )
    fig.yaxis.ticker = list(range(len(d.nodes)))
    fig.yaxis.major_label_overrides = {i: f"node {node}" for node, i in lay.rows.items()}
    fig.ygrid.visible = False
    ys = [float(i) for i in range(len(d.nodes))]
    fig.segment(
        x0=[lay.x_min] * len(ys), x1=[lay.x_max] * len(ys), y0=ys, y1=ys,
        color="#999999", line_width=2,
    )  # fmt: skip

    for style, dash in (("delivered", "solid"), ("dropped", "dashed"), ("in_flight", "dotted")):
        segs = [s for s in lay.segments if s.style == style]
        if not segs:
            continue
        data = ColumnDataSource(
            {
                "x0": [s.x0 for s in segs],
                "y0": [s.y0 for s in segs],
                "x1": [s.x1 for s in segs],
                "y1": [s.y1 for s in segs],
                "color": [s.color for s in segs],
                "message": [s.message for s in segs],
                "label": [s.label for s in segs],
            }
        )
        if style == "delivered":  # one legend entry per message kind
            lines = fig.segment(
                x0="x0", y0="y0", x1="x1", y1="y1", color="color", line_width=1.5,
                source=data, legend_field="message",
            )  # fmt: skip
        else:
            lines = fig.segment(
                x0="x0", y0="y0", x1="x1", y1="y1", color="color", line_width=1.5,
                line_dash=dash, source=data,
            )  # fmt: skip
        fig.add_tools(HoverTool(renderers=[lines], tooltips=[("message", "@label")]))
        if style == "delivered":
            head = NormalHead(size=7, fill_color="color", line_color="color")
            # the stubs of bokeh 3.9 call these body_line_*; the models take line_*
            body: dict[str, Any] = {"line_color": "color", "line_width": 1.5}
            fig.add_layout(
                BokehArrow(
                    end=head, x_start="x0", y_start="y0", x_end="x1", y_end="y1",
                    source=data, **body,
                )
            )  # fmt: skip
        elif style == "dropped":
            fig.scatter(
                x="x1", y="y1", marker="x", size=10, color=DROP_COLOR, line_width=2,
                source=data, legend_label="dropped",
            )  # fmt: skip

    if lay.dots:
        dots = ColumnDataSource(
            {
                "x": [p.x for p in lay.dots],
                "y": [p.y for p in lay.dots],
                "color": [p.color for p in lay.dots],
                "label": [p.label for p in lay.dots],
                "clock": [p.clock for p in lay.dots],
                "lamport": [p.lamport for p in lay.dots],
                "ts": [p.ts for p in lay.dots],
                "size": [9 if p.local else 5 for p in lay.dots],
            }
        )
        marks = fig.scatter(x="x", y="y", size="size", color="color", source=dots)
        fig.add_tools(
            HoverTool(
                renderers=[marks],
                tooltips=[
                    ("event", "@label"),
                    ("Lamport", "@lamport"),
                    ("time", "@ts"),
                    ("vector clock", "@clock"),
                ],
            )
        )
    if fig.legend:
        legend = fig.legend[0]
        legend.click_policy = "hide"
        fig.add_layout(legend, "right")  # beside the lines, not over them
    return fig


# --- SVG -----------------------------------------------------------------------------------


_SVG_DASH = {
    "delivered": "",
    "dropped": ' stroke-dasharray="5,3"',
    "in_flight": ' stroke-dasharray="2,3"',
}


def to_svg(
    source: SpaceTime | Iterable[EventBase],
    *,
    start: float | None = None,
    end: float | None = None,
    nodes: Iterable[int] | None = None,
    x: Axis = "lamport",
    width: int = 900,
    row_height: int = 60,
    title: str | None = None,
) -> str:
    """The diagram as a standalone SVG document (text): lines, arrows, drops, a legend.

    Hovering an arrow or dot in a browser shows its label (SVG `<title>`).
    """
    d = _diagram(source, start, end, nodes)
    lay = _layout(d, x)
    left, right, top = 80, 20, 40 if title else 20
    kinds = sorted({s.message for s in lay.segments})
    legend_h = 20 * ((len(kinds) + 4) // 5 + 1)
    plot_h = row_height * max(len(d.nodes) - 1, 0)
    height = top + plot_h + 30 + legend_h
    span = (lay.x_max - lay.x_min) or 1.0
    plot_w = width - left - right

    def px(value: float) -> float:
        return round(left + (value - lay.x_min) / span * plot_w, 2)

    def py(row: float) -> float:
        return round(top + row * row_height, 2)

    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        "<defs>",
    ]
    colors = sorted({s.color for s in lay.segments})
    marker_of = {c: f"head{i}" for i, c in enumerate(colors)}
    for color, marker in marker_of.items():
        out.append(
            f'<marker id="{marker}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
            f'fill="{color}"/></marker>'
        )
    out.append("</defs>")
    if title:
        out.append(f'<text x="{left}" y="20" font-size="14">{escape(title)}</text>')
    for node, row in lay.rows.items():
        y = py(row)
        out.append(
            f'<line x1="{px(lay.x_min)}" y1="{y}" x2="{px(lay.x_max)}" y2="{y}" '
            'stroke="#999" stroke-width="2"/>'
        )
        out.append(f'<text x="10" y="{y + 4}">node {node}</text>')
    for s in lay.segments:
        x0, y0, x1, y1 = px(s.x0), py(s.y0), px(s.x1), py(s.y1)
        dash = _SVG_DASH[s.style]
        head = f' marker-end="url(#{marker_of[s.color]})"' if s.style == "delivered" else ""
        out.append(
            f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="{s.color}" '
            f'stroke-width="1.5"{dash}{head}><title>{escape(s.label)}</title></line>'
        )
        if s.style == "dropped":
            out.append(
                f'<path d="M{x1 - 4},{y1 - 4} L{x1 + 4},{y1 + 4} M{x1 - 4},{y1 + 4} '
                f'L{x1 + 4},{y1 - 4}" stroke="{DROP_COLOR}" stroke-width="2">'
                f"<title>{escape(s.label)}</title></path>"
            )
    for p in lay.dots:
        r = 4.5 if p.local else 2.5
        out.append(
            f'<circle cx="{px(p.x)}" cy="{py(p.y)}" r="{r}" fill="{p.color}">'
            f"<title>{escape(p.label)} · Lamport {p.lamport} · {escape(p.clock)}</title></circle>"
        )
    legend_y = top + plot_h + 30
    entries = [(k, next(s.color for s in lay.segments if s.message == k)) for k in kinds]
    entries.append(("dropped", DROP_COLOR))
    for i, (name, color) in enumerate(entries):
        lx = left + (i % 5) * 160
        ly = legend_y + (i // 5) * 20
        out.append(
            f'<line x1="{lx}" y1="{ly}" x2="{lx + 20}" y2="{ly}" stroke="{color}" '
            'stroke-width="3"/>'
        )
        out.append(f'<text x="{lx + 26}" y="{ly + 4}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_svg(path: str | Path, source: SpaceTime | Iterable[EventBase], **options: Any) -> Path:
    """Write `to_svg(source, **options)` to `path`; returns the path."""
    target = Path(path)
    target.write_text(to_svg(source, **options), encoding="utf-8")
    return target


# --- ShiViz --------------------------------------------------------------------------------


def to_shiviz(
    source: SpaceTime | Iterable[EventBase],
    *,
    start: float | None = None,
    end: float | None = None,
    nodes: Iterable[int] | None = None,
) -> str:
    """The diagram in ShiViz's log format: one line per event, `host {vector clock} text`.

    Paste it into ShiViz with `SHIVIZ_REGEX` as the parser (see the module docstring).
    """
    d = _diagram(source, start, end, nodes)
    dropped = {id(a.send): a.dropped for a in d.arrows if a.dropped is not None}
    ordered = sorted(d.points, key=lambda p: (p.lamport, p.node, p.event.seq))
    lines = []
    for p in ordered:
        clock = json.dumps({f"node{n}": c for n, c in p.clock}, separators=(",", ":"))
        text = f"{p.event.kind} {p.label} [ts={p.ts:g}]"
        reason = dropped.get(id(p))
        if reason is not None:
            text += f" (dropped: {reason})"
        lines.append(f"node{p.node} {clock} {text}")
    return "\n".join(lines) + ("\n" if lines else "")


def write_shiviz(path: str | Path, source: SpaceTime | Iterable[EventBase], **options: Any) -> Path:
    """Write `to_shiviz(source, **options)` to `path`; returns the path."""
    target = Path(path)
    target.write_text(to_shiviz(source, **options), encoding="utf-8")
    return target
