"""The ``/v1/stream`` WebSocket handler: one ``Connection`` per client, speaking protocol v1.

The connection only moves bytes: it decodes what the client sends into events for its session driver
(``ar_server.session.live``), and sends what the session core asks it to. What to answer, and when to
close, is the core's decision (``ar_server.session.core``).

Rules:
1. Every message is decoded with the protocol's limits before anything else looks at it; a bad one becomes
   a ``MessageRefused`` event (the core answers it). A refused frame names its ``seq``, also one over the
   message size limit when its ``seq`` can be read.
2. Sending goes through one writer task per connection, so messages keep their order and a slow client
   only slows itself. Queued ``obs`` past ``MAX_QUEUED_OBS`` are dropped oldest-first (a newer one says
   more). The whole queue is bounded (``max_outbound_messages``, ``max_outbound_bytes``, counted encoded):
   past either bound the oldest ``obs``, ``notice`` and non-fatal ``error`` go first; when only messages
   that must arrive are left (``welcome``, ``step``, ``end``, a fatal ``error``, ...) and it is still over, the
   client is not reading: the connection is closed with 4000 (``CloseCode.NOT_READING``; the session
   stays resumable) and, if even the close frame cannot be written within ``NOT_READING_CLOSE_S``, cut.
3. aiohttp itself closes on a message over twice ``max_message_bytes`` (1009), and on a broken WebSocket
   frame (1002, 1007), before handing anything over; ``_StreamSocket`` sends the protocol's fatal error
   first, so the client learns why.
4. A bug while handling one message ends that connection with ``internal`` (1011), never the server; the
   session stays resumable. When the server shuts down, every connection is closed with 1001 at once
   (``going_away``, an ``on_shutdown`` hook), each session's state saved.
5. Reading stops while the session has more than ``MAX_EFFECT_BACKLOG`` effects to perform, so a client
   that sends faster than its messages are handled waits in its own TCP window, not in server memory.
   Refused messages (bad ones, and user events over ``events_per_s``, answered ``rate_limited``) are
   answered up to ``bad_messages_burst`` at once and ``bad_messages_per_s`` on average; one more is
   answered with a fatal ``rate_limited`` and the connection closes (1008). Both budgets are per customer
   (``ar_server.limits.CustomerLimits``, keyed by the token's subject once ``hello`` opened a session), so
   more connections do not buy more.
6. Before the upgrade, ``ar_server.limits.ConnectionGate`` admits the connection or it is refused with
   HTTP 503 JSON (``overloaded``): over ``max_connections`` in total, or over
   ``max_unauthenticated_per_address`` connections from one address that have not sent ``hello``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import msgpack
from aiohttp import WSCloseCode, WSMsgType, web

from ar_server.app_keys import AUTHORITY, CONFIG, METRICS, SESSIONS
from ar_server.errors import AuthError
from ar_server.limits import LIMITS, KeyedBuckets, retry_after_header
from ar_server.metrics import Metrics
from ar_server.protocol import (
    Bye,
    CloseCode,
    Error,
    Event,
    Frame,
    FrameError,
    Hello,
    Notice,
    Obs,
    ProtocolError,
    ServerMessage,
    decode_client,
    encode_server,
)
from ar_server.rest import json_error
from ar_server.session import SessionDriver
from ar_server.session.events import (
    ByeReceived,
    FrameReceived,
    HelloReceived,
    MessageRefused,
    SessionEvent,
    UserEventReceived,
)
from ar_server.session.live import DriverLimits

log = logging.getLogger(__name__)
MAX_QUEUED_OBS = 4
WRITER_CLOSE_TIMEOUT_S = 5.0  # how long a closing connection waits for its queued messages to go out
MAX_EFFECT_BACKLOG = 64  # rule 5: effects a session may have waiting before its reader pauses
NOT_READING_CLOSE_S = 2.0  # rule 2: how long the close frame to a client that does not read may take
HELLO_RETRY_AFTER_S = 5.0  # rule 6: Retry-After of a refused upgrade
_CONNECTION_NUMBERS = itertools.count(1)  # rate keys of connections whose customer is not known yet (rule 5)


@dataclass(frozen=True)
class _Queued:
    message: ServerMessage
    data: bytes  # encoded once, when queued: the byte bound counts what will really be written
    droppable: bool  # rule 2


class _StreamSocket(web.WebSocketResponse):
    """Rule 3. aiohttp's ``receive()`` calls ``close(code=...)`` for a message it refuses, then returns an
    ``ERROR`` message; by then nothing can be sent, so the error goes out here, just before the close frame."""

    def __init__(self, *, max_message_bytes: int, metrics: Metrics) -> None:
        # Twice the protocol limit: a message a little over it still reaches the decoder and gets a non-fatal
        # `too_large` error; only far larger ones are refused by aiohttp (rule 3).
        super().__init__(max_msg_size=2 * max_message_bytes, heartbeat=30.0, compress=False)
        self._refusals = {
            WSCloseCode.MESSAGE_TOO_BIG: Error("too_large", f"message of {2 * max_message_bytes} bytes or more, "
                                                            f"twice the limit of {max_message_bytes}; the "
                                                            "connection is closed", fatal=True),
            WSCloseCode.PROTOCOL_ERROR: Error("bad_msgpack", "not a valid WebSocket frame; the connection is closed",
                                              fatal=True),
            WSCloseCode.INVALID_TEXT: Error("bad_msgpack", "a text message that is not even valid UTF-8 (send binary "
                                                           "msgpack); the connection is closed", fatal=True),
        }
        self._metrics = metrics

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True) -> bool:
        error = self._refusals.get(code)  # type: ignore[call-overload]
        if error is not None and not self.closed:
            self._metrics.errors.inc(code=error.code)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.send_bytes(encode_server(error))
        return await super().close(code=code, message=message, drain=drain)


def _droppable(message: ServerMessage) -> bool:
    """Rule 2: what a client can do without (a newer ``obs`` or notice says as much; a non-fatal error
    changed nothing)."""
    return isinstance(message, Obs | Notice) or (isinstance(message, Error) and not message.fatal)


class Connection:
    """One WebSocket client. Implements the session's ``Outbox``."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.request = request
        self.app = request.app
        config = self.app[CONFIG]
        self.driver = SessionDriver(self.app[SESSIONS], self, self.app[AUTHORITY], DriverLimits(
            escalations_per_minute=config.escalations_per_minute, escalations_burst=config.escalations_burst,
            max_open_escalations=config.max_open_escalations,
            session_creation=self.app[LIMITS].session_creation))
        self.max_messages = config.max_outbound_messages
        self.max_bytes = config.max_outbound_bytes
        self._customer_limits = self.app[SESSIONS].customer_limits
        self.customer: str | None = None  # the token's subject, once hello opened a session (rule 5)
        self._own_key = f"connection:{next(_CONNECTION_NUMBERS)}"  # the rate key until then
        self._queue: deque[_Queued] = deque()
        self._queued_bytes = 0
        self.dropped = 0  # droppable messages dropped because the client did not read them (rule 2)
        self._wake = asyncio.Event()
        self._close_code: int | None = None
        self._writer: asyncio.Task[None] | None = None
        self.not_reading = False
        self.address = request.remote or "unknown"
        self.greeted = False  # hello opened a session: no longer counted as unauthenticated (rule 6)

    # ---------------------------------------------------------------- Outbox

    def send(self, message: ServerMessage) -> None:
        if self._close_code is not None or self.not_reading:
            return
        if isinstance(message, Obs) and sum(isinstance(q.message, Obs) for q in self._queue) >= MAX_QUEUED_OBS:
            self._drop_first(lambda q: isinstance(q.message, Obs))
        data = encode_server(message)
        self._queue.append(_Queued(message, data, _droppable(message)))
        self._queued_bytes += len(data)
        while len(self._queue) > self.max_messages or self._queued_bytes > self.max_bytes:
            if not self._drop_first(lambda q: q.droppable):
                self._stop_not_reading()
                return
        self._wake.set()

    def _drop_first(self, which: Callable[[_Queued], bool]) -> bool:
        for queued in self._queue:
            if which(queued):
                self._queue.remove(queued)
                self._queued_bytes -= len(queued.data)
                self.dropped += 1
                return True
        return False

    def _stop_not_reading(self) -> None:
        """Rule 2: the client does not read what it must; close it (4000), or cut it when even that blocks."""
        log.warning("stream client %s does not read (%d messages, %d bytes queued); closing it",
                    self.request.remote, len(self._queue), self._queued_bytes)
        self.not_reading = True
        self._queue.clear()
        self._queued_bytes = 0
        self.app[METRICS].errors.inc(code="not_reading")
        if self._writer is not None:
            self._writer.cancel()
        self._writer = asyncio.create_task(self._close_not_reading(), name="fixlens-ws-not-reading")

    async def _close_not_reading(self) -> None:
        try:
            await asyncio.wait_for(self.ws.close(code=CloseCode.NOT_READING), NOT_READING_CLOSE_S)
        except (TimeoutError, ConnectionError, RuntimeError):
            transport = self.request.transport
            if transport is not None:
                transport.abort()

    def close(self, code: int) -> None:
        if self._close_code is None:
            self._close_code = code
        self._wake.set()

    async def _write(self) -> None:
        while True:
            while self._queue:
                queued = self._queue.popleft()
                self._queued_bytes -= len(queued.data)
                try:
                    await self.ws.send_bytes(queued.data)
                except (ConnectionError, RuntimeError):  # the client went away
                    self._queue.clear()
                    self._queued_bytes = 0
                    return
            if self._close_code is not None:
                await self.ws.close(code=self._close_code)
                return
            self._wake.clear()
            await self._wake.wait()

    # ---------------------------------------------------------------- reading

    async def serve(self) -> None:
        sessions = self.app[SESSIONS]
        sessions.register(self.driver)
        self._writer = asyncio.create_task(self._write(), name="fixlens-ws-writer")
        try:
            await self._read()
        except Exception as exc:  # rule 4
            log.exception("stream connection failed")
            self.driver.fail(type(exc).__name__)
        finally:
            await self.driver.disconnected()
            sessions.release(self.driver)
            self.close(WSCloseCode.OK)
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError, TimeoutError):
                await asyncio.wait_for(self._writer, timeout=WRITER_CLOSE_TIMEOUT_S)

    def _refuse(self, refused: MessageRefused) -> None:
        """Rule 5: answer a refused message, or close when the client keeps sending them."""
        refusals = self._customer_limits.refusals
        if self.driver.core.state == "awaiting_hello" or self._take(refusals):
            self.driver.feed(refused)
            return
        self.driver.feed(MessageRefused(
            "rate_limited", f"too many refused messages (over {refusals.burst:g} at once or {refusals.rate:g} a "
                            f"second, across your connections); the last was {refused.code}: {refused.message}",
            refused.field, refused.seq, fatal=True))

    def _take(self, buckets: KeyedBuckets) -> bool:
        """One from this customer's bucket (rule 5); False when it is empty."""
        return buckets.take(self.customer or self._own_key, asyncio.get_running_loop().time()) is None

    async def _read(self) -> None:
        limits = self.app[CONFIG].limits()
        while not self.driver.closed:
            msg = await self.ws.receive()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return  # an ERROR was answered by _StreamSocket (rule 3)
            if self.driver.closed:  # closed by a timer or the server while this message was in flight
                return
            if self.driver.backlog > MAX_EFFECT_BACKLOG:  # rule 5
                await self.driver.drained()
                if self.driver.closed:
                    return
            try:
                message = decode_client(msg.data, limits)
            except FrameError as exc:
                self._refuse(MessageRefused(exc.code, exc.message, exc.field, exc.seq))
                continue
            except ProtocolError as exc:
                seq = _frame_seq(msg.data) if exc.code == "too_large" and exc.field is None else None
                self._refuse(MessageRefused(exc.code, exc.message, exc.field, seq))
                continue
            events = self._customer_limits.events
            if isinstance(message, Event) and self.driver.core.state == "open" and not self._take(events):
                self._refuse(MessageRefused("rate_limited", f"user events arrive faster than {events.rate:g} per "
                                                            f"second (burst {events.burst:g}, across your "
                                                            f"connections); this {message.kind} was ignored", "kind"))
                continue
            self.driver.feed(_EVENTS[type(message)](message))
            if isinstance(message, Hello):
                await self.driver.drained()  # the session opens before the next message is read
                if self.driver.session_id is not None and not self.greeted:
                    self.greeted = True
                    self.app[LIMITS].connections.greeted(self.address)
                    self.customer = self._subject(message)

    def _subject(self, hello: Hello) -> str | None:
        """The subject of the token that just opened this connection's session (checked once more here: the
        driver keeps no claims), or None if it has expired in between."""
        try:
            return self.app[AUTHORITY].verify(hello.token).subject
        except AuthError:
            return None


