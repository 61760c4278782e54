"""The shared inference service: one queue for every session, batched, run off the event loop.

Rules:
1. ``infer(frame)`` queues one frame and resolves with its result. A session awaits its result before it
   submits again (its newest-frame slot holds what arrives meanwhile), so the queue holds at most one frame
   per session and FIFO order is round-robin across sessions: a fast client cannot starve a slow one.
2. The queue is bounded (``max_pending``); past it ``infer`` raises ``ServerError("overloaded")`` at once
   instead of letting latency grow without bound.
3. A batch starts when ``batch_size`` frames wait, or ``batch_wait_ms`` after the first one arrived,
   whichever comes first. While a batch runs the next one fills, so under load batches grow by themselves.
4. ``pipeline.process_batch`` runs on a dedicated worker thread, never on the event loop. One bad frame
   yields a ``VisionError`` in its slot (the pipeline's contract); a batch that raises as a whole (a bug)
   fails each of its frames with ``ServerError("internal")`` and the service keeps running.
5. A frame's ``VisionError`` reaches the client as the wire code :data:`VISION_ERROR_CODES` gives it
   (:func:`wire_code`): the one place vision's errors become protocol codes.
6. With ``decode_limits`` set, each ``vision.types.FrameInput`` is decoded before it is queued, on a pool of
   ``decode_workers`` threads (``cv2.imdecode`` releases the GIL), and reaches the pipeline with its
   ``image``: a frame that is costly to decode (the largest allowed, progressive, 32 scans: about 130 ms)
   delays only its own session, never the shared batch. Decoded images held before their batch runs are
   bounded by ``max_decoded_bytes`` (``ar_server.limits.PixelBudget``); a decode error is the frame's
   result, as the pipeline would give it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from ar_server.errors import ServerError
from ar_server.limits import PixelBudget
from ar_server.metrics import Metrics
from ar_server.protocol.messages import ErrorCode
from vision.decode import decode_jpeg
from vision.errors import CameraError, FrameError, FrameTooLarge, VisionError
from vision.jpeg_header import DecodeLimits
from vision.types import FrameInput

log = logging.getLogger(__name__)
THREAD_NAME = "fixlens-inference"
DECODE_THREAD_NAME = "fixlens-decode"


class BatchPipeline(Protocol):
    """What the service needs of a pipeline (``vision.pipeline.Pipeline`` and the test stand-ins)."""

    def process_batch(self, frames: Sequence[Any]) -> list[Any]: ...


@dataclass(frozen=True)
class InferenceResult:
    value: Any  # vision.types.Observation, or a VisionError for this frame
    queue_ms: float  # waiting for a batch slot
    batch_ms: float  # the whole batch's time in the pipeline
    batch_size: int


@dataclass
class _Job:
    frame: Any
    future: asyncio.Future[InferenceResult]
    queued_at: float  # time.perf_counter() seconds


class InferenceService:
    """Batches frames across sessions; see the module rules. ``start()`` before use, ``stop()`` after."""

    def __init__(self, pipeline: BatchPipeline, *, batch_size: int = 8, batch_wait_ms: float = 5.0,
                 max_pending: int = 1024, metrics: Metrics | None = None, decode_limits: DecodeLimits | None = None,
                 decode_workers: int = 2, max_decoded_bytes: int = 256 * 1024 * 1024) -> None:
        if batch_size < 1 or max_pending < 1 or batch_wait_ms < 0 or decode_workers < 1:
            raise ValueError("batch_size, max_pending and decode_workers must be >= 1 and batch_wait_ms >= 0")
        self.pipeline = pipeline
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_ms / 1000.0
        self.max_pending = max_pending
        self.metrics = metrics or Metrics()
        self._pending: deque[_Job] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.decode_limits = decode_limits  # rule 6; None: the pipeline decodes
        self.decode_workers = decode_workers
        self._decoded = PixelBudget(max_decoded_bytes)
        self._decoder: ThreadPoolExecutor | None = None
        self.batches = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("InferenceService already started")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME)
        if self.decode_limits is not None:
            self._decoder = ThreadPoolExecutor(max_workers=self.decode_workers, thread_name_prefix=DECODE_THREAD_NAME)
            # Every decode thread starts now, not at the first busy moment: the thread count stays flat under
            # load, so a leak check (bench soak's threads_back) sees a steady process.
            barrier = threading.Barrier(self.decode_workers)
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(loop.run_in_executor(self._decoder, barrier.wait, 10.0)
                                   for _ in range(self.decode_workers)))
        self._task = asyncio.create_task(self._run(), name="fixlens-inference-batcher")

    async def stop(self) -> None:
        """Cancel the batcher, fail frames still queued, and wait for the worker thread to finish."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while self._pending:
            job = self._pending.popleft()
            if not job.future.done():
                job.future.set_exception(ServerError("overloaded", "the server is shutting down"))
        for executor in (self._executor, self._decoder):
            if executor is not None:
                await asyncio.get_running_loop().run_in_executor(None, executor.shutdown, True)
        self._executor = self._decoder = None

    async def infer(self, frame: Any) -> InferenceResult:
        """Queue ``frame`` and wait for its result. Raises ``ServerError("overloaded")`` when the queue is full."""
        if self._task is None:
            raise RuntimeError("InferenceService is not running; call start() first")
        if len(self._pending) >= self.max_pending:
            raise ServerError("overloaded", f"inference queue is full ({self.max_pending} frames)")
        if self._decoder is not None and isinstance(frame, FrameInput) and frame.image is None:
            return await self._decoded_infer(frame)
        return await self._queue(frame)

    async def _decoded_infer(self, frame: FrameInput) -> InferenceResult:
        """Rule 6: decode on the decode pool within the pixel budget, then queue the decoded frame."""
        assert self._decoder is not None and self.decode_limits is not None
        header = frame.header
        size = header.width * header.height * 3 if header is not None else self.decode_limits.max_pixels * 3
        await self._decoded.hold(size)
        try:
            started = time.perf_counter()
            try:
                image = await asyncio.get_running_loop().run_in_executor(
                    self._decoder, functools.partial(decode_jpeg, frame.jpeg, self.decode_limits, header=header))
            except VisionError as exc:
                return InferenceResult(exc, 0.0, 0.0, 0)
            decode_ms = (time.perf_counter() - started) * 1000.0
            return await self._queue(dataclasses.replace(frame, image=image, decode_ms=decode_ms))
        finally:
            await self._decoded.free(size)

    async def _queue(self, frame: Any) -> InferenceResult:
        if len(self._pending) >= self.max_pending:  # checked again: a decode may have waited
            raise ServerError("overloaded", f"inference queue is full ({self.max_pending} frames)")
        future: asyncio.Future[InferenceResult] = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(frame, future, time.perf_counter()))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._wake.clear()
                await self._wake.wait()
            deadline = self._pending[0].queued_at + self.batch_wait_s
            while len(self._pending) < self.batch_size:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), left)
                except TimeoutError:
                    break
            count = min(self.batch_size, len(self._pending))
            jobs = [j for j in (self._pending.popleft() for _ in range(count)) if not j.future.done()]
            if jobs:
                await self._run_batch(loop, jobs)

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job]) -> None:
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self.pipeline.process_batch,
                                                 [j.frame for j in jobs])
            if len(results) != len(jobs):
                raise RuntimeError(f"pipeline returned {len(results)} results for {len(jobs)} frames")
        except Exception as exc:  # a pipeline bug must not stop the service; each frame learns of it
            log.exception("inference batch of %d frames failed", len(jobs))
            failure = ServerError("internal", f"inference failed: {type(exc).__name__}")
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(failure)
            return
        batch_ms = (time.perf_counter() - started) * 1000.0
        self.batches += 1
        self.metrics.batch_size.observe(len(jobs))
        for job, value in zip(jobs, results, strict=True):
            if not job.future.done():  # the session may have gone away meanwhile
                job.future.set_result(InferenceResult(value, (started - job.queued_at) * 1000.0, batch_ms,
                                                      len(jobs)))


# The one place a vision error becomes a wire error: (error class, ``error.code``, ``error.field``). The
# first class the error is an instance of wins, so a subclass comes before its base.
VISION_ERROR_CODES: tuple[tuple[type[VisionError], str, str | None], ...] = (
    (FrameTooLarge, ErrorCode.TOO_LARGE, "jpeg"),  # over max_frame_bytes, max_width or max_height
    (FrameError, ErrorCode.BAD_JPEG, "jpeg"),  # not a JPEG, malformed, truncated, or it does not decode
    (CameraError, ErrorCode.BAD_FIELD, "camera"),  # the session's intrinsics do not fit the frame
    # any other reason the pipeline could not use the frame, a FrameFault (a bug met on this frame alone) included:
    # the session goes on with its next frame
    (VisionError, ErrorCode.BAD_FRAME, None),
)


def wire_code(error: VisionError) -> tuple[str, str | None]:
    """The wire ``(code, field)`` for ``error`` (:data:`VISION_ERROR_CODES`)."""
    return next((code, field) for kind, code, field in VISION_ERROR_CODES if isinstance(error, kind))

