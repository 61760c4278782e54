"""What the client shows for a step, whichever way it arrived (the wire ``step`` or a scene ``ShowStep``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StepView:
    """One step as the view draws it. ``overlays`` are flat dicts ``{kind, part, color?, direction?, text?,
    action?, ...}``; ``number`` is 1-based (``Step 2 of 5``)."""

    step_id: str
    text: str
    overlays: tuple[dict[str, Any], ...] = ()
    choices: tuple[tuple[str, str], ...] = ()  # (choice id, localized label)
    number: int = 1
    total: int = 1

    @classmethod
    def from_protocol(cls, step: Any) -> StepView:
        """From an ``ar_server.protocol.Step`` (0-based progress index on the wire)."""
        overlays = tuple({"kind": o.kind, "part": o.part, **dict(o.params)} for o in step.overlays)
        number, total = (step.progress.index + 1, step.progress.total) if step.progress else (1, 1)
        return cls(step.step, step.text, overlays, tuple((c.id, c.text) for c in step.choices),
                   min(number, max(total, 1)), max(total, 1))

    @classmethod
    def from_effect(cls, effect: Any) -> StepView:
        """From a ``scenes.ShowStep`` (its progress index already counts from 1)."""
        return cls(effect.step_id, effect.text, tuple(dict(o) for o in effect.overlays),
                   tuple((c.id, c.label) for c in effect.choices), max(effect.progress.index, 1),
                   max(effect.progress.total, effect.progress.index, 1))

    def focus_part(self) -> str | None:
        """The part the step is about: its animated part, else the first part an overlay names."""
        animate = next((o for o in self.overlays if o.get("kind") == "animate" and o.get("part")), None)
        first = animate or next((o for o in self.overlays if o.get("part")), None)
        return None if first is None else str(first["part"])


@dataclass
class Status:
    """The status line: connection state, whether the product is in view, and the latest notice."""

    connection: str = "connecting"  # connecting | connected | reconnecting | closed | offline
    product_in_view: bool | None = None  # None: nothing known yet
    notice: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def key(self) -> tuple[str, bool | None, str]:
        return (self.connection, self.product_in_view, self.notice)
