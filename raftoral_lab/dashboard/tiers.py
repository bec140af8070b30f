# mypy: disable-error-code="no-untyped-call"
"""The two tiers of a scaled cluster: the management group above its execution clusters.

On top, group 0: its voters and learners in their role colours, its leader marked, and which
nodes the manager saw alive when it made its newest plan. Below, one box per execution
cluster (each its own Raft group): its members coloured by their role *in that group*, the
cluster's leader marked, crashed nodes grey, and a node that serves several clusters marked
"shared" in each of them.

Everything comes from the events (`ClusterView.plan`, roles and memberships per group);
where they say nothing (a node not heard from in a group yet), the view says "joining"
rather than guess. `TiersView` is the Panel `Viewer`; `render_tiers(view)` is the pure SVG.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import panel as pn
from panel.viewable import Viewer

from raftoral_lab.dashboard import theme
from raftoral_lab.dashboard.model import Model
from raftoral_lab.dashboard.roles import NodeLook, looks
from raftoral_lab.events.view import ClusterView

WIDTH = 1360
PAD = 14
SHARED = "#6A3D9A"
"""Dark purple: the ring and word of a node that serves several execution clusters."""
UNSEEN = theme.DANGER
BOX_FILL = "#F7F8FA"
TIER_FILL = "#EEF1F6"

MGMT_SLOT = (84.0, 104.0)
"""Narrowest and widest room of one node of the management tier."""
MEMBER_SLOT = 82.0
"""Room of one member in an execution cluster's box (at least)."""
MEMBER_R = 29.0
BOX_GAP = 18.0


def is_scaled(view: ClusterView) -> bool:
    """Whether the events describe a scaled cluster with execution clusters (or a plan that
    once had them): the view is drawn only then, so a plain cluster's page is unchanged."""
    return bool(view.execution_clusters) or (view.management_version or 0) > 0


# --- drawing one node ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Spot:
    """A node drawn somewhere: where, how big, and what the words under it say."""

    look: NodeLook
    x: float
    y: float
    r: float
    caption: str
    detail: str = ""
    detail_color: str = theme.MUTED
    leader: bool = False
    shared: bool = False
    unseen: bool = False
    faded: bool = False
    caption_size: float = 17.0


def _node(spot: _Spot, cls: str, data: dict[str, str]) -> str:
    look, x, y, r = spot.look, spot.x, spot.y, spot.r
    color = theme.role_color(look.role)
    attrs = "".join(f' data-{k}="{escape(v)}"' for k, v in data.items())
    opacity = ' opacity=".55"' if spot.faded else ""
    out = [f'<g class="{cls}"{attrs}{opacity}>']
    if spot.leader:
        out.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r + 9:.1f}" fill="none" stroke="{color}" '
            'stroke-width="5" opacity=".5"/>'
        )
    if spot.shared:
        out.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r + 5:.1f}" fill="none" stroke="{SHARED}" '
            'stroke-width="3.5" stroke-dasharray="7 4"/>'
        )
    if spot.unseen:
        out.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r + 5:.1f}" fill="none" stroke="{UNSEEN}" '
            'stroke-width="3" stroke-dasharray="4 4"/>'
        )
    if look.role == "removed":
        out.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="#FFFFFF" stroke="{color}" '
            'stroke-width="3" stroke-dasharray="6 5"/>'
        )
        ink = color
    else:
        out.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{color}" stroke="{theme.INK}" '
            'stroke-opacity=".35" stroke-width="2.5"/>'
        )
        ink = "#FFFFFF"
    if look.role == "dead":  # crossed out under its name, the name in dark ink to stay legible
        d = r * 0.62
        out.append(
            f'<path d="M{x - d:.1f},{y - d:.1f} L{x + d:.1f},{y + d:.1f} M{x + d:.1f},'
            f'{y - d:.1f} L{x - d:.1f},{y + d:.1f}" stroke="#FFFFFF" stroke-width="4" '
            'stroke-linecap="round" opacity=".7"/>'
        )
        ink = theme.INK
    size = r * (0.78 if look.node < 10 else 0.68 if look.node < 100 else 0.55)
    out.append(
        f'<text x="{x:.1f}" y="{y + size * 0.36:.1f}" text-anchor="middle" '
        f'font-size="{size:.0f}" font-weight="800" fill="{ink}">n{look.node}</text>'
    )
    if spot.leader:
        out.append(
            f'<text x="{x + r * 0.72:.1f}" y="{y - r * 0.62:.1f}" text-anchor="middle" '
            f'font-size="{max(24.0, r * 0.9):.0f}" fill="{theme.ROLE_COLORS["leader"]}" '
            f'stroke="{theme.INK}" stroke-width=".9">★</text>'
        )
    out.append(
        f'<text x="{x:.1f}" y="{y + r + 22:.1f}" text-anchor="middle" '
        f'font-size="{spot.caption_size:g}" font-weight="700" fill="{theme.INK}">'
        f"{escape(spot.caption)}</text>"
    )
    if spot.detail:
        out.append(
            f'<text x="{x:.1f}" y="{y + r + 42:.1f}" text-anchor="middle" font-size="15.5" '
            f'font-weight="650" fill="{spot.detail_color}">{escape(spot.detail)}</text>'
        )
    out.append("</g>")
    return "".join(out)


