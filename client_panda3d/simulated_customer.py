"""A simulated customer: reads each step's overlays and does what they show, on a digital twin.

It performs the step's ``animate`` action (the physical action on a part) after a human-like delay and
keeps the phone camera on the part being worked on, as a person would; a hint about where to stand that
names a part (``turn_device``: the WAN port on the back) walks the camera round to it. Clock-driven and
deterministic for a seed: the caller passes ``now`` in seconds. No Panda3D here; rendering is the virtual
camera's job.

Clumsy mode (``clumsy`` in 0..1) sometimes looks away for a few seconds or acts on the wrong part of
the same kind first, so that notices, branches and escalation get exercised.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ar_server.protocol import Animate, Highlight, Overlay
from product_models.twin import Twin
from product_models.virtual_camera import HandheldCamera

DEFAULT_HOLD_S = 10.0  # how long to hold when a step shows "hold" (a step names no duration)
DELAY_RANGE_S = (2.0, 4.5)  # a person reads the step, finds the part, reaches for it
WHERE_TO_STAND = frozenset({"turn_device", "move_closer"})  # the server's view hints a person acts on by moving


@dataclass(frozen=True)
class PlannedAction:
    action: str
    part: str
    start: float  # seconds: when the hand reaches the part
    duration: float | None  # seconds, for hold
    step_id: str

    @property
    def done_at(self) -> float:
        return self.start + (self.duration or 0.0)


@dataclass(frozen=True)
class ActionLog:
    at: float
    action: str
    part: str
    step_id: str
    happened: bool
    note: str = ""


class SimulatedCustomer:
    """Follows the guidance on ``twin`` while steering ``handheld`` (see the module docstring)."""

    def __init__(self, twin: Twin, handheld: HandheldCamera, *, seed: int = 0, clumsy: float = 0.0,
                 delay_range_s: tuple[float, float] = DELAY_RANGE_S) -> None:
        if not 0.0 <= clumsy <= 1.0:
            raise ValueError(f"clumsy must be within 0..1, got {clumsy}")
        self.twin, self.handheld = twin, handheld
        self.clumsy, self.delay_range_s = clumsy, delay_range_s
        self._rng = random.Random(seed)
        self._plan: PlannedAction | None = None
        self._look_back_at: float | None = None
        self._aim_part: str | None = None
        self._choice: tuple[float, str] | None = None  # (when, choice id) to press
        self._then_look: str | None = None  # a highlighted part to watch once the action is done
        # Clumsy: the wrong-part action, done when due (acting at a future time would run the twin ahead
        # of the camera's clock).
        self._slip: PlannedAction | None = None
        self.log: list[ActionLog] = []

    @property
    def pending(self) -> PlannedAction | None:
        return self._plan

    def on_step(self, step_id: str, overlays: Sequence[Overlay], now: float,
                choices: Sequence[str] = ()) -> None:
        """A new step is shown: plan its action (if any) and point the camera at the part it concerns.

        A step that shows no action but offers choices is answered with its first choice, the one a
        scene lists to carry on with the repair; pressing a choice is a decision, not a Done press.
        """
        animate = next((o for o in overlays if isinstance(o, Animate)), None)
        focus = animate or next(iter(overlays), None)
        self._aim_part = focus.part if focus else None
        self.handheld.aim(self._aim_part, now)
        self._plan, self._choice, self._slip = None, None, None
        # After acting, a person looks at what the step says will change (the status light).
        self._then_look = next((o.part for o in overlays if isinstance(o, Highlight) and o.part != self._aim_part),
                               None)
        if animate is None:
            if choices:
                self._choice = (now + self._rng.uniform(*self.delay_range_s), choices[0])
            return
        action, part = animate.action, animate.part
        duration = None
        if action == "hold":
            duration = DEFAULT_HOLD_S + 0.5  # people hold a little longer
        delay = self._rng.uniform(*self.delay_range_s)
        if self.clumsy and self._rng.random() < self.clumsy:
            wrong = self._wrong_part(part)
            if wrong is not None:  # acts on the wrong part first, then notices and corrects
                self._slip = PlannedAction(action if action in self.twin.product.part(wrong).actions else "press",
                                           wrong, now + delay, None, step_id)
                delay += self._rng.uniform(3.0, 6.0)
            if self._rng.random() < 0.5:
                self._look_back_at = now + delay
                self.handheld.aim(None, now)
        self._plan = PlannedAction(action, part, now + delay, duration, step_id)

    def on_notice(self, code: str, part: str | None, now: float) -> None:
        """A hint about where to stand (``turn_device``, ``move_closer``) naming a part: a person moves to see
        that part, unless busy with the step's action (then the camera stays on the part worked on)."""
        if code not in WHERE_TO_STAND or part is None or not self.twin.product.has_part(part):
            return
        if self._plan is not None or self._slip is not None:
            return
        self._aim_part = part
        self.handheld.aim(part, now)

    def take_choice(self, now: float) -> str | None:
        """The choice id to press now, once its reading delay has passed (then forgotten)."""
        if self._choice is not None and now >= self._choice[0]:
            choice, self._choice = self._choice[1], None
            return choice
        return None

    def update(self, now: float) -> None:
        """Let time pass: carry out the planned action when it is due, and look back after looking away."""
        if self._look_back_at is not None and now >= self._look_back_at:
            self._look_back_at = None
            self.handheld.aim(self._aim_part, now)
        slip = self._slip
        if slip is not None and now >= slip.start:
            self._slip = None
            self._act(slip.action, slip.part, slip.start, slip.step_id, note="clumsy: wrong part")
        plan = self._plan
        if plan is not None and now >= plan.done_at:
            self._plan = None
            self._act(plan.action, plan.part, plan.done_at, plan.step_id, duration=plan.duration)
            if self._then_look is not None:
                self._aim_part = self._then_look
                self.handheld.aim(self._then_look, max(now, plan.done_at))
        self.twin.advance(now)

    def _act(self, action: str, part: str, at: float, step_id: str, *, duration: float | None = None,
             note: str = "") -> None:
        result = self.twin.act(action, part, now=max(at, self.twin.now), duration=duration)
        self.log.append(ActionLog(at, action, part, step_id, result.happened,
                                  note or (result.refused or "")))

    def _wrong_part(self, part: str) -> str | None:
        kind = self.twin.product.part(part).kind
        others = [p.name for p in self.twin.product.parts if p.kind == kind and p.name != part and p.actions]
        return self._rng.choice(others) if others else None
