"""What comes out of a session core: one small frozen class per effect. Plain data, no behaviour.

The driver performs them in the order given, one at a time, so a store write finishes before any message
that follows it is sent (a step the client saw is always recorded). ``Infer`` and ``ArchiveFrame`` only
start their work; its result comes back as an event (``VisionResult``, ``InferenceFailed``,
``FrameNotStored``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ar_server.protocol import Hello, ServerMessage
from ar_server.store.base import StepHow
from vision.types import FrameInput

# ---------------------------------------------------------------- the connection


@dataclass(frozen=True)
class Send:
    message: ServerMessage


@dataclass(frozen=True)
class Close:
    """Close the WebSocket with ``code`` once what was sent before is out."""

    code: int


@dataclass(frozen=True)
class OpenSession:
    """Check the hello's token and find, create or resume its session; answer ``SessionOpened`` or
    ``OpenRefused``."""

    hello: Hello


# ---------------------------------------------------------------- work that answers later


@dataclass(frozen=True)
class Infer:
    """Run the frame through the shared inference service; answer ``VisionResult`` or ``InferenceFailed``."""

    frame: FrameInput


@dataclass(frozen=True)
class ArchiveFrame:
    """Store the frame with faces blurred (the customer consented); answer ``FrameNotStored`` on failure."""

    seq: int
    jpeg: bytes


@dataclass(frozen=True)
class RememberObservation:
    """Keep the last ``obs`` for agents (REST), as a JSON-able summary."""

    summary: dict[str, Any]


# ---------------------------------------------------------------- store writes


@dataclass(frozen=True)
class EnterStep:
    """Record ``left`` as done (``how``), ``step`` as entered, and the engine snapshot, before ``step`` is sent."""

    step: str
    left: str | None
    how: StepHow | None
    snapshot: dict[str, Any]


@dataclass(frozen=True)
class SaveSnapshot:
    """Save the engine state, so a resume continues exactly here."""

    snapshot: dict[str, Any]


@dataclass(frozen=True)
class RecordEvent:
    kind: str  # e.g. "notice", "scene_started"
    data: dict[str, Any]


@dataclass(frozen=True)
class SceneStarted:
    """The session's scene and product, now that one started by itself; ``reason`` says why."""

    scene: str
    product: str
    reason: str


@dataclass(frozen=True)
class OpenEscalation:
    """Record an escalation (offered or handed over) with what an agent needs; the driver adds the step
    history as the store has it."""

    reason: str  # help | repeated | overdue | timeout | outcome
    offer: bool
    step: str | None
    scene: str | None
    locale: str


@dataclass(frozen=True)
class AcceptHelp:
    """The customer accepted help from a person: put the session's latest escalation (a new ``help`` one if
    there is none) into the agent queue."""

    step: str | None
    scene: str | None
    locale: str


@dataclass(frozen=True)
class ShowAgents:
    """Pass this frame on to the agents watching the session (downscaled there; never stored)."""

    seq: int
    jpeg: bytes


@dataclass(frozen=True)
class EndSession:
    """End the session for good with ``outcome``, saving the engine state last seen (None without a scene)."""

    outcome: str
    snapshot: dict[str, Any] | None


SessionEffect = (Send | Close | OpenSession | Infer | ArchiveFrame | RememberObservation | EnterStep | SaveSnapshot
                 | RecordEvent | SceneStarted | OpenEscalation | AcceptHelp | ShowAgents | EndSession)
