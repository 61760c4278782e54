"""The scene simulator: replay a small events file through the engine and write a readable transcript.

Events file (YAML, a list, times in seconds from the start, never decreasing)::

    - {at: 0, observe: {led_power: green, led_internet: red}}   # this product, parts as seen
    - {at: 2, observe: {port_wan: plugged}, confidence: 0.9}
    - {at: 5, product: printer_lx400}                           # another product in view
    - {at: 6, product: null}                                    # nothing in view
    - {at: 8, user: choose, choice: reset}                      # done | back | help | choose
    - {at: 90, tick: true}                                      # just let time pass

Between events the simulator ticks every ``tick_s`` seconds, repeating the latest observation as a
camera would, so hold timers and timeouts fire as they would in a live session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from product_models.catalog import Catalog, Product, default_catalog
from product_models.sourcemap import PathKey, SourceDoc, SourceError, format_path, load_file
from scenes.engine import Engine, EngineConfig
from scenes.errors import EventsFileError, SceneError
from scenes.events import (
    USER_KINDS,
    Effect,
    End,
    Escalate,
    Event,
    Notice,
    Observation,
    PartObservation,
    ShowStep,
    Tick,
    UserEvent,
)
from scenes.loader import source_issue
from scenes.model import Issue, Scene
from scenes.reader import type_name
from scenes.view import Animate, Arrow, OverlayView

KINDS = ("observe", "product", "user", "tick")


def load_events(path: str | Path, scene: Scene, catalog: Catalog | None = None) -> list[tuple[float, Event]]:
    """Read and check an events file against the scene's product. Raises :class:`EventsFileError`."""
    try:
        doc = load_file(path)
    except SourceError as exc:
        raise EventsFileError([source_issue(exc)]) from None
    return parse_events(doc, scene, catalog or default_catalog())


def parse_events(doc: SourceDoc, scene: Scene, catalog: Catalog) -> list[tuple[float, Event]]:
    issues: list[Issue] = []

    def bad(path: PathKey, message: str) -> None:
        pos = doc.position(path)
        issues.append(Issue(doc.file, pos.line, pos.col, format_path(path), "error", message))

    product = catalog.get(scene.product)
    if not isinstance(doc.data, list) or not doc.data:
        bad((), f"an events file is a non-empty list of events, got {type_name(doc.data)}")
        raise EventsFileError(issues)
    out: list[tuple[float, Event]] = []
    last = 0.0
    for i, raw in enumerate(doc.data):
        path: PathKey = (i,)
        if not isinstance(raw, dict):
            bad(path, f"an event must be a map like {{at: 1, observe: {{...}}}}, got {type_name(raw)}")
            continue
        at = raw.get("at")
        if isinstance(at, bool) or not isinstance(at, int | float) or at < 0:
            bad((*path, "at"), f"'at' must be a number of seconds >= 0, got {at!r}")
            continue
        if at < last:
            bad((*path, "at"), f"events must be in time order: {at} comes after {last}")
        last = max(last, float(at))
        kinds = [k for k in KINDS if k in raw]
        if len(kinds) != 1:
            bad(path, f"an event needs exactly one of {', '.join(KINDS)}; found {', '.join(kinds) or 'none'}")
            continue
        allowed = {"at", kinds[0], *({"confidence"} if kinds[0] == "observe" else ()),
                   *({"choice"} if kinds[0] == "user" else ())}
        for key in raw:
            if key not in allowed:
                bad((*path, key), f"unknown field {key!r} in a {kinds[0]} event")
        event = _event(kinds[0], raw, path, product, catalog, bad)
        if event is not None:
            out.append((float(at), event))
    if issues:
        raise EventsFileError(issues)
    return out


def _event(kind: str, raw: dict, path: PathKey, product: Product, catalog: Catalog, bad: Any) -> Event | None:
    if kind == "tick":
        if raw["tick"] is not True:
            bad((*path, "tick"), "write 'tick: true'")
            return None
        return Tick()
    if kind == "product":
        other = raw["product"]
        if other is not None and (not isinstance(other, str) or other not in catalog):
            bad((*path, "product"), f"unknown product {other!r}; known products: {', '.join(catalog.products)}")
            return None
        return Observation(other)
    if kind == "user":
        user, choice = raw["user"], raw.get("choice")
        if user not in USER_KINDS:
            bad((*path, "user"), f"unknown user event {user!r}; expected one of: {', '.join(USER_KINDS)}")
            return None
        if (user == "choose") != (choice is not None) or (choice is not None and not isinstance(choice, str)):
            bad((*path, "choice") if choice is not None else path, "'choose' needs 'choice: <id>', other kinds none")
            return None
        return UserEvent(user, choice)
    seen = raw["observe"]
    confidence = raw.get("confidence", 1.0)
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 <= confidence <= 1:
        bad((*path, "confidence"), f"confidence must be a number within 0..1, got {confidence!r}")
        return None
    if not isinstance(seen, dict) or not seen:
        bad((*path, "observe"), f"'observe' needs a map of part -> state, got {type_name(seen)}")
        return None
    parts: dict[str, PartObservation] = {}
    for name, state in seen.items():
        where = (*path, "observe", name)
        if not isinstance(name, str) or not product.has_part(name) or not product.part(name).states:
            known = ", ".join(p.name for p in product.stateful_parts())
            bad(where, f"unknown part {name!r} of {product.id!r}; parts with states: {known}")
        elif state not in product.part(name).states:
            bad(where, f"unknown state {state!r} of part {name!r}; expected one of: "
                       + ", ".join(product.part(name).states))
        else:
            parts[name] = PartObservation(state, float(confidence))
    return Observation(product.id, parts) if len(parts) == len(seen) else None


