"""Bytes <-> protocol v1 messages, validated on the way in; dispatch by tables keyed on ``t``.

Rules:
- ``decode_client`` accepts any bytes and either returns a fully validated ``ClientMessage`` or raises
  ``ProtocolError`` with a stable code. Nothing else escapes (a hypothesis test holds it to that).
- The raw size is checked before unpacking, and msgpack runs with strict per-object limits plus a cap on the
  number of arrays/maps, so a hostile payload cannot make the decoder allocate much more than its own size.
- ``encode_server`` trusts its input (the server builds it); ``check=True`` decodes the result again, which
  the tests use to prove every encoder output is a valid message.
- A frame refused after its ``seq`` was read raises ``FrameError``, which carries that ``seq``, so the
  server's ``error`` can name the frame.
- ``decode_server`` skips an overlay whose ``kind``, ``direction`` or ``action`` it does not know (a newer
  server may add them within v1); a known one with a bad field is refused like any other bad field.
"""

from __future__ import annotations

import dataclasses
import numbers
import re
from collections.abc import Callable, Mapping
from typing import Any

import msgpack

from ar_server.errors import ProtocolError
from ar_server.protocol.fields import IDENT, LOCALE, MapReader, check_float, check_string, wire_type
from ar_server.protocol.messages import (
    ACTIONS,
    AGENT_KINDS,
    ARROW_DIRECTIONS,
    CLIENT_KINDS,
    EVENT_KINDS,
    OVERLAY_TYPES,
    PROTOCOL_VERSION,
    Agent,
    Animate,
    Arrow,
    Bye,
    Choice,
    ClientMessage,
    End,
    Error,
    Event,
    Frame,
    Hello,
    Highlight,
    Intrinsics,
    Label,
    Limits,
    Notice,
    Obs,
    Overlay,
    PartObs,
    PoseData,
    Progress,
    ServerMessage,
    Step,
    Timing,
    Welcome,
)

MAX_SEQ = 2**53  # exact in a JavaScript number
MAX_TS = 1e12  # seconds; far beyond any clock in use, small enough to be sane
MAX_TOKEN_CHARS = 4096
MAX_TEXT_CHARS = 4096
MAX_PARTS = 256
MAX_OVERLAYS = 64
MAX_CHOICES = 16
MAX_PROGRESS = 10_000
MAX_SERVER_MESSAGE_BYTES = 4 * 1024 * 1024
_RESUME = re.compile(r"^[A-Za-z0-9_\-.=]{1,256}$")
HEX_COLOR = re.compile(r"^#[0-9a-f]{6}$")
_TIMING_KEYS = tuple(f.name for f in dataclasses.fields(Timing))


class FrameError(ProtocolError):
    """A ``frame`` refused after its ``seq`` was read; ``seq`` names the frame."""

    def __init__(self, error: ProtocolError, seq: int) -> None:
        super().__init__(error.code, error.message, error.field)
        self.seq = seq


# ---------------------------------------------------------------- unpacking with limits


