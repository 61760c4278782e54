"""One node's part in a cluster: its session leases in Redis, its channel, and what it does when Redis is gone.

Rules:
1. The directory: ``fixlens:lease:<session>`` names the node that holds the session's connection, with a time
   to live of ``lease_ttl_s``. The holder refreshes all its leases every ``lease_ttl_s / 3`` (the heartbeat),
   so the lease of a node that died expires within ``lease_ttl_s``.
2. Claiming a session (a hello that opens or resumes it) asks the node named in its lease, if any, to hand
   it over: close its connection, save the engine, answer ``taken``. A node whose channel has no subscriber
   (``PUBLISH`` reaches no one: the process is gone, its sockets closed) is dead and not waited for; one that
   does not answer within ``TAKEOVER_TIMEOUT_S`` is passed over. Then the lease is set to this node. The
   session's state is always read from the store after the hand-over, so it continues where it was.
3. A heartbeat that finds one of its leases held by another node (it claimed the session while this node
   was cut off) closes this node's connection of it: the newest connection wins, as within one node.
4. Redis lost is degraded, not down: every call that fails marks the node degraded with the reason (for
   ``/readyz`` and the metrics), sessions open and continue without leases, agents reach only sessions on
   their own node, and the heartbeat retries every interval. When Redis answers again the heartbeat writes
   every lease of this node back and the node is healthy again.
5. Nothing here raises into a session: a failed Redis call is logged and counted, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from ar_server.cluster import wire
from ar_server.cluster.scripts import REFRESH_LEASES, RELEASE_LEASE, SPEND_TOKEN
from ar_server.errors import SessionStateError
from ar_server.metrics import Metrics
from ar_server.session.events import AgentEvent, AgentJoined

log = logging.getLogger(__name__)
TAKEOVER_TIMEOUT_S = 2.0  # a live holder saves a session's state in milliseconds; past this it is passed over
REDIS_TIMEOUT_S = 1.0  # one Redis command; a slower Redis counts as lost (rule 4)
LEASE_BATCH = 500  # leases refreshed per script call
LISTEN_RETRY_S = 0.2  # a lost subscription is tried again after this (connection refused costs nothing)
REMOTE_WATCH_BEATS = 3  # heartbeats a remote agent's watch lasts without being announced again

class ClusterHost(Protocol):
    """What a node needs from its session manager (``ar_server.session.manager.SessionManager``)."""

    def live_sessions(self) -> list[str]: ...
    def watched_sessions(self) -> list[str]: ...
    def watcher_names(self, session_id: str) -> list[str]: ...
    def agent_event(self, session_id: str, event: AgentEvent) -> bool: ...
    def publish_state(self, session_id: str, *, force: bool = False) -> None: ...
    def send_own_state(self, session_id: str) -> None: ...
    def deliver_local(self, session_id: str, message: dict[str, Any]) -> None: ...
    def queue_changed_local(self) -> None: ...
    async def hand_over(self, session_id: str) -> None: ...


class ClusterNode:
    """A node's link to the others through Redis at ``url``; see the module rules."""

    def __init__(self, url: str, node_id: str, *, lease_ttl_s: float, metrics: Metrics) -> None:
        self.url = url
        self.node_id = node_id
        self.lease_ttl_ms = int(lease_ttl_s * 1000)
        self.heartbeat_s = lease_ttl_s / 3.0
        self.metrics = metrics
        self.host: ClusterHost | None = None
        self.problem: str | None = "not started"  # rule 4: why the node is degraded; None when healthy
        # One retry on a broken connection: after Redis restarts, the pool's first connection is a dead one.
        self._redis = aioredis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S,
                                              socket_connect_timeout=REDIS_TIMEOUT_S,
                                              retry=Retry(NoBackoff(), 1), retry_on_error=[RedisConnectionError])
        self._refresh = self._redis.register_script(REFRESH_LEASES)
        self._release = self._redis.register_script(RELEASE_LEASE)
        self._spend = self._redis.register_script(SPEND_TOKEN)
        self._remote: dict[str, dict[str, float]] = {}  # session -> node -> when its watch lapses (monotonic)
        self._waiting: dict[str, asyncio.Future[None]] = {}  # take-over nonce -> its answer
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self.listening = False  # subscribed to this node's channel

    @property
    def healthy(self) -> bool:
        """Redis answers and this node hears its channel (until then another node takes it for dead)."""
        return self.problem is None and self.listening

    @property
    def reasons(self) -> list[str]:
        out = [] if self.problem is None else [self.problem]
        if self.problem is None and not self.listening:
            out.append("not yet subscribed to its cluster channel")
        return out

    # ---------------------------------------------------------------- life

    async def start(self, host: ClusterHost) -> None:
        """Attach to the session manager and start the heartbeat and the listener; a Redis that is down now
        leaves the node degraded (rule 4), it does not stop the server."""
        self.host = host
        await self._beat()
        self._loops = [asyncio.create_task(self._heartbeat_loop(), name="fixlens-cluster-heartbeat"),
                       asyncio.create_task(self._listen_loop(), name="fixlens-cluster-listener")]

    async def stop(self) -> None:
        """Stop the loops; leases still held are released (the sessions closed with 1001 resume elsewhere)."""
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=REDIS_TIMEOUT_S * 2)
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(wire.node_key(self.node_id))
        await self._redis.aclose()

    # ---------------------------------------------------------------- the directory (rules 1-3)

    async def claim(self, session_id: str) -> str:
        """Take the lease of ``session_id`` for this node, after its holder handed it over (rule 2). Returns
        how: ``new`` (no holder), ``own``, ``handed`` (the holder closed its connection), ``dead`` (its holder
        is gone), ``unanswered`` (its holder did not answer in time) or ``unavailable`` (Redis is lost)."""
        key = wire.lease_key(session_id)
        try:
            holder = await self._redis.get(key)
            holder = holder.decode() if holder is not None else None
            how = "new" if holder is None else "own" if holder == self.node_id else await self._take_over(
                session_id, holder)
            await self._redis.set(key, self.node_id, px=self.lease_ttl_ms)
        except (RedisError, OSError) as exc:
            self._lost(exc)
            how = "unavailable"
        self.metrics.cluster_claims.inc(how=how)
        return how

    async def _take_over(self, session_id: str, holder: str) -> str:
        nonce = secrets.token_hex(8)
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[nonce] = answer
        try:
            message = {"t": "take_over", "session": session_id, "node": self.node_id, "nonce": nonce}
            if await self._redis.publish(wire.node_channel(holder), wire.encode(message)) == 0:
                log.info("session %s: its node %s is gone; taking it over", session_id, holder)
                return "dead"
            try:
                await asyncio.wait_for(answer, TAKEOVER_TIMEOUT_S)
                return "handed"
            except TimeoutError:
                log.warning("session %s: node %s did not hand it over within %g s; taking it anyway", session_id,
                            holder, TAKEOVER_TIMEOUT_S)
                return "unanswered"
        finally:
            self._waiting.pop(nonce, None)

    def release(self, session_id: str) -> None:
        """The session's connection here closed: drop its lease if this node still holds it."""
        self._spawn(self._drop(session_id))

    async def _drop(self, session_id: str) -> None:
        # A connection that took over from another one of this node is live again by now: keep its lease.
        if self.host is not None and session_id in self.host.live_sessions():
            return
        await self._release(keys=[wire.lease_key(session_id)], args=[self.node_id])

    async def unheld(self, session_id: str) -> bool:
        """True when Redis answers and no node holds ``session_id`` (it may be ended as idle); False when a
        node holds it, or when Redis is lost and nobody can tell."""
        try:
            return await self._redis.exists(wire.lease_key(session_id)) == 0
        except (RedisError, OSError) as exc:
            self._lost(exc)
            return False

    async def holder(self, session_id: str) -> str | None:
        """The node holding ``session_id``'s lease, or None (no lease, or Redis lost)."""
        try:
            value = await self._redis.get(wire.lease_key(session_id))
        except (RedisError, OSError) as exc:
            self._lost(exc)
            return None
        return None if value is None else value.decode()

    # ---------------------------------------------------------------- rate limits (ar_server.limits, rule 4)

    def spend(self, kind: str, key: str, rate: float, burst: float, settle: Callable[[float], None]) -> None:
        """Spend a token of the shared bucket ``kind``/``key``; ``settle`` gets the tokens it has left."""
        if self.problem is not None:  # rule 4: while Redis is lost, the local buckets alone decide
            return
        self._spawn(self._spend_one(kind, key, rate, burst, settle))

    async def _spend_one(self, kind: str, key: str, rate: float, burst: float,
                         settle: Callable[[float], None]) -> None:
        left = await self._spend(keys=[wire.rate_key(kind, key)], args=[rate, burst])
        settle(float(left))

    # ---------------------------------------------------------------- agents across nodes

    async def forward_event(self, session_id: str, event: AgentEvent) -> bool:
        """Send an agent's event to the node holding the session; False when no other node holds it."""
        holder = await self.holder(session_id)
        if holder is None or holder == self.node_id:
            return False
        return await self._publish(holder, {"t": "event", "session": session_id, "event": wire.event_to_wire(event)})

    def watching(self, session_id: str) -> None:
        """Agents here watch ``session_id``: tell its holder (again every heartbeat) and ask for its state."""
        self._spawn(self._announce(session_id, first=True))

    def unwatching(self, session_id: str) -> None:
        self._spawn(self._to_holder(session_id, {"t": "unwatch", "session": session_id, "node": self.node_id}))

    def request_state(self, session_id: str) -> None:
        """The holder of ``session_id`` sends its state to every watcher; or, with no holder, this node sends
        its own view (the customer is not connected anywhere)."""
        self._spawn(self._request_state(session_id))

    def remote_watchers(self, session_id: str) -> list[str]:
        now = time.monotonic()
        nodes = self._remote.get(session_id, {})
        return [node for node, until in nodes.items() if until > now]

    def deliver(self, session_id: str, message: dict[str, Any]) -> None:
        """Send ``message`` to the agents of other nodes watching ``session_id``."""
        for node in self.remote_watchers(session_id):
            self._spawn(self._publish(node, {"t": "deliver", "session": session_id, "message": message}))

    def queue_changed(self) -> None:
        self._spawn(self._publish_raw(wire.BROADCAST_CHANNEL, {"t": "queue", "node": self.node_id}))

    async def _announce(self, session_id: str, *, first: bool) -> None:
        """``first``: an agent starts watching (it announces itself to the customer with its own event). Later
        announcements carry the agents' names, so a node that took the session over since introduces them."""
        assert self.host is not None
        await self._to_holder(session_id, {"t": "watch", "session": session_id, "node": self.node_id,
                                           "first": first, "agents": self.host.watcher_names(session_id)})

    async def _request_state(self, session_id: str) -> None:
        if not await self._to_holder(session_id, {"t": "state", "session": session_id}) and self.host is not None:
            self.host.send_own_state(session_id)

    async def _to_holder(self, session_id: str, message: dict[str, Any]) -> bool:
        holder = await self.holder(session_id)
        if holder is None or holder == self.node_id:
            return False
        return await self._publish(holder, message)

    async def _publish(self, node: str, message: dict[str, Any]) -> bool:
        return await self._publish_raw(wire.node_channel(node), message)

    async def _publish_raw(self, channel: str, message: dict[str, Any]) -> bool:
        try:
            receivers = await self._redis.publish(channel, wire.encode(message))
        except (RedisError, OSError) as exc:
            self._lost(exc)
            return False
        self.metrics.cluster_messages.inc(kind=message["t"], direction="out")
        return bool(receivers)

    # ---------------------------------------------------------------- heartbeat (rules 1, 3, 4)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self._beat()
            except Exception:  # a bug here must not stop the heartbeat: the leases would lapse
                log.exception("cluster heartbeat failed")

    async def _beat(self) -> None:
        assert self.host is not None
        live = self.host.live_sessions()
        try:
            await self._redis.set(wire.node_key(self.node_id), f'{{"sessions": {len(live)}, "at": {time.time():.3f}}}',
                                  px=self.lease_ttl_ms)
            for start in range(0, len(live), LEASE_BATCH):
                batch = live[start:start + LEASE_BATCH]
                results = await self._refresh(keys=[wire.lease_key(s) for s in batch],
                                              args=[self.node_id, self.lease_ttl_ms])
                for session_id, result in zip(batch, results, strict=True):
                    if int(result) == -1:  # rule 3
                        log.warning("session %s: another node holds its lease now; closing it here", session_id)
                        self._spawn(self.host.hand_over(session_id))
        except (RedisError, OSError) as exc:
            self._lost(exc)
            return
        if self.problem is not None:
            log.info("redis answers again: the leases of %d session(s) are written back", len(live))
        self._healthy()
        now = time.monotonic()
        for session_id in self.host.watched_sessions():
            if session_id not in live:
                await self._announce(session_id, first=False)
        for session_id in list(self._remote):
            nodes = {n: until for n, until in self._remote[session_id].items() if until > now}
            if nodes:
                self._remote[session_id] = nodes
            else:
                del self._remote[session_id]

    def _lost(self, exc: BaseException) -> None:
        problem = f"redis unreachable: {type(exc).__name__}: {exc}"[:300]
        if self.problem != problem:
            log.warning("cluster degraded: %s (sessions here go on; agents reach only this node's sessions)",
                        problem)
        self.problem = problem
        self.metrics.cluster_redis_up.set(0)
        self.metrics.cluster_redis_errors.inc()

    def _healthy(self) -> None:
        self.problem = None
        self.metrics.cluster_redis_up.set(1)

    # ---------------------------------------------------------------- listening

    async def _listen_loop(self) -> None:
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(wire.node_channel(self.node_id), wire.BROADCAST_CHANNEL)
                self.listening = True
                while True:
                    raw = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if raw is not None and isinstance(raw.get("data"), bytes):
                        await self._receive(raw["data"])
            except (RedisError, OSError) as exc:
                self._lost(exc)
            finally:
                self.listening = False
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            # Soon: while unsubscribed, other nodes take this one for dead and its sessions for theirs.
            await asyncio.sleep(LISTEN_RETRY_S)

    async def _receive(self, data: bytes) -> None:
        try:
            message = wire.decode(data)
            self.metrics.cluster_messages.inc(kind=message["t"], direction="in")
            await self._handle(message)
        except (wire.WireError, KeyError, TypeError) as exc:  # rule 1
            log.warning("cluster message dropped: %s", exc)

    async def _handle(self, message: dict[str, Any]) -> None:
        host = self.host
        assert host is not None
        kind = message["t"]
        if kind == "queue":
            if message.get("node") != self.node_id:
                host.queue_changed_local()
        elif kind == "deliver":
            host.deliver_local(str(message["session"]), message["message"])
        elif kind == "event":
            session_id = str(message["session"])
            try:
                if not host.agent_event(session_id, wire.event_from_wire(message["event"])):
                    log.info("session %s: an agent's event arrived after its customer left this node", session_id)
            except SessionStateError as exc:
                log.info("session %s: an agent's event from another node was refused: %s", session_id, exc.message)
        elif kind == "watch":
            session_id, node = str(message["session"]), str(message["node"])
            nodes = self._remote.setdefault(session_id, {})
            new = node not in nodes
            nodes[node] = time.monotonic() + REMOTE_WATCH_BEATS * self.heartbeat_s
            if new and not message.get("first"):  # the session came here since they joined: say who is there
                for name in message.get("agents", []):
                    host.agent_event(session_id, AgentJoined(str(name)))
            if new or message.get("first"):
                host.publish_state(session_id, force=True)
        elif kind == "unwatch":
            self._remote.get(str(message["session"]), {}).pop(str(message["node"]), None)
        elif kind == "state":
            host.publish_state(str(message["session"]), force=True)
        elif kind == "take_over":
            self._spawn(self._hand_over(str(message["session"]), str(message["node"]), str(message["nonce"])))
        elif kind == "taken":
            answer = self._waiting.get(str(message["nonce"]))
            if answer is not None and not answer.done():
                answer.set_result(None)

    async def _hand_over(self, session_id: str, node: str, nonce: str) -> None:
        assert self.host is not None
        await self.host.hand_over(session_id)
        await self._publish(node, {"t": "taken", "nonce": nonce})

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, work: Coroutine[Any, Any, Any]) -> None:
        try:
            await work
        except (RedisError, OSError) as exc:
            self._lost(exc)
        except Exception:  # rule 5
            log.exception("cluster task failed")
