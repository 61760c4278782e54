"""Fixtures for the adversarial suite: a real server on a real port, and an honest customer beside each attack.

Every case starts the full ``create_app`` (in-process, 127.0.0.1, a free port; or ``fixlens serve`` as a
subprocess where the server's own memory is measured) with small configured limits, so an attack reaches
them in a second rather than at production values. An ``HonestCustomer`` streams 640x480 frames in
lock-step (send a frame, wait for its ``obs``) the whole time, and the test compares its obs latency p95
before and during the attack. The pipeline is the truth-table stand-in (``fixlens.truth_pipeline``): it
decodes every frame for real and recognises nothing, which is all a latency comparison needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from ar_server.app import create_app
from ar_server.auth import TokenAuthority
from ar_server.config import DEV_SECRET, Config
from ar_server.protocol import Frame, Hello, decode_server, encode_client
from fixlens.truth_pipeline import TruthTablePipeline
from vision.decode import encode_jpeg

# Limits small enough to reach in a test; each test may override more.
TEST_LIMITS: dict[str, Any] = {
    "hello_timeout_s": 2.0, "max_connections": 64, "max_unauthenticated_per_address": 4,
    "max_outbound_messages": 16, "max_outbound_bytes": 256 * 1024, "bad_messages_per_s": 5.0,
    "bad_messages_burst": 20, "events_per_s": 5.0, "events_burst": 10, "escalations_per_minute": 6.0,
    "escalations_burst": 3, "max_open_escalations": 3, "sessions_per_minute": 60.0, "sessions_burst": 5,
}
# How much worse the honest customer's obs p95 may get during an attack: generous, because two busy cores
# shared with other work make any latency noisy; a stalled session is off by orders of magnitude.
P95_FACTOR = 3.0
P95_SLACK_MS = 150.0
AUTHORITY = TokenAuthority(DEV_SECRET)


def token(subject: str, role: str = "customer", ttl_s: int = 3600, session: str | None = None) -> str:
    return AUTHORITY.mint(role, subject, ttl_s, session=session)


def adversarial_config(tmp_path: Path, **overrides: Any) -> Config:
    values: dict[str, Any] = {"data_dir": str(tmp_path / "data"), "port": 0, "batch_wait_ms": 2, **TEST_LIMITS}
    values.update(overrides)
    return Config.from_sources({k: str(v) for k, v in values.items()}, {})


def honest_jpeg(width: int = 640, height: int = 480) -> bytes:
    """A frame with some texture, so its decode costs what a camera frame's does."""
    rng = np.random.default_rng(5)
    small = rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
    return encode_jpeg(np.kron(small, np.ones((16, 16, 1), np.uint8)), 85)


@pytest.fixture
def start(aiohttp_server: Any, tmp_path: Path) -> Callable[..., Awaitable[Any]]:
    """``await start(**limits)``: a real server with the adversarial limits (and these overrides)."""
    async def run(**overrides: Any) -> Any:
        return await aiohttp_server(create_app(adversarial_config(tmp_path, **overrides),
                                               pipeline=TruthTablePipeline()))
    return run


class HonestCustomer:
    """Streams frames in lock-step and records each frame's obs latency, with the time it was sent."""

    def __init__(self, url: str, *, fps: float = 10.0, subject: str = "honest") -> None:
        self.url, self.fps, self.subject = url, fps, subject
        self.samples: list[tuple[float, float]] = []  # (sent at, latency ms)
        self.errors: list[Any] = []
        self._task: asyncio.Task[None] | None = None
        self._jpeg = honest_jpeg()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await self.wait_samples(3, timeout=10.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def wait_samples(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.samples) < count:
            if self._task is not None and self._task.done():
                self._task.result()
            assert time.monotonic() < deadline, f"the honest customer got {len(self.samples)} obs in {timeout} s"
            await asyncio.sleep(0.05)

    async def p95_over(self, seconds: float) -> float:
        """The obs latency p95 (ms) of the frames sent during the next ``seconds``."""
        since = time.monotonic()
        await asyncio.sleep(seconds)
        window = [ms for at, ms in self.samples if at >= since]
        assert len(window) >= 5, f"the honest customer got only {len(window)} obs in {seconds} s"
        return float(np.percentile(window, 95))

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(self.url + "/v1/stream") as ws:
            await ws.send_bytes(encode_client(Hello(token=token(self.subject), client="bench")))
            welcome = decode_server((await ws.receive(timeout=10)).data)
            assert welcome.t == "welcome", welcome
            seq = 0
            while True:
                seq += 1
                sent = time.monotonic()
                await ws.send_bytes(encode_client(Frame(seq=seq, ts=time.time(), jpeg=self._jpeg)))
                while True:
                    msg = await ws.receive(timeout=30)
                    assert msg.type == aiohttp.WSMsgType.BINARY, f"honest customer cut off: {msg}"
                    reply = decode_server(msg.data)
                    if reply.t == "obs" and reply.seq == seq:
                        break
                    if reply.t == "error":
                        self.errors.append(reply)
                self.samples.append((sent, (time.monotonic() - sent) * 1000.0))
                await asyncio.sleep(max(0.0, 1.0 / self.fps - (time.monotonic() - sent)))


@pytest.fixture
async def honest() -> AsyncIterator[Callable[[Any], Awaitable[HonestCustomer]]]:
    customers: list[HonestCustomer] = []

    async def begin(server: Any) -> HonestCustomer:
        customer = HonestCustomer(str(server.make_url("")).rstrip("/"))
        customers.append(customer)
        await customer.start()
        return customer

    yield begin
    for customer in customers:
        await customer.stop()


def assert_served(before_ms: float, during_ms: float, what: str) -> None:
    bound = max(before_ms * P95_FACTOR, before_ms + P95_SLACK_MS)
    assert during_ms <= bound, (f"{what}: the honest customer's obs p95 went from {before_ms:.1f} ms to "
                                f"{during_ms:.1f} ms (bound {bound:.1f} ms)")


async def ws_connect(http: aiohttp.ClientSession, server: Any) -> aiohttp.ClientWebSocketResponse:
    return await http.ws_connect(server.make_url("/v1/stream"), max_msg_size=8 * 1024 * 1024, autoping=False)
