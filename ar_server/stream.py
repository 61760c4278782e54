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
   more); ``step``, ``notice``, ``end`` and ``error`` are never dropped.
3. aiohttp itself closes on a message over twice ``max_message_bytes`` (1009), and on a broken WebSocket
   frame (1002, 1007), before handing anything over; ``_StreamSocket`` sends the protocol's fatal error
   first, so the client learns why.
4. A bug while handling one message ends that connection with ``internal`` (1011), never the server; the
   session stays resumable. When the server shuts down, every connection is closed with 1001 at once
   (``going_away``, an ``on_shutdown`` hook), each session's state saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

import msgpack
from aiohttp import WSCloseCode, WSMsgType, web

from ar_server.app_keys import AUTHORITY, CONFIG, METRICS, SESSIONS
from ar_server.metrics import Metrics
from ar_server.protocol import (
    Bye,
    Error,
    Event,
    Frame,
    FrameError,
    Hello,
    Obs,
    ProtocolError,
    ServerMessage,
    decode_client,
    encode_server,
)
from ar_server.session import SessionDriver
from ar_server.session.events import (
    ByeReceived,
    FrameReceived,
    HelloReceived,
    MessageRefused,
    SessionEvent,
    UserEventReceived,
)

log = logging.getLogger(__name__)
MAX_QUEUED_OBS = 4
WRITER_CLOSE_TIMEOUT_S = 5.0  # how long a closing connection waits for its queued messages to go out


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


class Connection:
    """One WebSocket client. Implements the session's ``Outbox``."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.app = request.app
        self.driver = SessionDriver(self.app[SESSIONS], self, self.app[AUTHORITY])
        self._queue: deque[ServerMessage] = deque()
        self._wake = asyncio.Event()
        self._close_code: int | None = None
        self._writer: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- Outbox

    def send(self, message: ServerMessage) -> None:
        if self._close_code is not None:
            return
        if isinstance(message, Obs) and sum(isinstance(m, Obs) for m in self._queue) >= MAX_QUEUED_OBS:
            for queued in self._queue:
                if isinstance(queued, Obs):
                    self._queue.remove(queued)
                    break
        self._queue.append(message)
        self._wake.set()

    def close(self, code: int) -> None:
        if self._close_code is None:
            self._close_code = code
        self._wake.set()

    async def _write(self) -> None:
        while True:
            while self._queue:
                message = self._queue.popleft()
                try:
                    await self.ws.send_bytes(encode_server(message))
                except (ConnectionError, RuntimeError):  # the client went away
                    self._queue.clear()
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

    async def _read(self) -> None:
        limits = self.app[CONFIG].limits()
        while not self.driver.closed:
            msg = await self.ws.receive()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return  # an ERROR was answered by _StreamSocket (rule 3)
            if self.driver.closed:  # closed by a timer or the server while this message was in flight
                return
            try:
                message = decode_client(msg.data, limits)
            except FrameError as exc:
                self.driver.feed(MessageRefused(exc.code, exc.message, exc.field, exc.seq))
                continue
            except ProtocolError as exc:
                seq = _frame_seq(msg.data) if exc.code == "too_large" and exc.field is None else None
                self.driver.feed(MessageRefused(exc.code, exc.message, exc.field, seq))
                continue
            self.driver.feed(_EVENTS[type(message)](message))
            if isinstance(message, Hello):
                await self.driver.drained()  # the session opens before the next message is read


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


async def stream_handler(request: web.Request) -> web.WebSocketResponse:
    """``GET /v1/stream``: upgrade and serve one client until it leaves."""
    ws = _StreamSocket(max_message_bytes=request.app[CONFIG].limits().max_message_bytes,
                       metrics=request.app[METRICS])
    await ws.prepare(request)
    await Connection(ws, request).serve()
    return ws


async def going_away(app: web.Application) -> None:
    """``on_shutdown``: close every connection with 1001 now, rather than cut them off after the shutdown
    timeout (rule 4)."""
    await app[SESSIONS].going_away()
