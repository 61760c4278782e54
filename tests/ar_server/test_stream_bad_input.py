"""Bad input over a real WebSocket, one row per case: each gets an ``error`` with a code and a message,
the server stays up, and a concurrent healthy session keeps getting observations."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest

from ar_server.app_keys import CONFIG
from ar_server.auth import TokenAuthority
from ar_server.config import DEV_SECRET
from ar_server.protocol import Event, Frame, Hello
from tests.ar_server.conftest import StreamClient, TwinFrames

MAX_FRAME = 256 * 1024  # conftest's make_config


def _header_jpeg(width: int, height: int) -> bytes:
    sof = bytes([8]) + struct.pack(">HH", height, width) + bytes([3]) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    return b"\xff\xd8\xff\xc0" + struct.pack(">H", 2 + len(sof)) + sof + b"\xff\xd9"


def _mint(role: str, *, ttl: int = 600, secret: str = DEV_SECRET, clock: float | None = None) -> str:
    authority = TokenAuthority(secret) if clock is None else TokenAuthority(secret, clock=lambda: clock)
    return authority.mint(role, f"{role}-1", ttl)


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


Send = Callable[[StreamClient, TwinFrames], Awaitable[None]]
ANY_SEQ = -1


@dataclass(frozen=True)
class Case:
    id: str
    after_hello: bool
    send: Send
    code: str
    field: str | None = None
    fatal: bool = False
    says: str = ""  # a phrase the message must contain
    seq: int | None = None  # the frame the error names; ANY_SEQ: some frame
    reason: str | None = None


async def _raw(client: StreamClient, data: bytes | str) -> None:
    await client.send_raw(data)


async def _frames_too_fast(client: StreamClient, frames: TwinFrames) -> None:
    for _ in range(120):
        await client.frame(frames.fault[0].jpeg)


CASES = [
    Case("not msgpack", False, lambda c, f: _raw(c, b"\xc1\x00"), "bad_msgpack", fatal=True, says="msgpack"),
    Case("text message", False, lambda c, f: _raw(c, "hello"), "bad_msgpack", fatal=True, says="text"),
    Case("msgpack non-map", False, lambda c, f: _raw(c, _pack([1, 2, 3])), "not_a_map", fatal=True, says="array"),
    Case("unknown type", False, lambda c, f: _raw(c, _pack({"t": "launch", "v": 1})), "unknown_type", "t",
         fatal=True, says="launch"),
    Case("missing field", False, lambda c, f: _raw(c, _pack({"t": "hello", "v": 1, "client": "web"})),
         "missing_field", "token", fatal=True, says="token"),
    Case("mistyped field", False, lambda c, f: _raw(c, _pack({"t": "hello", "v": 1, "client": "web", "token": 7})),
         "bad_field", "token", fatal=True, says="expected a str, got int"),
    Case("frame before hello", False, lambda c, f: c.send(Frame(seq=1, ts=1.0, jpeg=f.fault[0].jpeg)),
         "hello_required", fatal=True, says="first message must be hello", seq=1),
    Case("bad token", False, lambda c, f: c.send(Hello(token="fl1.abc.def", client="web")), "unauthorized", "token",
         fatal=True, says="signature", reason="token_invalid"),
    Case("token with another secret", False,
         lambda c, f: c.send(Hello(token=_mint("customer", secret="x" * 40), client="web")), "unauthorized",
         "token", fatal=True, says="signature", reason="token_invalid"),
    Case("expired token", False, lambda c, f: c.send(Hello(token=_mint("customer", clock=1000.0), client="web")),
         "unauthorized", "token", fatal=True, says="expired", reason="token_expired"),
    Case("wrong role", False, lambda c, f: c.send(Hello(token=_mint("author"), client="web")), "forbidden", "token",
         fatal=True, says="wrong_role", reason="wrong_role"),
    Case("unknown scene", False, lambda c, f: c.send(Hello(token=_mint("customer"), client="web", scene="nope")),
         "unknown_scene", "scene", fatal=True, says="nope"),
    Case("second hello", True, lambda c, f: c.send(Hello(token=_mint("customer"), client="web")), "duplicate_hello",
         says="already"),
    Case("not msgpack after hello", True, lambda c, f: _raw(c, b"\x92\x01"), "bad_msgpack", says="msgpack"),
    Case("msgpack non-map after hello", True, lambda c, f: _raw(c, _pack("frame")), "not_a_map", says="str"),
    Case("unknown type after hello", True, lambda c, f: _raw(c, _pack({"t": "obs", "v": 1})), "unknown_type", "t"),
    Case("missing seq", True, lambda c, f: _raw(c, _pack({"t": "frame", "v": 1, "ts": 1.0, "jpeg": b"\xff\xd8"})),
         "missing_field", "seq"),
    Case("mistyped jpeg", True, lambda c, f: _raw(c, _pack({"t": "frame", "v": 1, "seq": 1, "ts": 1.0,
                                                            "jpeg": "not bytes"})), "bad_field", "jpeg",
         says="expected bin", seq=1),
    Case("JPEG over the size limit", True,
         lambda c, f: c.send(Frame(seq=1, ts=1.0, jpeg=f.fault[0].jpeg[:-2] + b"\x00" * MAX_FRAME + b"\xff\xd9")),
         "too_large", "jpeg", says=f"limit is {MAX_FRAME}", seq=1),
    Case("declared dimensions over the limit", True,
         lambda c, f: c.send(Frame(seq=1, ts=1.0, jpeg=_header_jpeg(60000, 60000))), "too_large", "jpeg",
         says="width 60000", seq=1),
    Case("non-JPEG bytes", True, lambda c, f: c.send(Frame(seq=1, ts=1.0, jpeg=b"\x89PNG\r\n\x1a\n" + bytes(100))),
         "bad_jpeg", "jpeg", says="SOI", seq=1),
    Case("JPEG that does not decode", True,
         lambda c, f: c.send(Frame(seq=1, ts=1.0, jpeg=f.fault[0].jpeg[: len(f.fault[0].jpeg) // 2])), "bad_jpeg",
         "jpeg", says="truncated", seq=1),
    Case("seq goes backwards", True, lambda c, f: _backwards(c, f), "bad_field", "seq", says="seq must increase",
         seq=49),
    Case("frames over the fps limit", True, _frames_too_fast, "rate_limited", says="faster than", seq=ANY_SEQ),
    Case("message over the size limit", True, lambda c, f: _raw(c, b"\x00" * (MAX_FRAME + 70 * 1024)), "too_large",
         says="limit is"),
    Case("frame message over the size limit", True,
         lambda c, f: _raw(c, _pack({"t": "frame", "v": 1, "seq": 9, "ts": 1.0, "jpeg": bytes(MAX_FRAME + 70 * 1024)})),
         "too_large", says="limit is", seq=9),
    Case("choice the step does not offer", True, lambda c, f: c.send(Event(kind="choose", choice="fly")),
         "bad_field", "choice", says="no choice 'fly'"),
]


async def _backwards(client: StreamClient, frames: TwinFrames) -> None:
    await client.frame(frames.fault[0].jpeg, seq=50)
    await client.frame(frames.fault[1].jpeg, seq=49)


async def _healthy(client: StreamClient, frames: TwinFrames, counts: list[int], stop: asyncio.Event) -> None:
    """A well-behaved customer at 10 fps; appends the seq of every obs it gets."""
    i = 0
    while not stop.is_set():
        await client.frame(frames.fault[i % len(frames.fault)].jpeg)
        i += 1
        with contextlib.suppress(TimeoutError):
            while True:
                msg = await client.recv(timeout=0.05)
                assert msg is not None and msg.t != "error", msg
                if msg.t == "obs":
                    counts.append(msg.seq)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_input_gets_an_error_and_harms_no_one(case: Case, server: Any, connect: Any,
                                                        twin_frames: TwinFrames) -> None:
    good: StreamClient = await connect(server)
    await good.hello(_mint("customer"), scene="router_no_internet")
    counts: list[int] = []
    stop = asyncio.Event()
    healthy = asyncio.create_task(_healthy(good, twin_frames, counts, stop))
    try:
        bad: StreamClient = await connect(server)
        if case.after_hello:
            await bad.hello(_mint("customer"), scene="router_no_internet")
        await case.send(bad, twin_frames)
        error = await bad.expect("error", timeout=5.0)
        assert (error.code, error.field, error.fatal, error.reason) == (case.code, case.field, case.fatal,
                                                                        case.reason), error
        assert case.says in error.message, error.message
        assert error.seq is not None if case.seq == ANY_SEQ else error.seq == case.seq, error
        if case.fatal:
            assert await _closed(bad)
        else:  # still served: a good frame gets an observation (once the rate gate lets one in)
            assert await _gets_obs(bad, twin_frames)
        seen_before = len(counts)
        while len(counts) < seen_before + 3:
            await asyncio.sleep(0.05)
            assert not healthy.done(), healthy.exception()
    finally:
        stop.set()
        await asyncio.wait_for(healthy, 5.0)
    assert server.app is not None and len(counts) >= 3


async def _gets_obs(client: StreamClient, frames: TwinFrames) -> bool:
    for seq in range(10_000, 10_050):
        await client.frame(frames.fault[seq % 3].jpeg, seq=seq)
        with contextlib.suppress(TimeoutError):
            while (msg := await client.recv(timeout=0.1)) is not None:
                if msg.t == "obs":
                    return True
    return False


async def _closed(client: StreamClient) -> bool:
    with contextlib.suppress(TimeoutError):
        while True:
            if await client.recv(timeout=2.0) is None:
                return True
    return False


async def test_a_message_over_twice_the_limit_gets_an_error_before_the_close(server: Any, connect: Any,
                                                                             twin_frames: TwinFrames) -> None:
    """Regression: aiohttp refuses such a message and closes (1009) by itself, and the client heard nothing."""
    client: StreamClient = await connect(server)
    await client.hello(_mint("customer"), scene="router_no_internet")
    await client.expect("step")
    limit = server.app[CONFIG].limits().max_message_bytes
    await client.send_raw(b"\x00" * (2 * limit + 1))
    error = await client.expect("error")
    assert (error.code, error.fatal) == ("too_large", True) and str(limit) in error.message
    assert await _closed(client) and client.closed_with == 1009
    other: StreamClient = await connect(server)  # the server is fine
    await other.hello(_mint("customer"))
