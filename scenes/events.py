"""What goes into the engine (events) and what comes out (effects). Plain frozen data, no behaviour.

Effects carry text already localized for the session, and overlays as typed views in product terms
(part names, not pixels; see :mod:`scenes.view`), so the server can put them on the wire field for field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from scenes.view import OverlayView, Progress, StepCause

UserKind = Literal["done", "back", "help", "choose"]
USER_KINDS: tuple[str, ...] = get_args(UserKind)


@dataclass(frozen=True)
class PartObservation:
    state: str
    confidence: float = 1.0  # 0..1; below the engine's min_confidence the reading is ignored


@dataclass(frozen=True)
class Observation:
    """What the camera sees now. ``product`` None means no product in view."""

    product: str | None
    parts: Mapping[str, PartObservation] = field(default_factory=dict)


@dataclass(frozen=True)
class UserEvent:
    kind: str  # one of USER_KINDS
    choice: str | None = None  # the choice id, for kind "choose" only


@dataclass(frozen=True)
class Tick:
    """Time passed; lets timers (hold, on_timeout, struggle, lost view) fire without new observations."""


Event = Observation | UserEvent | Tick


@dataclass(frozen=True)
class ChoiceView:
    id: str
    label: str


@dataclass(frozen=True)
class ShowStep:
    step_id: str
    text: str
    overlays: tuple[OverlayView, ...]
    choices: tuple[ChoiceView, ...]
    progress: Progress
    reason: str | None = None  # why we are here ("the internet light is red"), when the scene says so
    outcome: str | None = None  # set on terminal steps
    accepts_done: bool = False  # the step has a done_goto: show a Done button
    cause: StepCause = "start"  # what moved the scene into this step

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["t"] = "step"
        out["progress"]["fraction"] = self.progress.fraction
        return out


@dataclass(frozen=True)
class Notice:
    code: str  # wrong_product | point_camera
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"t": "notice", "code": self.code, "text": self.text}


@dataclass(frozen=True)
class Escalate:
    """Hand over to a person (``offer`` False) or offer to (``offer`` True)."""

    reason: str  # help | repeated | overdue | timeout | outcome
    offer: bool
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"t": "escalate", "reason": self.reason, "offer": self.offer, "text": self.text}


@dataclass(frozen=True)
class End:
    outcome: str  # resolved | escalate | unresolved

    def to_dict(self) -> dict[str, Any]:
        return {"t": "end", "outcome": self.outcome}


Effect = ShowStep | Notice | Escalate | End
