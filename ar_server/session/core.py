"""The session core: one WebSocket connection's session as a state machine. No I/O, no asyncio, no clock.

``SessionCore.handle(event, now) -> list[effect]``: events (``events.py``) go in one at a time, effects
(``effects.py``) come out, in the order the driver (``live.py``) must perform them. ``now`` is seconds on the
server's one clock (``create_app(clock=...)``: wall time, or a simulated clock in lockstep runs and tests);
engine timers, smoothing, view hints, the frame-rate gate and the timeouts all read it.

States, and the events each takes (the table ``ACCEPTS``). Any other event is a driver bug: it raises
``SessionStateError`` and changes nothing.

- ``awaiting_hello``: a ``hello`` asks for its session (``OpenSession``) and moves to ``opening``. Anything else
  the client sends is answered with a fatal error, as is ``hello_timeout_s`` without a ``hello`` (close 1008).
- ``opening``: ``SessionOpened`` sends ``welcome``, then the current step (a resume) or the scene's first step,
  and moves to ``open``; ``OpenRefused`` sends its fatal error and closes.
- ``open``: the rules below.
- ``closed``: takes nothing.

Rules of an open session:
1. Frames: ``seq`` must increase on a connection (else ``bad_field`` on ``seq``); frames over ``max_fps`` are
   dropped silently, and a client far over it gets ``rate_limited``. One frame at a time is in inference;
   an admitted frame that arrives meanwhile waits in the one-frame slot, replacing any waiting one. Every
   error about a frame carries its ``seq``.
2. A result is smoothed (``vision.smoothing.TemporalSmoother``) and verified
   (``vision.verification.StepVerifier``), one of each per session, both started over when another product
   comes into view. The client's ``obs`` echoes the frame's ``seq`` and ``ts`` with the smoothed states; the
   scene engine gets only verified ones, so a step moves on only on the evidence that rule asks for. The
   result also gives the next frame's track (``vision.tracking.Tracker``).
3. A step change is recorded (the step left, as verified by vision, by the user or by its timeout; the step
   entered; the engine snapshot) before its ``step`` message, in the order the engine produced it.
4. Without a scene, each smoothed observation is offered to ``scenes.select``; the first match starts its
   scene and a ``scene_started`` notice says why. While another scene's more specific trigger is still open
   (``scenes.collection.better_open``: its parts not yet seen), the start waits up to ``OPEN_TRIGGER_WAIT_S`` for the
   camera to see them (the view hints ask for them, rule 6); then the best match starts.
5. Escalations (offered, asked for, handed over) are recorded with the context an agent needs. ``help``
   is answered with ``help_requested`` every time; the first press on a step records the escalation.
   ``escalation_offer`` is only ever the server's own offer (a struggling customer).
6. While a step runs, ``ViewHints`` says why the parts it watches cannot be read, in the engine's locale,
   at most once per code every ``ViewHintConfig.interval_s``; each is recorded like an engine notice.
   Before a scene runs, with the product in view, it says the same of the parts the product's scenes
   trigger on (a fault that shows on the back is never found while the camera stays in front).
7. The session ends (``end``, close 1000) when its scene ends. ``idle_timeout_s`` without a message ends it
   as ``abandoned`` (``idle_timeout``, close 1008). Leaving any other way (``bye``, a drop, a takeover,
   the server going away, a server bug) saves the engine state: the session stays resumable.
8. People from support (``AgentJoined`` ... ``AgentEnded``): ``accept_help`` puts the session in the agent
   queue (``AcceptHelp``, ``agent_queued``). Agents joining, leaving, writing and pointing reach the customer
   as ``agent`` messages; while one or more watch, admitted frames go to them (``ShowAgents``) at most
   ``agent_frame_fps`` a second. An agent may move the session to a step (recorded like a Done) or end it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ar_server.errors import ProtocolError, SessionStateError
from ar_server.inference import wire_code
from ar_server.jpeg_probe import probe_jpeg
from ar_server.metrics import Metrics
from ar_server.protocol import Agent, CloseCode, End, Error, Frame, Limits, Notice, Welcome
from ar_server.session.agents import agent_text, move_engine
from ar_server.session.convert import OUTCOMES, observation_summary, scene_observation, stage_ms, step_message, wire_obs
from ar_server.session.effects import (
    AcceptHelp,
    ArchiveFrame,
    Close,
    EndSession,
    EnterStep,
    Infer,
    OpenEscalation,
    OpenSession,
    RecordEvent,
    RememberObservation,
    SaveSnapshot,
    SceneStarted,
    Send,
    SessionEffect,
    ShowAgents,
)
from ar_server.session.events import (
    AgentEnded,
    AgentJoined,
    AgentLeft,
    AgentMoved,
    AgentPointed,
    AgentSaid,
    ByeReceived,
    Disconnected,
    Failed,
    FrameNotStored,
    FrameReceived,
    GoingAway,
    HelloReceived,
    InferenceFailed,
    MessageRefused,
    OpenRefused,
    SessionEvent,
    SessionOpened,
    TakenOver,
    Tick,
    UserEventReceived,
    VisionResult,
)
from ar_server.session.slot import FrameSlot, PendingFrame, RateGate
from ar_server.session.view_hints import ViewHints, hint_text, trigger_parts, watched_parts
from ar_server.store.base import StepHow
from product_models.camera import CameraIntrinsics
from product_models.catalog import Catalog
from scenes import Effect, Engine, Escalate, IllegalEventError, Library, ShowStep, UserEvent, select
from scenes import End as EngineEnd
from scenes import Notice as EngineNotice
from scenes import Observation as SceneObservation
from scenes import Tick as EngineTick
from scenes.collection import better_open, known_states
from scenes.i18n import message, pick
from vision.errors import FrameFault, VisionError
from vision.jpeg_header import JpegHeader
from vision.smoothing import TemporalSmoother
from vision.tracking import Tracker
from vision.types import FrameInput, Observation
from vision.verification import StepVerifier

State = Literal["awaiting_hello", "opening", "open", "closed"]
HELLO_TIMEOUT_S = 30.0  # a connection that says nothing this long after opening is closed
# Rule 4: how long a matching scene waits for the camera to see the parts of a more specific one. A customer
# asked to turn the device (view hints, 1.5 s after a part goes unseen) needs a few seconds to walk round; a
# scene that holds should not wait much longer than that.
OPEN_TRIGGER_WAIT_S = 8.0

_CLIENT = frozenset({HelloReceived, FrameReceived, UserEventReceived, ByeReceived, MessageRefused})
_ALWAYS = frozenset({Tick, GoingAway, Disconnected, Failed})
_AGENT = frozenset({AgentJoined, AgentLeft, AgentSaid, AgentPointed, AgentMoved, AgentEnded})
ACCEPTS: dict[State, frozenset[type]] = {
    "awaiting_hello": _CLIENT | _ALWAYS,
    "opening": frozenset({SessionOpened, OpenRefused}) | _ALWAYS,
    "open": _CLIENT | _ALWAYS | _AGENT | {VisionResult, InferenceFailed, FrameNotStored, TakenOver},
    "closed": frozenset(),
}
# How the step that was left got done (rule 3), by what moved the engine on.
HOW_BY_CAUSE: dict[str, StepHow] = {"vision": "vision", "timeout": "timeout", "done": "user", "choice": "user",
                                    "back": "user"}


@dataclass(frozen=True)
class CoreConfig:
    limits: Limits  # sent in `welcome`; `max_fps` is the rate gate's
    idle_timeout_s: float = 300.0  # no message this long ends a connected session (rule 7)
    hello_timeout_s: float = HELLO_TIMEOUT_S
    archive_interval_s: float | None = None  # at most one stored frame per this many seconds; None: never
    agent_frame_fps: float = 5.0  # frames per second passed on to watching agents, at most (rule 8)


class SessionCore:
    """One connection's session; see the module docstring. ``library`` gives the scenes a session may start
    from now (a library edited over REST applies to scenes started after the edit)."""

    def __init__(self, config: CoreConfig, *, catalog: Catalog, library: Callable[[], Library], now: float,
                 metrics: Metrics | None = None) -> None:
        self.config = config
        self.catalog = catalog
        self._library = library
        self.metrics = metrics or Metrics()
        self.state: State = "awaiting_hello"
        self._now = now
        self._connected_at = now
        self._last_message_at = now
        self.session_id: str | None = None
        self.locale = "en"
        self.engine: Engine | None = None
        self.outcome: str | None = None  # set when the session ended for good
        self.processed = 0  # frames whose result came back
        self._camera: CameraIntrinsics | None = None
        self._product_hint: str | None = None
        self._consent_store_frames = False
        self._slot = FrameSlot()
        self._in_flight: PendingFrame | None = None
        self._gate = RateGate(config.limits.max_fps)
        self._tracking = Tracker()
        self._smoother = TemporalSmoother()
        self._verifier = StepVerifier()
        self._hints = ViewHints(self._verifier.config.min_size_px)
        self._deferred_since: float | None = None  # rule 4: when a matching scene first waited for a better one
        self._smoothed_product: str | None = None
        self._last_seq: int | None = None
        self._last_stored_at = -math.inf
        self._notices_sent: set[str] = set()
        self._agents: dict[str, int] = {}  # display name -> how many of that agent's connections watch
        self._last_shown_at = -math.inf

    @property
    def closed(self) -> bool:
        return self.state == "closed"

    def handle(self, event: SessionEvent, now: float) -> list[SessionEffect]:
        """Take one event at ``now`` (seconds; an earlier time than one already seen counts as that one)."""
        kind = type(event)
        if kind not in ACCEPTS[self.state]:
            raise SessionStateError("illegal_event", f"a session in state {self.state} takes no {kind.__name__}")
        if isinstance(event, VisionResult | InferenceFailed) and (
                self._in_flight is None or self._in_flight.frame.seq != event.seq):
            asked = None if self._in_flight is None else self._in_flight.frame.seq
            raise SessionStateError("illegal_event", f"a result for frame {event.seq}; the frame in inference is "
                                                     f"{asked}")
        now = self._now = max(self._now, float(now))
        if kind in _CLIENT:
            self._last_message_at = now
        return _HANDLERS[kind](self, event, now)

    # ---------------------------------------------------------------- hello and opening

    def _on_hello(self, event: HelloReceived, now: float) -> list[SessionEffect]:
        if self.state == "open":
            return [_error("duplicate_hello", "hello was already received on this connection")]
        self.state = "opening"
        return [OpenSession(event.hello)]

    def _on_opened(self, event: SessionOpened, now: float) -> list[SessionEffect]:
        self.state = "open"
        self.session_id, self.locale, self.engine = event.session_id, event.locale, event.engine
        self._camera, self._product_hint = event.camera, event.product_hint
        self._consent_store_frames = event.consent_store_frames
        effects: list[SessionEffect] = [Send(Welcome(session=event.session_id, resume=event.resume,
                                                     limits=self.config.limits, server_time=now,
                                                     resumed=event.resumed,
                                                     store_frames=self.config.archive_interval_s is not None,
                                                     agents=True))]
        if event.unknown_product is not None:
            effects.append(_error("unknown_product", f"unknown product {event.unknown_product!r}; the hint is "
                                                     "ignored", field="product"))
        engine = self.engine
        if engine is not None and event.resumed and engine.step_id is not None:
            effects.append(Send(step_message(engine.view())))
        elif engine is not None and engine.step_id is None:
            self._apply(engine.start(now), None, effects)
        return effects

    def _on_refused(self, event: OpenRefused, now: float) -> list[SessionEffect]:
        return self._leave([Send(event.error)], _close_code(event.error))

    def _before_hello(self, what: str, seq: int | None = None) -> list[SessionEffect]:
        error = Error("hello_required", f"the first message must be hello, got {what}", fatal=True, seq=seq)
        return self._leave([Send(error)], CloseCode.POLICY_VIOLATION)

    # ---------------------------------------------------------------- client messages

    def _on_frame(self, event: FrameReceived, now: float) -> list[SessionEffect]:
        """Rule 1."""
        frame = event.frame
        if self.state == "awaiting_hello":
            return self._before_hello("frame", frame.seq)
        metrics = self.metrics
        metrics.frames_received.inc()
        try:
            header = self._read_header(frame)
        except ProtocolError as exc:
            metrics.frames_dropped.inc(reason="invalid")
            return [_error(exc.code, exc.message, field=exc.field, seq=frame.seq)]
        if self._last_seq is not None and frame.seq <= self._last_seq:
            metrics.frames_dropped.inc(reason="invalid")
            return [_error("bad_field", f"seq must increase: expected more than {self._last_seq}, got {frame.seq}",
                           field="seq", seq=frame.seq)]
        self._last_seq = frame.seq
        if not self._gate.admit(now):
            metrics.frames_dropped.inc(reason="rate")
            if self._gate.abusive(now):
                return [_error("rate_limited", f"frames arrive faster than {self._gate.rate:g} per second by a large "
                                               "factor; excess frames are dropped", seq=frame.seq)]
            return []
        pending = PendingFrame(frame, now, header)
        effects: list[SessionEffect] = []
        # Rule 8; the millisecond of slack keeps frames exactly 1/fps apart from being skipped by rounding.
        if self._agents and now - self._last_shown_at >= 1.0 / self.config.agent_frame_fps - 1e-3:
            self._last_shown_at = now
            effects.append(ShowAgents(frame.seq, frame.jpeg))
        if self._in_flight is None:
            return [*effects, self._infer(pending)]
        if self._slot.put(pending):
            metrics.frames_dropped.inc(reason="superseded")
        return effects

    def _read_header(self, frame: Frame) -> JpegHeader:
        """The JPEG's header, checked against the size limits and the size the client declared. Raises
        ``ProtocolError`` (``bad_jpeg``, ``too_large`` or ``bad_field``)."""
        limits = self.config.limits
        header = probe_jpeg(frame.jpeg, max_width=limits.max_width, max_height=limits.max_height)
        for key, declared, actual in (("width", frame.width, header.width), ("height", frame.height, header.height)):
            if declared and declared != actual:
                raise ProtocolError("bad_field", f"declared {key} {declared} does not match the JPEG header's "
                                                 f"{actual}", key)
        return header

    def _on_user_event(self, event: UserEventReceived, now: float) -> list[SessionEffect]:
        """Rule 5 for ``help``; a click on a step that is over gets ``stale_step``."""
        if self.state == "awaiting_hello":
            return self._before_hello("event")
        kind, engine = event.event.kind, self.engine
        if kind == "accept_help":  # rule 8
            running = engine is not None and not engine.finished
            return [AcceptHelp(engine.step_id if running and engine else None,
                               engine.scene.id if engine is not None else None, self.locale),
                    Send(Notice("agent_queued", agent_text("agent_queued", self._locale())))]
        if engine is None or engine.finished:
            if kind == "help":
                return [OpenEscalation("help", True, None, None, self.locale), self._notice("help_requested")]
            return [Send(Notice("no_scene", "No guidance is running yet: point the camera at the device."))]
        if event.event.step is not None and event.event.step != engine.step_id:
            return [self._notice("stale_step")]
        before = engine.step_id
        try:
            engine_effects = engine.handle(UserEvent(kind, event.event.choice), now)
        except IllegalEventError as exc:
            return [_error("bad_field", str(exc), field="choice" if kind == "choose" else "kind")]
        effects: list[SessionEffect] = []
        self._apply(engine_effects, before, effects)
        if kind == "help" and not any(isinstance(e, Escalate) and e.reason == "help" for e in engine_effects):
            effects.append(self._notice("help_requested"))  # asked again on this step: recorded the first time
        return effects

    def _on_bye(self, event: ByeReceived, now: float) -> list[SessionEffect]:
        if self.state == "awaiting_hello":
            return self._before_hello("bye")
        return self._leave([], CloseCode.NORMAL)

    def _on_message_refused(self, event: MessageRefused, now: float) -> list[SessionEffect]:
        fatal = self.state == "awaiting_hello" or event.fatal
        error = Error(event.code, event.message, fatal=fatal, field=event.field, seq=event.seq)
        return self._leave([Send(error)], CloseCode.POLICY_VIOLATION) if fatal else [Send(error)]

    # ---------------------------------------------------------------- frames -> vision -> engine

    def _infer(self, pending: PendingFrame) -> Infer:
        self._in_flight = pending
        frame = pending.frame
        return Infer(FrameInput(jpeg=frame.jpeg, seq=frame.seq, ts=frame.ts, camera=self._camera,
                                product_hint=self._product_hint, track=self._tracking.track_for(frame.ts),
                                header=pending.header))

    def _next_frame(self, effects: list[SessionEffect]) -> list[SessionEffect]:
        if self.state == "open" and (pending := self._slot.take()) is not None:
            effects.append(self._infer(pending))
        return effects

    def _on_vision(self, event: VisionResult, now: float) -> list[SessionEffect]:
        pending, self._in_flight = self._in_flight, None
        assert pending is not None  # checked in handle()
        effects: list[SessionEffect] = []
        if isinstance(event.value, VisionError):
            # A fault is the server's own bug met on this frame: counted apart, so an operator's alert on it is not
            # buried under clients' bad frames.
            self.metrics.frames_dropped.inc(reason="fault" if isinstance(event.value, FrameFault) else "vision_error")
            code, field = wire_code(event.value)
            effects.append(_error(code, str(event.value), field=field, seq=pending.frame.seq))
        else:
            self._tracking.follow(event.value, pending.frame.ts)
            self._observed(event.value, pending, event.queue_ms, now, effects)
        return self._next_frame(effects)

    def _on_inference_failed(self, event: InferenceFailed, now: float) -> list[SessionEffect]:
        self._in_flight = None
        self.metrics.frames_dropped.inc(reason=event.code)
        if event.code == "overloaded":
            return self._next_frame(self._notice_once("server_busy", "The server is busy; some frames are skipped."))
        error = Error("internal", f"{event.message}; resume the session to continue", fatal=True, seq=event.seq)
        return self._leave([Send(error)], CloseCode.INTERNAL_ERROR)

    def _observed(self, vobs: Observation, pending: PendingFrame, queue_ms: float, now: float,
                  effects: list[SessionEffect]) -> None:
        """Rules 2, 4 and 6 for one result."""
        metrics = self.metrics
        self.processed += 1
        metrics.frames_processed.inc()
        if vobs.product_id is not None and vobs.product_id != self._smoothed_product:
            self._smoother.reset()
            self._verifier.reset()
            self._smoothed_product = vobs.product_id
        now_ms = now * 1000.0
        parts = self._smoother.update(now_ms, vobs.parts if vobs.product_id is not None else {})
        verified = self._verifier.update(now_ms, vobs, parts)
        total_ms = (now - pending.received_at) * 1000.0
        obs = wire_obs(vobs, parts, queue_ms=queue_ms, total_ms=total_ms)
        for stage in ("decode", "detect", "pose", "states"):
            metrics.stage_seconds.observe(stage_ms(vobs.timing_ms, stage) / 1000.0, stage=stage)
        metrics.stage_seconds.observe(queue_ms / 1000.0, stage="queue")
        metrics.stage_seconds.observe(total_ms / 1000.0, stage="total")
        effects += [Send(obs), RememberObservation(observation_summary(obs))]
        interval = self.config.archive_interval_s
        if self._consent_store_frames and interval is not None and now - self._last_stored_at >= interval:
            self._last_stored_at = now
            effects.append(ArchiveFrame(pending.frame.seq, pending.frame.jpeg))
        if self.engine is None:
            seen = scene_observation(vobs.product_id, parts, self.catalog)
            self._maybe_start(seen, now, effects)
            if self.engine is None:
                self._hint(vobs, now, effects, known_states(seen))
        elif not self.engine.finished:
            before = self.engine.step_id
            self._apply(self.engine.handle(scene_observation(vobs.product_id, verified, self.catalog), now), before,
                        effects)
            self._hint(vobs, now, effects)

    def _maybe_start(self, seen: SceneObservation, now: float, effects: list[SessionEffect]) -> None:
        """Rule 4."""
        library = self._library()
        selection = select(library, seen, self.locale)
        if selection is None or not better_open(library, seen, selection):
            self._deferred_since = None  # a later wait counts from its own start
            if selection is None:
                return
        else:
            self._deferred_since = now if self._deferred_since is None else self._deferred_since
            if now - self._deferred_since < OPEN_TRIGGER_WAIT_S:
                return
        scene = selection.scene
        self.engine = Engine(scene, self.catalog.get(scene.product), self.locale, reason=selection.trigger.reason)
        title = pick(scene.title, self.locale, scene.default_locale)
        effects += [SceneStarted(scene.id, scene.product, selection.reason),
                    Send(Notice("scene_started", f"{title}: {selection.reason}"))]
        self._apply(self.engine.start(now), None, effects)

    def _hint(self, vobs: Observation, now: float, effects: list[SessionEffect],
              known: dict[str, str] | None = None) -> None:
        """Rule 6: about the current step's parts, or before a scene, about the unknown parts of the triggers
        that the ``known`` part states leave open."""
        engine = self.engine
        if self.state != "open":
            return
        if engine is None:
            if vobs.product_id is None or vobs.product_id not in self.catalog:
                return
            product = self.catalog.get(vobs.product_id)
            watched = trigger_parts(self._library(), product.id, known or {})
            hint = self._hints.update(now, watched, vobs, before_scene=True)
        elif engine.finished or engine.step_id is None:
            return
        else:
            product = engine.product
            hint = self._hints.update(now, watched_parts(engine.scene.steps[engine.step_id]), vobs)
        if hint is not None:
            effects += [RecordEvent("notice", {"code": hint.code, "part": hint.part}),
                        Send(Notice(hint.code, hint_text(hint, product, self._locale()), hint.part))]

    def _apply(self, engine_effects: list[Effect], before: str | None, effects: list[SessionEffect]) -> None:
        """Rules 3 and 5: the engine's effects as the session's, in the engine's order."""
        engine = self.engine
        assert engine is not None
        for effect in engine_effects:
            if isinstance(effect, ShowStep):
                how = HOW_BY_CAUSE.get(effect.cause) if before is not None else None
                effects += [EnterStep(effect.step_id, before, how, engine.snapshot()), Send(step_message(effect))]
                before = effect.step_id
            elif isinstance(effect, EngineNotice):
                effects += [RecordEvent("notice", {"code": effect.code}), Send(Notice(effect.code, effect.text))]
            elif isinstance(effect, Escalate):
                effects.append(OpenEscalation(effect.reason, effect.offer, engine.step_id, engine.scene.id,
                                              self.locale))
                if effect.reason == "help":
                    effects.append(self._notice("help_requested"))
                else:
                    effects.append(Send(Notice("escalation_offer" if effect.offer else "escalated", effect.text)))
            elif isinstance(effect, EngineEnd):
                outcome = OUTCOMES.get(effect.outcome, effect.outcome)
                self._finish(outcome, effects)
                effects += [Send(End(outcome)), Close(CloseCode.NORMAL)]

    # ---------------------------------------------------------------- people from support (rule 8)

    def _on_agent(self, event: AgentJoined | AgentLeft | AgentSaid | AgentPointed, now: float) -> list[SessionEffect]:
        if isinstance(event, AgentJoined):
            self._agents[event.agent] = self._agents.get(event.agent, 0) + 1
            return [Send(Agent("joined", event.agent))] if self._agents[event.agent] == 1 else []
        if isinstance(event, AgentLeft):
            left = self._agents.get(event.agent, 0) - 1
            if left > 0:
                self._agents[event.agent] = left
                return []
            self._agents.pop(event.agent, None)
            return [Send(Agent("left", event.agent))]
        if isinstance(event, AgentSaid):
            return [Send(Agent("message", event.agent, text=event.text))]
        return [Send(Agent("point", event.agent, part=event.part, color=event.color if event.part else None))]

    def _on_agent_moved(self, event: AgentMoved, now: float) -> list[SessionEffect]:
        engine = self.engine
        if engine is None:
            raise SessionStateError("no_scene", "no scene runs in this session yet: there is no step to move to")
        before = engine.step_id
        try:
            engine_effects = move_engine(engine, event.step, now)
        except IllegalEventError as exc:
            raise SessionStateError("bad_step", str(exc)) from None
        effects: list[SessionEffect] = []
        self._apply(engine_effects, before, effects)
        return effects

    def _on_agent_ended(self, event: AgentEnded, now: float) -> list[SessionEffect]:
        effects: list[SessionEffect] = []
        self._finish(event.outcome, effects)
        return [*effects, Send(End(event.outcome, event.text)), Close(CloseCode.NORMAL)]

    # ---------------------------------------------------------------- time and the server

    def _on_tick(self, event: Tick, now: float) -> list[SessionEffect]:
        if self.state == "awaiting_hello":
            if now - self._connected_at >= self.config.hello_timeout_s:
                error = Error("hello_required", f"no hello within {self.config.hello_timeout_s:g} s", fatal=True)
                return self._leave([Send(error)], CloseCode.POLICY_VIOLATION)
            return []
        if self.state == "opening":
            return []
        effects: list[SessionEffect] = []
        if now - self._last_message_at > self.config.idle_timeout_s:
            effects.append(_error("idle_timeout", f"no message for {self.config.idle_timeout_s:g} s", fatal=True))
            self._finish("abandoned", effects)
            effects.append(Close(CloseCode.POLICY_VIOLATION))
        elif self.engine is not None and not self.engine.finished:
            before = self.engine.step_id
            self._apply(self.engine.handle(EngineTick(), now), before, effects)
        return effects

    def _on_frame_not_stored(self, event: FrameNotStored, now: float) -> list[SessionEffect]:
        return self._notice_once("frames_not_stored", f"Frames are not being stored: {event.reason}")

    def _on_taken_over(self, event: TakenOver, now: float) -> list[SessionEffect]:
        error = Error("forbidden", "this session was resumed from another connection", fatal=True,
                      reason="taken_over")
        return self._leave([Send(error)], CloseCode.POLICY_VIOLATION)

    def _on_going_away(self, event: GoingAway, now: float) -> list[SessionEffect]:
        return self._leave([], CloseCode.GOING_AWAY)

    def _on_disconnected(self, event: Disconnected, now: float) -> list[SessionEffect]:
        return self._leave([], None)

    def _on_failed(self, event: Failed, now: float) -> list[SessionEffect]:
        error = Error("internal", f"internal server error ({event.message}); resume the session to continue",
                      fatal=True)
        return self._leave([Send(error)], CloseCode.INTERNAL_ERROR)

    # ---------------------------------------------------------------- endings and notices

    def _leave(self, effects: list[SessionEffect], code: int | None) -> list[SessionEffect]:
        """Rule 7: close without ending; an open session's engine state is saved for a resume."""
        if self.state == "open" and self.engine is not None:
            effects.append(SaveSnapshot(self.engine.snapshot()))
        if code is not None:
            effects.append(Close(code))
        self.state = "closed"
        return effects

    def _finish(self, outcome: str, effects: list[SessionEffect]) -> None:
        """Rule 7: end the session for good (the caller says whether and how the client hears of it)."""
        self.outcome = outcome
        effects.append(EndSession(outcome, None if self.engine is None else self.engine.snapshot()))
        self.state = "closed"

    def _notice(self, code: str) -> Send:
        """A notice in the session's language (``scenes.i18n.MESSAGES``)."""
        return Send(Notice(code, message(code, self.engine.locale if self.engine is not None else self.locale)))

    def _locale(self) -> str:
        return self.engine.locale if self.engine is not None else self.locale

    def _notice_once(self, code: str, text: str) -> list[SessionEffect]:
        if code in self._notices_sent:
            return []
        self._notices_sent.add(code)
        return [Send(Notice(code, text))]


