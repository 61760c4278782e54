"""One live customer session: frames in through the newest-frame slot, vision, smoothing, the scene engine,
and the engine's effects back to the client and into the store.

Rules:
1. Frames: ``seq`` must increase on a connection (else ``bad_field`` on ``seq``); frames over ``max_fps`` are
   dropped silently, and a client far over it gets ``rate_limited``; an admitted frame goes into the slot,
   replacing any unprocessed one.
2. One task per session takes from the slot, awaits the shared inference service, smooths the part states
   (``vision.smoothing.TemporalSmoother``, one per session) and sends ``obs`` echoing ``seq`` and ``ts``.
   The same frame goes through step verification (``vision.verification.StepVerifier``, one per session).
   The client's ``obs`` and scene selection (rule 4) use the smoothed states; the scene engine gets only
   verified ones, so a step moves on only on the evidence that rule asks for. Both start over when another
   product comes into view.
3. Engine events are handled under one lock per session, so a step change is recorded in the store
   (previous step verified, new step entered, engine snapshot saved) *before* its ``step`` message is sent,
   in the order the engine produced it. A killed server therefore never loses a step the client saw.
4. Without a scene, every smoothed observation is offered to ``scenes.select``; the first match starts its
   scene and a ``scene_started`` notice tells the customer why.
5. Escalations (offered or handed over) are recorded in the store with the context an agent needs.
6. While a step runs, ``ViewHints`` says why the parts it watches cannot be read (``move_closer``,
   ``more_light``, ``hold_steady``, ``hand_covering``, ``part_covered``, ``turn_device``), in the engine's
   locale, at most once per code every ``ViewHintConfig.interval_s``; each is recorded like an engine notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from ar_server.errors import ServerError
from ar_server.metrics import Metrics
from ar_server.protocol import End, Error, Event, Frame, Notice, ServerMessage
from ar_server.session.convert import (
    OUTCOMES,
    observation_summary,
    scene_observation,
    stage_ms,
    step_message,
    wire_obs,
)
from ar_server.session.frame_archive import FrameArchive
from ar_server.session.slot import FrameSlot, PendingFrame, RateGate
from ar_server.session.view_hints import ViewHints, hint_text, watched_parts
from ar_server.store import Store
from product_models.camera import CameraIntrinsics
from product_models.catalog import Catalog
from scenes import End as EngineEnd
from scenes import Engine, Escalate, IllegalEventError, Library, ShowStep, Tick, UserEvent, select
from scenes import Notice as EngineNotice
from scenes.i18n import pick

log = logging.getLogger(__name__)


REDETECT_EVERY = 8  # a tracked session still runs the detector on every 8th frame (another product, a better box)
TRACK_MAX_GAP_S = 0.5  # a track older than this (by capture time) is dropped: the camera may have moved far

class Outbox(Protocol):
    """The connection side of a session: queue a message; close after what is queued is sent."""

    def send(self, message: ServerMessage) -> None: ...
    def close(self, code: int) -> None: ...


class SessionContext(Protocol):
    """What a session needs from the server (``SessionManager`` provides it)."""

    store: Store
    catalog: Catalog
    metrics: Metrics
    archive: FrameArchive
    clock: Callable[[], float]

    @property
    def library(self) -> Library: ...
    async def infer(self, frame: Frame, camera: CameraIntrinsics | None, product_hint: str | None,
                    track: Any = None) -> Any: ...
    def remember_observation(self, session_id: str, summary: dict[str, Any]) -> None: ...
    def session_ended(self, session: LiveSession) -> None: ...


class LiveSession:
    def __init__(self, ctx: SessionContext, outbox: Outbox, *, session_id: str, locale: str,
                 camera: CameraIntrinsics | None, product_hint: str | None, consent_store_frames: bool,
                 max_fps: float, engine: Engine | None = None) -> None:
        from vision.smoothing import TemporalSmoother
        from vision.verification import StepVerifier

        self.ctx = ctx
        self.outbox = outbox
        self.id = session_id
        self.locale = locale
        self.camera = camera
        self.product_hint = product_hint
        self.consent_store_frames = consent_store_frames
        self.engine = engine
        self.slot = FrameSlot()
        self.gate = RateGate(max_fps)
        self.smoother = TemporalSmoother()
        self.verifier = StepVerifier()
        self.hints = ViewHints(self.verifier.config.min_size_px)
        # Detect, then track: after a verified pose the next frames skip the detector and look where the
        # product was (vision.pipeline.Track), with a full detection every REDETECT_EVERY-th frame.
        self._track: Any = None
        self._track_ts = 0.0
        self._tracked_in_row = 0
        self._smoothed_product: str | None = None
        self._smooth_ms = 0.0
        self._last_seq: int | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._last_stored_at = -1e18
        self._notices_sent: set[str] = set()
        self.last_message_at = time.monotonic()
        self.processed = 0
        self.ended = False

    # ---------------------------------------------------------------- lifecycle

    async def begin(self, *, resumed: bool) -> None:
        """Start the frame task; show the current step (resume) or start the requested scene."""
        self._task = asyncio.create_task(self._frames(), name=f"fixlens-session-{self.id}")
        if self.engine is None:
            return
        async with self._lock:
            if resumed and self.engine.step_id is not None:
                self.outbox.send(step_message(self.engine.view()))
            elif self.engine.step_id is None:
                await self._effects(self.engine.start(self.ctx.clock()), None, None)

    async def stop(self) -> None:
        """Stop processing and save the engine state, so a resume continues exactly here."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.engine is not None and not self.ended:
            async with self._lock:
                await self.ctx.store.update_session(self.id, at=self.ctx.clock(), snapshot=self.engine.snapshot())

    # ---------------------------------------------------------------- client messages

    def on_frame(self, frame: Frame) -> None:
        """Rule 1. Sends an error for a frame that goes backwards or arrives far over the rate."""
        now = time.perf_counter()
        metrics = self.ctx.metrics
        metrics.frames_received.inc()
        if self._last_seq is not None and frame.seq <= self._last_seq:
            metrics.frames_dropped.inc(reason="invalid")
            self.send_error(Error("bad_field", f"seq must increase: expected more than {self._last_seq}, got "
                                               f"{frame.seq}", field="seq", seq=frame.seq))
            return
        self._last_seq = frame.seq
        if not self.gate.admit(now):
            metrics.frames_dropped.inc(reason="rate")
            if self.gate.abusive(now):
                self.send_error(Error("rate_limited", f"frames arrive faster than {self.gate.rate:g} per second "
                                                      "by a large factor; excess frames are dropped", seq=frame.seq))
            return
        if self.slot.put(PendingFrame(frame, now)):
            metrics.frames_dropped.inc(reason="superseded")

    async def on_event(self, event: Event) -> None:
        engine = self.engine
        if engine is None or engine.finished:
            if event.kind == "help":
                await self._record_escalation(Escalate("help", True, ""), None)
                self.outbox.send(Notice("escalation_offer", "A support agent has been asked to help you."))
            else:
                self.outbox.send(Notice("no_scene", "No guidance is running yet: point the camera at the device."))
            return
        if event.step is not None and event.step != engine.step_id:
            self.outbox.send(Notice("stale_step", f"that was for step {event.step}; the current step is "
                                                  f"{engine.step_id}"))
            return
        try:
            await self._handle(UserEvent(event.kind, event.choice), "user")
        except IllegalEventError as exc:
            field = "choice" if event.kind == "choose" else "kind"
            self.send_error(Error("bad_field", str(exc), field=field))

    async def tick(self) -> None:
        """Let engine timers fire without frames (hold, timeouts, struggle, lost view)."""
        if self.engine is not None and not self.engine.finished:
            await self._handle(Tick(), "tick")

    def send_error(self, error: Error) -> None:
        self.ctx.metrics.errors.inc(code=error.code)
        self.outbox.send(error)

    # ---------------------------------------------------------------- frames -> vision -> engine

    async def _frames(self) -> None:
        from vision.errors import CameraError, FrameError, VisionError

        while True:
            pending = await self.slot.take()
            frame = pending.frame
            track = self._track
            if track is not None and (self._tracked_in_row >= REDETECT_EVERY - 1
                                      or not 0.0 <= frame.ts - self._track_ts <= TRACK_MAX_GAP_S):
                track = None
            try:
                result = await self.ctx.infer(frame, self.camera, self.product_hint, track)
            except ServerError as exc:
                self.ctx.metrics.frames_dropped.inc(reason=exc.code)
                if exc.code == "overloaded":
                    self._notice_once("server_busy", "The server is busy; some frames are skipped.")
                    continue
                raise
            value = result.value
            if isinstance(value, VisionError):
                self.ctx.metrics.frames_dropped.inc(reason="vision_error")
                code, field = ("bad_jpeg", "jpeg") if isinstance(value, FrameError) else (
                    ("bad_field", "camera") if isinstance(value, CameraError) else ("bad_frame", None))
                self.send_error(Error(code, str(value), field=field, seq=frame.seq))
                continue
            self._follow(value, frame.ts)
            await self._observed(value, pending, result.queue_ms)

    def _follow(self, vobs: Any, ts: float) -> None:
        """Remember where the product is for the next frame (see ``_track``)."""
        try:
            from vision.pipeline import track_from
        except ImportError:  # a stand-in pipeline: nothing to track with
            return
        self._tracked_in_row = self._tracked_in_row + 1 if getattr(vobs, "tracked", False) else 0
        self._track = track_from(vobs) if getattr(vobs, "pose", None) is not None else None
        self._track_ts = ts

    async def _observed(self, vobs: Any, pending: PendingFrame, queue_ms: float) -> None:
        metrics = self.ctx.metrics
        self.processed += 1
        metrics.frames_processed.inc()
        # Smoothing runs on the server's clock, as the engine does, so a simulated clock (tests, the demo)
        # drives both the same way; max() keeps it monotonic should the wall clock step back.
        self._smooth_ms = max(self._smooth_ms, self.ctx.clock() * 1000.0)
        if vobs.product_id != self._smoothed_product and vobs.product_id is not None:
            self.smoother.reset()
            self.verifier.reset()
            self._smoothed_product = vobs.product_id
        parts = self.smoother.update(self._smooth_ms, vobs.parts if vobs.product_id is not None else {})
        verified = self.verifier.update(self._smooth_ms, vobs, parts)
        total_ms = (time.perf_counter() - pending.received_at) * 1000.0
        obs = wire_obs(vobs, parts, queue_ms=queue_ms, total_ms=total_ms)
        for stage in ("decode", "detect", "pose", "states"):
            metrics.stage_seconds.observe(stage_ms(vobs.timing_ms or {}, stage) / 1000.0, stage=stage)
        metrics.stage_seconds.observe(queue_ms / 1000.0, stage="queue")
        metrics.stage_seconds.observe(total_ms / 1000.0, stage="total")
        self.outbox.send(obs)
        self.ctx.remember_observation(self.id, observation_summary(obs))
        if self.consent_store_frames and self.ctx.archive.enabled:
            await self._archive(pending.frame)
        if self.engine is None:
            await self._maybe_start(scene_observation(vobs.product_id, parts, self.ctx.catalog))
        elif not self.engine.finished:
            await self._handle(scene_observation(vobs.product_id, verified, self.ctx.catalog), "vision")
            await self._hint(vobs)

    async def _archive(self, frame: Frame) -> None:
        now = time.monotonic()
        if now - self._last_stored_at < self.ctx.archive.interval_s:
            return
        self._last_stored_at = now
        if not await self.ctx.archive.store(self.id, frame.seq, frame.jpeg):
            self._notice_once("frames_not_stored", "Frames are not being stored: "
                              + (self.ctx.archive.unavailable or "storage failed"))

    async def _maybe_start(self, seen: Any) -> None:
        """Rule 4: start the scene that matches what the camera sees, and say why."""
        selection = select(self.ctx.library, seen, self.locale)
        if selection is None:
            return
        async with self._lock:
            if self.engine is not None or self.ended:
                return
            scene = selection.scene
            self.engine = Engine(scene, self.ctx.catalog.get(scene.product), self.locale,
                                 reason=selection.trigger.reason)
            now = self.ctx.clock()
            await self.ctx.store.update_session(self.id, at=now, scene=scene.id, product=scene.product)
            await self.ctx.store.add_event(self.id, "scene_started", at=now,
                                           data={"scene": scene.id, "reason": selection.reason})
            title = pick(scene.title, self.locale, scene.default_locale)
            self.outbox.send(Notice("scene_started", f"{title}: {selection.reason}"))
            await self._effects(self.engine.start(now), None, None)

    async def _hint(self, vobs: Any) -> None:
        """Rule 6: say why the current step's parts cannot be read, when ``ViewHints`` finds a reason."""
        async with self._lock:
            engine = self.engine
            if engine is None or engine.finished or self.ended or engine.step_id is None:
                return
            now = self.ctx.clock()
            hint = self.hints.update(now, watched_parts(engine.scene.steps[engine.step_id]), vobs)
            if hint is None:
                return
            await self.ctx.store.add_event(self.id, "notice", at=now, data={"code": hint.code, "part": hint.part})
            self.outbox.send(Notice(hint.code, hint_text(hint, engine.product, engine.locale)))

    async def _handle(self, event: Any, cause: str) -> None:
        async with self._lock:
            engine = self.engine
            if engine is None or engine.finished or self.ended:
                return
            before = engine.step_id
            effects = engine.handle(event, self.ctx.clock())
            await self._effects(effects, before, self._how(cause, before, effects))

    def _how(self, cause: str, before: str | None, effects: list[Any]) -> str | None:
        """How the step that was left got done: by the user, by vision, or by its timeout."""
        if cause == "user":
            return "user"
        shown = next((e for e in effects if isinstance(e, ShowStep)), None)
        if shown is None or before is None or self.engine is None:
            return None
        step = self.engine.scene.steps[before]
        timeout = step.on_timeout
        if timeout is not None and timeout.goto == shown.step_id and all(w.goto != shown.step_id for w in step.when):
            return "timeout"
        return "vision"

    async def _effects(self, effects: list[Any], before: str | None, how: str | None) -> None:
        """Rule 3: record, then send, each effect in order. Called with the session lock held."""
        store, now = self.ctx.store, self.ctx.clock()
        assert self.engine is not None
        for effect in effects:
            if isinstance(effect, ShowStep):
                if before is not None and how is not None:
                    with contextlib.suppress(ServerError):  # a step entered before a crash may lack its row
                        await store.verify_step(self.id, before, how, at=now)  # type: ignore[arg-type]
                await store.enter_step(self.id, effect.step_id, at=now)
                await store.update_session(self.id, at=now, snapshot=self.engine.snapshot())
                before, how = effect.step_id, None
                self.outbox.send(step_message(effect))
            elif isinstance(effect, EngineNotice):
                await store.add_event(self.id, "notice", at=now, data={"code": effect.code})
                self.outbox.send(Notice(effect.code, effect.text))
            elif isinstance(effect, Escalate):
                await self._record_escalation(effect, self.engine.step_id)
                self.outbox.send(Notice("escalation_offer" if effect.offer else "escalated", effect.text))
            elif isinstance(effect, EngineEnd):
                await self.finish(OUTCOMES.get(effect.outcome, effect.outcome))

    async def _record_escalation(self, effect: Escalate, step: str | None) -> None:
        store, now = self.ctx.store, self.ctx.clock()
        history = [{"step": r.step_id, "entered_at": r.entered_at, "verified_at": r.verified_at, "how": r.how}
                   for r in await store.step_history(self.id)]
        context = {"offer": effect.offer, "step": step, "scene": None if self.engine is None else
                   self.engine.scene.id, "history": history, "locale": self.locale}
        await store.open_escalation(self.id, effect.reason, at=now, context=context)
        self.ctx.metrics.escalations.inc(reason=effect.reason, offer=str(effect.offer).lower())

    async def finish(self, outcome: str, text: str | None = None, *, close: bool = True) -> None:
        """End the session for good: record the outcome, send ``end`` and close (1000)."""
        if self.ended:
            return
        self.ended = True
        now = self.ctx.clock()
        if self.engine is not None:
            await self.ctx.store.update_session(self.id, at=now, snapshot=self.engine.snapshot())
        await self.ctx.store.end_session(self.id, outcome, at=now)
        self.ctx.metrics.outcomes.inc(outcome=outcome)
        if close:
            self.outbox.send(End(outcome, text))
            self.outbox.close(1000)
        self.ctx.session_ended(self)

    def _notice_once(self, code: str, text: str) -> None:
        if code not in self._notices_sent:
            self._notices_sent.add(code)
            self.outbox.send(Notice(code, text))