class _ContainerBudget:
    """msgpack hooks that count arrays and maps and stop the unpacker past a budget."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def _spend(self, value: Any) -> Any:
        self.left -= 1
        if self.left < 0:
            raise ValueError("too many arrays/maps")
        return value


def _unpack(data: Any, *, max_bytes: int, max_str: int, max_array: int, max_map: int,
            max_containers: int) -> Any:
    if isinstance(data, str):
        raise ProtocolError("bad_msgpack", "text WebSocket messages are not accepted; send binary msgpack")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError("bad_msgpack", f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise ProtocolError("too_large", f"message is {len(data)} bytes; the limit is {max_bytes}")
    if len(data) == 0:
        raise ProtocolError("bad_msgpack", "empty message")
    budget = _ContainerBudget(max_containers)
    try:
        return msgpack.unpackb(
            data, raw=False, strict_map_key=False, use_list=True,
            max_bin_len=max_bytes, max_str_len=max_str, max_array_len=max_array, max_map_len=max_map,
            max_ext_len=0, list_hook=budget._spend, object_hook=budget._spend,
        )
    # The library's errors become ours. Non-string keys are allowed here so that MapReader can name them;
    # an unhashable key (an array or map used as a key) raises TypeError.
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ProtocolError("bad_msgpack", f"not a single valid msgpack value: {exc or type(exc).__name__}") from None


def _envelope(value: Any, tables: Mapping[str, Any], direction: str) -> tuple[str, MapReader]:
    if not isinstance(value, dict):
        raise ProtocolError("not_a_map", f"a message must be a msgpack map, got {wire_type(value)}")
    reader = MapReader(value)
    version = reader.raw("v", required=True)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ProtocolError("bad_field", f"expected an int, got {wire_type(version)}", "v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError("bad_version", f"protocol version {version} is not supported; this peer speaks "
                                           f"{PROTOCOL_VERSION}", "v")
    kind = reader.raw("t", required=True)
    if not isinstance(kind, str):
        raise ProtocolError("bad_field", f"expected a str, got {wire_type(kind)}", "t")
    if kind not in tables:
        raise ProtocolError("unknown_type", f"unknown {direction} message type {kind[:40]!r}; expected one of "
                                            f"{', '.join(tables)}", "t")
    return kind, reader


# ---------------------------------------------------------------- client -> server


def _hello(m: MapReader, limits: Limits) -> Hello:
    camera = None
    cam = m.submap("camera", required=False)
    if cam is not None:
        width = cam.integer("width", lo=1, hi=limits.max_width)
        height = cam.integer("height", lo=1, hi=limits.max_height)
        camera = Intrinsics(
            fx=cam.number("fx", lo=0.0, hi=1e6, lo_open=True), fy=cam.number("fy", lo=0.0, hi=1e6, lo_open=True),
            cx=cam.number("cx", lo=0.0, hi=float(width)), cy=cam.number("cy", lo=0.0, hi=float(height)),
            width=width, height=height)
    return Hello(
        token=m.string("token", max_len=MAX_TOKEN_CHARS),
        client=m.string("client", choices=CLIENT_KINDS),
        locale=m.string("locale", required=False, max_len=35, pattern=LOCALE, default="en"),
        camera=camera,
        scene=m.string("scene", required=False, pattern=IDENT),
        product=m.string("product", required=False, pattern=IDENT),
        resume=m.string("resume", required=False, max_len=256, pattern=_RESUME),
        consent_store_frames=m.boolean("consent_store_frames"),
    )


def _frame(m: MapReader, limits: Limits) -> Frame:
    seq = m.integer("seq", lo=0, hi=MAX_SEQ)
    try:
        return _frame_body(m, limits, seq)
    except ProtocolError as exc:
        raise FrameError(exc, seq) from None


def _frame_body(m: MapReader, limits: Limits, seq: int) -> Frame:
    ts = m.number("ts", lo=0.0, hi=MAX_TS)
    jpeg = m.binary("jpeg")
    if len(jpeg) > limits.max_frame_bytes:
        raise ProtocolError("too_large", f"JPEG is {len(jpeg)} bytes; the limit is {limits.max_frame_bytes}",
                            "jpeg")
    # The JPEG's own header is read (and checked against these) by the session, which keeps it for the decoder:
    # the codec stays free of image code.
    width = m.integer("width", lo=1, hi=65535, required=False)
    height = m.integer("height", lo=1, hi=65535, required=False)
    return Frame(seq=seq, ts=ts, jpeg=jpeg, width=width or 0, height=height or 0)


def _event(m: MapReader, limits: Limits) -> Event:
    kind = m.string("kind", choices=EVENT_KINDS)
    choice = m.string("choice", required=kind == "choose", pattern=IDENT)
    return Event(kind=kind, choice=choice if kind == "choose" else None,
                 step=m.string("step", required=False, pattern=IDENT))


def _bye(m: MapReader, limits: Limits) -> Bye:
    return Bye(reason=m.string("reason", required=False, max_len=256, min_len=0))


_CLIENT_DECODERS: dict[str, Callable[[MapReader, Limits], ClientMessage]] = {
    "hello": _hello, "frame": _frame, "event": _event, "bye": _bye,
}


def decode_client(data: bytes, limits: Limits | None = None) -> ClientMessage:
    """Decode and validate one client WebSocket message; raise ``ProtocolError`` for anything malformed."""
    limits = limits or Limits()
    value = _unpack(data, max_bytes=limits.max_message_bytes, max_str=64 * 1024, max_array=64, max_map=64,
                    max_containers=256)
    kind, reader = _envelope(value, _CLIENT_DECODERS, "client")
    return _CLIENT_DECODERS[kind](reader, limits)


# ---------------------------------------------------------------- server -> client


def _welcome(m: MapReader) -> Welcome:
    lim = m.submap("limits")
    assert lim is not None  # required=True
    limits = Limits(
        max_frame_bytes=lim.integer("max_frame_bytes", lo=1, hi=2**31),
        max_width=lim.integer("max_width", lo=1, hi=65535), max_height=lim.integer("max_height", lo=1, hi=65535),
        max_fps=lim.number("max_fps", lo=0.0, hi=1000.0, lo_open=True),
        max_message_bytes=lim.integer("max_message_bytes", lo=1, hi=2**31))
    return Welcome(session=m.string("session", pattern=IDENT), resume=m.string("resume", max_len=256, pattern=_RESUME),
                   limits=limits, server_time=m.number("server_time", lo=0.0, hi=MAX_TS),
                   resumed=m.boolean("resumed"), store_frames=m.boolean("store_frames"),
                   agents=m.boolean("agents"))


def _pose(value: Any) -> PoseData | None:
    if value is None:
        return None
    p = MapReader(value, "pose")
    rot = p.array("R", max_len=9)
    trans = p.array("t", max_len=3)
    if len(rot) != 9 or len(trans) != 3:
        raise ProtocolError("bad_field", f"expected R with 9 and t with 3 numbers, got {len(rot)} and {len(trans)}",
                            "pose")
    return PoseData(R=tuple(check_float(x, f"pose.R[{i}]", lo=-1.0001, hi=1.0001) for i, x in enumerate(rot)),
                    t=tuple(check_float(x, f"pose.t[{i}]", lo=-1e4, hi=1e4) for i, x in enumerate(trans)))  # type: ignore[arg-type]


def _obs(m: MapReader) -> Obs:
    product = m.nullable("product")
    if product is not None:
        check_string(product, "product", max_len=128, pattern=IDENT)
    parts_reader = m.submap("parts")
    assert parts_reader is not None
    if len(parts_reader.value) > MAX_PARTS:
        raise ProtocolError("bad_field", f"expected at most {MAX_PARTS} parts", "parts")
    parts: dict[str, PartObs] = {}
    for name in parts_reader.value:
        check_string(name, "parts", max_len=128, pattern=IDENT)
        part = parts_reader.submap(name)
        assert part is not None
        state = part.nullable("state")
        if state is not None:
            check_string(state, part.name("state"), max_len=128, pattern=IDENT)
        parts[name] = PartObs(state=state, conf=part.number("conf", lo=0.0, hi=1.0),
                              visible=part.boolean("visible", required=True))
    timing = m.submap("timing")
    assert timing is not None
    return Obs(seq=m.integer("seq", lo=0, hi=MAX_SEQ), ts=m.number("ts", lo=0.0, hi=MAX_TS), product=product,
               product_conf=m.number("product_conf", lo=0.0, hi=1.0), pose=_pose(m.nullable("pose")), parts=parts,
               timing=Timing(**{k: timing.number(k, lo=0.0, hi=1e7) for k in _TIMING_KEYS}))


def _overlay(o: MapReader) -> Overlay | None:
    """One overlay, or None for a kind or value this decoder does not know (the client skips it)."""
    kind = o.string("kind", pattern=IDENT)
    if kind not in OVERLAY_TYPES:
        return None
    part = o.string("part", pattern=IDENT)
    color = o.string("color", max_len=7, pattern=HEX_COLOR)
    if kind == "highlight":
        return Highlight(part, color)
    if kind == "label":
        return Label(part, o.string("text", max_len=MAX_TEXT_CHARS, min_len=0), color)
    if kind == "arrow":
        direction = o.string("direction", pattern=IDENT)
        return Arrow(part, direction, color) if direction in ARROW_DIRECTIONS else None
    action = o.string("action", pattern=IDENT)
    return Animate(part, action, color) if action in ACTIONS else None


def _step(m: MapReader) -> Step:
    overlays = []
    for i, raw in enumerate(m.array("overlays", max_len=MAX_OVERLAYS, required=False)):
        overlay = _overlay(MapReader(raw, f"overlays[{i}]"))
        if overlay is not None:
            overlays.append(overlay)
    choices = []
    for i, raw in enumerate(m.array("choices", max_len=MAX_CHOICES, required=False)):
        c = MapReader(raw, f"choices[{i}]")
        choices.append(Choice(id=c.string("id", pattern=IDENT), text=c.string("text", max_len=MAX_TEXT_CHARS)))
    progress = None
    prog = m.submap("progress", required=False)
    if prog is not None:
        total = prog.integer("total", lo=1, hi=MAX_PROGRESS)
        progress = Progress(index=prog.integer("index", lo=1, hi=total), total=total)
    return Step(step=m.string("step", pattern=IDENT), text=m.string("text", max_len=MAX_TEXT_CHARS, min_len=0),
                overlays=tuple(overlays), choices=tuple(choices), progress=progress,
                accepts_done=m.boolean("accepts_done"))


def _notice(m: MapReader) -> Notice:
    return Notice(code=m.string("code", pattern=IDENT), text=m.string("text", max_len=MAX_TEXT_CHARS, min_len=0),
                  part=m.string("part", required=False, pattern=IDENT))


def _end(m: MapReader) -> End:
    return End(outcome=m.string("outcome", pattern=IDENT),
               text=m.string("text", required=False, max_len=MAX_TEXT_CHARS, min_len=0))


def _error(m: MapReader) -> Error:
    return Error(code=m.string("code", pattern=IDENT), message=m.string("message", max_len=MAX_TEXT_CHARS),
                 fatal=m.boolean("fatal"), field=m.string("field", required=False, max_len=256),
                 seq=m.integer("seq", lo=0, hi=MAX_SEQ, required=False),
                 reason=m.string("reason", required=False, pattern=IDENT))


def _agent(m: MapReader) -> Agent:
    return Agent(kind=m.string("kind", choices=AGENT_KINDS), agent=m.string("agent", max_len=128),
                 text=m.string("text", required=False, max_len=MAX_TEXT_CHARS),
                 part=m.string("part", required=False, pattern=IDENT),
                 color=m.string("color", required=False, max_len=7, pattern=HEX_COLOR))


_SERVER_DECODERS: dict[str, Callable[[MapReader], ServerMessage]] = {
    "welcome": _welcome, "obs": _obs, "step": _step, "notice": _notice, "end": _end, "error": _error,
    "agent": _agent,
}


def decode_server(data: bytes, *, max_bytes: int = MAX_SERVER_MESSAGE_BYTES) -> ServerMessage:
    """Decode and validate one server message (for clients and tests); raise ``ProtocolError`` if malformed."""
    value = _unpack(data, max_bytes=max_bytes, max_str=64 * 1024, max_array=1024, max_map=1024,
                    max_containers=4096)
    kind, reader = _envelope(value, _SERVER_DECODERS, "server")
    return _SERVER_DECODERS[kind](reader)


# ---------------------------------------------------------------- engine views -> wire overlays


def copy_overlay(view: Any) -> Overlay:
    """The wire overlay with the kind and fields of ``view`` (a ``scenes.view`` overlay, or any object with
    the same attributes). Raises ``ProtocolError`` for a kind the protocol does not have."""
    cls = OVERLAY_TYPES.get(getattr(view, "kind", None))  # type: ignore[arg-type]
    if cls is None:
        raise ProtocolError("bad_field", f"expected an overlay of kind {', '.join(OVERLAY_TYPES)}, got {view!r}",
                            "kind")
    return cls(*(getattr(view, f.name) for f in dataclasses.fields(cls) if f.init))


# ---------------------------------------------------------------- encoding

# Fields sent as nil rather than left out when they are None: a client reads "nothing recognised" from them.
_KEEP_NONE = frozenset({(Obs, "product"), (Obs, "pose"), (PartObs, "state")})


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | str | bytes):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if item is None and (cls, f.name) not in _KEEP_NONE:
                continue
            out[f.name] = _plain(item)
        return out
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, numbers.Integral):  # numpy ints too
        return int(value)
    if isinstance(value, numbers.Real):  # numpy floats too
        return float(value)
    raise TypeError(f"cannot encode {type(value).__name__} in a protocol message")


def _encode(msg: Any) -> bytes:
    body = _plain(msg)
    body.pop("t", None)
    if isinstance(msg, Frame):
        # 0 means "not known": a decoded Frame carries the JPEG header's size, a new one may leave it out.
        for key in ("width", "height"):
            if not body.get(key):
                body.pop(key, None)
    return msgpack.packb({"t": msg.t, "v": PROTOCOL_VERSION, **body}, use_bin_type=True)


def encode_server(msg: ServerMessage, *, check: bool = False) -> bytes:
    """msgpack bytes of a server message; ``check=True`` also decodes them and raises if invalid."""
    data = _encode(msg)
    if check:
        decode_server(data)
    return data


def encode_client(msg: ClientMessage, *, check: bool = False, limits: Limits | None = None) -> bytes:
    """msgpack bytes of a client message (for clients and tests); ``check=True`` validates them too."""
    data = _encode(msg)
    if check:
        decode_client(data, limits)
    return data
