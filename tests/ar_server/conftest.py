"""Fixtures for server tests: twin-rendered frames, the truth-table test double, real servers, ws clients.

``TruthTablePipeline`` is a **test double** for ``vision.pipeline.Pipeline``: it decodes each JPEG for real
(bad JPEGs fail as in production) and reads part states from the ground truth of frames this file rendered
from a digital twin. Tests against the real pipeline are added when detector weights land.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ar_server.app import create_app
from ar_server.auth import TokenAuthority
from ar_server.config import DEV_SECRET, Config
from ar_server.protocol import Event, Frame, Hello, ServerMessage, decode_server, encode_client
from fixlens.truth_pipeline import RenderedFrame, TruthTablePipeline, render_frames
from product_models.catalog import default_catalog
from product_models.twin import Twin

PRODUCT = "router_ax1800"


@dataclass(frozen=True)
class TwinFrames:
    """Rendered router frames: ``fault`` (WAN cable out, internet LED red) and ``fixed`` (after the customer
    plugs the cable in, as the twin says), each from a few viewpoints."""

    fault: list[RenderedFrame]
    fixed: list[RenderedFrame]

    def all(self) -> list[RenderedFrame]:
        return [*self.fault, *self.fixed]


@pytest.fixture(scope="session")
def twin_frames() -> TwinFrames:
    product = default_catalog().get(PRODUCT)
    twin = Twin(product, "wan_unplugged")
    fault = twin.states(0.0)
    twin.act("plug", "port_wan", 1.0)
    fixed = twin.states(120.0)  # long after every timer: the link is up
    assert fixed["led_internet"] == "green", fixed
    # 640x480 from 0.35 m: the 4 mm internet LED spans the 5 px step verification asks for
    # (vision.verification), and the three yaws are viewpoints it tells apart.
    rows = render_frames(PRODUCT, [fault, fixed], width=640, height=480, yaws=(176.0, 180.0, 184.0), distance=0.35)
    return TwinFrames(fault=rows[0], fixed=rows[1])


@pytest.fixture
def pipeline(twin_frames: TwinFrames) -> TruthTablePipeline:
    return TruthTablePipeline(twin_frames.all())


@pytest.fixture
def authority() -> TokenAuthority:
    return TokenAuthority(DEV_SECRET)


def make_config(tmp_path: Path, **overrides: Any) -> Config:
    values: dict[str, Any] = {"data_dir": str(tmp_path / "data"), "port": 0, "max_frame_bytes": 256 * 1024,
                              "batch_wait_ms": 2}
    values.update({k: str(v) for k, v in overrides.items()})
    return Config.from_sources(values, {})


@pytest.fixture
async def server(aiohttp_server: Any, tmp_path: Path, pipeline: TruthTablePipeline) -> Any:
    """A real server on 127.0.0.1 and a free port, with the test double pipeline."""
    return await aiohttp_server(create_app(make_config(tmp_path), pipeline=pipeline))


@pytest.fixture
def start_server(aiohttp_server: Any, tmp_path: Path,
                 pipeline: TruthTablePipeline) -> Callable[..., Awaitable[Any]]:
    async def start(**overrides: Any) -> Any:
        return await aiohttp_server(create_app(make_config(tmp_path, **overrides), pipeline=pipeline))
    return start


class StreamClient:
    """A protocol v1 client over a real WebSocket, for tests."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.http = http
        self.ws = ws
        self.received: list[ServerMessage] = []
        self.seq = 0
        self.closed_with: int | None = None

    @classmethod
    async def connect(cls, server: Any) -> StreamClient:
        http = aiohttp.ClientSession()
        ws = await http.ws_connect(server.make_url("/v1/stream"), max_msg_size=8 * 1024 * 1024)
        return cls(http, ws)

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()

    async def send(self, message: Any) -> None:
        await self.ws.send_bytes(encode_client(message))

    async def send_raw(self, data: bytes | str) -> None:
        if isinstance(data, str):
            await self.ws.send_str(data)
        else:
            await self.ws.send_bytes(data)

    async def hello(self, token: str, **fields: Any) -> Any:
        await self.send(Hello(token=token, client="bench", **fields))
        return await self.expect("welcome")

    async def frame(self, jpeg: bytes, seq: int | None = None) -> int:
        self.seq = self.seq + 1 if seq is None else seq
        await self.send(Frame(seq=self.seq, ts=time.time(), jpeg=jpeg))
        return self.seq

    async def event(self, kind: str, **fields: Any) -> None:
        await self.send(Event(kind=kind, **fields))  # type: ignore[arg-type]

    async def recv(self, timeout: float = 5.0) -> ServerMessage | None:
        """The next message, or None when the server closed the connection."""
        msg = await self.ws.receive(timeout=timeout)
        if msg.type != aiohttp.WSMsgType.BINARY:
            if msg.type == aiohttp.WSMsgType.CLOSE:
                # The code of the server's close frame. ws.close_code can say 1006 instead: aiohttp's client
                # reports that when its reply to the close frame finds the socket already shut.
                self.closed_with = msg.data
            return None
        decoded = decode_server(msg.data)
        self.received.append(decoded)
        return decoded

    async def expect(self, kind: str, timeout: float = 5.0, **match: Any) -> Any:
        """Read until a message of type ``kind`` (with the given field values) arrives."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"no {kind} {match} within {timeout} s; got {[m.t for m in self.received]}")
            msg = await self.recv(left)
            if msg is None:
                raise AssertionError(f"connection closed before {kind} {match}; got {self.received[-5:]}")
            if msg.t == kind and all(getattr(msg, k) == v for k, v in match.items()):
                return msg


@pytest.fixture
async def connect() -> Any:
    clients: list[StreamClient] = []

    async def open_client(server: Any) -> StreamClient:
        client = await StreamClient.connect(server)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()


async def stream_frames(client: StreamClient, frames: list[RenderedFrame], *, seconds: float, fps: float = 10.0,
                        until: Callable[[ServerMessage], bool] | None = None) -> ServerMessage | None:
    """Send ``frames`` round-robin at ``fps`` for up to ``seconds``, reading replies meanwhile; returns the
    first reply for which ``until`` holds (None if none did)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    i = 0
    while loop.time() < end:
        await client.frame(frames[i % len(frames)].jpeg)
        i += 1
        next_at = loop.time() + 1.0 / fps
        while (left := next_at - loop.time()) > 0:
            try:
                msg = await client.recv(timeout=left)
            except TimeoutError:
                break
            if msg is None:
                return None
            if until is not None and until(msg):
                return msg
    return None
