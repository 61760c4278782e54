"""What goes into a session core: one small frozen class per event. Plain data, no behaviour.

The driver (``ar_server.session.live``) makes them from what the client sent, from what the server's
services answered, and from time passing; ``SessionCore.handle(event, now)`` takes them one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from ar_server.protocol import Bye, Error, Frame, Hello
from ar_server.protocol import Event as UserMessage
from product_models.camera import CameraIntrinsics
from scenes import Engine
from vision.errors import VisionError
from vision.types import Observation

# ---------------------------------------------------------------- from the client


@dataclass(frozen=True)
class HelloReceived:
    hello: Hello


@dataclass(frozen=True)
class FrameReceived:
    frame: Frame


@dataclass(frozen=True)
class UserEventReceived:
    event: UserMessage


@dataclass(frozen=True)
class ByeReceived:
    bye: Bye


@dataclass(frozen=True)
class MessageRefused:
    """A message the decoder refused; the fields become the ``error`` the client gets."""

    code: str
    message: str
    field: str | None = None
    seq: int | None = None  # the frame's, when the refused message was a frame whose seq could be read
    fatal: bool = False  # the connection closes after it, also once hello was received (too many refusals)


# ---------------------------------------------------------------- answers to the core's requests


@dataclass(frozen=True)
class SessionOpened:
    """The answer to ``OpenSession``: the session the hello reaches, created, resumed or joined."""

    session_id: str
    resume: str  # the resume token for this `welcome` (rotated on every one)
    resumed: bool  # the session existed: it continues where it was
    locale: str
    camera: CameraIntrinsics | None
    product_hint: str | None  # a catalog product id (None: no hint, or one the catalog lacks)
    consent_store_frames: bool
    engine: Engine | None  # the running scene, restored from its snapshot; None until a scene starts
    unknown_product: str | None = None  # the hint the client gave that no catalog product has


@dataclass(frozen=True)
class OpenRefused:
    """The answer to ``OpenSession`` when the hello reaches no session; ``error`` is fatal."""

    error: Error


@dataclass(frozen=True)
class VisionResult:
    """The pipeline's answer for the frame the core asked about (``Infer``)."""

    seq: int
    value: Observation | VisionError
    queue_ms: float  # waiting for a batch slot


@dataclass(frozen=True)
class InferenceFailed:
    """The inference service refused or failed the frame: ``overloaded`` (queue full) or ``internal``."""

    seq: int
    code: str
    message: str


@dataclass(frozen=True)
class FrameNotStored:
    """An ``ArchiveFrame`` stored nothing; ``reason`` says why."""

    reason: str


# ---------------------------------------------------------------- people from support (ar_server.agents)


@dataclass(frozen=True)
class AgentJoined:
    """An agent started watching this session (the customer is told who)."""

    agent: str  # display name


@dataclass(frozen=True)
class AgentLeft:
    agent: str


@dataclass(frozen=True)
class AgentSaid:
    agent: str
    text: str


@dataclass(frozen=True)
class AgentPointed:
    """The agent in control points at ``part`` (None: stops pointing)."""

    agent: str
    part: str | None
    color: str


@dataclass(frozen=True)
class AgentMoved:
    """The agent in control moves the session to ``step`` of its scene."""

    agent: str
    step: str


@dataclass(frozen=True)
class AgentEnded:
    """The agent in control ends the session with ``outcome``."""

    agent: str
    outcome: str
    text: str | None = None


AgentEvent = AgentJoined | AgentLeft | AgentSaid | AgentPointed | AgentMoved | AgentEnded

# ---------------------------------------------------------------- time and the server


@dataclass(frozen=True)
class Tick:
    """Time passed: hello and idle timeouts, and the engine's timers, fire without messages."""


@dataclass(frozen=True)
class TakenOver:
    """Another connection (the customer again, or an agent joining) resumed this session: the newest wins."""


@dataclass(frozen=True)
class GoingAway:
    """The server is shutting down; the session stays resumable."""


@dataclass(frozen=True)
class Disconnected:
    """The connection is gone (the client closed it, or it dropped); the session stays resumable."""


@dataclass(frozen=True)
class Failed:
    """A bug in the server while serving this connection; the session stays resumable."""

    message: str


SessionEvent = (HelloReceived | FrameReceived | UserEventReceived | ByeReceived | MessageRefused | SessionOpened
                | OpenRefused | VisionResult | InferenceFailed | FrameNotStored | Tick | TakenOver | GoingAway
                | Disconnected | Failed | AgentJoined | AgentLeft | AgentSaid | AgentPointed | AgentMoved | AgentEnded)
