"""Rule 6 of ``ar_server.inference``: frames are decoded per session, before the shared batch."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ar_server.inference import DECODE_THREAD_NAME, InferenceService
from vision.decode import encode_jpeg
from vision.errors import FrameError
from vision.jpeg_header import DecodeLimits
from vision.types import FrameInput


class _Recorder:
    def __init__(self) -> None:
        self.frames: list[Any] = []

    def process_batch(self, frames: Sequence[Any]) -> list[Any]:
        self.frames += frames
        return [f.seq for f in frames]


async def test_frames_reach_the_batch_decoded_and_bad_ones_never_do() -> None:
    """A costly frame was decoded inside the shared batch, delaying every session in it."""
    pipeline = _Recorder()
    service = InferenceService(pipeline, batch_wait_ms=0, decode_limits=DecodeLimits(), decode_workers=2)
    await service.start()
    try:
        assert sum(t.name.startswith(DECODE_THREAD_NAME) for t in threading.enumerate()) == 2  # started up front
        jpeg = encode_jpeg(np.full((48, 64, 3), 90, np.uint8))
        result = await service.infer(FrameInput(jpeg=jpeg, seq=7, ts=0.0))
        assert result.value == 7
        (frame,) = pipeline.frames
        assert frame.image.shape == (48, 64, 3) and frame.decode_ms > 0
        bad = await service.infer(FrameInput(jpeg=b"\xff\xd8 not a jpeg", seq=8, ts=0.0))
        assert isinstance(bad.value, FrameError) and len(pipeline.frames) == 1
        assert service._decoded.used == 0
    finally:
        await service.stop()