def _error(code: str, text: str, *, field: str | None = None, seq: int | None = None, fatal: bool = False) -> Send:
    return Send(Error(code, text, fatal=fatal, field=field, seq=seq))


def _close_code(error: Error) -> int:
    return CloseCode.INTERNAL_ERROR if error.code == "internal" else CloseCode.POLICY_VIOLATION


_HANDLERS: dict[type, Callable[[SessionCore, Any, float], list[SessionEffect]]] = {
    HelloReceived: SessionCore._on_hello,
    SessionOpened: SessionCore._on_opened,
    OpenRefused: SessionCore._on_refused,
    FrameReceived: SessionCore._on_frame,
    UserEventReceived: SessionCore._on_user_event,
    ByeReceived: SessionCore._on_bye,
    MessageRefused: SessionCore._on_message_refused,
    VisionResult: SessionCore._on_vision,
    InferenceFailed: SessionCore._on_inference_failed,
    FrameNotStored: SessionCore._on_frame_not_stored,
    Tick: SessionCore._on_tick,
    TakenOver: SessionCore._on_taken_over,
    GoingAway: SessionCore._on_going_away,
    Disconnected: SessionCore._on_disconnected,
    Failed: SessionCore._on_failed,
    AgentJoined: SessionCore._on_agent,
    AgentLeft: SessionCore._on_agent,
    AgentSaid: SessionCore._on_agent,
    AgentPointed: SessionCore._on_agent,
    AgentMoved: SessionCore._on_agent_moved,
    AgentEnded: SessionCore._on_agent_ended,
}