SHORT_LABELS = {"pre_candidate": "pre-cand."}
"""Words that would not fit under a node in a row of them."""


def _role_word(look: NodeLook) -> str:
    return SHORT_LABELS.get(look.role) or theme.ROLE_LABELS.get(look.role, look.role)


def _clusters_word(clusters: Sequence[int]) -> str:
    if not clusters:
        return "spare"
    return "in " + " + ".join(f"c{c}" for c in clusters)


# --- the management tier -------------------------------------------------------------------


def _management(view: ClusterView, top: float) -> tuple[list[str], float]:
    """Group 0: voters, then learners; the leader starred; unseen nodes ringed in red."""
    nodes = {look.node: look for look in looks(view, 0)}
    membership = view.membership(0)
    voters = [n for n in (membership[0] if membership else ()) if n in nodes]
    rest = [n for n in nodes if n not in voters]
    learners = [n for n in rest if membership is not None and n in membership[1]]
    others = [n for n in rest if n not in learners]
    leader = view.leader(0)
    plan = view.plan
    live = set(view.live_by_manager)
    seen = sum(1 for n in nodes if n in live)

    # the header line of the tier
    head_y = top + 34
    out = []
    title = "Management · group 0"
    if leader is not None:
        lead = f"leader n{leader} ★"
        lead_color = "#B36B00"
    else:
        lead, lead_color = "no leader", theme.DANGER
    version = f"plan v{plan.version}" if plan is not None else "no plan yet"
    seen_text = f"manager sees {seen} of {len(nodes)} alive" if plan is not None else ""

    # node positions: voters, a gap, then learners (and any node of unknown place)
    groups = [g for g in (voters, learners + others) if g]
    gap = 44.0 if len(groups) > 1 else 0.0
    usable = WIDTH - 2 * PAD - 24 - gap
    count = max(1, sum(len(g) for g in groups))
    slot = min(MGMT_SLOT[1], max(MGMT_SLOT[0], usable / count))
    per_row = max(1, int(usable // slot))
    r = min(30.0, slot * 0.31)
    row_h = 2 * r + 74
    first_y = head_y + 34 + r + 8
    spots: list[tuple[_Spot, bool]] = []
    x = PAD + 12 + slot / 2
    row = 0
    used = 0
    bands: list[tuple[float, float, str, float]] = []  # (x from, x to, label, y)
    for gi, group in enumerate(groups):
        label = "voters" if group is voters else ("learners" if learners else "nodes")
        start_x, start_row = x, row
        for node in group:
            if used == per_row:
                row, used, x = row + 1, 0, PAD + 12 + slot / 2
            y = first_y + row * row_h
            look = nodes[node]
            unseen = plan is not None and node not in live
            detail, detail_color = _clusters_word(view.clusters_of(node)), theme.MUTED
            if unseen:
                detail, detail_color = "not seen", UNSEEN
            elif view.clusters_of(node) and len(view.clusters_of(node)) > 1:
                detail_color = SHARED
            spot = _Spot(
                look,
                x,
                y,
                r,
                _role_word(look),
                detail,
                detail_color,
                leader=look.is_leader,
                unseen=unseen,
                caption_size=17.0 if slot >= 90 else 16.0,
            )
            spots.append((spot, group is voters))
            x += slot
            used += 1
        end_x = x - slot / 2 if row == start_row else PAD + 12 + per_row * slot
        bands.append((start_x - slot / 2, end_x, label, first_y + start_row * row_h))
        if gi < len(groups) - 1:
            x += gap
    height = first_y + row * row_h + r + 56 - top
    out.append(
        f'<rect x="{PAD}" y="{top:.1f}" width="{WIDTH - 2 * PAD}" height="{height:.1f}" rx="16" '
        f'fill="{TIER_FILL}" stroke="#C9D1DE" stroke-width="2"/>'
    )
    out.append(
        f'<text x="{PAD + 18}" y="{head_y:.1f}" font-size="25" font-weight="800" '
        f'fill="{theme.INK}">{escape(title)}<tspan dx="22" font-size="23" fill="{lead_color}" '
        f'data-management-leader="{leader if leader is not None else ""}">{escape(lead)}'
        "</tspan></text>"
    )
    out.append(
        f'<text x="{WIDTH - PAD - 18}" y="{head_y:.1f}" text-anchor="end" font-size="19" '
        f'font-weight="600" fill="{theme.MUTED}">{escape(version)}'
        f"{' · ' + escape(seen_text) if seen_text else ''}</text>"
    )
    for x0, x1, label, y in bands:
        out.append(
            f'<text x="{(x0 + x1) / 2:.1f}" y="{y - r - 14:.1f}" text-anchor="middle" '
            f'font-size="15" font-weight="700" letter-spacing="1.5" fill="{theme.MUTED}">'
            f"{label.upper()}</text>"
        )
    if len(bands) > 1:
        sep = bands[0][1] + gap / 2
        y = bands[0][3]
        out.append(
            f'<line x1="{sep:.1f}" y1="{y - r - 8:.1f}" x2="{sep:.1f}" y2="{y + r + 46:.1f}" '
            f'stroke="#B7BFCC" stroke-width="2" stroke-dasharray="5 5"/>'
        )
    for spot, voter in spots:
        node = spot.look.node
        out.append(
            _node(
                spot,
                "tier-node",
                {
                    "node": str(node),
                    "role": spot.look.role,
                    "status": spot.look.status,
                    "voter": str(voter).lower(),
                    "leader": str(spot.leader).lower(),
                    "seen": "" if plan is None else str(not spot.unseen).lower(),
                    "clusters": ",".join(map(str, view.clusters_of(node))),
                },
            )
        )
    return out, height


# --- the execution tier --------------------------------------------------------------------


def _columns(count: int, widest: int) -> int:
    """How many cluster boxes side by side: as many as fit their widest member row."""
    need = widest * MEMBER_SLOT + 20
    for cols in range(min(count, 4), 0, -1):
        box_w = (WIDTH - 2 * PAD - (cols - 1) * BOX_GAP) / cols
        if box_w >= need:
            return cols
    return 1


def _cluster_box(
    view: ClusterView,
    cluster: int,
    planned: tuple[int, ...],
    x0: float,
    y0: float,
    w: float,
    h: float,
    all_looks: dict[int, NodeLook],
) -> list[str]:
    leader = view.leader(cluster)
    membership = view.membership(cluster)
    in_raft = set(membership[0]) | set(membership[1]) if membership is not None else None
    leaving = sorted(in_raft - set(planned)) if in_raft is not None else []
    shown = [*planned, *[n for n in leaving if n in all_looks]]
    term = view.term(cluster)
    alive = sum(1 for n in planned if n in all_looks and all_looks[n].status == "alive")
    majority = len(planned) // 2 + 1
    healthy = leader is not None
    dash = "" if healthy else ' stroke-dasharray="10 6"'
    out = [
        f'<g class="cluster" data-cluster="{cluster}" '
        f'data-leader="{leader if leader is not None else ""}" '
        f'data-members="{",".join(map(str, planned))}" data-term="{term}">'
        f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{w:.1f}" height="{h:.1f}" rx="14" '
        f'fill="{BOX_FILL}" stroke="{theme.FAINT if healthy else theme.DANGER}" '
        f'stroke-width="{2 if healthy else 3}"{dash}/>'
    ]
    out.append(
        f'<text x="{x0 + 16:.1f}" y="{y0 + 34:.1f}" font-size="24" font-weight="800" '
        f'fill="{theme.INK}">cluster {cluster}</text>'
    )
    if leader is not None:
        lead, lead_color = f"leader n{leader} ★", "#B36B00"
    else:
        lead, lead_color = "no leader", theme.DANGER
    out.append(
        f'<text x="{x0 + w - 16:.1f}" y="{y0 + 34:.1f}" text-anchor="end" font-size="22" '
        f'font-weight="800" fill="{lead_color}">{escape(lead)}</text>'
    )
    sub = f"group {cluster} · term {term} · {alive}/{len(planned)} alive"
    if alive < majority:
        sub += " · no majority"
    out.append(
        f'<text x="{x0 + 16:.1f}" y="{y0 + 58:.1f}" font-size="16" font-weight="600" '
        f'fill="{theme.DANGER if alive < majority else theme.MUTED}">{escape(sub)}</text>'
    )
    per_row = max(1, int((w - 20) // MEMBER_SLOT))
    slot = min(MEMBER_SLOT * 1.3, (w - 20) / min(per_row, max(1, len(shown))))
    r = MEMBER_R
    for i, node in enumerate(shown):
        row, col = divmod(i, per_row)
        in_row = min(per_row, len(shown) - row * per_row)
        x = x0 + w / 2 + (col - (in_row - 1) / 2) * slot
        y = y0 + 84 + r + row * (2 * r + 72)
        base = all_looks.get(node)
        look = _member_look(view, node, cluster, base)
        clusters = view.clusters_of(node)
        others = [c for c in clusters if c != cluster]
        is_leader = leader == node and look.status == "alive"
        unknown = look.role == "unknown"
        joining = in_raft is not None and node in planned and node not in in_raft
        caption = _role_word(look)
        if unknown or (joining and look.status == "alive"):
            caption = "joining"
        detail, color = "", theme.MUTED
        if node in leaving:
            detail, color = "leaving", UNSEEN
        elif others:
            detail = "also " + " ".join(f"c{c}" for c in others)
            color = SHARED
        spot = _Spot(
            look,
            x,
            y,
            r,
            caption,
            detail,
            color,
            leader=is_leader,
            shared=bool(others),
            faded=node in leaving,
            caption_size=17.0 if slot >= 90 else 15.5,
        )
        out.append(
            _node(
                spot,
                "member",
                {
                    "cluster": str(cluster),
                    "node": str(node),
                    "role": look.role,
                    "status": look.status,
                    "leader": str(is_leader).lower(),
                    "shared": ",".join(map(str, others)),
                    "planned": str(node in planned).lower(),
                    "joining": str(joining or unknown).lower(),
                },
            )
        )
    out.append("</g>")
    return out


def _member_look(view: ClusterView, node: int, group: int, base: NodeLook | None) -> NodeLook:
    """The node as group `group` sees it (the look of a node never heard from: unknown)."""
    if base is not None:
        return base
    status = view.nodes[node].status if node in view.nodes else "alive"
    return NodeLook(node, "unknown", status, 0, False, False, False, 0, 0)


def _execution(view: ClusterView, top: float) -> tuple[list[str], float]:
    clusters = view.execution_clusters
    out = [
        f'<text x="{PAD + 4}" y="{top + 26:.1f}" font-size="23" font-weight="800" '
        f'fill="{theme.INK}">Execution clusters<tspan dx="16" font-size="18" font-weight="600" '
        f'fill="{theme.MUTED}">each its own Raft group and leader; a workflow runs in one'
        "</tspan></text>",
    ]
    if not clusters:
        out.append(
            f'<text x="{WIDTH / 2}" y="{top + 80:.1f}" text-anchor="middle" font-size="22" '
            f'fill="{theme.MUTED}">the newest plan has no execution cluster</text>'
        )
        return out, 110.0
    sizes: dict[int, int] = {}
    for cluster, planned in clusters.items():
        membership = view.membership(cluster)
        extra = 0
        if membership is not None:
            extra = len((set(membership[0]) | set(membership[1])) - set(planned))
        sizes[cluster] = len(planned) + extra
    widest = max(sizes.values())
    cols = _columns(len(clusters), widest)
    box_w = (WIDTH - 2 * PAD - (cols - 1) * BOX_GAP) / cols
    per_row = max(1, int((box_w - 20) // MEMBER_SLOT))
    ids = sorted(clusters)
    y = top + 42
    for start in range(0, len(ids), cols):
        line = ids[start : start + cols]
        member_rows = max(math.ceil(sizes[c] / per_row) for c in line)
        box_h = 84 + member_rows * (2 * MEMBER_R + 72) + 6
        for i, cluster in enumerate(line):
            x0 = PAD + i * (box_w + BOX_GAP)
            all_looks = {look.node: look for look in looks(view, cluster)}
            out += _cluster_box(view, cluster, clusters[cluster], x0, y, box_w, box_h, all_looks)
        y += box_h + BOX_GAP
    return out, y - top


def render_tiers(view: ClusterView) -> str:
    """The management tier above the execution clusters, as one SVG (empty notice when the
    events describe no scaled cluster)."""
    if not is_scaled(view):
        return (
            f'<svg viewBox="0 0 {WIDTH} 90" class="tiers" data-clusters="0">'
            f'<text x="{WIDTH / 2}" y="52" text-anchor="middle" font-size="22" '
            f'fill="{theme.MUTED}">no execution clusters: not a scaled cluster, or no plan yet'
            "</text></svg>"
        )
    management, m_height = _management(view, 6.0)
    execution, e_height = _execution(view, 6.0 + m_height + 18)
    height = 6.0 + m_height + 18 + e_height + 4
    version = view.management_version
    return (
        f'<svg viewBox="0 0 {WIDTH} {height:.0f}" class="tiers" role="img" '
        f'aria-label="management group and execution clusters" '
        f'data-clusters="{len(view.execution_clusters)}" '
        f'data-version="{version if version is not None else ""}">'
        + "".join(management)
        + "".join(execution)
        + "</svg>"
    )


def render_tiers_legend() -> str:
    keys = ("leader", "follower", "candidate", "learner", "dead")
    chips = "".join(theme.chip(theme.ROLE_LABELS[k], theme.ROLE_COLORS[k]) for k in keys)
    extra = (
        theme.chip("★ leader of that group", "#FFFFFF", ink=theme.INK)
        + theme.chip("shared: in several clusters", SHARED)
        + theme.chip("not seen by the manager", UNSEEN)
    )
    return f'<div class="legend">{chips}{extra}</div>'


# --- the Panel view ------------------------------------------------------------------------

ViewSource = Model | ClusterView | Callable[[], ClusterView]


class TiersView(Viewer):
    """The two tiers as a Panel card: `pn.panel(TiersView(lab_view))` in a notebook, or part
    of the dashboard, which calls `update()` when new events were folded.

    `source` is a dashboard `Model` (its view is read at each update, so a replay that folds
    again from the start is followed), a `ClusterView`, or a function returning one. The card
    is visible only while the events describe a scaled cluster (`is_scaled`)."""

    def __init__(self, source: ViewSource, **params: Any) -> None:
        super().__init__(**params)
        self._source = source
        self.pane = pn.pane.HTML(
            "",
            sizing_mode="stretch_width",
            stylesheets=[theme.HTML_CSS],
            margin=(0, 4),
            css_classes=["tiers-pane"],
        )
        title = (
            '<div class="title">Management and execution clusters<span class="subtitle">'
            "group 0 plans who runs where; each cluster elects its own leader</span></div>"
        )
        self._layout = pn.Column(
            pn.pane.HTML(
                title, sizing_mode="stretch_width", stylesheets=[theme.HTML_CSS], margin=(0, 4)
            ),
            self.pane,
            pn.pane.HTML(
                render_tiers_legend(),
                sizing_mode="stretch_width",
                stylesheets=[theme.HTML_CSS],
                margin=(0, 4),
            ),
            sizing_mode="stretch_width",
            stylesheets=[theme.CARD_CSS],
            margin=(8, 8),
            visible=False,
            css_classes=["tiers-card"],
        )
        self.update()

    @property
    def view(self) -> ClusterView:
        source = self._source
        if isinstance(source, Model):
            return source.view
        if isinstance(source, ClusterView):
            return source
        return source()

    @property
    def visible(self) -> bool:
        return bool(self._layout.visible)

    def update(self) -> None:
        """Redraw from the view (only what changed reaches the browser)."""
        view = self.view
        scaled = is_scaled(view)
        if scaled:
            html = render_tiers(view)
            if self.pane.object != html:
                self.pane.object = html
        if self._layout.visible != scaled:
            self._layout.visible = scaled

    refresh = update
    """The name every dashboard view answers to."""

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
