"""Fixlens wire protocol v1 (docs/PROTOCOL.md is the reference).

WebSocket at ``/v1/stream``; every message is one binary msgpack map with a type tag ``t`` and the protocol
version ``v``. This package does no I/O and imports no aiohttp, cv2, torch or panda3d, so clients (the
Panda3D app, the bench tool, tests) share it cheaply.

    decode_client(bytes, limits) -> ClientMessage     (server side; raises ProtocolError)
    encode_server(ServerMessage) -> bytes
    encode_client(ClientMessage) -> bytes             (client side)
    decode_server(bytes) -> ServerMessage
"""

from __future__ import annotations

from ar_server.errors import ProtocolError
from ar_server.protocol.codec import decode_client, decode_server, encode_client, encode_server
from ar_server.protocol.messages import (
    CLIENT_KINDS,
    EVENT_KINDS,
    FRAME_OVERHEAD_BYTES,
    OUTCOMES,
    PROTOCOL_VERSION,
    STREAM_PATH,
    Bye,
    Choice,
    ClientKind,
    ClientMessage,
    End,
    Error,
    ErrorCode,
    Event,
    EventKind,
    Frame,
    Hello,
    Intrinsics,
    Limits,
    Notice,
    Obs,
    Outcome,
    Overlay,
    PartObs,
    PoseData,
    Progress,
    ServerMessage,
    Step,
    Timing,
    Welcome,
)

__all__ = [
    "CLIENT_KINDS", "EVENT_KINDS", "FRAME_OVERHEAD_BYTES", "OUTCOMES", "PROTOCOL_VERSION", "STREAM_PATH",
    "Bye", "Choice", "ClientKind", "ClientMessage", "End", "Error", "ErrorCode", "Event", "EventKind", "Frame",
    "Hello", "Intrinsics", "Limits", "Notice", "Obs", "Outcome", "Overlay", "PartObs", "PoseData", "Progress",
    "ProtocolError", "ServerMessage", "Step", "Timing", "Welcome",
    "decode_client", "decode_server", "encode_client", "encode_server",
]
