"""The scene engine: a state machine that turns events into effects. It does no I/O and reads no clock.

Rules (the whole contract; the code below only implements them):

1. ``start(now)`` enters the scene's ``start`` step and returns its :class:`ShowStep`. Every other call
   goes through ``handle(event, now)``, which returns a list of effects, possibly empty.
2. An event that is not legal now raises a :class:`~scenes.errors.SceneError` subclass and changes
   nothing: any event before ``start`` or after the scene ended, ``choose`` with a choice the step does
   not offer, ``done`` on a step with no Done target, ``back`` on the first step, an observation of this
   product naming a part or state the catalog does not know, a confidence outside 0..1.
3. At most one transition per event. Entering a step emits ``ShowStep``, which says what moved the scene
   there (``cause``: start, vision, timeout, done, choice, back) and whether the step takes ``done``;
   entering a terminal step also emits ``Escalate(offer=False)`` when its outcome is ``escalate``, then
   ``End(outcome)``.
4. Observations: a part reading below ``min_confidence`` makes that part unknown; a reading older than
   ``stale_after_s`` is forgotten. Conditions see only known parts (unknown is neither true nor false).
5. A ``when`` entry counts once its condition has held, as seen at every event since, for ``hold``
   seconds. The first entry (in file order) that has held long enough wins. Timers start in the step:
   what held before the step was entered does not count.
6. ``on_timeout`` fires ``after`` seconds after the step was entered, if nothing else moved on first.
7. ``done`` goes to ``done_goto``; a step without one refuses it. ``back`` returns to the previous
   step of the history. ``help`` offers escalation.
8. Struggle signals offer escalation (``Escalate(offer=True)``) at most once per signal and step:
   ``help`` pressed, a step entered ``repeat_limit`` times, time on a step past ``expect_s * overdue_factor``.
9. Camera notices, each at most once per ``notice_interval_s``: another product in view gives
   ``wrong_product``; no product at all in view for ``lost_after_s`` gives ``point_camera``.
10. ``now`` is seconds on any clock that keeps running across restarts (wall time) if snapshots are
    stored. A ``now`` earlier than one already handled is treated as that later time.
11. ``jump_to(step_id, now, reason)`` enters any step of the scene, whatever the current step's rules: for a
    person from support who overrides them. It is entered as rule 3 enters a step (history, repeat count,
    ``ShowStep`` with cause ``done``: the step left counts as done; a terminal step ends the scene). A step
    the scene lacks, or a scene not started or already ended, raises and changes nothing.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from product_models.catalog import Product
from scenes.checks import distances_to_end
from scenes.conditions import holds
from scenes.errors import IllegalEventError, SceneError
from scenes.events import (
    USER_KINDS,
    ChoiceView,
    Effect,
    End,
    Escalate,
    Event,
    Notice,
    Observation,
    ShowStep,
    Tick,
    UserEvent,
)
from scenes.i18n import message, negotiate, pick
from scenes.model import I18nText, Scene, Step
from scenes.state import EngineState
from scenes.view import Progress, StepCause, overlay_view


@dataclass(frozen=True)
class EngineConfig:
    """Tuning of the engine; the defaults suit a camera at 5-30 observations per second."""

    min_confidence: float = 0.5  # part readings below this do not count toward conditions
    stale_after_s: float = 5.0  # a part not seen again for this long is unknown
    lost_after_s: float = 6.0  # product unseen this long -> "point the camera at the ..."
    notice_interval_s: float = 15.0  # at most one camera notice per this many seconds
    overdue_factor: float = 3.0  # time on a step past expect_s * this is a struggle signal
    repeat_limit: int = 3  # entering the same step this many times is a struggle signal


class Engine:
    """Runs one scene for one customer session. See the module docstring for the rules."""

    def __init__(self, scene: Scene, product: Product, locale: str = "en", *,
                 reason: I18nText | None = None, config: EngineConfig | None = None) -> None:
        if product.id != scene.product:
            raise SceneError(f"scene {scene.id!r} is for product {scene.product!r}, not {product.id!r}")
        self.scene = scene
        self.product = product
        self.locale = negotiate(locale, scene.locales, scene.default_locale)
        self.config = config or EngineConfig()
        self._initial_reason = reason
        self._state = EngineState()
        self._distance = distances_to_end(scene.steps)
        self._handlers: dict[type, Callable[[EngineState, Any, float, list[Effect]], bool]] = {
            Observation: self._on_observation, UserEvent: self._on_user, Tick: self._on_tick,
        }

    # -- public -------------------------------------------------------------------------------------
    @property
    def step_id(self) -> str | None:
        return self._state.step

    @property
    def outcome(self) -> str | None:
        return self._state.outcome

    @property
    def finished(self) -> bool:
        return self._state.outcome is not None

    @property
    def history(self) -> tuple[str, ...]:
        return tuple(self._state.history)

    def start(self, now: float) -> list[Effect]:
        """Enter the start step. Raises :class:`IllegalEventError` if already started."""
        if self._state.step is not None:
            raise IllegalEventError(f"scene {self.scene.id!r} is already started")
        state = copy.deepcopy(self._state)
        state.last_seen = state.last_time = now
        effects: list[Effect] = []
        self._enter(state, self.scene.start, now, effects, self._initial_reason, "start")
        self._state = state
        return effects

    def handle(self, event: Event, now: float) -> list[Effect]:
        """Feed one event; returns the effects. Illegal events raise and leave the engine unchanged."""
        handler = self._handlers.get(type(event))
        if handler is None:
            raise IllegalEventError(f"unknown event {event!r}; expected Observation, UserEvent or Tick")
        if self._state.step is None:
            raise IllegalEventError("call start() before handing events to the engine")
        if self._state.outcome is not None:
            raise IllegalEventError(f"the scene already ended ({self._state.outcome}); it takes no more events")
        # Work on a copy and commit only on success: an illegal event must change nothing.
        state = copy.deepcopy(self._state)
        now = max(float(now), state.last_time)
        state.last_time = now
        effects: list[Effect] = []
        moved = handler(state, event, now, effects)
        if not moved and state.outcome is None:
            self._advance(state, now, effects)
        self._state = state
        return effects

    def jump_to(self, step_id: str, now: float, reason: I18nText | None = None) -> list[Effect]:
        """Enter ``step_id`` regardless of the current step's rules (rule 11) and return the effects.
        ``reason``, if given, is shown with the step. Raises :class:`IllegalEventError` naming the scene's
        steps for an unknown ``step_id``, and for a scene not started or already ended."""
        if step_id not in self.scene.steps:
            raise IllegalEventError(f"scene {self.scene.id!r} has no step {step_id!r}; expected one of: "
                                    f"{', '.join(self.scene.steps)}")
        if self._state.step is None:
            raise IllegalEventError("call start() before jumping to a step")
        if self._state.outcome is not None:
            raise IllegalEventError(f"the scene already ended ({self._state.outcome}); it cannot jump to "
                                    f"{step_id!r}")
        state = copy.deepcopy(self._state)
        now = max(float(now), state.last_time)
        state.last_time = now
        effects: list[Effect] = []
        self._enter(state, step_id, now, effects, reason, "done")
        self._state = state
        return effects

    def view(self) -> ShowStep:
        """The current step as shown to the customer (for a client that reconnects)."""
        if self._state.step is None:
            raise IllegalEventError("the engine has not started")
        return self._show(self._state, self.scene.steps[self._state.step])

    def snapshot(self) -> dict[str, Any]:
        """The whole engine state as a small dict of plain values (see :mod:`scenes.state`)."""
        return self._state.to_dict(self.scene.id, self.locale)

    @classmethod
    def restore(cls, scene: Scene, product: Product, snapshot: Any, *,
                config: EngineConfig | None = None) -> Engine:
        """An engine that continues exactly where ``snapshot`` left off. Raises ``SnapshotError``."""
        state, locale = EngineState.from_dict(snapshot, scene)
        engine = cls(scene, product, locale, config=config)
        engine._state = state
        return engine

    # -- event handlers: return True when they moved to another step -------------------------------
    def _on_observation(self, state: EngineState, event: Observation, now: float, effects: list[Effect]) -> bool:
        if event.product is None:
            return False
        if event.product != self.scene.product:
            state.notices["wrong_seen"] = now
            self._camera_notice(state, "wrong_product", now, effects)
            return False
        readings = []
        for name, reading in event.parts.items():
            if not self.product.has_part(name) or reading.state not in self.product.part(name).states:
                raise IllegalEventError(f"observation of {self.product.id!r} has unknown part/state "
                                        f"{name}={reading.state!r}")
            if not 0.0 <= reading.confidence <= 1.0:
                raise IllegalEventError(f"confidence of {name} must be within 0..1, got {reading.confidence}")
            readings.append((name, reading))
        state.last_seen = now
        for name, reading in readings:
            if reading.confidence >= self.config.min_confidence:
                state.known[name] = (reading.state, now)
            else:
                state.known.pop(name, None)
        return False

    def _on_user(self, state: EngineState, event: UserEvent, now: float, effects: list[Effect]) -> bool:
        if event.kind not in USER_KINDS:
            raise IllegalEventError(f"unknown user event {event.kind!r}; expected one of: {', '.join(USER_KINDS)}")
        if (event.choice is not None) != (event.kind == "choose"):
            raise IllegalEventError("a choice id goes with 'choose' and only with it")
        step = self.scene.steps[state.step or ""]
        if event.kind == "help":
            self._offer(state, "help", effects)
            return False
        if event.kind == "back":
            if len(state.history) < 2:
                raise IllegalEventError("there is no earlier step to go back to")
            state.history.pop()
            self._enter(state, state.history.pop(), now, effects, None, "back")
            return True
        if event.kind == "done":
            target = step.done_target()
            if target is None and step.choices:
                offered = ", ".join(c.id for c in step.choices)
                raise IllegalEventError(f"step {step.id!r} has no Done button; choose one of: {offered}")
            if target is None:
                raise IllegalEventError(f"step {step.id!r} has no Done button; it moves on by itself")
            self._enter(state, target, now, effects, None, "done")
            return True
        for choice in step.choices:
            if choice.id == event.choice:
                self._enter(state, choice.goto, now, effects, None, "choice")
                return True
        offered = ", ".join(c.id for c in step.choices) or "none"
        raise IllegalEventError(f"step {step.id!r} has no choice {event.choice!r}; choices: {offered}")

    def _on_tick(self, state: EngineState, event: Tick, now: float, effects: list[Effect]) -> bool:
        return False

    # -- timers -----------------------------------------------------------------------------------
    def _advance(self, state: EngineState, now: float, effects: list[Effect]) -> None:
        step = self.scene.steps[state.step or ""]
        seen = {p: s for p, (s, t) in state.known.items() if now - t <= self.config.stale_after_s}
        for i, expectation in enumerate(step.when):
            if holds(expectation.condition, seen):
                state.since[i] = now if state.since[i] is None else state.since[i]
            else:
                state.since[i] = None
        for i, expectation in enumerate(step.when):
            started = state.since[i]
            if started is not None and now - started >= expectation.hold:
                self._enter(state, expectation.goto, now, effects, expectation.reason, "vision")
                return
        timeout = step.on_timeout
        if timeout is not None and now - state.entered_at >= timeout.after:
            if timeout.goto is not None:
                self._enter(state, timeout.goto, now, effects, timeout.reason, "timeout")
            else:
                effects.append(Escalate("timeout", False, message("handover", self.locale)))
                effects.append(End("escalate"))
                state.outcome = "escalate"
            return
        if step.expect_s is not None and now - state.entered_at >= step.expect_s * self.config.overdue_factor:
            self._offer(state, "overdue", effects)
        # Only when nothing at all is in view: while another product is, "wrong product" says it better.
        wrong_seen = state.notices.get("wrong_seen", -math.inf)
        if min(now - state.last_seen, now - wrong_seen) >= self.config.lost_after_s:
            self._camera_notice(state, "point_camera", now, effects)

    def _enter(self, state: EngineState, target: str, now: float, effects: list[Effect],
               reason: I18nText | None, cause: StepCause) -> None:
        step = self.scene.steps[target]
        state.step = target
        state.history.append(target)
        state.entries[target] = state.entries.get(target, 0) + 1
        state.entered_at = now
        state.since = [None] * len(step.when)
        state.reason = reason
        state.cause = cause
        effects.append(self._show(state, step))
        if step.outcome is not None:
            if step.outcome == "escalate":
                effects.append(Escalate("outcome", False, message("handover", self.locale)))
            effects.append(End(step.outcome))
            state.outcome = step.outcome
        elif state.entries[target] >= self.config.repeat_limit:
            self._offer(state, "repeated", effects)

    def _offer(self, state: EngineState, signal: str, effects: list[Effect]) -> None:
        key = f"{signal}:{state.step}"
        if key not in state.offered:
            state.offered.append(key)
            effects.append(Escalate(signal, True, message(f"offer_{signal}", self.locale)))

    def _camera_notice(self, state: EngineState, code: str, now: float, effects: list[Effect]) -> None:
        last = state.notices.get(code)
        if last is not None and now - last < self.config.notice_interval_s:
            return
        state.notices[code] = now
        name = pick(self.product.name, self.locale, "en")
        effects.append(Notice(code, message(code, self.locale, product=name)))

    def _show(self, state: EngineState, step: Step) -> ShowStep:
        loc, default = self.locale, self.scene.default_locale
        index = len(state.history)
        return ShowStep(
            step_id=step.id, text=pick(step.text, loc, default),
            overlays=tuple(overlay_view(o, loc, default) for o in step.overlays),
            choices=tuple(ChoiceView(c.id, pick(c.label, loc, default)) for c in step.choices),
            progress=Progress(index, index + self._distance.get(step.id, 0)),
            reason=pick(state.reason, loc, default) if state.reason else None, outcome=step.outcome,
            accepts_done=step.done_target() is not None, cause=state.cause,
        )
