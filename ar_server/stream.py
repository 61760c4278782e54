"""The ``/v1/stream`` WebSocket handler: one ``Connection`` per client, speaking protocol v1.

Rules:
1. Every message is decoded with the protocol's limits before anything else looks at it; a bad one is
   answered with an ``error`` naming the code, the field and what was expected. Before ``hello`` every
   error is fatal (close 1008); after it, only the ones the protocol marks fatal.
2. Sending goes through one writer task per connection, so messages keep their order and a slow client
   only slows itself. Queued ``obs`` past ``MAX_QUEUED_OBS`` are dropped oldest-first (a newer one says
   more); ``step``, ``notice``, ``end`` and ``error`` are never dropped.
3. A bug while handling one message ends that connection with ``internal`` (1011), never the server; the
   session stays resumable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from aiohttp import WSCloseCode, WSMsgType, web

from ar_server.app_keys import AUTHORITY, CONFIG, METRICS, SESSIONS
from ar_server.auth import check_role
from ar_server.errors import AuthError, ProtocolError, ServerError
from ar_server.protocol import Bye, Error, Event, Frame, Hello, Obs, ServerMessage, decode_client, encode_server
from ar_server.session import LiveSession

log = logging.getLogger(__name__)
HELLO_TIMEOUT_S = 30.0  # a connection that says nothing this long after opening is closed
MAX_QUEUED_OBS = 4
STREAM_ROLES = ("customer", "agent", "admin")  # authors edit scenes; they do not stream


class Connection:
    """One WebSocket client. Implements the session's ``Outbox``."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.app = request.app
        self.metrics = self.app[METRICS]
        self.session: LiveSession | None = None
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

    def _error(self, code: str, message: str, *, fatal: bool, field: str | None = None,
               seq: int | None = None) -> None:
        self.metrics.errors.inc(code=code)
        self.send(Error(code, message, fatal=fatal, field=field, seq=seq))
        if fatal:
            self.close(WSCloseCode.INTERNAL_ERROR if code == "internal" else WSCloseCode.POLICY_VIOLATION)

    # ---------------------------------------------------------------- reading

    async def serve(self) -> None:
        self._writer = asyncio.create_task(self._write(), name="fixlens-ws-writer")
        try:
            await self._read()
        except Exception:
            log.exception("stream connection failed")
            self._error("internal", "internal server error; resume the session to continue", fatal=True)
        finally:
            if self.session is not None:
                await self.app[SESSIONS].detach(self.session)
            self.close(WSCloseCode.OK)
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                await asyncio.wait_for(self._writer, timeout=5.0)

    async def _read(self) -> None:
        limits = self.app[CONFIG].limits()
        while self._close_code is None:
            try:
                msg = await self.ws.receive(timeout=HELLO_TIMEOUT_S if self.session is None else None)
            except TimeoutError:
                self._error("hello_required", f"no hello within {HELLO_TIMEOUT_S:g} s", fatal=True)
                return
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            if msg.type == WSMsgType.ERROR:
                exc = self.ws.exception()
                self._error("too_large" if "size" in str(exc).lower() else "bad_msgpack",
                            f"WebSocket error: {exc}", fatal=True)
                return
            if self.session is not None:
                self.session.last_message_at = time.monotonic()
            try:
                message = decode_client(msg.data, limits)
            except ProtocolError as exc:
                self._error(exc.code, exc.message, fatal=self.session is None, field=exc.field)
                continue
            await self._dispatch(message)

    async def _dispatch(self, message: Hello | Frame | Event | Bye) -> None:
        session = self.session
        if isinstance(message, Hello):
            if session is not None:
                self._error("duplicate_hello", "hello was already received on this connection", fatal=False)
            else:
                await self._hello(message)
        elif session is None:
            self._error("hello_required", f"the first message must be hello, got {message.t}", fatal=True)
        elif isinstance(message, Frame):
            session.on_frame(message)
        elif isinstance(message, Event):
            await session.on_event(message)
        else:
            self.close(WSCloseCode.OK)

    async def _hello(self, hello: Hello) -> None:
        try:
            claims = self.app[AUTHORITY].verify(hello.token)
        except AuthError as exc:
            self._error("unauthorized", f"token {exc.code.replace('_', ' ')}: {exc.message}", fatal=True,
                        field="token")
            return
        try:
            check_role(claims, STREAM_ROLES)
        except AuthError as exc:
            self._error("forbidden", f"wrong_role: {exc.message}", fatal=True, field="token")
            return
        try:
            session, welcome = await self.app[SESSIONS].open(hello, claims, self)
        except ServerError as exc:
            self._error(exc.code, exc.message, fatal=True, field=exc.field)
            return
        self.session = session
        self.send(welcome)
        if hello.product is not None and session.product_hint is None:
            self._error("unknown_product", f"unknown product {hello.product!r}; the hint is ignored", fatal=False,
                        field="product")
        await session.begin(resumed=welcome.resumed)


async def stream_handler(request: web.Request) -> web.WebSocketResponse:
    """``GET /v1/stream``: upgrade and serve one client until it leaves."""
    limits = request.app[CONFIG].limits()
    # Twice the protocol limit: a message a little over it still reaches the decoder and gets a `too_large`
    # error; only far larger ones are cut off by aiohttp itself (close 1009).
    ws = web.WebSocketResponse(max_msg_size=2 * limits.max_message_bytes, heartbeat=30.0, compress=False)
    await ws.prepare(request)
    await Connection(ws, request).serve()
    return ws

