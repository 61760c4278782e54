"""Per-session frame intake: the newest-frame slot and the frame-rate gate. Pure: no I/O, no asyncio, no
clock of their own (the caller passes time in seconds).

The slot holds at most one frame. A newer frame replaces an unprocessed older one (the older one is counted
as superseded): the session always works on what the camera sees *now*, and nothing queues without bound.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ar_server.protocol import Frame
from vision.jpeg_header import JpegHeader


@dataclass(frozen=True)
class PendingFrame:
    frame: Frame
    received_at: float  # seconds on the session's clock when the message arrived
    header: JpegHeader | None = None  # what the JPEG's header declares, read once on arrival


class FrameSlot:
    """One-frame mailbox: ``put`` replaces what is there, ``take`` empties it."""

    def __init__(self) -> None:
        self._frame: PendingFrame | None = None
        self.superseded = 0  # frames replaced before they were processed

    def put(self, frame: PendingFrame) -> bool:
        """Store ``frame``; returns True when it replaced an unprocessed one."""
        replaced = self._frame is not None
        if replaced:
            self.superseded += 1
        self._frame = frame
        return replaced

    def take(self) -> PendingFrame | None:
        """The waiting frame (None when there is none); the slot is empty afterwards."""
        frame, self._frame = self._frame, None
        return frame


class RateGate:
    """Admits frames up to ``max_fps`` (a token bucket with half a second of burst).

    ``admit(now)`` returns True for a frame to keep. Frames over the rate are dropped silently, as the
    protocol says; ``abusive(now)`` turns True when more than ``abuse_factor`` times the rate arrived over
    the last second, which earns the client a ``rate_limited`` error (at most once per second).
    """

    def __init__(self, max_fps: float, *, abuse_factor: float = 2.0) -> None:
        self.rate = float(max_fps)
        self.capacity = max(1.0, self.rate * 0.5)
        self._tokens = self.capacity
        self._last: float | None = None
        self._window: deque[float] = deque()  # arrival times over the last second
        self._abuse_limit = self.rate * abuse_factor
        self._last_warned = -1e18

    def admit(self, now: float) -> bool:
        if self._last is not None:
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._window.append(now)
        # Trimmed on every frame: a client that never goes over the rate would otherwise grow it forever.
        while self._window[0] < now - 1.0:
            self._window.popleft()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def abusive(self, now: float) -> bool:
        """True (once per second at most) while the last second held over ``abuse_factor`` x ``max_fps`` frames."""
        while self._window and self._window[0] < now - 1.0:
            self._window.popleft()
        if len(self._window) > self._abuse_limit and now - self._last_warned >= 1.0:
            self._last_warned = now
            return True
        return False
