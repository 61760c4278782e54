"""The driver of one connection's ``SessionCore``: it feeds the core events and performs the effects it returns.

Rules:
1. ``feed(event)`` hands one event to the core at the server clock's ``now`` and queues the effects. One task
   performs them, in order, one at a time, so a store write finishes before any message queued after it is
   sent (the core's rule 3 holds on the wire).
2. ``Infer`` and ``ArchiveFrame`` start a task and return at once; what the task learns comes back through
   ``feed`` (``VisionResult``, ``InferenceFailed``, ``FrameNotStored``).
3. Once the core is closed and its last effect performed, the driver stops: its tasks are cancelled and the
   host forgets it (``SessionHost.release``). An event that arrives later is dropped.
4. An effect that fails is a server bug: it is logged and the core gets ``Failed`` (``internal``, close
   1011); the session stays resumable.
5. Limits (``DriverLimits``, docs/server.md "Limits"): a ``hello`` that would create a session spends one
   of its customer's session-creation tokens (else fatal ``rate_limited``); an escalation is recorded only
   within the session's escalation rate and while the session has fewer than ``max_open_escalations`` open
   ones (the customer still hears ``help_requested``: the help already asked for stands).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from ar_server.auth import Claims, TokenAuthority, check_role
from ar_server.errors import AuthError, ServerError
from ar_server.inference import InferenceService
from ar_server.limits import KeyedBuckets, TokenBucket
from ar_server.metrics import Metrics
from ar_server.protocol import Error, Hello, ServerMessage
from ar_server.session.core import CoreConfig, SessionCore
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
    Disconnected,
    Failed,
    FrameNotStored,
    GoingAway,
    InferenceFailed,
    OpenRefused,
    SessionEvent,
    SessionOpened,
    TakenOver,
    Tick,
    VisionResult,
)
from ar_server.session.frame_archive import FrameArchive
from ar_server.store import Store
from product_models.catalog import Catalog
from scenes import Library
from vision.types import FrameInput

log = logging.getLogger(__name__)
STREAM_ROLES = ("customer", "agent", "admin")  # authors edit scenes; they do not stream
# `error.reason` of an `unauthorized` error, by the token check's code (ar_server.auth).
UNAUTHORIZED_REASONS: dict[str, str] = {"expired": "token_expired", "not_yet_valid": "token_not_yet_valid",
                                        "malformed": "token_invalid", "bad_signature": "token_invalid"}


@dataclass(frozen=True)
class DriverLimits:
    """Rule 5. ``session_creation`` is shared by the whole server (keyed by the token's subject)."""

    escalations_per_minute: float = 2.0
    escalations_burst: int = 3
    max_open_escalations: int = 5
    session_creation: KeyedBuckets | None = None


class Outbox(Protocol):
    """The connection side of a session: queue a message; close once what is queued is sent."""

    def send(self, message: ServerMessage) -> None: ...
    def close(self, code: int) -> None: ...


class SessionHost(Protocol):
    """What a driver needs from the server (``SessionManager`` provides it)."""

    store: Store
    catalog: Catalog
    metrics: Metrics
    archive: FrameArchive
    inference: InferenceService
    clock: Callable[[], float]

    @property
    def library(self) -> Library: ...
    @property
    def core_config(self) -> CoreConfig: ...
    async def open(self, hello: Hello, claims: Claims, driver: SessionDriver) -> SessionOpened: ...
    def remember_observation(self, session_id: str, summary: dict[str, Any]) -> None: ...
    async def accept_help(self, session_id: str, effect: AcceptHelp) -> None: ...
    def show_agents(self, session_id: str, effect: ShowAgents) -> None: ...
    def release(self, driver: SessionDriver) -> None: ...


class SessionDriver:
    """One connection's session core, with the I/O it asks for; see the module rules."""

    def __init__(self, host: SessionHost, outbox: Outbox, authority: TokenAuthority,
                 limits: DriverLimits | None = None) -> None:
        self.host = host
        self.outbox = outbox
        self.authority = authority
        self.limits = limits or DriverLimits()
        self._escalations = TokenBucket(self.limits.escalations_per_minute / 60.0, self.limits.escalations_burst)
        self.escalations_refused = 0
        self.core = SessionCore(host.core_config, catalog=host.catalog, library=lambda: host.library,
                                now=host.clock(), metrics=host.metrics)
        self._queue: deque[SessionEffect] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._performers: dict[type, Callable[[Any], Awaitable[None]]] = {
            Send: self._send, Close: self._close, OpenSession: self._open, Infer: self._infer,
            ArchiveFrame: self._archive, RememberObservation: self._remember, EnterStep: self._enter_step,
            SaveSnapshot: self._save_snapshot, RecordEvent: self._record_event, SceneStarted: self._scene_started,
            OpenEscalation: self._open_escalation, EndSession: self._end_session,
            AcceptHelp: lambda e: self.host.accept_help(self._id(), e), ShowAgents: self._show_agents,
        }

    @property
    def session_id(self) -> str | None:
        return self.core.session_id

    @property
    def closed(self) -> bool:
        return self.core.closed

    @property
    def backlog(self) -> int:
        """Effects fed but not yet performed (the reader waits when there are many: ``drained``)."""
        return len(self._queue)

    # ---------------------------------------------------------------- events in

    def feed(self, event: SessionEvent) -> None:
        """Rule 1. Raises ``SessionStateError`` for an event the core cannot take now (nothing changes)."""
        self._queue.extend(self.core.handle(event, self.host.clock()))
        self._idle.clear()
        self._wake.set()
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name=f"fixlens-session-effects-{id(self):x}")

    async def drained(self) -> None:
        """Wait until every effect fed so far has been performed."""
        await self._idle.wait()

    def tick(self) -> None:
        if not self.closed:
            self.feed(Tick())

    def fail(self, message: str) -> None:
        if not self.closed:
            self.feed(Failed(message))

    async def take_over(self) -> None:
        """Another connection resumed this session: tell this client, save the state, close (1008)."""
        await self._end_with(TakenOver())

    async def going_away(self) -> None:
        """The server shuts down: save the state, close (1001)."""
        await self._end_with(GoingAway())

    async def disconnected(self) -> None:
        """The socket is gone: save the state."""
        await self._end_with(Disconnected())

    async def _end_with(self, event: SessionEvent) -> None:
        if not self.closed:
            self.feed(event)
        await self.drained()

    # ---------------------------------------------------------------- effects out

    async def _run(self) -> None:
        while True:
            while self._queue:
                effect = self._queue.popleft()
                try:
                    await self._performers[type(effect)](effect)
                except Exception as exc:  # rule 4
                    log.exception("session %s: %s failed", self.session_id, type(effect).__name__)
                    self.fail(type(exc).__name__)
            if self.closed:
                self._stop()
                self._idle.set()
                return
            self._idle.set()
            self._wake.clear()
            await self._wake.wait()

    def _stop(self) -> None:
        """Rule 3."""
        for task in self._tasks:
            task.cancel()
        self.host.release(self)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("session %s: background work failed", self.session_id, exc_info=task.exception())
            self.fail(type(task.exception()).__name__)

    async def _send(self, effect: Send) -> None:
        if isinstance(effect.message, Error):
            self.host.metrics.errors.inc(code=effect.message.code)
        self.outbox.send(effect.message)

    async def _close(self, effect: Close) -> None:
        self.outbox.close(effect.code)

    async def _open(self, effect: OpenSession) -> None:
        try:
            claims = self.authority.verify(effect.hello.token)
            check_role(claims, STREAM_ROLES)
            refusal = self._creation_refused(effect.hello, claims)
            event: SessionEvent = refusal if refusal is not None else await self.host.open(effect.hello, claims,
                                                                                          self)
        except AuthError as exc:
            event = OpenRefused(_auth_error(exc))
        except ServerError as exc:
            event = OpenRefused(Error(exc.code, exc.message, fatal=True, field=exc.field, reason=exc.reason))
        if self.core.state == "opening":
            self.feed(event)
        # else the server went away meanwhile: the core closed, and _stop() releases what open() took

    def _creation_refused(self, hello: Hello, claims: Claims) -> OpenRefused | None:
        """Rule 5: a hello that creates a session (no resume, a token bound to no session) within its
        customer's rate, or the refusal."""
        buckets = self.limits.session_creation
        if buckets is None or hello.resume is not None or claims.session is not None:
            return None
        wait = buckets.take(claims.subject, self.host.clock())
        if wait is None:
            return None
        return OpenRefused(Error("rate_limited", f"customer {claims.subject!r} creates sessions too fast (at most "
                                                 f"{buckets.rate * 60:g} a minute); try again in {wait:.0f} s, or "
                                                 "resume a session", fatal=True))

    async def _infer(self, effect: Infer) -> None:
        self._spawn(self._inference(effect.frame))

    async def _inference(self, frame: FrameInput) -> None:
        try:
            result = await self.host.inference.infer(frame)
        except ServerError as exc:
            event: SessionEvent = InferenceFailed(frame.seq, exc.code, exc.message)
        else:
            event = VisionResult(frame.seq, result.value, result.queue_ms)
        if not self.closed:
            self.feed(event)

    async def _archive(self, effect: ArchiveFrame) -> None:
        self._spawn(self._store_frame(effect.seq, effect.jpeg))

    async def _store_frame(self, seq: int, jpeg: bytes) -> None:
        archive = self.host.archive
        stored = await archive.store(self._id(), seq, jpeg)
        if not stored and not self.closed:
            self.feed(FrameNotStored(archive.unavailable or "storage failed"))

    async def _remember(self, effect: RememberObservation) -> None:
        self.host.remember_observation(self._id(), effect.summary)

    async def _enter_step(self, effect: EnterStep) -> None:
        store, now, session = self.host.store, self.host.clock(), self._id()
        if effect.left is not None and effect.how is not None:
            with contextlib.suppress(ServerError):  # a step entered before a crash may lack its row
                await store.verify_step(session, effect.left, effect.how, at=now)
        await store.enter_step(session, effect.step, at=now)
        await store.update_session(session, at=now, snapshot=effect.snapshot)

    async def _save_snapshot(self, effect: SaveSnapshot) -> None:
        await self.host.store.update_session(self._id(), at=self.host.clock(), snapshot=effect.snapshot)

    async def _record_event(self, effect: RecordEvent) -> None:
        await self.host.store.add_event(self._id(), effect.kind, at=self.host.clock(), data=effect.data)

    async def _scene_started(self, effect: SceneStarted) -> None:
        store, now, session = self.host.store, self.host.clock(), self._id()
        await store.update_session(session, at=now, scene=effect.scene, product=effect.product)
        await store.add_event(session, "scene_started", at=now, data={"scene": effect.scene, "reason": effect.reason})

    async def _open_escalation(self, effect: OpenEscalation) -> None:
        store, session = self.host.store, self._id()
        if not self._escalations.take(self.host.clock()):  # rule 5
            self.escalations_refused += 1
            return
        open_here = [e for e in await store.session_escalations(session) if e.status == "open"]
        if len(open_here) >= self.limits.max_open_escalations:
            self.escalations_refused += 1
            return
        history = [{"step": r.step_id, "entered_at": r.entered_at, "verified_at": r.verified_at, "how": r.how}
                   for r in await store.step_history(session)]
        context = {"offer": effect.offer, "step": effect.step, "scene": effect.scene, "history": history,
                   "locale": effect.locale}
        await store.open_escalation(session, effect.reason, at=self.host.clock(), context=context)
        self.host.metrics.escalations.inc(reason=effect.reason, offer=str(effect.offer).lower())

    async def _show_agents(self, effect: ShowAgents) -> None:
        self.host.show_agents(self._id(), effect)

    async def _end_session(self, effect: EndSession) -> None:
        store, now, session = self.host.store, self.host.clock(), self._id()
        if effect.snapshot is not None:
            await store.update_session(session, at=now, snapshot=effect.snapshot)
        await store.end_session(session, effect.outcome, at=now)
        self.host.metrics.outcomes.inc(outcome=effect.outcome)

    def _id(self) -> str:
        session = self.core.session_id
        assert session is not None, "a store effect before the session opened"
        return session


def _auth_error(exc: AuthError) -> Error:
    if exc.code == "wrong_role":
        return Error("forbidden", f"wrong_role: {exc.message}", fatal=True, field="token", reason="wrong_role")
    return Error("unauthorized", f"token {exc.code.replace('_', ' ')}: {exc.message}", fatal=True, field="token",
                 reason=UNAUTHORIZED_REASONS.get(exc.code, "token_invalid"))
