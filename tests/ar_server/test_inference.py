"""The shared inference service: batching across sessions, bounded queue, failures kept per frame."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from ar_server.errors import ServerError
from ar_server.inference import InferenceService


class _Recorder:
    """Echoes each frame back, blocking until released, and records batches and the thread they ran on."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.threads: set[str] = set()
        self.release = threading.Event()
        self.release.set()

    def process_batch(self, frames: Sequence[Any]) -> list[Any]:
        self.release.wait(5.0)
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(frames))
        return [ValueError(f) if f == "bad" else f for f in frames]


async def test_frames_from_many_sessions_share_batches_off_the_event_loop() -> None:
    pipeline = _Recorder()
    pipeline.release.clear()
    service = InferenceService(pipeline, batch_size=4, batch_wait_ms=50)
    await service.start()
    try:
        first = asyncio.create_task(service.infer("a0"))
        await asyncio.sleep(0.1)  # the first batch (one frame) is now blocked in the worker
        rest = [asyncio.create_task(service.infer(f"s{i}")) for i in range(6)]
        await asyncio.sleep(0.05)
        pipeline.release.set()
        results = await asyncio.gather(first, *rest)
    finally:
        await service.stop()
    assert [r.value for r in results] == ["a0", *[f"s{i}" for i in range(6)]]
    assert [len(b) for b in pipeline.batches] == [1, 4, 2]  # FIFO, at most batch_size per batch
    assert pipeline.threads == {"fixlens-inference_0"}
    assert results[1].queue_ms > 0 and results[1].batch_size == 4


async def test_a_bad_frame_fails_alone_and_a_crashing_batch_fails_only_its_frames() -> None:
    service = InferenceService(_Recorder(), batch_size=8, batch_wait_ms=20)
    await service.start()
    try:
        good, bad = await asyncio.gather(service.infer("ok"), service.infer("bad"))
        assert good.value == "ok" and isinstance(bad.value, ValueError)
        service.pipeline = type("Broken", (), {"process_batch": lambda self, f: 1 / 0})()
        with pytest.raises(ServerError) as caught:
            await service.infer("x")
        assert caught.value.code == "internal"
        service.pipeline = _Recorder()
        assert (await service.infer("after")).value == "after"  # the service survived
    finally:
        await service.stop()


async def test_a_full_queue_refuses_at_once() -> None:
    pipeline = _Recorder()
    pipeline.release.clear()
    service = InferenceService(pipeline, batch_size=1, batch_wait_ms=0, max_pending=2)
    await service.start()
    try:
        running = asyncio.create_task(service.infer("busy"))
        await asyncio.sleep(0.05)
        queued = [asyncio.create_task(service.infer(f"q{i}")) for i in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(ServerError) as caught:
            await service.infer("one too many")
        assert caught.value.code == "overloaded"
        pipeline.release.set()
        assert [r.value for r in await asyncio.gather(running, *queued)] == ["busy", "q0", "q1"]
    finally:
        await service.stop()
