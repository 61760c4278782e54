"""What a step shows the customer: typed overlay views, progress, and why the step was entered.

Rules:
- One frozen dataclass per overlay kind, tagged by a ``Literal`` ``kind``; ``OverlayView`` joins them.
  Every field is resolved here, so a client draws what it gets: the text is localized, the colour is
  ``#rrggbb`` (a scene's colour name goes through ``scenes.model.COLOR_HEX``; an overlay without one gets
  its kind's ``DEFAULT_COLORS`` entry), and an arrow without a direction points ``in``.
- The wire protocol (``ar_server.protocol``) has classes of the same names with the same fields, so a
  step crosses the wire field for field; a test holds the two sets equal.
- ``Progress.index`` counts from 1: the step shown is step ``index`` of ``total``.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as _field
from typing import Final, Literal, get_args

from scenes.errors import SceneError
from scenes.i18n import pick
from scenes.model import COLOR_HEX, Overlay

# An animation's colour tints its progress ring (hold); green reads as "keep going" there.
DEFAULT_COLORS: dict[str, str] = {"highlight": "#ffb800", "arrow": "#ffb800", "label": "#ffb800",
                                  "animate": "#26d959"}
DEFAULT_ARROW_DIRECTION: Final = "in"

# Why the engine entered a step: its start, a `when` expectation seen by vision, an `on_timeout`, the
# Done button, a choice, or Back.
StepCause = Literal["start", "vision", "timeout", "done", "choice", "back"]
STEP_CAUSES: tuple[str, ...] = get_args(StepCause)


@dataclass(frozen=True)
class Highlight:
    kind: Literal["highlight"] = _field(default="highlight", init=False)
    part: str  # part name in the product's catalog entry
    color: str  # "#rrggbb"


@dataclass(frozen=True)
class Arrow:
    kind: Literal["arrow"] = _field(default="arrow", init=False)
    part: str
    direction: str  # in | out (along the part's face normal) | up | down | left | right | front | back
    color: str


@dataclass(frozen=True)
class Label:
    kind: Literal["label"] = _field(default="label", init=False)
    part: str
    text: str  # localized
    color: str


@dataclass(frozen=True)
class Animate:
    """A demonstration of the physical action the step asks for."""

    kind: Literal["animate"] = _field(default="animate", init=False)
    part: str
    action: str  # one of product_models.catalog.ACTIONS, and one the part accepts
    color: str


OverlayView = Highlight | Arrow | Label | Animate
OVERLAY_VIEW_TYPES: dict[str, type[OverlayView]] = {
    "highlight": Highlight, "arrow": Arrow, "label": Label, "animate": Animate,
}


def overlay_view(overlay: Overlay, locale: str, default_locale: str) -> OverlayView:
    """The view of a scene's ``overlay`` in ``locale`` (see the module rules for what gets resolved)."""
    color = overlay.color or DEFAULT_COLORS[overlay.kind]
    color = COLOR_HEX.get(color, color).lower()
    if overlay.kind == "highlight":
        return Highlight(overlay.part, color)
    if overlay.kind == "arrow":
        return Arrow(overlay.part, overlay.direction or DEFAULT_ARROW_DIRECTION, color)
    if overlay.kind == "label":
        return Label(overlay.part, pick(overlay.text or {}, locale, default_locale), color)
    if overlay.kind == "animate" and overlay.action is not None:
        return Animate(overlay.part, overlay.action, color)
    # The loader refuses both; reaching here means a Scene was built by hand with a bad overlay.
    raise SceneError(f"overlay {overlay!r}: expected a known kind (with an action for animate)")


@dataclass(frozen=True)
class Progress:
    index: int  # 1-based: steps shown so far on the current path, this one included
    total: int  # index plus the fewest steps left to an end; equals index on a terminal step

    @property
    def fraction(self) -> float:
        return self.index / self.total if self.total else 1.0
