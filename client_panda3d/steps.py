"""What the client shows for a step, whichever way it arrived (the wire ``step`` or a scene ``ShowStep``).

Both carry the same typed overlays (``ar_server.protocol.Overlay``) and the same progress convention
(``index`` of ``total``, counting from 1), so nothing is converted on the way but the class.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ar_server.protocol import Animate, Overlay, Progress, Step, copy_overlay

FIRST_OF_ONE = Progress(1, 1)


@dataclass(frozen=True)
class StepView:
    """One step as the view draws it: ``Step {progress.index} of {progress.total}``, the text, the
    overlays, the choices, and a Done button only when ``accepts_done``."""

    step_id: str
    text: str
    overlays: tuple[Overlay, ...] = ()
    choices: tuple[tuple[str, str], ...] = ()  # (choice id, localized label)
    progress: Progress = FIRST_OF_ONE
    accepts_done: bool = False

    @classmethod
    def from_protocol(cls, step: Step) -> StepView:
        """From a decoded wire ``step``; a step without progress counts as step 1 of 1."""
        return cls(step.step, step.text, step.overlays, tuple((c.id, c.text) for c in step.choices),
                   step.progress or FIRST_OF_ONE, step.accepts_done)

    @classmethod
    def from_effect(cls, effect: Any) -> StepView:
        """From a ``scenes.ShowStep`` (the agent scene runs the engine itself)."""
        return cls(effect.step_id, effect.text, tuple(copy_overlay(o) for o in effect.overlays),
                   tuple((c.id, c.label) for c in effect.choices),
                   Progress(effect.progress.index, effect.progress.total), effect.accepts_done)

    def with_mark(self, mark: Any) -> StepView:
        """This step with one more overlay on top (an agent's mark), drawn after the step's own."""
        return replace(self, overlays=(*self.overlays, mark))

    def demonstration(self) -> Animate | None:
        """The step's action demonstration, if it asks for one."""
        return next((o for o in self.overlays if isinstance(o, Animate)), None)

    def focus_part(self) -> str | None:
        """The part the step is about: its animated part, else the first part an overlay names."""
        first = self.demonstration() or next(iter(self.overlays), None)
        return None if first is None else first.part


@dataclass
class Status:
    """The status line: connection state, whether the product is in view, the latest notice, and the
    session's ``end.outcome`` once it ended (the panel shows it localized, never the ident)."""

    connection: str = "connecting"  # connecting | connected | reconnecting | closed | offline
    product_in_view: bool | None = None  # None: nothing known yet
    notice: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    outcome: str | None = None  # resolved | escalated | unresolved | ... (wire idents); None while it runs

    def key(self) -> tuple[str, bool | None, str, str | None]:
        return (self.connection, self.product_in_view, self.notice, self.outcome)
