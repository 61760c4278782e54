"""Live sessions of this server node: opening (new, bound or resumed), the 2 Hz engine tick, idle ends.

A session lives in memory only while a client is connected; everything needed to continue it (scene,
engine snapshot, step history) is in the store, so a reconnect -- to this process or to one restarted
after ``kill -9`` -- restores it from there. The resume token rotates on every ``welcome``; the store keeps
only its SHA-256.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ar_server.auth import Claims, check_session_access, new_resume_token, resume_token_hash
from ar_server.config import Config
from ar_server.errors import AuthError, ServerError
from ar_server.inference import InferenceService, frame_input_type
from ar_server.metrics import Metrics
from ar_server.protocol import Error, Frame, Hello, Welcome
from ar_server.session.frame_archive import FrameArchive
from ar_server.session.live import LiveSession, Outbox
from ar_server.store import SessionRecord, Store
from product_models.camera import CameraIntrinsics
from product_models.catalog import Catalog
from scenes import Engine, Library, SceneError

log = logging.getLogger(__name__)
TICK_INTERVAL_S = 0.5  # engine timers (hold, on_timeout, struggle) fire within this of their due time
SWEEP_INTERVAL_S = 30.0  # how often disconnected sessions past the idle timeout are ended
MAX_REMEMBERED_OBSERVATIONS = 10_000  # last observation per session, for agents (LRU)


class SessionManager:
    """Implements ``SessionContext`` for every ``LiveSession`` of this process."""

    def __init__(self, config: Config, *, store: Store, inference: InferenceService, catalog: Catalog,
                 library: Library, metrics: Metrics, archive: FrameArchive,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store
        self.inference = inference
        self.catalog = catalog
        self._library = library
        self.metrics = metrics
        self.archive = archive
        self.clock = clock
        self.live: dict[str, LiveSession] = {}
        self._observations: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._frame_input = frame_input_type()
        self._ticker: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- SessionContext

    @property
    def library(self) -> Library:
        return self._library

    def replace_library(self, library: Library) -> None:
        """Use ``library`` for sessions that start a scene from now on (running engines keep theirs)."""
        self._library = library

    async def infer(self, frame: Frame, camera: CameraIntrinsics | None, product_hint: str | None,
                    track: Any = None) -> Any:
        return await self.inference.infer(self._frame_input(jpeg=frame.jpeg, seq=frame.seq, ts=frame.ts,
                                                            camera=camera, product_hint=product_hint, track=track))

    def remember_observation(self, session_id: str, summary: dict[str, Any]) -> None:
        self._observations[session_id] = summary
        self._observations.move_to_end(session_id)
        while len(self._observations) > MAX_REMEMBERED_OBSERVATIONS:
            self._observations.popitem(last=False)

    def last_observation(self, session_id: str) -> dict[str, Any] | None:
        return self._observations.get(session_id)

    def session_ended(self, session: LiveSession) -> None:
        if self.live.get(session.id) is session:
            del self.live[session.id]
            self.metrics.active_sessions.set(len(self.live))

    # ---------------------------------------------------------------- opening and closing

    async def open(self, hello: Hello, claims: Claims, outbox: Outbox) -> tuple[LiveSession, Welcome]:
        """The session a good ``hello`` reaches, attached to ``outbox``, and the ``welcome`` to send first.

        Raises ``ServerError`` with the protocol's code: ``bad_resume``, ``forbidden``, ``unknown_scene``.
        """
        now = self.clock()
        record = await self._find(hello, claims)
        if record is not None:
            self._check_access(claims, record)
            if record.outcome is not None:
                raise ServerError("bad_resume", f"session {record.id} has ended ({record.outcome})", "resume")
            if record.id not in self.live and now - record.updated_at > self.config.session_idle_timeout_s:
                await self.store.end_session(record.id, "abandoned", at=now)
                self.metrics.outcomes.inc(outcome="abandoned")
                raise ServerError("bad_resume", f"session {record.id} timed out after "
                                                f"{self.config.session_idle_timeout_s:g} s without a client",
                                  "resume")
            old = self.live.get(record.id)
            if old is not None:  # the same session from another connection: the newest connection wins
                old.outbox.send(Error("forbidden", "this session was resumed from another connection", fatal=True))
                old.outbox.close(1008)
                await self.detach(old)
                record = await self.store.get_session(record.id) or record  # with the snapshot it just saved
        scene_id = record.scene if record is not None and record.scene else hello.scene
        if hello.scene is not None and record is not None and record.scene and hello.scene != record.scene:
            raise ServerError("unknown_scene", f"session {record.id} runs scene {record.scene!r}, not "
                                               f"{hello.scene!r}", "scene")
        if scene_id is not None and scene_id not in self._library:
            raise ServerError("unknown_scene", f"unknown scene {scene_id!r}; known scenes: "
                                               f"{', '.join(s.id for s in self._library) or '(none)'}", "scene")
        resume, resume_hash = new_resume_token()
        locale = hello.locale if record is None or hello.resume is None else record.locale
        if record is None:
            session_id = claims.session or secrets.token_hex(8)
            record = SessionRecord(id=session_id, customer=claims.subject, resume_hash=resume_hash, created_at=now,
                                   updated_at=now, locale=locale, scene=scene_id,
                                   product=None if scene_id is None else self._library.get(scene_id).product)
            await self.store.create_session(record)
        else:
            await self.store.update_session(record.id, at=now, resume_hash=resume_hash, scene=scene_id)
        engine = self._engine(record, scene_id, locale)
        camera = None if hello.camera is None else CameraIntrinsics(
            hello.camera.fx, hello.camera.fy, hello.camera.cx, hello.camera.cy, hello.camera.width,
            hello.camera.height)
        hint = hello.product if hello.product in self.catalog else None
        session = LiveSession(self, outbox, session_id=record.id, locale=locale, camera=camera, product_hint=hint,
                              consent_store_frames=hello.consent_store_frames, max_fps=self.config.max_fps,
                              engine=engine)
        self.live[record.id] = session
        self.metrics.active_sessions.set(len(self.live))
        resumed = record.current_step is not None or record.snapshot is not None
        await self.store.add_event(record.id, "resume" if resumed else "open", at=now,
                                   data={"client": hello.client, "subject": claims.subject, "role": claims.role})
        welcome = Welcome(session=record.id, resume=resume, limits=self.config.limits(), server_time=time.time(),
                          resumed=resumed)
        return session, welcome

    async def _find(self, hello: Hello, claims: Claims) -> SessionRecord | None:
        if hello.resume is not None:
            record = await self.store.find_session_by_resume(resume_token_hash(hello.resume))
            if record is None:
                raise ServerError("bad_resume", "unknown resume token (it rotates on every welcome: use the newest)",
                                  "resume")
            return record
        if claims.session is not None:
            return await self.store.get_session(claims.session)
        return None

    @staticmethod
    def _check_access(claims: Claims, record: SessionRecord) -> None:
        try:
            check_session_access(claims, record.id, record.customer)
        except AuthError as exc:
            raise ServerError("forbidden", exc.message, "token") from None

    def _engine(self, record: SessionRecord, scene_id: str | None, locale: str) -> Engine | None:
        if scene_id is None:
            return None
        scene = self._library.get(scene_id)
        product = self.catalog.get(scene.product)
        if record.snapshot is not None:
            try:
                return Engine.restore(scene, product, record.snapshot)
            except SceneError as exc:  # e.g. the scene was edited since: start it over rather than fail
                log.warning("session %s: cannot restore engine (%s); restarting scene %s", record.id, exc, scene_id)
        return Engine(scene, product, locale)

    async def detach(self, session: LiveSession) -> None:
        """The client went away: stop processing and save state; the session stays resumable."""
        await session.stop()
        if self.live.get(session.id) is session:
            del self.live[session.id]
            self.metrics.active_sessions.set(len(self.live))

    # ---------------------------------------------------------------- background work

    async def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick_loop(), name="fixlens-session-ticker")

    async def stop(self) -> None:
        """Stop the ticker and detach every live session (their state is saved for resume)."""
        task, self._ticker = self._ticker, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for session in list(self.live.values()):
            session.outbox.close(1001)
            await self.detach(session)

    async def _tick_loop(self) -> None:
        last_sweep = time.monotonic()
        while True:
            await asyncio.sleep(TICK_INTERVAL_S)
            now = time.monotonic()
            for session in list(self.live.values()):
                try:
                    if now - session.last_message_at > self.config.session_idle_timeout_s:
                        session.send_error(Error("idle_timeout", f"no message for "
                                                 f"{self.config.session_idle_timeout_s:g} s", fatal=True))
                        await session.finish("abandoned", close=False)
                        session.outbox.close(1008)
                        await session.stop()
                    else:
                        await session.tick()
                except Exception:  # one session's failure must not stop the others' timers
                    log.exception("session %s: tick failed", session.id)
            if now - last_sweep >= SWEEP_INTERVAL_S:
                last_sweep = now
                await self._sweep()

    async def _sweep(self) -> None:
        """End disconnected sessions that have been idle past the timeout."""
        now = self.clock()
        try:
            for record in await self.store.list_sessions(live=True, limit=1000):
                if record.id not in self.live and now - record.updated_at > self.config.session_idle_timeout_s:
                    await self.store.end_session(record.id, "abandoned", at=now)
                    self.metrics.outcomes.inc(outcome="abandoned")
        except ServerError:
            log.exception("session sweep failed")
