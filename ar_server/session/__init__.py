"""Live sessions: the newest-frame slot, per-session smoothing and scene engine, and the session manager."""

from __future__ import annotations

from ar_server.session.frame_archive import FrameArchive
from ar_server.session.live import LiveSession, Outbox, SessionContext
from ar_server.session.manager import SessionManager
from ar_server.session.slot import FrameSlot, PendingFrame, RateGate

__all__ = ["FrameArchive", "FrameSlot", "LiveSession", "Outbox", "PendingFrame", "RateGate", "SessionContext",
           "SessionManager"]