_EVENTS: dict[type, type[SessionEvent]] = {
    Hello: HelloReceived, Frame: FrameReceived, Event: UserEventReceived, Bye: ByeReceived,
}


def _frame_seq(data: object) -> int | None:
    """The ``seq`` of a message over the size limit that is a frame (rule 1), or None. Only the map's keys,
    ``t`` and ``seq`` are read; the other values, the JPEG among them, are skipped unread. The message is at
    most twice the limit (rule 3), so this costs one pass over it."""
    if not isinstance(data, bytes | bytearray):
        return None
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=len(data), max_str_len=64, max_bin_len=0,
                                max_array_len=0, max_map_len=64, max_ext_len=0)
    unpacker.feed(data)
    found: dict[str, object] = {}
    try:
        for _ in range(unpacker.read_map_header()):
            key = unpacker.unpack()
            if key in ("t", "seq"):
                found[key] = unpacker.unpack()
            else:
                unpacker.skip()
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    seq = found.get("seq")
    if found.get("t") != "frame" or isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= 2**53:
        return None
    return seq


async def stream_handler(request: web.Request) -> web.StreamResponse:
    """``GET /v1/stream``: upgrade and serve one client until it leaves (rule 6: or refuse it, 503)."""
    gate = request.app[LIMITS].connections
    address = request.remote or "unknown"
    refusal = gate.admit(address)
    if refusal is not None:
        request.app[METRICS].errors.inc(code=refusal.code)
        response = json_error(503, refusal.code, refusal.message)
        response.headers["Retry-After"] = retry_after_header(HELLO_RETRY_AFTER_S)
        response.force_close()  # the refused client's socket is not kept open for another request
        return response
    connection: Connection | None = None
    try:
        ws = _StreamSocket(max_message_bytes=request.app[CONFIG].limits().max_message_bytes,
                           metrics=request.app[METRICS])
        await ws.prepare(request)
        connection = Connection(ws, request)
        connection.address = address
        await connection.serve()
        return ws
    finally:
        gate.release(address, greeted=connection is not None and connection.greeted)


async def going_away(app: web.Application) -> None:
    """``on_shutdown``: close every connection with 1001 now, rather than cut them off after the shutdown
    timeout (rule 4)."""
    await app[SESSIONS].going_away()
