"""Random and mutated payloads into decode_client: only ProtocolError (or a valid message) may come out."""

from __future__ import annotations

from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ar_server.protocol import ClientMessage, Limits, ProtocolError, decode_client, decode_server
from tests.ar_server.protocol.jpegs import header_jpeg, real_jpeg

LIMITS = Limits(max_frame_bytes=8192, max_width=640, max_height=480, max_message_bytes=8192 + 1024)
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

JPEGS = [real_jpeg(32, 24), real_jpeg(16, 16, progressive=True), header_jpeg(640, 480), header_jpeg(9999, 10)]
VALID = [
    {"t": "hello", "v": 1, "token": "tok", "client": "phone", "locale": "en",
     "camera": {"fx": 500.0, "fy": 500.0, "cx": 16.0, "cy": 12.0, "width": 32, "height": 24}, "scene": "s",
     "product": "p", "resume": "r", "consent_store_frames": False},
    {"t": "frame", "v": 1, "seq": 3, "ts": 1.25, "jpeg": JPEGS[0], "width": 32, "height": 24},
    {"t": "event", "v": 1, "kind": "choose", "choice": "a", "step": "s"},
    {"t": "bye", "v": 1, "reason": "done"},
]

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), st.binary(max_size=40),
                    st.sampled_from(JPEGS))
map_keys = st.one_of(st.text(max_size=8), st.integers(-(2**63), 2**64 - 1))
plain = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(map_keys, inner, max_size=5)), max_leaves=20)
keys = st.sampled_from(["t", "v", "token", "client", "locale", "camera", "scene", "product", "resume", "seq", "ts",
                        "jpeg", "width", "height", "kind", "choice", "step", "reason", "fx", "cx",
                        "consent_store_frames"])


def check(data: bytes) -> None:
    try:
        msg = decode_client(data, LIMITS)
    except ProtocolError as exc:
        assert exc.code and exc.message
        return
    assert isinstance(msg, ClientMessage)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    check(data)


@FUZZ
@given(plain)
def test_random_msgpack_values(value: Any) -> None:
    check(msgpack.packb(value, use_bin_type=True))


@FUZZ
@given(st.sampled_from(VALID), st.dictionaries(keys, plain, max_size=4), st.lists(keys, max_size=3))
def test_mutated_valid_messages(base: dict[str, Any], replace: dict[str, Any], drop: list[str]) -> None:
    msg = {**base, **replace}
    for key in drop:
        msg.pop(key, None)
    check(msgpack.packb(msg, use_bin_type=True))


@FUZZ
@given(st.sampled_from(VALID), st.data())
def test_bit_flipped_valid_messages(base: dict[str, Any], data: st.DataObject) -> None:
    raw = bytearray(msgpack.packb(base, use_bin_type=True))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(raw)))
    check(bytes(raw[:cut]))


@settings(max_examples=500, deadline=None)
@given(plain)
def test_decode_server_random_values(value: Any) -> None:
    try:
        decode_server(msgpack.packb(value, use_bin_type=True))
    except ProtocolError:
        pass
