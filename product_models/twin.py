"""Digital twin: a product's physical behaviour, driven by a clock that the caller passes in.

Rules of this module (the format itself is in :mod:`product_models.twin_rules`):

- No sleeping, no threads, no wall clock. Every call takes ``now`` (seconds, any origin) and ``now`` must
  never go back; a call with an earlier time raises :class:`TwinError` and changes nothing.
- ``act`` first fires every timer due up to ``now``, then the FIRST rule for (action, part) whose ``if``
  holds (and, for ``hold``, whose ``min_seconds`` the hold reached). ``now`` is the moment the action
  completes, so for ``hold`` it is the moment of release.
- An action the part does not accept (not in ``Part.actions``), an unknown part/action/fault, or a
  duration on anything but ``hold`` raises :class:`TwinError` naming the part and action: that is a bug
  in the caller. A legal action that physically cannot be done now (remove jammed paper with the cover
  closed) does not raise: its ``refuse`` rule makes ``act`` change nothing and return
  ``ActResult(refused=why)``. A legal action that simply has no effect (hold reset for 5 s) returns ``rule=None``.
- Conditions read the *underlying* state: a blinking LED counts as its lit state. ``states(now)`` gives
  the *visible* state, where a blinking part alternates lit / ``off`` (lit first, ``hz`` cycles a second).
- When a rule fires it first cancels every pending timer whose rule writes any part or var this rule
  writes: unplugging the power cancels the "turn green in 3 s" of the boot in progress.
- Emitted events run at once (depth-first, in order) and are limited to ``MAX_EVENT_DEPTH`` levels.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Literal

from product_models.catalog import ACTIONS, Product
from product_models.twin_rules import Effect, Rule, TwinError, TwinSpec, parse_twin

__all__ = ["ActResult", "StateChange", "Twin", "TwinError", "parse_twin"]

MAX_EVENT_DEPTH = 16


@dataclass(frozen=True)
class StateChange:
    at: float  # seconds, the twin's clock
    name: str  # part or hidden var
    old: str
    new: str
    kind: Literal["part", "var"]
    blinking: bool = False  # the new state blinks (visible state alternates with "off")
    rule: str = ""  # the rule whose effect made the change


@dataclass(frozen=True)
class ActResult:
    """What one ``act`` call did. ``changes`` also holds timer changes that fell due before the action."""

    changes: tuple[StateChange, ...]
    rule: str | None  # the rule that fired; None when the action had no effect
    refused: str | None = None  # why the action is physically impossible right now

    @property
    def happened(self) -> bool:
        return self.rule is not None and self.refused is None


@dataclass(frozen=True)
class _Blink:
    state: str
    hz: float
    since: float


@dataclass(order=True)
class _Timer:
    due: float
    seq: int
    touches: frozenset[str] = field(compare=False)
    effect: Effect = field(compare=False)
    rule: str = field(compare=False)


class Twin:
    """A product's simulated state: visible part states, hidden vars, blinking parts and pending timers."""

    def __init__(self, product: Product, fault: str | None = None, now: float = 0.0) -> None:
        """Start as a device showing ``fault`` (None: healthy) at time ``now``. Raises :class:`TwinError`
        for an unknown fault or a bad ``twin:`` section."""
        self.product = product
        self.spec: TwinSpec = parse_twin(product)
        if fault is not None and fault not in product.faults:
            raise TwinError(f"product {product.id!r} has no fault {fault!r}; known faults: "
                            + ", ".join(sorted(product.faults)))
        self.fault = fault
        self._states: dict[str, str] = dict(product.fault_states(fault) if fault else product.healthy_states())
        self._vars: dict[str, str] = {name: v.initial for name, v in self.spec.vars.items()}
        self._vars.update(self.spec.fault_vars.get(fault or "", {}))
        self._blinks: dict[str, _Blink] = {}
        self._timers: list[_Timer] = []
        self._seq = 0
        self._now = _check_time(now, None)

    @classmethod
    def healthy(cls, product: Product, now: float = 0.0) -> Twin:
        return cls(product, None, now)

    # ------------------------------------------------------------------------------------------------
    # Queries

    @property
    def now(self) -> float:
        """The latest time the twin has been advanced to."""
        return self._now

    @property
    def vars(self) -> dict[str, str]:
        """Hidden variables (a copy)."""
        return dict(self._vars)

    def states(self, now: float) -> dict[str, str]:
        """Visible part states at ``now`` (fires due timers first; blinking parts may read ``off``)."""
        self.advance(now)
        out = dict(self._states)
        for part, blink in self._blinks.items():
            phase = math.floor((now - blink.since) * blink.hz * 2.0 + 1e-9)
            out[part] = blink.state if phase % 2 == 0 else "off"
        return out

    def underlying_states(self, now: float) -> dict[str, str]:
        """Part states at ``now`` with blinking parts at their lit state (what rule conditions read)."""
        self.advance(now)
        return dict(self._states)

    def blinking(self, now: float) -> dict[str, float]:
        """Blinking parts at ``now`` -> frequency in Hz."""
        self.advance(now)
        return {part: b.hz for part, b in self._blinks.items()}

    def next_timer_at(self) -> float | None:
        """When the next pending timer fires, or None when nothing is pending."""
        return self._timers[0].due if self._timers else None

    def is_healthy(self, now: float) -> bool:
        """True when every part shows its healthy state, nothing blinks and every hidden var is healthy."""
        self.advance(now)
        healthy_vars = all(self._vars[n] == v.initial for n, v in self.spec.vars.items())
        return not self._blinks and healthy_vars and self._states == self.product.healthy_states()

    # ------------------------------------------------------------------------------------------------
    # Time and actions

    def advance(self, now: float) -> list[StateChange]:
        """Fire every timer due at or before ``now``, in time order; return the changes they made."""
        self._now = _check_time(now, self._now)
        changes: list[StateChange] = []
        while self._timers and self._timers[0].due <= now:
            timer = heapq.heappop(self._timers)
            self._apply(timer.effect, timer.due, timer.rule, changes, depth=0)
        return changes

    def act(self, action: str, part: str, now: float, duration: float | None = None) -> ActResult:
        """A person does ``action`` on ``part``, finishing at ``now``. ``duration`` (seconds) is required
        for ``hold`` and refused for every other action. See the module rules for errors and refusals."""
        where = f"{self.product.id}.{part}"
        if action not in ACTIONS:
            raise TwinError(f"unknown action {action!r} on {where}; expected one of: {', '.join(ACTIONS)}")
        if not self.product.has_part(part):
            raise TwinError(f"product {self.product.id!r} has no part {part!r}; known parts: "
                            + ", ".join(p.name for p in self.product.parts))
        accepted = self.product.part(part).actions
        if action not in accepted:
            raise TwinError(f"part {where} does not accept action {action!r}; it accepts: "
                            + (", ".join(accepted) or "(nothing)"))
        if action == "hold":
            if duration is None or isinstance(duration, bool) or not math.isfinite(duration) or duration < 0:
                raise TwinError(f"hold on {where} needs duration >= 0 seconds, got {duration!r}")
        elif duration is not None:
            raise TwinError(f"{action} on {where} takes no duration (only hold does), got {duration!r}")
        now = _check_time(now, self._now)
        changes = self.advance(now)
        for rule in self.spec.action_rules(action, part):
            if action == "hold" and (duration or 0.0) < rule.trigger.min_seconds:
                continue
            if self._holds(rule):
                if rule.refuse is not None:
                    return ActResult(tuple(changes), rule.name, rule.refuse)
                self._fire(rule, now, changes, depth=0)
                return ActResult(tuple(changes), rule.name)
        return ActResult(tuple(changes), None)

    # ------------------------------------------------------------------------------------------------
    # Rule machinery

    def _holds(self, rule: Rule) -> bool:
        for name, allowed in rule.condition:
            value = self._states.get(name) if name in self._states else self._vars.get(name)
            if value not in allowed:
                return False
        return True

    def _fire(self, rule: Rule, now: float, changes: list[StateChange], depth: int) -> None:
        if rule.touches:  # cancel before scheduling, so this firing's own timers survive
            kept = [t for t in self._timers if not (t.touches & rule.touches)]
            if len(kept) != len(self._timers):
                self._timers = kept
                heapq.heapify(self._timers)
        for effect in rule.effects:
            if effect.after > 0:
                self._seq += 1
                heapq.heappush(self._timers, _Timer(now + effect.after, self._seq, rule.touches, effect, rule.name))
            else:
                self._apply(effect, now, rule.name, changes, depth)

    def _apply(self, effect: Effect, now: float, rule: str, changes: list[StateChange], depth: int) -> None:
        if effect.op == "set":
            for part, state in effect.values:
                old = self._states[part]
                was_blinking = self._blinks.pop(part, None) is not None
                self._states[part] = state
                if old != state or was_blinking:
                    changes.append(StateChange(now, part, old, state, "part", rule=rule))
        elif effect.op == "set_var":
            for name, value in effect.values:
                old = self._vars[name]
                self._vars[name] = value
                if old != value:
                    changes.append(StateChange(now, name, old, value, "var", rule=rule))
        elif effect.op == "blink":
            part, state = effect.part or "", effect.state or ""
            old = self._states[part]
            self._states[part] = state
            self._blinks[part] = _Blink(state, effect.hz, now)
            changes.append(StateChange(now, part, old, state, "part", blinking=True, rule=rule))
        else:
            if depth >= MAX_EVENT_DEPTH:
                raise TwinError(f"product {self.product.id!r}: event {effect.event!r} (from rule {rule!r}) nests "
                                f"more than {MAX_EVENT_DEPTH} levels; the twin rules emit events in a loop")
            for candidate in self.spec.event_rules(effect.event or ""):
                if self._holds(candidate):
                    self._fire(candidate, now, changes, depth + 1)
                    break


def _check_time(now: float, last: float | None) -> float:
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise TwinError(f"time must be a finite number of seconds, got {now!r}")
    if last is not None and now < last:
        raise TwinError(f"time went back: now={now} is before the twin's clock {last}; pass increasing times")
    return float(now)
