"""Pure units of ``ar_server.limits``, the outbound queue of ``ar_server.stream.Connection``, and the
per-customer budgets on a real server."""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import pytest

from ar_server.app import create_app
from ar_server.app_keys import METRICS
from ar_server.auth import TokenAuthority
from ar_server.config import DEV_SECRET
from ar_server.limits import (
    AcceptGate,
    ConnectionGate,
    IdleConnections,
    KeyedBuckets,
    PixelBudget,
    TokenBucket,
    retry_after_header,
)
from ar_server.protocol import CloseCode, Error, Event, Hello, Notice, Obs, Welcome, decode_server, encode_client
from ar_server.protocol.messages import Limits
from ar_server.stream import Connection
from fixlens.truth_pipeline import TruthTablePipeline
from tests.ar_server.conftest import make_config


def test_token_bucket_spends_its_burst_then_refills_at_its_rate() -> None:
    bucket = TokenBucket(2.0, 3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) and not bucket.take(0.5)
    assert bucket.full(10.0)


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_token_bucket_refuses_nonsense(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="expected rate > 0 and burst >= 1"):
        TokenBucket(rate, burst)


def test_keyed_buckets_are_per_key_and_bounded() -> None:
    buckets = KeyedBuckets(1.0, 1, max_keys=3)
    assert buckets.take("a", 0.0) is None
    assert buckets.take("a", 0.0) == pytest.approx(1.0)
    assert buckets.take("b", 0.0) is None
    for key in "cdef":
        buckets.take(key, 0.0)
    assert len(buckets) == 3  # inventing keys does not grow it


def test_connection_gate_caps_unauthenticated_per_address_and_the_total() -> None:
    gate = ConnectionGate(max_connections=4, max_unauthenticated_per_address=2)
    assert gate.admit("a") is None and gate.admit("a") is None
    refusal = gate.admit("a")
    assert refusal is not None and refusal.code == "overloaded" and "have not sent hello" in refusal.message
    gate.greeted("a")  # one of them said hello
    assert gate.admit("a") is None and gate.admit("b") is None
    refusal = gate.admit("c")
    assert refusal is not None and "maximum of 4" in refusal.message
    gate.release("b", greeted=False)
    assert gate.unauthenticated("b") == 0 and gate.admit("c") is None


def test_accept_gate_counts_connections_per_address_until_their_first_request() -> None:
    gate = AcceptGate(max_per_address=2)
    assert gate.admit("a") and gate.admit("a") and not gate.admit("a")
    assert gate.admit("b")  # another address has its own count
    gate.requested("a")  # one sent its request: its place is free
    assert gate.waiting("a") == 1 and gate.admit("a") and not gate.admit("a")
    gate.closed("a")
    gate.closed("a")
    gate.closed("b")
    assert gate.waiting("a") == 0 and gate.addresses() == 0  # addresses at zero are forgotten (rule 2)


def test_accept_gate_refuses_a_cap_below_one() -> None:
    with pytest.raises(ValueError, match="expected max_per_address >= 1, got 0"):
        AcceptGate(0)


def test_idle_connections_give_up_the_least_recently_used_past_the_cap() -> None:
    idle: IdleConnections[str] = IdleConnections(max_per_address=2)
    assert idle.idle("a", "c1") is None and idle.idle("a", "c2") is None
    assert idle.idle("a", "c1") is None  # used again: c2 is now the oldest
    assert idle.idle("b", "c9") is None  # another address has its own
    assert idle.idle("a", "c3") == "c2" and idle.count("a") == 2
    idle.busy("a", "c1")  # serving a request (or a stream): never chosen
    assert idle.idle("a", "c4") is None and idle.idle("a", "c5") == "c3"
    for connection in ("c4", "c5"):
        idle.busy("a", connection)
    idle.busy("b", "c9")
    assert idle.addresses() == 0  # rule 2


async def test_pixel_budget_waits_until_a_frame_fits() -> None:
    budget = PixelBudget(100)
    await budget.hold(80)
    waiting = asyncio.create_task(budget.hold(50))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await budget.free(80)
    await asyncio.wait_for(waiting, 1.0)
    await budget.hold(0)
    assert budget.used == 50


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert [retry_after_header(s) for s in (0.0, 0.2, 1.0, 1.1)] == ["1", "1", "1", "2"]


# ---------------------------------------------------------------- the outbound queue (stream rule 2)


class _StuckSocket:
    """A WebSocket whose client reads nothing: every send waits forever."""

    closed_with: int | None = None

    async def send_bytes(self, data: bytes) -> None:
        await asyncio.Event().wait()

    async def close(self, *, code: int) -> None:
        self.closed_with = code
        await asyncio.Event().wait()  # even the close frame cannot be written


class _Transport:
    aborted = False

    def abort(self) -> None:
        self.aborted = True


def _connection(max_messages: int = 8, max_bytes: int = 64 * 1024) -> Any:
    connection = Connection.__new__(Connection)  # the queue alone: no app, no driver
    connection.ws, connection.max_messages, connection.max_bytes = _StuckSocket(), max_messages, max_bytes
    connection._queue, connection._queued_bytes, connection.dropped = deque(), 0, 0
    connection._wake, connection._close_code, connection._writer = asyncio.Event(), None, None
    connection.not_reading = False

    class _Request:
        remote = "127.0.0.9"
        transport = _Transport()

    class _Metrics:
        class errors:
            @staticmethod
            def inc(**labels: str) -> None: ...

    connection.request = _Request()
    connection.app = {METRICS: _Metrics()}
    return connection


