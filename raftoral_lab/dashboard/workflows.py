# mypy: disable-error-code="no-untyped-call"
"""Workflows: a table of every run, and the checkpoint queue of one run on every node.

Per node and checkpoint ordinal: consumed by that node's run (solid green), committed and
waiting in its queue (amber), committed in the cluster but not yet on this node (outlined),
proposed by the owner and not committed yet (dashed).
`WorkflowsView` is the Panel `Viewer` (the table, and the queues of the row selected);
`workflow_rows` and `render_queues` are the pure data and SVG.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from html import escape
from importlib import import_module
from typing import Any

import panel as pn
from panel.viewable import Viewer

from raftoral_lab.dashboard import theme
from raftoral_lab.dashboard.model import Model
from raftoral_lab.dashboard.panes import card, ensure_extension, html_pane, set_html
from raftoral_lab.events.view import WorkflowState

pd: Any = import_module("pandas")  # the table's frames (no stubs: typed as Any)

COLUMNS = ("id", "name", "version", "status", "owner", "checkpoints", "result / error")
MAX_QUEUE_CELLS = 30
MAX_FINISHED_ROWS = 100
"""The table shows every running workflow and the latest finished ones: a demo's workload
ends thousands, and a table redrawn with all of them would slow every refresh."""
FINISHED = frozenset({"completed", "failed", "cancelled"})
NO_RESULT = "(result not in the events)"


def ordered(model: Model) -> list[WorkflowState]:
    """Workflows in start order (a stable order: table rows keep their place)."""
    return sorted(
        model.view.workflows.values(),
        key=lambda w: (w.started if w.started is not None else float("inf"), w.id),
    )


def workflow_rows(model: Model, results: Mapping[str, str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for w in ordered(model):
        committed = sum(1 for c in w.checkpoints.values() if c.committed)
        known = len(w.checkpoints)
        if w.error_type is not None:
            outcome = f"{w.error_type}: {w.error_message or ''}"
        elif w.status == "completed":
            result = getattr(w, "result", None)  # the events' own text of it, when they say
            outcome = result if result is not None else results.get(w.id, NO_RESULT)
        elif w.divergences:
            d = min(w.divergences, key=lambda d: (d.node, d.ordinal))
            outcome = f"divergence on n{d.node} at #{d.ordinal}"
        else:
            outcome = ""
        rows.append(
            {
                "id": w.id,
                "name": w.name or "?",
                "version": w.version if w.version is not None else "",
                "status": w.status,
                "owner": f"n{w.owner}" if w.owner is not None else "",
                "checkpoints": f"{committed}" if committed == known else f"{committed}/{known}",
                "result / error": outcome,
            }
        )
    return rows


def latest_rows(
    rows: list[dict[str, Any]], keep: str | None = None, limit: int = MAX_FINISHED_ROWS
) -> tuple[list[dict[str, Any]], int]:
    """`rows` without the oldest finished ones beyond `limit` (the row of `keep` stays),
    and how many were left out."""
    finished = [i for i, row in enumerate(rows) if row["status"] in FINISHED]
    hidden = set(finished[: max(0, len(finished) - limit)])
    hidden -= {i for i, row in enumerate(rows) if row["id"] == keep}
    return [row for i, row in enumerate(rows) if i not in hidden], len(hidden)


def render_queues(model: Model, workflow_id: str | None) -> str:
    if workflow_id is None or workflow_id not in model.view.workflows:
        count = len(model.view.workflows)
        hint = "no workflow has started yet"
        if count:
            hint = "select a workflow in the table to see its checkpoint queues"
        return f'<div class="note" data-queues="none">{hint}</div>'
    w = model.view.workflows[workflow_id]
    status_color = theme.STATUS_COLORS.get(w.status, theme.MUTED)
    head = (
        f'<div class="queues-head" data-workflow="{escape(w.id)}" data-status="{w.status}">'
        f'<span class="title" style="font-size:22px">{escape(w.name or "?")} '
        f"v{w.version if w.version is not None else '?'}</span> "
        f"{theme.chip(w.status, status_color)}"
        f'<span class="subtitle">id {escape(w.id[:18])} · owner '
        f"{'n' + str(w.owner) if w.owner is not None else '?'} · epoch "
        f"{w.epoch if w.epoch is not None else '-'}"
        f"{' · stale proposals ' + str(w.stale) if w.stale else ''}</span></div>"
    )
    ordinals = sorted(w.checkpoints)
    if len(ordinals) > MAX_QUEUE_CELLS:
        ordinals = ordinals[-MAX_QUEUE_CELLS:]
    nodes = sorted(n for n in w.nodes if n > 0)
    if not ordinals and not nodes:
        return head + '<div class="note">no checkpoint yet</div>'
    cell = 58
    label = 250
    width = max(label + cell * max(len(ordinals), 1) + 20, 700)
    row_h = 52
    top = 40
    height = top + row_h * len(nodes) + 10
    out = [
        head,
        f'<svg viewBox="0 0 {width} {height}" class="queues" role="img" '
        f'style="max-width:{width * 1.3:.0f}px">',
    ]
    for k, ordinal in enumerate(ordinals):
        cp = w.checkpoints[ordinal]
        x = label + k * cell + cell / 2
        key = cp.key if len(cp.key) <= 8 else cp.key[:7] + "…"
        out.append(
            f'<text x="{x:.1f}" y="16" text-anchor="middle" font-size="13" '
            f'fill="{theme.MUTED}">#{ordinal}</text>'
            f'<text x="{x:.1f}" y="33" text-anchor="middle" font-size="13" font-weight="650" '
            f'fill="{theme.INK}"><title>{escape(cp.key)}</title>{escape(key)}</text>'
        )
    for row, node in enumerate(nodes):
        run = w.nodes[node]
        y = top + row * row_h
        pending = run.pending
        consumed = len(run.consumed)
        out.append(
            f'<g class="queue" data-node="{node}" data-consumed="{consumed}" '
            f'data-pending="{len(pending)}" data-committed="{len(run.committed)}" '
            f'data-status="{run.status}">'
            f'<text x="6" y="{y + 31}" font-size="22" font-weight="800" '
            f'fill="{theme.INK}">n{node}</text>'
            f'<text x="56" y="{y + 22}" font-size="14.5" fill="{theme.MUTED}">consumed {consumed}'
            f" · queued {len(pending)}</text>"
            f'<text x="56" y="{y + 40}" font-size="14.5" '
            f'fill="{theme.STATUS_COLORS.get(run.status, theme.MUTED)}" font-weight="700">'
            f"{run.status}</text>"
        )
        for k, ordinal in enumerate(ordinals):
            cp = w.checkpoints[ordinal]
            x = label + k * cell
            if ordinal in run.consumed:
                fill, stroke, dash, mark, ink = "#009E73", "#00785A", "", "✓", "#FFFFFF"
            elif ordinal in run.committed:
                fill, stroke, dash, mark, ink = "#E69F00", "#B07A00", "", "queued", "#1F2430"
            elif cp.committed:
                fill, stroke, dash, mark, ink = "#FFFFFF", "#9AA0A6", "", "", theme.MUTED
            else:
                fill, stroke, mark, ink = "#FFFFFF", "#0072B2", "prop.", "#0072B2"
                dash = ' stroke-dasharray="5 4"'
            out.append(
                f'<rect x="{x + 3}" y="{y + 6}" width="{cell - 6}" height="{row_h - 12}" rx="7" '
                f'fill="{fill}" stroke="{stroke}" stroke-width="2"{dash}/>'
            )
            if mark:
                size = 20 if mark == "✓" else 12
                out.append(
                    f'<text x="{x + cell / 2}" y="{y + row_h / 2 + (7 if size == 20 else 4)}" '
                    f'text-anchor="middle" font-size="{size}" font-weight="800" '
                    f'fill="{ink}">{mark}</text>'
                )
        out.append("</g>")
    out.append("</svg>")
    legend = (
        '<div class="legend note">'
        + theme.chip("✓ consumed", "#009E73")
        + theme.chip("queued (committed, not consumed)", "#E69F00", ink="#1F2430")
        + '<span class="chip" style="border:2px solid #9AA0A6;color:#5F6368">'
        "committed elsewhere</span>"
        + '<span class="chip" style="border:2px dashed #0072B2;color:#0072B2">'
        "proposed, not committed</span></div>"
    )
    return "".join(out) + legend


# --- the Panel view ------------------------------------------------------------------------

_TABLE_CSS = """
.tabulator { font-size: 17px; }
.tabulator .tabulator-header .tabulator-col { font-size: 15px; }
.tabulator-row .tabulator-cell { padding: 7px 8px; }
.tabulator-row.tabulator-selected { background-color: #FFE6A8 !important; }
"""


class WorkflowsView(Viewer):
    """The workflows card: a table of every run and, for the row selected, its checkpoint
    queue on every node. `results()` gives the results the controller saw (a Lab's runs
    return them; the events do not carry them)."""

    def __init__(
        self,
        model: Model,
        results: Callable[[], Mapping[str, str]] = dict,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        ensure_extension()  # Tabulator
        self.model = model
        self.results = results
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=list(COLUMNS)),
            selectable=1,
            disabled=True,
            show_index=False,
            sizing_mode="stretch_width",
            height=240,
            layout="fit_columns",
            visible=False,
            theme="simple",
            stylesheets=[_TABLE_CSS],
            css_classes=["workflow-table"],
            widths={"id": 150, "version": 90, "status": 130, "owner": 90, "checkpoints": 140},
        )
        self.queues = html_pane(css_classes=["queues-pane"])
        self.left_out = html_pane(css_classes=["workflows-left-out"])
        self.rows: list[dict[str, Any]] = []
        """The rows shown, in table order (full ids)."""
        self.selected: str | None = None
        """The id of the workflow whose queues are shown."""
        self.table.param.watch(self._selection_changed, "selection")
        self._layout = card(
            "Workflows",
            self.table,
            self.left_out,
            self.queues,
            subtitle="select a row to see its checkpoint queue on every node",
        )
        self.refresh()

    def refresh(self) -> None:
        """The table (sent again only when a row changed) and the queues of the selection."""
        rows, left_out = latest_rows(workflow_rows(self.model, self.results()), self.selected)
        set_html(
            self.left_out,
            f'<div class="left-out" data-count="{left_out}">{left_out} older finished '
            "workflows not shown (the events keep them)</div>"
            if left_out
            else "",
        )
        if rows != self.rows:
            self.rows = rows
            self.table.visible = bool(rows)
            height = min(300, 44 + 36 * len(rows))
            if self.table.height != height:
                self.table.height = height
            shown = [{**row, "id": str(row["id"])[:12]} for row in rows]  # the head: full id
            frame = pd.DataFrame(shown, columns=list(COLUMNS))
            selected = self.selected
            self.table.value = frame
            if selected is not None:
                ids = [r["id"] for r in rows]
                if selected in ids:
                    index = ids.index(selected)
                    if self.table.selection != [index]:
                        self.table.selection = [index]
        set_html(self.queues, render_queues(self.model, self.selected))

    def select(self, workflow_id: str) -> None:
        """Show the queues of `workflow_id` (as a click on its row does)."""
        self.selected = workflow_id
        self.refresh()

    def _selection_changed(self, event: Any) -> None:
        if event.new:
            index = event.new[0]
            if 0 <= index < len(self.rows):
                self.selected = str(self.rows[index]["id"])
        set_html(self.queues, render_queues(self.model, self.selected))

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
