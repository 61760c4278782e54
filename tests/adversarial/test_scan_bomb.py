"""Item 1 of "The server holds under hostile input and hostile load": one costly frame stalls no one else."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
import cv2
import numpy as np

from ar_server.protocol import Frame, Hello, encode_client
from tests.adversarial.conftest import assert_served, token, ws_connect
from vision.jpeg_header import MAX_SCANS, count_scans

MAX_FRAME_BYTES = 2 * 1024 * 1024


def worst_allowed_frame(size: int = 1920) -> bytes:
    """The costliest frame the server accepts: the largest size, progressive, its last scan repeated up to
    the scan budget (each repeat is decoded over the whole image), under ``max_frame_bytes``."""
    rng = np.random.default_rng(1)
    texture = np.clip(128 + rng.normal(0, 10, (size // 8, size // 8, 3)), 0, 255).astype(np.uint8)
    image = cv2.resize(texture, (size, size), interpolation=cv2.INTER_LINEAR)
    data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_QUALITY, 60])[1].tobytes()
    last, eoi = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
    bomb = data[:eoi] + data[last:eoi] * (MAX_SCANS - count_scans(data)) + data[eoi:]
    assert count_scans(bomb) == MAX_SCANS and len(bomb) <= MAX_FRAME_BYTES
    return bomb


async def scan_bomber(server: Any, jpeg: bytes, stop: asyncio.Event, sent: list[float]) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await ws_connect(http, server)
        await ws.send_bytes(encode_client(Hello(token=token("attacker"), client="bench")))
        seq = 0
        while not stop.is_set():
            seq += 1
            await ws.send_bytes(encode_client(Frame(seq=seq, ts=time.time(), jpeg=jpeg)))
            sent.append(time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        await ws.close()


async def test_a_scan_bomb_once_a_second_does_not_slow_other_sessions(start: Any, honest: Any) -> None:
    """Attack: a 1920x1920 progressive JPEG with 32 scans (the most the scan budget allows) once a second.
    Old failure: every frame of a batch was decoded on the one shared inference worker, so each bomb's
    ~80-130 ms decode delayed the obs of every session in that batch."""
    server = await start(max_frame_bytes=MAX_FRAME_BYTES, max_fps=30)
    customer = await honest(server)
    before = await customer.p95_over(3.0)
    stop, sent = asyncio.Event(), []
    attacker = asyncio.create_task(scan_bomber(server, worst_allowed_frame(), stop, sent))
    try:
        during = await customer.p95_over(4.0)
    finally:
        stop.set()
        await attacker
    assert len(sent) >= 3
    print(f"honest obs p95: {before:.1f} ms alone, {during:.1f} ms beside a scan bomb a second")
    assert_served(before, during, "scan bomb once a second")
