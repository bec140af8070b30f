"""Workflows: a table of every run, and the checkpoint queue of one run on every node.

Per node and checkpoint ordinal: consumed by that node's run (solid green), committed and
waiting in its queue (amber), committed in the cluster but not yet on this node (outlined),
proposed by the owner and not committed yet (dashed).
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from raftoral_lab.dashboard import theme
from raftoral_lab.dashboard.model import Model
from raftoral_lab.events.view import WorkflowState

COLUMNS = ("id", "name", "version", "status", "owner", "checkpoints", "result / error")
MAX_QUEUE_CELLS = 30
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
