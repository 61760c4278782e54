"""Run the server until SIGINT/SIGTERM, then shut down gracefully (``fixlens serve``; its command line is
``fixlens.serve``).

Graceful means: stop accepting connections, tell connected clients the server is going away (close 1001;
their sessions stay resumable), save every live session's engine state, stop the inference worker, close
the store. Configuration comes from flags > ``FIXLENS_*`` environment > defaults (``ar_server.config``).

Before aiohttp sees a connection, ``ConnectionGuard`` holds it to account (docs/server.md, "Limits"): a
TCP connection counts against its remote address (``max_pre_request_per_address``) from the moment it is
accepted until its first request line and headers have arrived, and is closed if they take longer than
``first_request_timeout_s``; after a request, an address keeps at most ``max_keepalive_per_address`` idle
keep-alive connections (the least recently used is closed). Without it, connections that sent nothing, or
one request, held a file descriptor each for aiohttp's keep-alive timeout, and enough of them left the
process none to accept a customer with. At start
the soft limit on open files is raised to the hard one, so the stream connection cap derived from it
(``ar_server.app.server_limits``) is as high as the system allows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import signal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ar_server.limits import AcceptGate, IdleConnections

if TYPE_CHECKING:
    from ar_server.config import Config

log = logging.getLogger("fixlens.serve")
# aiohttp's own default under web.run_app: an idle keep-alive connection between REST requests is closed after
# this long (the AppRunner default is an hour, which keeps a descriptor per idle client for that long).
KEEPALIVE_TIMEOUT_S = 75.0
LISTEN_BACKLOG = 128  # aiohttp's TCPSite default
# After a 408, how long the socket stays half-closed, reading and dropping what the client still sends: a
# close with unread input makes the kernel send a reset, which can destroy the 408 before the client reads it.
LINGER_S = 1.0


def raise_file_limit() -> int:
    """Raise the soft limit on open files (``ulimit -n``) to the hard limit; return the soft limit in force.

    Every connection holds a descriptor, and distributions start processes with a soft limit of 1024 under a
    hard limit many times higher. Where the raise is refused, the old limit stays and a warning says so."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard or soft == resource.RLIM_INFINITY:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:  # an infinite hard limit on some systems, or a sandbox that forbids it
        log.warning("cannot raise the open file limit from %d to %s: %s", soft, hard, exc)
        return soft
    log.info("open file limit (ulimit -n) raised from %d to %d", soft, hard)
    return hard


