"""Agents watching live sessions: who watches which session, who holds control, and what each is sent.

Rules:
1. A watcher is one agent connection. It watches at most one session at a time; several may watch one
   session, and at most one of them holds control (the first to watch, or the first to ask once it is free).
   Only the holder acts (messages, pointing, moving to a step, ending).
2. What a watcher is sent goes into its bounded outbox; a frame replaces a frame not yet sent (the newest
   picture wins), and a watcher that falls far behind loses its oldest messages rather than growing memory.
3. Frames reach watchers only while they watch, downscaled, and are never stored.
4. Queue listeners (consoles) get a bare ``{"t": "queue"}`` when the queue changes; the connection fills in
   the queue itself when it sends, so many changes at once cost one read.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

MAX_OUTBOX = 64  # messages a watcher may fall behind by before the oldest go


@dataclass(eq=False)
class Watcher:
    subject: str  # the agent token's subject: also the name the customer sees
    role: str
    session: str | None = None
    _out: deque[dict[str, Any]] = field(default_factory=deque)
    _frame: dict[str, Any] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def send(self, message: dict[str, Any]) -> None:
        """Rule 2."""
        if message.get("t") == "frame":
            self._frame = message
        elif message.get("t") == "queue" and message in self._out:
            return
        else:
            self._out.append(message)
            while len(self._out) > MAX_OUTBOX:
                self._out.popleft()
        self._wake.set()

    async def next_messages(self) -> list[dict[str, Any]]:
        """Wait for something to send, then take all of it (frames last)."""
        await self._wake.wait()
        self._wake.clear()
        out = list(self._out)
        self._out.clear()
        if self._frame is not None:
            out.append(self._frame)
            self._frame = None
        return out

    def close(self) -> None:
        self._out.append({"t": "closed"})
        self._wake.set()


class Watchers:
    """Rule 1 and 4's bookkeeping; the manager holds one."""

    def __init__(self) -> None:
        self.by_session: dict[str, list[Watcher]] = {}
        self.control: dict[str, Watcher] = {}  # session id -> the watcher holding control
        self.queue_listeners: set[Watcher] = set()

    def add(self, watcher: Watcher, session: str) -> bool:
        """Start watching ``session``; True when this watcher got control."""
        self.remove(watcher)
        watcher.session = session
        self.by_session.setdefault(session, []).append(watcher)
        if session not in self.control:
            self.control[session] = watcher
            return True
        return False

    def remove(self, watcher: Watcher) -> str | None:
        """Stop watching; returns the session it watched. Control passes to no one (another must ask)."""
        session, watcher.session = watcher.session, None
        if session is None:
            return None
        watching = self.by_session.get(session, [])
        if watcher in watching:
            watching.remove(watcher)
        if not watching:
            self.by_session.pop(session, None)
        if self.control.get(session) is watcher:
            del self.control[session]
        return session

    def take_control(self, watcher: Watcher) -> bool:
        session = watcher.session
        if session is None:
            return False
        holder = self.control.get(session)
        if holder is None or holder is watcher:
            self.control[session] = watcher
            return True
        return False

    def holds_control(self, watcher: Watcher) -> bool:
        return watcher.session is not None and self.control.get(watcher.session) is watcher

    def of(self, session: str) -> list[Watcher]:
        return list(self.by_session.get(session, ()))

    def names(self, session: str) -> list[dict[str, Any]]:
        holder = self.control.get(session)
        return [{"agent": w.subject, "control": w is holder} for w in self.by_session.get(session, ())]

    def queue_changed(self) -> None:
        for watcher in self.queue_listeners:
            watcher.send({"t": "queue"})
