"""The client's side of the stream: hello, frames at a set rate and size, events; results into a queue.

The network runs on its own asyncio loop (``start()`` puts it on a daemon thread); the render loop talks to
it through two thread-safe doors and never waits on the network:

- ``offer_frame(image, ts)``: one slot, the newest frame replaces an unsent older one (the server works on
  the newest frame anyway; queueing old frames only adds latency);
- ``send_event(kind, choice, step)``: user actions, queued in order;
- ``inbox``: a ``queue.SimpleQueue`` of decoded server messages (``ar_server.protocol``) and
  :class:`ConnectionChange` notes, drained by the render loop once per frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ar_server.protocol import (
    STREAM_PATH,
    Bye,
    End,
    Error,
    Event,
    Frame,
    Hello,
    Intrinsics,
    ProtocolError,
    Welcome,
    decode_server,
    encode_client,
)
from client_panda3d.errors import SessionError
from product_models.camera import CameraIntrinsics

MIN_JPEG_QUALITY = 40  # a frame over the server's byte limit is re-encoded down to this quality


@dataclass(frozen=True)
class SessionConfig:
    server: str  # ws://host:port (the stream path is added) or a full ws URL
    token: str
    camera: CameraIntrinsics  # of the frames sent (their size is camera.width x camera.height)
    locale: str = "en"
    scene: str | None = None
    product: str | None = None
    fps: float = 8.0  # frames sent per second (capped by the server's limits.max_fps)
    jpeg_quality: int = 80
    client: str = "panda3d"

    def __post_init__(self) -> None:
        if not (0 < self.fps <= 120):
            raise SessionError(f"fps must be within (0, 120], got {self.fps}")
        if not (1 <= self.jpeg_quality <= 100):
            raise SessionError(f"jpeg quality must be within 1..100, got {self.jpeg_quality}")
        if not self.server.startswith(("ws://", "wss://", "http://", "https://")):
            raise SessionError(f"server URL {self.server!r} must start with ws://, wss://, http:// or https://")

    @property
    def url(self) -> str:
        base = self.server.replace("http://", "ws://", 1).replace("https://", "wss://", 1).rstrip("/")
        return base if base.endswith(STREAM_PATH) else base + STREAM_PATH


@dataclass(frozen=True)
class ConnectionChange:
    state: str  # connecting | connected | closed
    detail: str = ""


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """(h, w, 3) uint8 RGB -> JPEG bytes."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise SessionError(f"cannot JPEG-encode a frame of shape {image.shape}")
    return buf.tobytes()