def _http_error(status: int, reason: str, code: str, message: str, *, retry_after_s: int | None = None) -> bytes:
    """A whole HTTP/1.1 response with the JSON error body every other refusal has, then ``Connection: close``.
    Written straight to the socket: these connections never reach aiohttp, or never gave it a request."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json; charset=utf-8",
            f"Content-Length: {len(body)}", "Connection: close"]
    if retry_after_s is not None:
        head.append(f"Retry-After: {retry_after_s}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class ConnectionGuard:
    """The protocol factory of the listening socket: aiohttp's ``web.Server`` behind a per-connection guard.

    Two of the server's public hooks are wrapped. aiohttp calls ``server.request_factory`` as soon as a
    request line and headers are parsed (for a malformed request too, to answer 400): the connection is now
    busy, and after its first request no longer "before". It calls ``server.request_handler`` to serve the
    request; when that returns (a stream's only when the stream ends) the connection is idle until the next.
    Counters ``refused``, ``timed_out`` and ``evicted`` are for logs and tests."""

    def __init__(self, server: web.Server, gate: AcceptGate, idle: IdleConnections[_GuardedConnection],
                 timeout_s: float) -> None:
        self.server, self.gate, self.idle, self.timeout_s = server, gate, idle, timeout_s
        self.refused = 0
        self.timed_out = 0
        self.evicted = 0
        self.guards: dict[Any, _GuardedConnection] = {}  # aiohttp protocol -> its guard, while open
        self._make_request = server.request_factory
        self._handle = server.request_handler
        server.request_factory = self._request_arrived
        server.request_handler = self._serve_request
        self.over_cap = _http_error(
            503, "Service Unavailable", "overloaded",
            f"{gate.max_per_address} connections from your address have not sent a request yet; send requests "
            "on those, or close them, before opening more", retry_after_s=max(1, round(timeout_s)))
        self.too_slow = _http_error(408, "Request Timeout", "request_timeout",
                                    f"no complete request line and headers within {timeout_s:g} s of connecting")

    def __call__(self) -> asyncio.Protocol:
        return _GuardedConnection(self)

    def _request_arrived(self, message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> Any:
        guard = self.guards.get(protocol)
        if guard is not None:
            guard.request_arrived()
        return self._make_request(message, payload, protocol, writer, task)

    async def _serve_request(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await self._handle(request)
        finally:
            guard = self.guards.get(request.protocol)
            if guard is not None:
                guard.request_served()


class _GuardedConnection(asyncio.Protocol):
    """One accepted connection: refused at once when its address is over the cap; else aiohttp's protocol
    behind it, with a timer that closes the connection unless its first request arrives in time."""

    def __init__(self, owner: ConnectionGuard) -> None:
        self._owner = owner
        self._inner: asyncio.Protocol | None = None  # made only for admitted connections
        self._transport: asyncio.Transport | None = None
        self._address = ""
        self._before_request = False  # holds a place in the gate
        self._timer: asyncio.TimerHandle | None = None
        self._lingering = False  # answered 408; the socket closes after LINGER_S

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        owner = self._owner
        assert isinstance(transport, asyncio.Transport)
        peer = transport.get_extra_info("peername")
        self._address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if not owner.gate.admit(self._address):
            owner.refused += 1
            # Closing now gives the descriptor back at once; the few bytes fit the socket's send buffer.
            transport.write(owner.over_cap)
            transport.close()
            return
        self._before_request = True
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(owner.timeout_s, self._expire)
        self._inner = owner.server()
        owner.guards[self._inner] = self
        self._inner.connection_made(transport)

    def request_arrived(self) -> None:
        if self._before_request:
            self._before_request = False
            self._owner.gate.requested(self._address)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._owner.idle.busy(self._address, self)

    def request_served(self) -> None:
        if self._inner is None:  # closed meanwhile
            return
        oldest = self._owner.idle.idle(self._address, self)
        if oldest is not None:
            oldest.close_when_idle()

    def close_when_idle(self) -> None:
        """Close this connection to make room for a newer idle one from the same address, without cutting a
        response short: its request handler has returned, but aiohttp may still be writing what it returned
        (a file, say). aiohttp's ``close()`` lets that finish, then closes; on a connection already waiting
        for its next request it only ends the wait and leaves the socket open, so that one is closed at once
        (``_waiter`` is aiohttp's "waiting for a request" future; the eviction test in
        tests/ar_server/test_serve.py fails if it is ever renamed)."""
        inner = self._inner
        if inner is None:
            return
        self._owner.evicted += 1
        if getattr(inner, "_waiter", None) is not None:
            inner.force_close()  # type: ignore[attr-defined]
        else:
            inner.close()  # type: ignore[attr-defined]

    def _expire(self) -> None:
        self._timer = None
        if self._before_request and self._transport is not None and not self._transport.is_closing():
            self._owner.timed_out += 1
            log.debug("closed a connection from %s: no request within %g s", self._address, self._owner.timeout_s)
            transport = self._transport
            transport.write(self._owner.too_slow)
            if not transport.can_write_eof():
                transport.close()  # aiohttp's protocol hears of it in connection_lost
                return
            transport.write_eof()  # the 408 is the last thing sent; reading goes on (data_received drops it)
            self._lingering = True
            asyncio.get_running_loop().call_later(LINGER_S, transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._before_request:
            self._before_request = False
            self._owner.gate.closed(self._address)
        if self._inner is not None:
            self._owner.idle.busy(self._address, self)  # gone: never to be chosen
            self._owner.guards.pop(self._inner, None)
            self._inner.connection_lost(exc)
            self._inner = None
        self._transport = None

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # after the 408: dropped (see LINGER_S)
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


async def serve(config: Config, *, pipeline: Any = None) -> None:
    """Serve until SIGINT or SIGTERM. Prints ``fixlens serving on http://HOST:PORT`` once listening.

    ``pipeline``: what ``create_app`` takes; None builds the vision pipeline from the config."""
    from ar_server.app import create_app

    raise_file_limit()  # before create_app, which derives the stream connection cap from it
    app = create_app(config, pipeline=pipeline)
    # The app closes its streams itself when shutdown starts (1001, ar_server.stream.going_away); this bounds
    # the wait for requests still running after that.
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5.0, keepalive_timeout=KEEPALIVE_TIMEOUT_S)
    await runner.setup()
    loop = asyncio.get_running_loop()
    listener: asyncio.Server | None = None
    try:
        assert runner.server is not None  # set by setup()
        guard = ConnectionGuard(runner.server, AcceptGate(config.max_pre_request_per_address),
                                IdleConnections(config.max_keepalive_per_address), config.first_request_timeout_s)
        # Listening ourselves instead of through web.TCPSite, whose protocol factory is aiohttp's alone;
        # aiohttp's server still tracks every admitted connection, so runner.cleanup() closes them as before.
        listener = await loop.create_server(guard, config.host, config.port, backlog=LISTEN_BACKLOG)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        host, port = listener.sockets[0].getsockname()[:2]
        print(f"fixlens serving on http://{host}:{port}", flush=True)  # and handling SIGINT and SIGTERM
        await stop.wait()
        log.info("shutting down")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if listener is not None:
            listener.close()  # stop accepting; the open connections are closed by the runner below
        await runner.cleanup()