def _obs(seq: int) -> Obs:
    return Obs(seq=seq, ts=0.0, product=None, product_conf=0.0, pose=None, parts={},
               timing={k: 0.0 for k in ("decode_ms", "detect_ms", "pose_ms", "states_ms", "queue_ms", "total_ms")})


async def test_unread_droppable_messages_are_dropped_oldest_first() -> None:
    """A client that does not read cost the server an ever-growing queue of errors and notices."""
    connection = _connection(max_messages=8)
    for i in range(1000):
        connection.send(Notice("stale_step", f"notice {i}") if i % 2 else Error("unknown_type", f"error {i}"))
    assert len(connection._queue) == 8 and not connection.not_reading
    assert connection._queue[-1].message.text == "notice 999" and connection.dropped == 992


async def test_a_client_that_does_not_read_what_it_must_is_closed_with_4000() -> None:
    connection = _connection(max_messages=4)
    limits = Limits(max_frame_bytes=1024, max_width=16, max_height=16, max_fps=1.0, max_message_bytes=2048)
    for i in range(4):
        connection.send(Welcome(session=f"s{i}", resume="r", limits=limits, server_time=0.0))
    connection.send(_obs(1))  # droppable: it goes first
    assert not connection.not_reading
    connection.send(Welcome(session="s4", resume="r", limits=limits, server_time=0.0))
    assert connection.not_reading and not connection._queue
    await asyncio.sleep(0.01)
    assert connection.ws.closed_with == CloseCode.NOT_READING == 4000
    connection.send(_obs(2))  # ignored from now on
    assert not connection._queue


async def test_the_byte_bound_counts_encoded_messages() -> None:
    connection = _connection(max_messages=1000, max_bytes=64 * 1024)
    for i in range(100):
        connection.send(Notice("x", "y" * 4000 + str(i)))
    assert connection._queued_bytes <= 64 * 1024 and len(connection._queue) < 20


# ---------------------------------------------------------------- per-customer budgets (stream rule 5)


async def _replies(ws: aiohttp.ClientWebSocketResponse, count: int) -> tuple[list[Any], int | None]:
    """The next ``count`` notices and errors, or fewer and the close code if the server closes first."""
    got: list[Any] = []
    while len(got) < count:
        msg = await ws.receive(timeout=5)
        if msg.type != aiohttp.WSMsgType.BINARY:
            return got, msg.data if msg.type == aiohttp.WSMsgType.CLOSE else ws.close_code
        reply = decode_server(msg.data)
        if reply.t in ("notice", "error"):
            got.append(reply)
    return got, None


async def test_a_customer_gets_one_budget_however_many_connections_it_opens(aiohttp_server: Any,
                                                                            tmp_path: Path) -> None:
    """Regression: the user-event and refused-message budgets were per connection, so a customer that opened
    three connections got three of each."""
    config = make_config(tmp_path, events_per_s=0.01, events_burst=4, bad_messages_per_s=0.01,
                         bad_messages_burst=6)
    server = await aiohttp_server(create_app(config, pipeline=TruthTablePipeline()))
    authority = TokenAuthority(DEV_SECRET)
    async with aiohttp.ClientSession() as http:
        sockets = []
        for subject in ("many", "many", "many", "someone-else"):
            ws = await http.ws_connect(server.make_url("/v1/stream"))
            await ws.send_bytes(encode_client(Hello(token=authority.mint("customer", subject, 600), client="bench")))
            assert decode_server((await ws.receive(timeout=5)).data).t == "welcome"
            sockets.append(ws)
        *mine, other = sockets
        # Two events on each of three connections: the customer's burst of four, then two refusals.
        events: list[Any] = []
        for ws in mine:
            for _ in range(2):
                await ws.send_bytes(encode_client(Event(kind="done")))
                events += (await _replies(ws, 1))[0]
        refused = [e for e in events if e.t == "error" and e.code == "rate_limited" and not e.fatal]
        assert len(refused) == 2 and "across your connections" in refused[0].message, events
        # The two refused events spent two of the six refusals; four junk messages spend the rest, the next
        # closes its connection whichever it arrives on.
        junk = msgpack.packb({"t": "nonsense", "v": 1})
        answered, closed = [], []
        for ws in mine:
            for _ in range(2):
                await ws.send_bytes(junk)
            replies, code = await _replies(ws, 2)
            answered += [r for r in replies if not r.fatal]
            if code is not None or any(r.fatal for r in replies):
                closed.append((replies[-1].code, code if code is not None else (await ws.receive(timeout=5)).data))
        assert len(answered) == 4 and closed and closed[0] == ("rate_limited", CloseCode.POLICY_VIOLATION), closed
        # Another customer's budget is its own.
        await other.send_bytes(encode_client(Event(kind="done")))
        replies, _ = await _replies(other, 1)
        assert replies[0].t == "notice", replies
        for ws in sockets:
            await ws.close()