class ClientSession:
    """One stream session (see the module docstring)."""

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.welcome: Welcome | None = None
        self.frames_sent = 0
        self.bytes_sent = 0
        self._lock = threading.Lock()
        self._slot: tuple[np.ndarray, float] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: asyncio.Queue[Event | Bye] | None = None
        self._wake: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._seq = 0
        self.closed = threading.Event()

    # ------------------------------------------------------------------ render-thread side

    def offer_frame(self, image: np.ndarray, ts: float) -> None:
        """Hand over the newest frame (h, w, 3 uint8 RGB) captured at ``ts``; replaces an unsent one."""
        with self._lock:
            self._slot = (image, float(ts))

    def send_event(self, kind: str, choice: str | None = None, step: str | None = None) -> None:
        """Queue a user action (done / back / help / choose)."""
        self._post(Event(kind, choice, step))  # type: ignore[arg-type]

    def stop(self, reason: str = "client closed") -> None:
        """Say bye and close; returns at once (``closed`` is set when the connection is gone)."""
        self._post(Bye(reason))

    def _post(self, msg: Event | Bye) -> None:
        loop, events = self._loop, self._events
        if loop is None or events is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing left to tell
            loop.call_soon_threadsafe(events.put_nowait, msg)

    def start(self) -> None:
        """Run the session on a daemon thread with its own event loop."""
        if self._thread is not None:
            raise RuntimeError("session already started")
        self._thread = threading.Thread(target=lambda: asyncio.run(self.run()), name="fixlens-client-net",
                                        daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # ------------------------------------------------------------------ network side

    async def run(self) -> None:
        """Connect, say hello, then send frames and events and read results until ``end``, a fatal error,
        ``bye`` or a closed socket. Connection problems reach the inbox as ``ConnectionChange("closed")``."""
        import aiohttp

        self._loop = asyncio.get_running_loop()
        self._events = asyncio.Queue()
        self._wake = asyncio.Event()
        cfg = self.config
        self.inbox.put(ConnectionChange("connecting", cfg.url))
        detail = ""
        try:
            async with aiohttp.ClientSession() as http, http.ws_connect(cfg.url, heartbeat=None,
                                                                         max_msg_size=8 * 1024 * 1024) as ws:
                cam = cfg.camera
                await ws.send_bytes(encode_client(Hello(
                    cfg.token, cfg.client, cfg.locale,  # type: ignore[arg-type]
                    Intrinsics(cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height), cfg.scene, cfg.product)))
                sender = asyncio.create_task(self._send_loop(ws))
                try:
                    detail = await self._receive_loop(ws)
                finally:
                    sender.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await sender
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            detail = f"cannot reach {cfg.url}: {exc}"
        finally:
            self.inbox.put(ConnectionChange("closed", detail))
            self.closed.set()

    async def _receive_loop(self, ws: Any) -> str:
        import aiohttp

        async for raw in ws:
            if raw.type != aiohttp.WSMsgType.BINARY:
                if raw.type == aiohttp.WSMsgType.ERROR:
                    return f"connection error: {ws.exception()}"
                continue
            try:
                msg = decode_server(raw.data)
            except ProtocolError as exc:  # a newer or broken server: show it, keep going
                self.inbox.put(Error("bad_server_message", str(exc)))
                continue
            if isinstance(msg, Welcome):
                self.welcome = msg
                self.inbox.put(ConnectionChange("connected", msg.session))
                assert self._wake is not None
                self._wake.set()
            self.inbox.put(msg)
            if isinstance(msg, End):
                return f"session ended: {msg.outcome}"
            if isinstance(msg, Error) and msg.fatal:
                return f"server error {msg.code}: {msg.message}"
        return f"server closed the connection (code {ws.close_code})"

    async def _send_loop(self, ws: Any) -> None:
        assert self._events is not None and self._wake is not None
        await self._wake.wait()  # no frames before welcome: the limits come with it
        next_at = time.monotonic()
        while True:
            while not self._events.empty():
                msg = self._events.get_nowait()
                await ws.send_bytes(encode_client(msg))
                if isinstance(msg, Bye):
                    await ws.close()
                    return
            limits = self.welcome.limits if self.welcome else None
            fps = min(self.config.fps, limits.max_fps) if limits else self.config.fps
            delay = next_at - time.monotonic()
            if delay > 0:
                try:  # an event may arrive meanwhile; send it at once, in order
                    msg = await asyncio.wait_for(self._events.get(), delay)
                except TimeoutError:
                    pass
                else:
                    await ws.send_bytes(encode_client(msg))
                    if isinstance(msg, Bye):
                        await ws.close()
                        return
                    continue
            next_at = max(next_at + 1.0 / fps, time.monotonic())
            with self._lock:
                slot, self._slot = self._slot, None
            if slot is None:
                continue
            image, ts = slot
            jpeg, width, height = await asyncio.to_thread(self._jpeg_within_limits, image)
            self._seq += 1
            data = encode_client(Frame(self._seq, ts, jpeg, width, height))
            await ws.send_bytes(data)
            self.frames_sent += 1
            self.bytes_sent += len(data)

    def _jpeg_within_limits(self, image: np.ndarray) -> tuple[bytes, int, int]:
        """JPEG at the configured quality, lowered (and then the frame halved) until the server takes it."""
        import cv2

        limits = self.welcome.limits if self.welcome else None
        if limits and (image.shape[1] > limits.max_width or image.shape[0] > limits.max_height):
            scale = min(limits.max_width / image.shape[1], limits.max_height / image.shape[0])
            image = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)),
                               interpolation=cv2.INTER_AREA)
        quality = self.config.jpeg_quality
        while True:
            jpeg = encode_jpeg(image, quality)
            if limits is None or len(jpeg) <= limits.max_frame_bytes:
                return jpeg, image.shape[1], image.shape[0]
            if quality > MIN_JPEG_QUALITY:
                quality = max(MIN_JPEG_QUALITY, quality - 15)
            else:
                image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
