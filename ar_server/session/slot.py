"""Per-session frame intake: the newest-frame slot and the frame-rate gate. Pure asyncio, no I/O.

The slot holds at most one frame. A newer frame replaces an unprocessed older one (the older one is counted
as superseded): the session always works on what the camera sees *now*, and nothing queues without bound.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PendingFrame:
    frame: Any  # ar_server.protocol.Frame
    received_at: float  # time.perf_counter() seconds when the message arrived


class FrameSlot:
    """One-frame mailbox. ``put`` never blocks; ``take`` waits for a frame."""

    def __init__(self) -> None:
        self._frame: PendingFrame | None = None
        self._ready = asyncio.Event()
        self.superseded = 0  # frames replaced before they were processed

    def put(self, frame: PendingFrame) -> bool:
        """Store ``frame``; returns True when it replaced an unprocessed one."""
        replaced = self._frame is not None
        if replaced:
            self.superseded += 1
        self._frame = frame
        self._ready.set()
        return replaced

    async def take(self) -> PendingFrame:
        while self._frame is None:
            self._ready.clear()
            await self._ready.wait()
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
        self._window: list[float] = []
        self._abuse_limit = self.rate * abuse_factor
        self._last_warned = -1e18

    def admit(self, now: float) -> bool:
        if self._last is not None:
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._window.append(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def abusive(self, now: float) -> bool:
        """True (once per second at most) while the last second held over ``abuse_factor`` x ``max_fps`` frames."""
        cutoff = now - 1.0
        keep = 0
        while keep < len(self._window) and self._window[keep] < cutoff:
            keep += 1
        del self._window[:keep]
        if len(self._window) > self._abuse_limit and now - self._last_warned >= 1.0:
            self._last_warned = now
            return True
        return False
