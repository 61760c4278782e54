"""Scene data: what the loader builds from YAML and the engine runs. Plain frozen dataclasses.

A condition is a tree over observed part states: ``Leaf`` (part is one of some states), ``AllOf``,
``AnyOf`` and ``NotOf``. Step ids, part names and states are checked against the catalog by the loader,
so the engine can trust every name it finds here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

I18nText = dict[str, str]

OverlayKind = Literal["highlight", "arrow", "label", "animate"]
OVERLAY_KINDS: tuple[str, ...] = get_args(OverlayKind)

Outcome = Literal["resolved", "escalate", "unresolved"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)

# Arrow directions in the product frame; ``in`` points into the part's face (along -normal), ``out`` away.
ArrowDirection = Literal["in", "out", "up", "down", "left", "right", "front", "back"]
ARROW_DIRECTIONS: tuple[str, ...] = get_args(ArrowDirection)

# The colour names a scene may use, and the sRGB each is sent as (clients get "#rrggbb" only). amber, green,
# red, white and blue are the colours the Panda3D client drew for those names before colours travelled as hex.
COLOR_HEX: dict[str, str] = {
    "green": "#26d959", "red": "#ff3833", "amber": "#ffb800", "yellow": "#ffe14d", "blue": "#4099ff",
    "white": "#f7f7f7", "cyan": "#26d9e6", "magenta": "#e040fb",
}
NAMED_COLORS: tuple[str, ...] = tuple(COLOR_HEX)

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Issue:
    """One validation finding, with where it is: ``file:line:col`` and the path inside the scene."""

    file: str
    line: int
    col: int
    path: str
    severity: Severity
    message: str

    def __str__(self) -> str:
        at = f" (at {self.path})" if self.path else ""
        return f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message}{at}"

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "col": self.col, "path": self.path,
                "severity": self.severity, "message": self.message}


@dataclass(frozen=True)
class Leaf:
    part: str
    states: frozenset[str]  # the condition holds when the part is in one of these


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class NotOf:
    item: Condition


Condition = Leaf | AllOf | AnyOf | NotOf


@dataclass(frozen=True)
class Trigger:
    condition: Condition
    reason: I18nText  # told to the customer: "the internet light is red"


@dataclass(frozen=True)
class Expectation:
    condition: Condition
    goto: str
    hold: float  # seconds the condition must hold without a break before it counts
    reason: I18nText | None = None


@dataclass(frozen=True)
class Choice:
    id: str
    label: I18nText
    goto: str


@dataclass(frozen=True)
class Timeout:
    after: float  # seconds after entering the step
    goto: str | None  # exactly one of goto / escalate
    escalate: bool = False
    reason: I18nText | None = None


@dataclass(frozen=True)
class Overlay:
    kind: str
    part: str
    color: str | None = None
    direction: str | None = None  # arrows
    text: I18nText | None = None  # labels
    action: str | None = None  # animations: one of product_models.catalog.ACTIONS


@dataclass(frozen=True)
class Step:
    id: str
    text: I18nText
    overlays: tuple[Overlay, ...] = ()
    when: tuple[Expectation, ...] = ()
    choices: tuple[Choice, ...] = ()
    on_timeout: Timeout | None = None
    expect_s: float | None = None
    done_goto: str | None = None
    outcome: str | None = None  # set only on terminal steps

    @property
    def terminal(self) -> bool:
        return self.outcome is not None

    def done_target(self) -> str | None:
        """Where the Done button leads: ``done_goto``, else nowhere. A step with choices but no ``done_goto``
        has no Done: its choices are the answers, and a Done that took the first one would answer for the
        customer without saying so (on ``offer_reset`` it would start a factory reset)."""
        return self.done_goto

    def targets(self) -> list[str]:
        """Every step this one can lead to, in declaration order."""
        out = [e.goto for e in self.when] + [c.goto for c in self.choices]
        if self.on_timeout is not None and self.on_timeout.goto is not None:
            out.append(self.on_timeout.goto)
        if self.done_goto is not None:
            out.append(self.done_goto)
        return out


@dataclass(frozen=True)
class Scene:
    id: str
    product: str
    title: I18nText
    default_locale: str
    triggers: tuple[Trigger, ...]
    start: str
    steps: dict[str, Step]
    source: str = ""  # file it came from
    locales: frozenset[str] = field(default_factory=frozenset)  # every locale any of its texts uses
