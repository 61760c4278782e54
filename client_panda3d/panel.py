"""The 2-D layer of the AR view: status line at the top, step panel (progress, text, buttons) at the bottom.

Drawn with Panda3D text (the bundled DejaVu Sans, so ä ö ü ß ñ é render) on an orthographic layer whose units are
pixels: x right from the left edge, y down from the top (Panda's z is -y). Text is word-wrapped to the
panel width and the panel grows to fit it; if it would cover more than ``MAX_PANEL_SHARE`` of the image,
the font shrinks instead, so text is never cut off. ``layout_panel`` runs on the render thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from client_panda3d import geometry as g
from client_panda3d.steps import Status, StepView

MAX_PANEL_SHARE = 0.55  # of the image height
MIN_FONT_PX = 9.0
PANEL_RGBA = (0.06, 0.07, 0.09, 0.86)
BUTTON_RGBA = {"done": (0.08, 0.5, 0.26, 1.0), "back": (0.24, 0.27, 0.32, 1.0), "help": (0.24, 0.27, 0.32, 1.0),
               "choose": (0.13, 0.36, 0.66, 1.0)}

WORDS: dict[str, dict[str, str]] = {
    "en": {"done": "Done", "back": "Back", "help": "Help", "step": "Step {n} of {total}",
           "connecting": "connecting", "connected": "connected", "reconnecting": "reconnecting",
           "closed": "session ended", "offline": "offline", "in_view": "product in view",
           "not_in_view": "product not in view", "searching": "looking for the product",
           "behind": "{part}: on the far side, turn the device",
           "agent_joined": "{name} from support joined", "agent_left": "{name} left",
           "end_resolved": "Fixed!", "end_escalated": "A support agent takes over",
           "end_other": "The session has ended"},
    "de": {"done": "Fertig", "back": "Zurück", "help": "Hilfe", "step": "Schritt {n} von {total}",
           "connecting": "verbinde", "connected": "verbunden", "reconnecting": "verbinde neu",
           "closed": "Sitzung beendet", "offline": "offline", "in_view": "Gerät im Bild",
           "not_in_view": "Gerät nicht im Bild", "searching": "suche das Gerät",
           "behind": "{part}: auf der Rückseite, Gerät drehen",
           "agent_joined": "{name} vom Support ist dabei", "agent_left": "{name} hat die Sitzung verlassen",
           "end_resolved": "Behoben!", "end_escalated": "Ein Support-Mitarbeiter übernimmt",
           "end_other": "Die Sitzung ist beendet"},
    "es": {"done": "Hecho", "back": "Atrás", "help": "Ayuda", "step": "Paso {n} de {total}",
           "connecting": "conectando", "connected": "conectado", "reconnecting": "reconectando",
           "closed": "sesión terminada", "offline": "sin conexión", "in_view": "producto a la vista",
           "not_in_view": "producto fuera de la vista", "searching": "buscando el producto",
           "behind": "{part}: al otro lado, gira el aparato",
           "agent_joined": "{name} de soporte se ha unido", "agent_left": "{name} se ha ido",
           "end_resolved": "¡Arreglado!", "end_escalated": "Un agente de soporte continúa",
           "end_other": "La sesión ha terminado"},
}


def words(locale: str) -> dict[str, str]:
    """UI words for ``locale`` (its language part), English when the language is not translated."""
    return WORDS.get(locale.split("-")[0].lower(), WORDS["en"])


def end_title(outcome: str, locale: str) -> str:
    """The closing banner's title for an ``end.outcome`` in ``locale``: the web page's words (i18n.js
    ``end_*``). Outcomes other than resolved and escalated, unknown ones included, read as a plain end."""
    return words(locale)[f"end_{outcome}" if outcome in ("resolved", "escalated") else "end_other"]


def banner_text(status: Status, locale: str) -> str:
    """What the status plate says: the latest notice, under the localized end title once the session ended
    (the wire ``end.outcome`` is an ident, never shown as is)."""
    if status.outcome is None:
        return status.notice
    title = end_title(status.outcome, locale)
    return f"{title}\n{status.notice}" if status.notice else title


@dataclass(frozen=True)
class Button:
    action: str  # done | back | help | choose:<id>
    label: str
    rect: tuple[float, float, float, float]  # x0, y0, x1, y1 pixels

    def contains(self, x: float, y: float) -> bool:
        return self.rect[0] <= x <= self.rect[2] and self.rect[1] <= y <= self.rect[3]


@dataclass
class PanelLayout:
    """Where everything went, in pixels (x0, y0, x1, y1); ``wrapped`` is the step text as drawn."""

    panel: tuple[float, float, float, float] | None = None
    text: tuple[float, float, float, float] | None = None
    wrapped: str = ""
    font_px: float = 0.0
    buttons: list[Button] = field(default_factory=list)
    status: tuple[float, float, float, float] | None = None
    banner: str = ""  # the text on the status plate (a notice, or the end title and text)


def _rect(parent: Any, x0: float, y0: float, x1: float, y1: float, rgba: tuple[float, ...]) -> Any:
    from panda3d.core import CardMaker, TransparencyAttrib

    cm = CardMaker("rect")
    cm.setFrame(x0, x1, -y1, -y0)
    node = parent.attachNewNode(cm.generate())
    node.setColor(*rgba)
    node.setTransparency(TransparencyAttrib.MAlpha)
    return node


def _text(parent: Any, text: str, x: float, y: float, px: float, *, wrap_px: float | None = None,
          rgba: tuple[float, ...] = (1, 1, 1, 1), bold: bool = False, align: str = "left") -> tuple[Any, Any]:
    """A text block whose top-left (or top-centre) is at (x, y) pixels. Returns (NodePath, TextNode)."""
    from panda3d.core import TextNode

    node = TextNode("text")
    font = g.ui_font(bold)
    node.setFont(font)
    node.setTextColor(*rgba)
    node.setAlign({"left": TextNode.ALeft, "center": TextNode.ACenter, "right": TextNode.ARight}[align])
    if wrap_px:
        node.setWordwrap(max(1.0, wrap_px / px))
    node.setText(text)
    path = parent.attachNewNode(node)
    path.setScale(px)
    path.setPos(x, 0, -(y + 0.8 * px))  # baseline of the first line sits ~0.8 em below the top
    return path, node


def text_height(node: Any, px: float) -> float:
    """Pixels from the top of the first line to the bottom of the last."""
    return node.getNumRows() * node.getLineHeight() * px


def layout_panel(parent: Any, step: StepView | None, status: Status, width: int, height: int,
                 locale: str = "en") -> PanelLayout:
    """Draw the status line and the step panel under ``parent`` and say where everything went."""
    w = words(locale)
    layout = PanelLayout()
    base_px = max(MIN_FONT_PX, height / 30.0)
    _status_line(parent, status, w, width, base_px, layout, banner_text(status, locale))
    if step is None:
        return layout
    px = base_px
    while True:
        content = parent.attachNewNode("panel")
        if _panel(content, step, w, width, height, px, layout) or px <= MIN_FONT_PX:
            break
        content.removeNode()
        layout.buttons.clear()
        px = max(MIN_FONT_PX, px * 0.88)
    return layout


def _status_line(parent: Any, status: Status, w: dict[str, str], width: int, px: float,
                 layout: PanelLayout, banner: str) -> None:
    spx = px * 0.85
    pad = spx * 0.45
    bar_h = spx * 1.2 + 2 * pad
    _rect(parent, 0, 0, width, bar_h, (0.0, 0.0, 0.0, 0.55))
    dot = {"connected": (0.2, 0.85, 0.35, 1), "connecting": (1.0, 0.72, 0.0, 1),
           "reconnecting": (1.0, 0.72, 0.0, 1)}.get(status.connection, (0.95, 0.25, 0.2, 1))
    _rect(parent, pad, pad + spx * 0.2, pad + spx * 0.8, pad + spx * 0.8 + spx * 0.2, dot)
    seen = {True: w["in_view"], False: w["not_in_view"], None: w["searching"]}[status.product_in_view]
    line = f"{w.get(status.connection, status.connection)}  ·  {seen}"
    _text(parent, line, pad + spx * 1.2, pad, spx)
    layout.status = (0.0, 0.0, float(width), bar_h)
    layout.banner = banner
    if banner:
        # Measure first, then draw plate and text in that order: the UI layer draws in graph order.
        probe = parent.attachNewNode("probe")
        _, node = _text(probe, banner, 0, 0, spx, wrap_px=width * 0.8, bold=True)
        th = text_height(node, spx)
        probe.removeNode()
        _rect(parent, width * 0.08, bar_h + pad, width * 0.92, bar_h + 3 * pad + th, (1.0, 0.78, 0.1, 0.95))
        _text(parent, banner, width / 2, bar_h + pad * 2, spx, wrap_px=width * 0.8,
              rgba=(0.1, 0.08, 0.0, 1), bold=True, align="center")


def _panel(parent: Any, step: StepView, w: dict[str, str], width: int, height: int, px: float,
           layout: PanelLayout) -> bool:
    """Lay the panel out bottom-up at font size ``px``; False if it would cover too much of the image."""
    pad = px * 0.7
    inner = width - 2 * pad
    # Buttons: choices first, then Back, Help, and Done where the step takes it; wrapped into rows right-aligned.
    specs = [(f"choose:{cid}", label) for cid, label in step.choices]
    specs += [("back", w["back"]), ("help", w["help"])]
    if step.accepts_done:
        specs.append(("done", w["done"]))
    bpx = px * 0.95
    bh = bpx * 1.9
    rows: list[list[tuple[str, str, float]]] = [[]]
    used = 0.0
    for action, label in specs:
        bw = min(inner, _measure(label, bpx) + bpx * 1.6)
        if rows[-1] and used + pad * 0.6 + bw > inner:
            rows.append([])
            used = 0.0
        rows[-1].append((action, label, bw))
        used += bw + (pad * 0.6 if len(rows[-1]) > 1 else 0.0)
    buttons_h = len(rows) * bh + (len(rows) - 1) * pad * 0.5
    # Text block.
    progress_h = px * 1.2
    probe = parent.attachNewNode("probe")
    _, node = _text(probe, step.text, 0, 0, px, wrap_px=inner)
    text_h = text_height(node, px)
    wrapped = node.getWordwrappedText()
    probe.removeNode()
    total = pad + progress_h + pad * 0.6 + text_h + pad + buttons_h + pad
    if total > MAX_PANEL_SHARE * height and px > MIN_FONT_PX:
        return False
    top = height - total
    _rect(parent, 0, top, width, height, PANEL_RGBA)
    # Progress: "Step 2 of 5" and a bar.
    label = w["step"].format(n=step.progress.index, total=step.progress.total)
    _, pnode = _text(parent, label, pad, top + pad, px * 0.85, rgba=(0.75, 0.8, 0.88, 1), bold=True)
    bar_x0 = pad + pnode.getWidth() * px * 0.85 + pad
    bar_y = top + pad + progress_h * 0.35
    _rect(parent, bar_x0, bar_y, width - pad, bar_y + px * 0.35, (0.25, 0.28, 0.33, 1))
    share = step.progress.index / step.progress.total
    _rect(parent, bar_x0, bar_y, bar_x0 + (width - pad - bar_x0) * share, bar_y + px * 0.35, (0.2, 0.75, 1.0, 1))
    text_top = top + pad + progress_h + pad * 0.6
    _text(parent, step.text, pad, text_top, px, wrap_px=inner)
    layout.text = (pad, text_top, pad + inner, text_top + text_h)
    layout.wrapped, layout.font_px = wrapped, px
    y = text_top + text_h + pad
    for row in rows:
        row_w = sum(bw for _, _, bw in row) + pad * 0.6 * (len(row) - 1)
        x = width - pad - row_w
        for action, label, bw in row:
            rgba = BUTTON_RGBA[action.split(":")[0]]
            _rect(parent, x, y, x + bw, y + bh, rgba)
            _text(parent, label, x + bw / 2, y + (bh - bpx * 1.2) / 2 + bpx * 0.1, bpx, align="center", bold=True)
            layout.buttons.append(Button(action, label, (x, y, x + bw, y + bh)))
            x += bw + pad * 0.6
        y += bh + pad * 0.5
    layout.panel = (0.0, top, float(width), float(height))
    return True


def _measure(text: str, px: float) -> float:
    from panda3d.core import TextNode

    node = TextNode("measure")
    node.setFont(g.ui_font(True))
    return node.calcWidth(text) * px
