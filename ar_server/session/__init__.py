"""Live sessions: the pure session core (events in, effects out), the driver that performs its effects, and
the session manager (opening, resume, timers)."""

from __future__ import annotations

from ar_server.session.core import ACCEPTS, HELLO_TIMEOUT_S, CoreConfig, SessionCore
from ar_server.session.frame_archive import FrameArchive
from ar_server.session.live import Outbox, SessionDriver, SessionHost
from ar_server.session.manager import SessionManager
from ar_server.session.slot import FrameSlot, PendingFrame, RateGate

__all__ = ["ACCEPTS", "HELLO_TIMEOUT_S", "CoreConfig", "FrameArchive", "FrameSlot", "Outbox", "PendingFrame",
           "RateGate", "SessionCore", "SessionDriver", "SessionHost", "SessionManager"]
