"""Live sessions of this server node: opening (new, bound, resumed or joined), the 2 Hz timers, idle ends.

A session lives in memory only while a client is connected; everything needed to continue it (scene,
engine snapshot, step history) is in the store, so a reconnect -- to this process or to one restarted
after ``kill -9`` -- restores it from there.

Rules:
1. Opens are one at a time, so checking a resume token and rotating it is atomic: of two hellos with the
   same token, one gets ``welcome`` and a new token, the other ``bad_resume`` (``resume_token_used``). The
   store keeps only the token's SHA-256; the hashes this process retired are remembered (``MAX_USED_RESUME``)
   to tell a used token from one never seen.
2. The same session from another connection: the newest connection wins; the older one hears why
   (``forbidden``, ``taken_over``), its state is saved, then the new one continues from it.
3. Every ``TICK_INTERVAL_S`` (real time) each connection's core gets a ``Tick`` at the server clock's now
   (hello and idle timeouts, engine timers), and every ``SWEEP_INTERVAL_S`` of the server clock disconnected
   sessions idle past ``session_idle_timeout_s`` end as ``abandoned``. ``run_timers`` is one such pass.
4. In a cluster (``cluster`` set: ``ar_server.cluster.node.ClusterNode``), opening a session first claims its
   lease, so a node that still carries it hands it over (rule 2 across nodes) and the state is read after.
   Agents may watch and act on a session held by another node: their events go to the holder, and the
   holder sends its state and frames to the nodes whose agents watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ar_server.auth import Claims, check_session_access, new_resume_token, resume_token_hash
from ar_server.config import Config
from ar_server.errors import AuthError, ServerError
from ar_server.inference import InferenceService
from ar_server.limits import CustomerLimits
from ar_server.metrics import Metrics
from ar_server.protocol import Hello
from ar_server.session.core import CoreConfig
from ar_server.session.effects import AcceptHelp, ShowAgents
from ar_server.session.events import AgentEvent, AgentJoined, GoingAway, SessionOpened
from ar_server.session.frame_archive import FrameArchive
from ar_server.session.live import SessionDriver
from ar_server.session.watchers import Watcher, Watchers
from ar_server.store import SessionRecord, Store
from product_models.camera import CameraIntrinsics
from product_models.catalog import Catalog
from scenes import Engine, Library, SceneError

if TYPE_CHECKING:
    from ar_server.cluster.node import ClusterNode

log = logging.getLogger(__name__)
TICK_INTERVAL_S = 0.5  # engine timers (hold, on_timeout, struggle) fire within this of their due time
SWEEP_INTERVAL_S = 30.0  # how often disconnected sessions past the idle timeout are ended
MAX_REMEMBERED_OBSERVATIONS = 10_000  # last observation per session, for agents (LRU)
MAX_USED_RESUME = 10_000  # retired resume-token hashes remembered (rule 1; LRU)


class SessionManager:
    """Implements ``SessionHost`` for every ``SessionDriver`` of this process."""

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
        self.live: dict[str, SessionDriver] = {}  # session id -> the connection carrying it
        self.connections: set[SessionDriver] = set()  # every connection, before hello too
        self._core_config = CoreConfig(limits=config.limits(), idle_timeout_s=config.session_idle_timeout_s,
                                       hello_timeout_s=config.hello_timeout_s,
                                       archive_interval_s=archive.interval_s if archive.enabled else None,
                                       agent_frame_fps=config.agent_frame_fps)
        self._observations: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._used_resume: OrderedDict[str, str] = OrderedDict()  # retired token hash -> session id
        self._open_lock = asyncio.Lock()
        self._going_away = False
        self._ticker: asyncio.Task[None] | None = None
        self._last_sweep = -math.inf
        self.watchers = Watchers()
        # Shared by every connection of one customer (ar_server.stream, rule 5).
        self.customer_limits = CustomerLimits(events_per_s=config.events_per_s, events_burst=config.events_burst,
                                              bad_messages_per_s=config.bad_messages_per_s,
                                              bad_messages_burst=config.bad_messages_burst)
        self._shrinking: set[str] = set()  # sessions whose frame for agents is being downscaled now
        self._state_sent_at: dict[str, float] = {}
        self.cluster: ClusterNode | None = None  # rule 4; set by the app before the first connection

    # ---------------------------------------------------------------- SessionHost

    @property
    def library(self) -> Library:
        return self._library

    @property
    def core_config(self) -> CoreConfig:
        return self._core_config

    def replace_library(self, library: Library) -> None:
        """Use ``library`` for sessions that start a scene from now on (running engines keep theirs)."""
        self._library = library

    def remember_observation(self, session_id: str, summary: dict[str, Any]) -> None:
        self._observations[session_id] = summary
        self._observations.move_to_end(session_id)
        while len(self._observations) > MAX_REMEMBERED_OBSERVATIONS:
            self._observations.popitem(last=False)
        self.publish_state(session_id)

    def last_observation(self, session_id: str) -> dict[str, Any] | None:
        return self._observations.get(session_id)

    # ---------------------------------------------------------------- agents (ar_server.session.watchers)

    def session_state(self, session_id: str) -> dict[str, Any]:
        """What a watching agent sees besides the picture: connection, step, history, last observation."""
        driver = self.live.get(session_id)
        engine = None if driver is None else driver.core.engine
        return {"t": "state", "session": session_id, "connected": driver is not None,
                "scene": None if engine is None else engine.scene.id,
                "step": None if engine is None else engine.step_id,
                "steps": [] if engine is None else list(engine.scene.steps),
                "history": [] if engine is None else list(engine.history),
                "observation": self._observations.get(session_id),
                "agents": self.watchers.names(session_id)}

    def publish_state(self, session_id: str, *, force: bool = False) -> None:
        """Send the session's state to its watchers, here and on other nodes, at most ``agent_frame_fps`` times
        a second unless forced. Of a session another node may hold, the state comes from that node (rule 4)."""
        cluster = self.cluster
        if cluster is not None and session_id not in self.live:
            if force and self.watchers.of(session_id):
                cluster.request_state(session_id)
            return
        remote = [] if cluster is None else cluster.remote_watchers(session_id)
        if not self.watchers.of(session_id) and not remote:
            return
        now = self.clock()
        if not force and now - self._state_sent_at.get(session_id, -math.inf) < 1.0 / self.config.agent_frame_fps:
            return
        self._state_sent_at[session_id] = now
        self.send_own_state(session_id)

    def send_own_state(self, session_id: str) -> None:
        """This node's view of the session to its own watchers, and to other nodes' when it holds the session."""
        state = self.session_state(session_id)
        for watcher in self.watchers.of(session_id):
            watcher.send(state)
        if self.cluster is not None and session_id in self.live:
            self.cluster.deliver(session_id, state)

    def agent_event(self, session_id: str, event: AgentEvent) -> bool:
        """Hand an agent's event to the session's core; False when no customer is connected to hear it here."""
        driver = self.live.get(session_id)
        if driver is None or driver.closed:
            return False
        driver.feed(event)
        return True

    async def agent_event_anywhere(self, session_id: str, event: AgentEvent) -> bool:
        """``agent_event``, or, for a session another node holds, the event sent to that node (rule 4); False
        when no customer is connected anywhere."""
        if self.agent_event(session_id, event):
            return True
        return self.cluster is not None and await self.cluster.forward_event(session_id, event)

    def start_watching(self, watcher: Watcher, session_id: str) -> bool:
        """``watcher`` watches ``session_id`` from now on; True when it got control. The session's holder, if
        another node, hears that agents here watch it."""
        control = self.watchers.add(watcher, session_id)
        if self.cluster is not None and session_id not in self.live:
            self.cluster.watching(session_id)
        return control

    def stop_watching(self, watcher: Watcher) -> str | None:
        """``watcher`` watches nothing from now on; returns the session it watched."""
        session_id = self.watchers.remove(watcher)
        if (self.cluster is not None and session_id is not None and session_id not in self.live
                and not self.watchers.of(session_id)):
            self.cluster.unwatching(session_id)
        return session_id

    # ---------------------------------------------------------------- the cluster's host (ar_server.cluster)

    def live_sessions(self) -> list[str]:
        return list(self.live)

    def watched_sessions(self) -> list[str]:
        return list(self.watchers.by_session)

    def watcher_names(self, session_id: str) -> list[str]:
        return [w.subject for w in self.watchers.of(session_id)]

    def deliver_local(self, session_id: str, message: dict[str, Any]) -> None:
        """A message from the node holding ``session_id`` for this node's agents watching it."""
        for watcher in self.watchers.of(session_id):
            watcher.send(message)

    def queue_changed_local(self) -> None:
        self.watchers.queue_changed()

    async def hand_over(self, session_id: str) -> None:
        """Another node claims ``session_id``: close this node's connection of it, its state saved."""
        driver = self.live.get(session_id)
        if driver is not None:
            await driver.take_over()

    def _rejoin(self, session_id: str, driver: SessionDriver) -> None:
        if self.live.get(session_id) is not driver or driver.core.state != "open":
            return
        for watcher in self.watchers.of(session_id):
            driver.feed(AgentJoined(watcher.subject))
        self.publish_state(session_id, force=True)

    def queue_changed(self) -> None:
        self.watchers.queue_changed()
        if self.cluster is not None:
            self.cluster.queue_changed()

    async def accept_help(self, session_id: str, effect: AcceptHelp) -> None:
        """The session's newest escalation still open joins the agent queue (a new ``help`` one if none)."""
        store, now = self.store, self.clock()
        waiting = [e for e in await store.session_escalations(session_id) if e.status != "closed"]
        if waiting:
            escalation_id = waiting[-1].id
        else:
            history = [{"step": r.step_id, "entered_at": r.entered_at, "verified_at": r.verified_at, "how": r.how}
                       for r in await store.step_history(session_id)]
            escalation_id = await store.open_escalation(session_id, "help", at=now, context={
                "offer": True, "step": effect.step, "scene": effect.scene, "history": history,
                "locale": effect.locale})
        await store.accept_escalation(escalation_id, at=now)
        await store.add_event(session_id, "accept_help", at=now, data={"escalation": escalation_id,
                                                                        "step": effect.step})
        self.queue_changed()

    def show_agents(self, session_id: str, effect: ShowAgents) -> None:
        """Downscale the frame off the event loop and pass it to the watchers (one at a time per session)."""
        remote = [] if self.cluster is None else self.cluster.remote_watchers(session_id)
        if session_id in self._shrinking or not (self.watchers.of(session_id) or remote):
            return
        self._shrinking.add(session_id)
        task = asyncio.create_task(self._show(session_id, effect))
        task.add_done_callback(lambda t: None if t.cancelled() or t.exception() is None else
                               log.warning("session %s: frame for agents failed: %s", session_id, t.exception()))

    async def _show(self, session_id: str, effect: ShowAgents) -> None:
        from ar_server.session.thumbnails import shrink_jpeg  # cv2 stays out of this module's import

        try:
            shrunk = await asyncio.to_thread(shrink_jpeg, effect.jpeg, self.config.agent_frame_width)
        finally:
            self._shrinking.discard(session_id)
        if shrunk is None:
            return
        jpeg, width, height = shrunk
        message = {"t": "frame", "session": session_id, "seq": effect.seq, "width": width, "height": height,
                   "jpeg": jpeg}
        for watcher in self.watchers.of(session_id):
            watcher.send(message)
        if self.cluster is not None:
            self.cluster.deliver(session_id, message)

    def register(self, driver: SessionDriver) -> None:
        """A new connection: its core gets ticks from now on (the hello timeout runs before any session).
        One that arrives while the server shuts down is closed at once (1001)."""
        self.connections.add(driver)
        if self._going_away:
            driver.feed(GoingAway())

    def release(self, driver: SessionDriver) -> None:
        """The connection's core closed: forget it (its session, if any, stays in the store)."""
        self.connections.discard(driver)
        for session_id in [s for s, d in self.live.items() if d is driver]:
            del self.live[session_id]
            if self.cluster is not None:
                self.cluster.release(session_id)
        self.metrics.active_sessions.set(len(self.live))

    # ---------------------------------------------------------------- opening

    async def open(self, hello: Hello, claims: Claims, driver: SessionDriver) -> SessionOpened:
        """The session a good ``hello`` reaches, now carried by ``driver``.

        Raises ``ServerError`` with the protocol's code and reason: ``bad_resume`` (``resume_token_unknown``,
        ``resume_token_used``, ``session_ended``, ``session_timed_out``), ``forbidden`` (``other_session``,
        ``other_customer``), ``unknown_scene``.
        """
        async with self._open_lock:  # rule 1
            return await self._open(hello, claims, driver)

    async def _open(self, hello: Hello, claims: Claims, driver: SessionDriver) -> SessionOpened:
        now = self.clock()
        record = await self._find(hello, claims)
        if record is not None:
            self._check_access(claims, record)
            if record.outcome is not None:
                raise ServerError("bad_resume", f"session {record.id} has ended ({record.outcome})", "resume",
                                  reason="session_ended")
            if (record.id not in self.live and now - record.updated_at > self.config.session_idle_timeout_s
                    and (self.cluster is None or await self.cluster.unheld(record.id))):
                await self.store.end_session(record.id, "abandoned", at=now)
                self.metrics.outcomes.inc(outcome="abandoned")
                raise ServerError("bad_resume", f"session {record.id} timed out after "
                                                f"{self.config.session_idle_timeout_s:g} s without a client",
                                  "resume", reason="session_timed_out")
            old = self.live.get(record.id)
            if old is not None:  # rule 2
                await old.take_over()
                record = await self.store.get_session(record.id) or record  # with the snapshot it just saved
            if self.cluster is not None and await self.cluster.claim(record.id) in ("handed", "unanswered"):
                record = await self.store.get_session(record.id) or record  # another node just saved it
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
            if self.cluster is not None:
                await self.cluster.claim(record.id)
        else:
            await self.store.update_session(record.id, at=now, resume_hash=resume_hash, scene=scene_id)
            self._retire(record.resume_hash, record.id)
        resumed = record.current_step is not None or record.snapshot is not None
        await self.store.add_event(record.id, "resume" if resumed else "open", at=now,
                                   data={"client": hello.client, "subject": claims.subject, "role": claims.role})
        self.live[record.id] = driver
        self.metrics.active_sessions.set(len(self.live))
        if self.watchers.of(record.id):
            # Agents were watching while the customer was away: once this hello's SessionOpened has reached
            # the new core (later in this same step of the driver's task), they join it again.
            asyncio.get_running_loop().call_soon(self._rejoin, record.id, driver)
        camera = None if hello.camera is None else CameraIntrinsics(
            hello.camera.fx, hello.camera.fy, hello.camera.cx, hello.camera.cy, hello.camera.width,
            hello.camera.height)
        known = hello.product is not None and hello.product in self.catalog
        return SessionOpened(session_id=record.id, resume=resume, resumed=resumed, locale=locale, camera=camera,
                             product_hint=hello.product if known else None,
                             consent_store_frames=hello.consent_store_frames,
                             engine=self._engine(record, scene_id, locale),
                             unknown_product=None if known or hello.product is None else hello.product)

    async def _find(self, hello: Hello, claims: Claims) -> SessionRecord | None:
        if hello.resume is not None:
            token_hash = resume_token_hash(hello.resume)
            record = await self.store.find_session_by_resume(token_hash)
            if record is not None:
                return record
            if token_hash in self._used_resume:
                raise ServerError("bad_resume", "this resume token was already used; each welcome gives a new "
                                                "one: use the newest", "resume", reason="resume_token_used")
            raise ServerError("bad_resume", "unknown resume token (it rotates on every welcome: use the newest)",
                              "resume", reason="resume_token_unknown")
        if claims.session is not None:
            return await self.store.get_session(claims.session)
        return None

    def _retire(self, token_hash: str, session_id: str) -> None:
        self._used_resume[token_hash] = session_id
        while len(self._used_resume) > MAX_USED_RESUME:
            self._used_resume.popitem(last=False)

    @staticmethod
    def _check_access(claims: Claims, record: SessionRecord) -> None:
        try:
            check_session_access(claims, record.id, record.customer)
        except AuthError as exc:
            reason = "wrong_role" if exc.code == "wrong_role" else (
                "other_session" if claims.session is not None else "other_customer")
            raise ServerError("forbidden", exc.message, "token", reason=reason) from None

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

    # ---------------------------------------------------------------- timers and shutdown

    async def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick_loop(), name="fixlens-session-ticker")

    async def stop(self) -> None:
        """Stop the timers; connections still open are told the server is going away (their state is saved)."""
        task, self._ticker = self._ticker, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.going_away()

    async def going_away(self) -> None:
        """Close every connection with 1001 (going away), each session's state saved for a resume; and every
        connection that comes after."""
        self._going_away = True
        await asyncio.gather(*(driver.going_away() for driver in list(self.connections)))

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_INTERVAL_S)
            await self.run_timers()

    async def run_timers(self) -> None:
        """Rule 3, once."""
        for driver in list(self.connections):
            try:
                driver.tick()
            except Exception:  # one session's failure must not stop the others' timers
                log.exception("session %s: tick failed", driver.session_id)
        now = self.clock()
        if now - self._last_sweep >= SWEEP_INTERVAL_S:
            self._last_sweep = now
            await self.sweep()

    async def sweep(self) -> None:
        """End disconnected sessions that have been idle past the timeout."""
        now = self.clock()
        try:
            for record in await self.store.list_sessions(live=True, limit=1000):
                if record.id in self.live or now - record.updated_at <= self.config.session_idle_timeout_s:
                    continue
                # A session live on another node is not idle (rule 4); without Redis, nothing is known.
                if self.cluster is not None and not await self.cluster.unheld(record.id):
                    continue
                await self.store.end_session(record.id, "abandoned", at=now)
                self.metrics.outcomes.inc(outcome="abandoned")
        except ServerError:
            log.exception("session sweep failed")
