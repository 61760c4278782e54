"""Protocol v1 message types: one small frozen dataclass per message, tagged by a ``Literal`` ``t``.

These are plain values. Validation lives in ``codec.py``: a decoded message has already passed every check
of ``docs/PROTOCOL.md``, and an encoded one is what the server promises to send. Units are written at each
field; ranges are in the codec and the doc. The overlay classes have the names and fields of the scene
engine's overlay views (``scenes.view``), so a step crosses the wire field for field; this package does not
import ``scenes`` (it stays free of numpy), and a test holds the two sets equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as _field
from typing import Final, Literal, get_args

PROTOCOL_VERSION: Final = 1
STREAM_PATH: Final = "/v1/stream"

ClientKind = Literal["phone", "panda3d", "headset", "web", "bench"]
CLIENT_KINDS: tuple[str, ...] = get_args(ClientKind)

# `accept_help`: the customer accepts help from a person (after `help_requested` or `escalation_offer`, on a
# server whose `welcome.agents` is true); the session joins the agent queue.
EventKind = Literal["done", "back", "help", "choose", "accept_help"]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)

# Known `end.outcome` values. A client must treat an unknown outcome as a plain end (forward compatibility).
Outcome = Literal["resolved", "unresolved", "escalated", "abandoned", "timeout", "error"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)

# The physical actions an `animate` overlay demonstrates (product_models.catalog.ACTIONS) and the directions
# an `arrow` points in (scenes.model.ARROW_DIRECTIONS): `in` and `out` run along the part's face normal, the
# rest are product-frame axes. A decoder skips an overlay with a value it does not know.
Action = Literal["press", "hold", "insert", "remove", "open", "close", "plug", "unplug"]
ACTIONS: tuple[str, ...] = get_args(Action)
ArrowDirection = Literal["in", "out", "up", "down", "left", "right", "front", "back"]
ARROW_DIRECTIONS: tuple[str, ...] = get_args(ArrowDirection)

# `error.reason`: a finer machine code within an error code, for a client to act on (which credential of a
# refused hello failed, and why). The codes stay as they were released; reasons refine them. A client treats a
# reason it does not know as no reason.
UnauthorizedReason = Literal["token_expired", "token_invalid", "token_not_yet_valid"]
ForbiddenReason = Literal["wrong_role", "other_session", "other_customer", "taken_over"]
BadResumeReason = Literal["resume_token_unknown", "resume_token_used", "session_ended", "session_timed_out"]
ERROR_REASONS: Final[Mapping[str, tuple[str, ...]]] = {
    "unauthorized": get_args(UnauthorizedReason), "forbidden": get_args(ForbiddenReason),
    "bad_resume": get_args(BadResumeReason)}


class CloseCode:
    """WebSocket close codes (RFC 6455) as this protocol uses them."""

    NORMAL: Final = 1000  # after `end`, or after the client's `bye`
    GOING_AWAY: Final = 1001  # the server is shutting down; the session stays resumable
    ABNORMAL: Final = 1006  # never sent: the connection dropped without a close frame
    POLICY_VIOLATION: Final = 1008  # after a fatal `error`, except those of 1009 and 1011
    MESSAGE_TOO_BIG: Final = 1009  # after the fatal `too_large` for a message over `limits.max_message_bytes`
    INTERNAL_ERROR: Final = 1011  # after a fatal `internal` error; the session stays resumable
    NOT_READING: Final = 4000  # the client did not read what the server must send it; the session stays resumable


class ErrorCode:
    """Stable `error.code` values. Decoding codes come first, then the codes the session layer sends."""

    # decoding (raised by decode_client / decode_server)
    BAD_MSGPACK: Final = "bad_msgpack"  # the bytes are not one complete msgpack value
    NOT_A_MAP: Final = "not_a_map"  # the value is not a map with string keys
    TOO_LARGE: Final = "too_large"  # message, JPEG bytes or JPEG dimensions over a limit
    BAD_VERSION: Final = "bad_version"  # `v` is not a version this server speaks
    UNKNOWN_TYPE: Final = "unknown_type"  # `t` names no message of this direction
    MISSING_FIELD: Final = "missing_field"  # a required field is absent
    BAD_FIELD: Final = "bad_field"  # wrong type or out of range
    BAD_JPEG: Final = "bad_jpeg"  # not a baseline/progressive JPEG header we can read
    # session layer (sent by the server; see docs/PROTOCOL.md)
    HELLO_REQUIRED: Final = "hello_required"
    DUPLICATE_HELLO: Final = "duplicate_hello"
    UNAUTHORIZED: Final = "unauthorized"
    FORBIDDEN: Final = "forbidden"
    BAD_RESUME: Final = "bad_resume"
    UNKNOWN_SCENE: Final = "unknown_scene"
    UNKNOWN_PRODUCT: Final = "unknown_product"
    BAD_FRAME: Final = "bad_frame"  # vision could not use a frame for a reason other than its JPEG
    RATE_LIMITED: Final = "rate_limited"
    IDLE_TIMEOUT: Final = "idle_timeout"
    OVERLOADED: Final = "overloaded"
    INTERNAL: Final = "internal"


@dataclass(frozen=True)
class Limits:
    """What the server accepts; sent in `welcome.limits` and used by the decoder.

    ``max_message_bytes`` bounds a whole WebSocket message; it must leave room for a frame's JPEG plus its
    few small fields, so it is at least ``max_frame_bytes + FRAME_OVERHEAD_BYTES``.
    """

    max_frame_bytes: int = 2 * 1024 * 1024  # bytes of one JPEG
    max_width: int = 1920  # pixels, JPEG header width
    max_height: int = 1920  # pixels, JPEG header height
    max_fps: float = 30.0  # frames per second the server processes per session; faster frames are dropped
    max_message_bytes: int = 2 * 1024 * 1024 + 64 * 1024  # bytes of one WebSocket message


# Room for a frame's non-JPEG fields (seq, ts, keys, headers): far more than they can take.
FRAME_OVERHEAD_BYTES: Final = 64 * 1024


# ---------------------------------------------------------------- client -> server


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole camera intrinsics in pixels; (0, 0) is the centre of the top-left pixel."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int


@dataclass(frozen=True)
class Hello:
    token: str
    client: ClientKind
    locale: str = "en"
    camera: Intrinsics | None = None
    scene: str | None = None  # scene id the client asks for; None lets the server choose by product
    product: str | None = None  # product id hint (e.g. from a QR code)
    resume: str | None = None  # resume token from an earlier `welcome`
    consent_store_frames: bool = False
    t: Literal["hello"] = _field(default="hello", init=False)


@dataclass(frozen=True)
class Frame:
    seq: int  # client's frame counter, 0 .. 2**53
    ts: float  # capture time, seconds, client clock
    jpeg: bytes = _field(repr=False)
    width: int = 0  # pixels, as the client declares them (0: not declared); the server checks them against the
    height: int = 0  # JPEG's own header, which it reads when the frame reaches the session
    t: Literal["frame"] = _field(default="frame", init=False)


@dataclass(frozen=True)
class Event:
    kind: EventKind
    choice: str | None = None  # required when kind == "choose": one of the step's choice ids
    step: str | None = None  # the step the user acted on; lets the server ignore a click on a stale step
    t: Literal["event"] = _field(default="event", init=False)


@dataclass(frozen=True)
class Bye:
    reason: str | None = None
    t: Literal["bye"] = _field(default="bye", init=False)


ClientMessage = Hello | Frame | Event | Bye


# ---------------------------------------------------------------- server -> client


@dataclass(frozen=True)
class Welcome:
    session: str
    resume: str  # opaque; present it in `hello.resume` to continue this session after a drop
    limits: Limits
    server_time: float  # seconds since the Unix epoch, server clock
    resumed: bool = False  # True when `hello.resume` continued an existing session
    # True when this server keeps frames of sessions whose customer consented (`hello.consent_store_frames`):
    # a client asks for consent only then.
    store_frames: bool = False
    # True when this server has people on call: a client may then offer the customer a person (`accept_help`).
    agents: bool = False
    t: Literal["welcome"] = _field(default="welcome", init=False)


@dataclass(frozen=True)
class PoseData:
    """Product pose in the camera frame (OpenCV): X_cam = R @ X_product + t."""

    R: tuple[float, ...]  # (9,) rotation matrix, row-major
    t: tuple[float, float, float]  # (3,) metres


@dataclass(frozen=True)
class PartObs:
    state: str | None  # recognised state name, None when unknown
    conf: float  # 0..1
    visible: bool


@dataclass(frozen=True)
class Timing:
    """Milliseconds spent per stage on the server for this frame."""

    decode_ms: float = 0.0
    detect_ms: float = 0.0
    pose_ms: float = 0.0
    states_ms: float = 0.0
    queue_ms: float = 0.0
    total_ms: float = 0.0


@dataclass(frozen=True)
class Obs:
    seq: int  # echo of the frame's seq
    ts: float  # echo of the frame's ts (client clock)
    product: str | None  # None when no product is recognised
    product_conf: float  # 0..1
    pose: PoseData | None
    parts: Mapping[str, PartObs]
    timing: Timing
    t: Literal["obs"] = _field(default="obs", init=False)


# Overlays: one class per kind, each anchored on a part of the recognised product (geometry from
# `GET /v1/products/{id}`). Colours are "#rrggbb", lowercase.


@dataclass(frozen=True)
class Highlight:
    kind: Literal["highlight"] = _field(default="highlight", init=False)
    part: str
    color: str


@dataclass(frozen=True)
class Arrow:
    kind: Literal["arrow"] = _field(default="arrow", init=False)
    part: str
    direction: ArrowDirection
    color: str


@dataclass(frozen=True)
class Label:
    kind: Literal["label"] = _field(default="label", init=False)
    part: str
    text: str  # localized
    color: str


@dataclass(frozen=True)
class Animate:
    """A demonstration of the physical action the step asks for."""

    kind: Literal["animate"] = _field(default="animate", init=False)
    part: str
    action: Action
    color: str


Overlay = Highlight | Arrow | Label | Animate
OVERLAY_TYPES: dict[str, type[Overlay]] = {"highlight": Highlight, "arrow": Arrow, "label": Label, "animate": Animate}


@dataclass(frozen=True)
class Choice:
    id: str
    text: str


@dataclass(frozen=True)
class Progress:
    index: int  # 1-based: this is step `index` of `total` along the path taken; 1 <= index <= total
    total: int  # index plus the fewest steps left to a repair (an estimate: it changes when a branch is taken)


@dataclass(frozen=True)
class Step:
    step: str  # step id
    text: str  # localized instruction
    overlays: tuple[Overlay, ...] = ()
    choices: tuple[Choice, ...] = ()
    progress: Progress | None = None
    accepts_done: bool = False  # True: `event` `done` moves this step on (show a Done button)
    t: Literal["step"] = _field(default="step", init=False)


@dataclass(frozen=True)
class Notice:
    code: str
    text: str
    part: str | None = None  # the part a view hint is about (turn_device: the part to bring into view)
    t: Literal["notice"] = _field(default="notice", init=False)


@dataclass(frozen=True)
class End:
    outcome: str  # one of OUTCOMES (clients accept unknown values)
    text: str | None = None
    t: Literal["end"] = _field(default="end", init=False)


@dataclass(frozen=True)
class Error:
    code: str
    message: str
    fatal: bool = False  # True: the server closes the connection after this message
    field: str | None = None  # offending field path, e.g. "camera.fx"
    seq: int | None = None  # the frame this error is about, when it is about one
    reason: str | None = None  # refines `code`: one of ERROR_REASONS[code]
    t: Literal["error"] = _field(default="error", init=False)


AgentKind = Literal["joined", "left", "message", "point"]
AGENT_KINDS: tuple[str, ...] = get_args(AgentKind)


@dataclass(frozen=True)
class Agent:
    """A person from support in this session: joined or left, wrote to the customer, or points at a part
    (a highlight anchored on it, drawn with the live pose like a step's; `part` None clears it)."""

    kind: AgentKind
    agent: str  # the person's display name
    text: str | None = None  # `message`: what they wrote
    part: str | None = None  # `point`: the part to mark; None stops pointing
    color: str | None = None  # `point`: "#rrggbb"
    t: Literal["agent"] = _field(default="agent", init=False)


ServerMessage = Welcome | Obs | Step | Notice | End | Error | Agent
