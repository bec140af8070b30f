# mypy: disable-error-code="no-untyped-call"
"""The Panel pieces every view is built of: an HTML pane, a card, and an update that sends
only what changed.

The drawings are strings (SVG in HTML) made by the `render_*` functions; a view puts one in a
pane and, on `refresh()`, replaces it only when the string differs, so an unchanged picture
costs the browser nothing.
"""

from __future__ import annotations

from html import escape
from typing import Any, ClassVar

import panel as pn
from panel.viewable import Viewer

from raftoral_lab.dashboard import theme
from raftoral_lab.dashboard.model import Model

_extension_loaded = False


def ensure_extension() -> None:
    """Load Panel's extension once (Tabulator for the workflow table)."""
    global _extension_loaded
    if not _extension_loaded:
        pn.extension("tabulator", notifications=False, design="native")
        _extension_loaded = True


def html_pane(obj: str = "", **kwargs: Any) -> pn.pane.HTML:
    """A full-width HTML pane with the dashboard's type and colours."""
    return pn.pane.HTML(
        obj, sizing_mode="stretch_width", stylesheets=[theme.HTML_CSS], margin=(0, 4), **kwargs
    )


def card(title: str, *objects: Any, subtitle: str = "", **kwargs: Any) -> pn.Column:
    """A titled white card around `objects` (each view is one)."""
    sub = f'<span class="subtitle">{escape(subtitle)}</span>' if subtitle else ""
    return pn.Column(
        html_pane(f'<div class="title">{escape(title)}{sub}</div>'),
        *objects,
        sizing_mode="stretch_width",
        stylesheets=[theme.CARD_CSS],
        margin=(8, 8),
        **kwargs,
    )


def set_html(pane: pn.pane.HTML, html: str) -> None:
    """Show `html` in `pane`; nothing reaches the browser when it is already shown."""
    if pane.object != html:
        pane.object = html


class PictureView(Viewer):
    """A card with one drawing and its legend, redrawn from the model by `refresh()`: what
    the topology, the timeline and the logs each are. A subclass says what to draw."""

    title: ClassVar[str] = ""
    subtitle: ClassVar[str] = ""
    pane_class: ClassVar[str] = ""
    """The CSS class of the drawing's pane (pages and tests find the picture by it)."""

    def __init__(self, model: Model, **params: Any) -> None:
        super().__init__(**params)
        self.model = model
        self.pane = html_pane(css_classes=[self.pane_class])
        self._layout = card(self.title, self.pane, html_pane(self.legend()), subtitle=self.subtitle)
        self.refresh()

    def draw(self) -> str:
        """The picture, as SVG in HTML."""
        raise NotImplementedError

    def legend(self) -> str:
        return ""

    def refresh(self) -> None:
        """Redraw from the model (only a changed picture reaches the browser)."""
        set_html(self.pane, self.draw())

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