@dataclass
class Transcript:
    lines: list[str] = field(default_factory=list)
    outcome: str | None = None
    last_step: str | None = None

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def simulate(scene: Scene, product: Product, events: list[tuple[float, Event]], locale: str = "en", *,
             tick_s: float = 0.5, config: EngineConfig | None = None) -> Transcript:
    """Run ``events`` through a fresh engine, ticking every ``tick_s`` seconds in between."""
    engine = Engine(scene, product, locale, config=config)
    out = Transcript()
    out.lines.append(f"scene {scene.id} ({scene.product}), locale {engine.locale}")
    _write(out, 0.0, engine.start(0.0))
    now = 0.0
    # A camera keeps reporting what it sees, so between events the latest observation is repeated at
    # every tick (a bare Tick until the first one). Without this, sparse files would look like a
    # customer who keeps looking away.
    seen: Event = Tick()
    for index, (at, event) in enumerate(events):
        while now + tick_s < at and not engine.finished:
            now += tick_s
            _write(out, now, engine.handle(seen, now))
        if engine.finished:
            out.lines.append(f"         ({len(events) - index} event(s) after the end are ignored)")
            break
        now = at
        if not isinstance(event, Tick):
            out.lines.append(f"{now:7.1f}s  > {_describe(event)}")
        if isinstance(event, Observation):
            seen = event
        try:
            _write(out, now, engine.handle(event, now))
        except SceneError as exc:
            out.lines.append(f"{now:7.1f}s  rejected: {exc}")
    out.outcome = engine.outcome
    out.last_step = engine.step_id
    if engine.outcome is None:
        out.lines.append(f"{now:7.1f}s  (events ran out at step {engine.step_id}; no outcome yet)")
    return out


def _describe(event: Event) -> str:
    if isinstance(event, UserEvent):
        return f"user {event.kind}" + (f" {event.choice}" if event.choice else "")
    if isinstance(event, Observation):
        if event.product is None:
            return "nothing in view"
        seen = ", ".join(f"{p}={r.state}" + (f" ({r.confidence:g})" if r.confidence < 1 else "")
                         for p, r in event.parts.items())
        return f"observe {event.product}" + (f": {seen}" if seen else "")
    return "tick"


def _what(overlay: OverlayView) -> tuple[str, ...]:
    """What an overlay does beyond marking its part: the action shown, or where an arrow points."""
    if isinstance(overlay, Animate):
        return (overlay.action,)
    if isinstance(overlay, Arrow):
        return (overlay.direction,)
    return ()


def _write(out: Transcript, now: float, effects: list[Effect]) -> None:
    for effect in effects:
        stamp = f"{now:7.1f}s  "
        if isinstance(effect, ShowStep):
            p = effect.progress
            out.lines.append(f"{stamp}step {effect.step_id} [{p.index}/{p.total}]: {effect.text}")
            if effect.reason:
                out.lines.append(f"           because {effect.reason}")
            if effect.overlays:
                shown = ", ".join(" ".join((o.kind, o.part, *_what(o))) for o in effect.overlays)
                out.lines.append(f"           overlays: {shown}")
            if effect.choices:
                out.lines.append("           choices: " + " | ".join(f"[{c.id}] {c.label}" for c in effect.choices))
        elif isinstance(effect, Notice):
            out.lines.append(f"{stamp}notice {effect.code}: {effect.text}")
        elif isinstance(effect, Escalate):
            kind = "escalation offer" if effect.offer else "escalate"
            out.lines.append(f"{stamp}{kind} ({effect.reason}): {effect.text}")
        elif isinstance(effect, End):
            out.lines.append(f"{stamp}end: {effect.outcome}")
            out.outcome = effect.outcome
