from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import msgpack
import numpy as np
import pytest

from ar_server.protocol import (
    Animate,
    Arrow,
    Bye,
    Choice,
    End,
    Error,
    Event,
    Frame,
    FrameError,
    Hello,
    Highlight,
    Intrinsics,
    Label,
    Limits,
    Notice,
    Obs,
    PartObs,
    PoseData,
    Progress,
    ProtocolError,
    Step,
    Timing,
    Welcome,
    decode_client,
    decode_server,
    encode_client,
    encode_server,
)
from tests.ar_server.protocol.jpegs import real_jpeg

JPEG = real_jpeg(64, 48)
CAMERA = {"fx": 500.0, "fy": 500.0, "cx": 32.0, "cy": 24.0, "width": 64, "height": 48}
SMALL = Limits(max_frame_bytes=4096, max_width=640, max_height=480, max_message_bytes=4096 + 1024)


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def hello(**changes: Any) -> dict[str, Any]:
    msg = {"t": "hello", "v": 1, "token": "fl1.x.y", "client": "phone", "locale": "de-CH", "camera": dict(CAMERA),
           "consent_store_frames": True}
    msg.update(changes)
    return msg


def frame(**changes: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"t": "frame", "v": 1, "seq": 7, "ts": 12.5, "jpeg": JPEG}
    msg.update(changes)
    return msg


def camera(**changes: Any) -> dict[str, Any]:
    return {**CAMERA, **changes}


# ---------------------------------------------------------------- good messages


def test_hello_decodes_every_field() -> None:
    msg = decode_client(pack(hello(scene="router_wan_red", product="router_ax1800", resume="abc-DEF_1")))
    assert msg == Hello(token="fl1.x.y", client="phone", locale="de-CH",
                        camera=Intrinsics(500.0, 500.0, 32.0, 24.0, 64, 48), scene="router_wan_red",
                        product="router_ax1800", resume="abc-DEF_1", consent_store_frames=True)


def test_minimal_hello_gets_defaults() -> None:
    msg = decode_client(pack({"t": "hello", "v": 1, "token": "t", "client": "bench"}))
    assert msg == Hello(token="t", client="bench")
    assert msg.locale == "en" and msg.camera is None and not msg.consent_store_frames


def test_frame_carries_the_size_the_client_declares() -> None:
    """The JPEG's own header is read by the session (tests/ar_server/session), not by the codec."""
    msg = decode_client(pack(frame()))
    assert isinstance(msg, Frame)
    assert (msg.seq, msg.ts, msg.width, msg.height, msg.jpeg) == (7, 12.5, 0, 0, JPEG)


def test_frame_accepts_matching_declared_size_and_integer_ts() -> None:
    msg = decode_client(pack(frame(width=64, height=48, ts=3)))
    assert isinstance(msg, Frame) and msg.ts == 3.0 and isinstance(msg.ts, float)
    assert (msg.width, msg.height) == (64, 48)


def test_unknown_fields_are_ignored() -> None:
    """Forward compatibility within v1: a newer client may add optional fields."""
    msg = decode_client(pack(frame(exposure_ms=8.0, extra={"nested": [1, 2]})))
    assert isinstance(msg, Frame) and msg.seq == 7


@pytest.mark.parametrize("msg", [
    Hello(token="tok", client="panda3d", camera=Intrinsics(600.0, 601.0, 319.5, 239.5, 640, 480)),
    Hello(token="tok", client="web", scene="s1", product="printer_lx400", resume="r", consent_store_frames=True),
    Frame(seq=0, ts=0.0, jpeg=JPEG),
    Frame(seq=2**53, ts=1.7e9, jpeg=real_jpeg(32, 32, progressive=True)),
    Event(kind="done", step="check_wan"),
    Event(kind="choose", choice="still_red"),
    Event(kind="help"),
    Bye(),
    Bye(reason="user closed the app"),
    Bye(reason=""),
])
def test_client_round_trip(msg: Any) -> None:
    assert decode_client(encode_client(msg)) == msg


OBS = Obs(seq=9, ts=12.5, product="router_ax1800", product_conf=0.93,
          pose=PoseData(R=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), t=(0.01, -0.02, 0.45)),
          parts={"led_internet": PartObs("red", 0.88, True), "port_wan": PartObs(None, 0.0, False)},
          timing=Timing(2.1, 11.0, 0.4, 0.6, 1.5, 15.6))


@pytest.mark.parametrize("msg", [
    Welcome(session="s-1", resume="tok_en", limits=Limits(), server_time=1.75e9, resumed=True),
    OBS,
    Obs(seq=1, ts=1.0, product=None, product_conf=0.0, pose=None, parts={}, timing=Timing()),
    Step(step="plug_wan", text="Plug the cable into the WAN port.",
         overlays=(Highlight("port_wan", "#ffcc00"), Arrow("port_wan", "in", "#ffb800"),
                   Label("port_wan", "WAN", "#ffb800"), Animate("port_wan", "plug", "#26d959")),
         choices=(Choice("yes", "Done"), Choice("still_red", "Still red")), progress=Progress(2, 5),
         accepts_done=True),
    Step(step="intro", text="", progress=Progress(1, 1)),
    Step(step="last", text="x", progress=Progress(5, 5)),
    Notice(code="hold_still", text="Hold the phone still"),
    Notice(code="turn_device", text="Turn the device so the camera can see the Power socket.", part="port_power"),
    End(outcome="resolved"),
    End(outcome="escalated", text="An agent will call you."),
    Error(code="bad_field", message="expected an int", fatal=False, field="seq", seq=3),
    Error(code="unauthorized", message="token expired", fatal=True, reason="token_expired"),
])
def test_server_round_trip(msg: Any) -> None:
    assert decode_server(encode_server(msg, check=True)) == msg


def test_obs_keeps_nil_product_and_pose_on_the_wire() -> None:
    body = msgpack.unpackb(encode_server(Obs(seq=1, ts=1.0, product=None, product_conf=0.0, pose=None,
                                             parts={"a": PartObs(None, 0.1, True)}, timing=Timing())))
    assert body["product"] is None and body["pose"] is None and body["parts"]["a"]["state"] is None
    assert list(body)[:2] == ["t", "v"] and body["v"] == 1


def test_encoder_accepts_numpy_scalars() -> None:
    rot = np.eye(3, dtype=np.float32)
    msg = Obs(seq=np.int64(4), ts=np.float64(2.0), product="p", product_conf=np.float32(0.5),  # type: ignore[arg-type]
              pose=PoseData(R=tuple(rot.ravel()), t=(np.float32(0), np.float32(0), np.float32(1))),  # type: ignore[arg-type]
              parts={}, timing=Timing())
    decoded = decode_server(encode_server(msg, check=True))
    assert isinstance(decoded, Obs) and decoded.pose is not None and decoded.pose.t == (0.0, 0.0, 1.0)


def test_overlays_travel_as_named_fields() -> None:
    body = msgpack.unpackb(encode_server(Step(step="s", text="x", overlays=(Animate("port_wan", "plug", "#26d959"),),
                                              progress=Progress(1, 3), accepts_done=True)))
    assert body["overlays"] == [{"kind": "animate", "part": "port_wan", "action": "plug", "color": "#26d959"}]
    assert body["progress"] == {"index": 1, "total": 3} and body["accepts_done"] is True


def step_with(*overlays: dict[str, Any]) -> bytes:
    return pack({"t": "step", "v": 1, "step": "s", "text": "x", "overlays": list(overlays)})


def test_decoder_skips_overlays_it_does_not_know() -> None:
    """Forward compatibility within v1: a newer server may add overlay kinds, directions and actions."""
    msg = decode_server(step_with(
        {"kind": "sparkle", "part": "port_wan", "color": "#ffffff"},
        {"kind": "arrow", "part": "port_wan", "direction": "spiral", "color": "#ffffff"},
        {"kind": "animate", "part": "port_wan", "action": "twist", "color": "#ffffff"},
        {"kind": "highlight", "part": "port_wan", "color": "#ffb800", "glow": 2}))
    assert isinstance(msg, Step) and msg.overlays == (Highlight("port_wan", "#ffb800"),)


@pytest.mark.parametrize(("overlay", "field"), [
    ({"kind": "highlight", "part": "port_wan", "color": "amber"}, "overlays[0].color"),
    ({"kind": "highlight", "part": "port_wan", "color": "#FFB800"}, "overlays[0].color"),
    ({"kind": "highlight", "color": "#ffb800"}, "overlays[0].part"),
    ({"kind": "label", "part": "port_wan", "text": 3, "color": "#ffb800"}, "overlays[0].text"),
    ({"kind": "animate", "part": "port_wan", "color": "#ffb800"}, "overlays[0].action"),
    ({"kind": 7, "part": "port_wan"}, "overlays[0].kind"),
])
def test_known_overlay_with_a_bad_field_is_refused(overlay: dict[str, Any], field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_server(step_with(overlay))
    assert info.value.field == field, str(info.value)


def test_frame_errors_name_the_frame() -> None:
    """Regression: an error about a refused frame could not say which frame it was."""
    with pytest.raises(FrameError) as info:
        decode_client(pack(frame(seq=5, jpeg=real_jpeg(8, 8) + b"\0" * 4096)), SMALL)
    assert (info.value.code, info.value.field, info.value.seq) == ("too_large", "jpeg", 5)


# ---------------------------------------------------------------- bad client input, one row per case

BAD_CLIENT: list[tuple[str, Any, str, str | None]] = [
    # (case, payload bytes or message dict, code, field)
    ("empty", b"", "bad_msgpack", None),
    ("not msgpack", b"\xc1", "bad_msgpack", None),
    ("truncated", pack(hello())[:-3], "bad_msgpack", None),
    ("trailing bytes", pack(hello()) + b"\x00", "bad_msgpack", None),
    ("invalid utf-8 str", b"\x81\xa1t\xa2\xff\xfe", "bad_msgpack", None),
    ("ext type", b"\xd6\xff\x00\x00\x00\x00", "bad_msgpack", None),
    ("array", pack([1, 2]), "not_a_map", None),
    ("int", pack(5), "not_a_map", None),
    ("int key", pack({1: 2, "t": "hello", "v": 1}), "not_a_map", None),
    ("bytes key", pack({b"t": "hello", "v": 1}), "not_a_map", None),
    ("too many maps", pack({"t": "bye", "v": 1, "x": [[{} for _ in range(60)] for _ in range(5)]}),
     "bad_msgpack", None),
    ("array too long", pack({"t": "bye", "v": 1, "x": list(range(65))}), "bad_msgpack", None),
    ("nested too deep", b"\x91" * 2000 + b"\x00", "bad_msgpack", None),
    ("missing v", {"t": "bye"}, "missing_field", "v"),
    ("v str", {"t": "bye", "v": "1"}, "bad_field", "v"),
    ("v bool", {"t": "bye", "v": True}, "bad_field", "v"),
    ("v 2", {"t": "bye", "v": 2}, "bad_version", "v"),
    ("missing t", {"v": 1}, "missing_field", "t"),
    ("t int", {"t": 3, "v": 1}, "bad_field", "t"),
    ("unknown t", {"t": "ping", "v": 1}, "unknown_type", "t"),
    ("server type from client", {"t": "welcome", "v": 1}, "unknown_type", "t"),
    ("hello no token", {"t": "hello", "v": 1, "client": "phone"}, "missing_field", "token"),
    ("hello empty token", hello(token=""), "bad_field", "token"),
    ("hello huge token", hello(token="x" * 5000), "bad_field", "token"),
    ("hello token bytes", hello(token=b"tok"), "bad_field", "token"),
    ("hello nil token", hello(token=None), "bad_field", "token"),
    ("hello bad client", hello(client="fridge"), "bad_field", "client"),
    ("hello bad locale", hello(locale="english please"), "bad_field", "locale"),
    ("hello camera not map", hello(camera=[1, 2]), "bad_field", "camera"),
    ("hello camera nan fx", hello(camera=camera(fx=math.nan)), "bad_field", "camera.fx"),
    ("hello camera inf fy", hello(camera=camera(fy=math.inf)), "bad_field", "camera.fy"),
    ("hello camera negative fx", hello(camera=camera(fx=-500.0)), "bad_field", "camera.fx"),
    ("hello camera zero fy", hello(camera=camera(fy=0)), "bad_field", "camera.fy"),
    ("hello camera cx outside", hello(camera=camera(cx=65.0)), "bad_field", "camera.cx"),
    ("hello camera negative cy", hello(camera=camera(cy=-1.0)), "bad_field", "camera.cy"),
    ("hello camera huge width", hello(camera=camera(width=100_000)), "bad_field", "camera.width"),
    ("hello camera float height", hello(camera=camera(height=48.0)), "bad_field", "camera.height"),
    ("hello camera missing fx", hello(camera={k: v for k, v in CAMERA.items() if k != "fx"}), "missing_field",
     "camera.fx"),
    ("hello scene with slash", hello(scene="../etc/passwd"), "bad_field", "scene"),
    ("hello product int", hello(product=7), "bad_field", "product"),
    ("hello resume with space", hello(resume="a b"), "bad_field", "resume"),
    ("hello consent str", hello(consent_store_frames="yes"), "bad_field", "consent_store_frames"),
    ("frame no jpeg", {"t": "frame", "v": 1, "seq": 1, "ts": 1.0}, "missing_field", "jpeg"),
    ("frame no seq", {"t": "frame", "v": 1, "ts": 1.0, "jpeg": JPEG}, "missing_field", "seq"),
    ("frame negative seq", frame(seq=-1), "bad_field", "seq"),
    ("frame huge seq", frame(seq=2**60), "bad_field", "seq"),
    ("frame float seq", frame(seq=1.0), "bad_field", "seq"),
    ("frame bool seq", frame(seq=True), "bad_field", "seq"),
    ("frame nan ts", frame(ts=math.nan), "bad_field", "ts"),
    ("frame negative ts", frame(ts=-0.5), "bad_field", "ts"),
    ("frame ts str", frame(ts="12.5"), "bad_field", "ts"),
    ("frame jpeg as str", frame(jpeg="ffd8"), "bad_field", "jpeg"),
    ("frame height negative", frame(height=-48), "bad_field", "height"),
    ("event bad kind", {"t": "event", "v": 1, "kind": "dance"}, "bad_field", "kind"),
    ("event choose no choice", {"t": "event", "v": 1, "kind": "choose"}, "missing_field", "choice"),
    ("event choice int", {"t": "event", "v": 1, "kind": "choose", "choice": 1}, "bad_field", "choice"),
    ("event step bad", {"t": "event", "v": 1, "kind": "done", "step": ""}, "bad_field", "step"),
    ("bye long reason", {"t": "bye", "v": 1, "reason": "x" * 300}, "bad_field", "reason"),
]


@pytest.mark.parametrize(("payload", "code", "field"), [row[1:] for row in BAD_CLIENT],
                         ids=[row[0] for row in BAD_CLIENT])
def test_bad_client_message(payload: Any, code: str, field: str | None) -> None:
    data = payload if isinstance(payload, bytes) else pack(payload)
    with pytest.raises(ProtocolError) as info:
        decode_client(data)
    assert (info.value.code, info.value.field) == (code, field), str(info.value)
    assert info.value.message


LIMITS_CASES: list[tuple[str, bytes, str, str | None]] = [
    ("message over max_message_bytes", pack(frame(jpeg=b"\xff\xd8" + b"\0" * 6000)), "too_large", None),
    ("jpeg over max_frame_bytes", pack(frame(jpeg=real_jpeg(8, 8) + b"\0" * 4096)), "too_large", "jpeg"),
    ("camera over max_width", pack(hello(camera=camera(width=641))), "bad_field", "camera.width"),
]


@pytest.mark.parametrize(("data", "code", "field"), [row[1:] for row in LIMITS_CASES],
                         ids=[row[0] for row in LIMITS_CASES])
def test_limits_from_config_apply(data: bytes, code: str, field: str | None) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_client(data, SMALL)
    assert (info.value.code, info.value.field) == (code, field)


def test_text_websocket_message_is_refused() -> None:
    with pytest.raises(ProtocolError, match="binary") as info:
        decode_client('{"t": "hello"}')  # type: ignore[arg-type]
    assert info.value.code == "bad_msgpack"


BAD_SERVER: list[tuple[str, dict[str, Any], str, str | None]] = [
    ("obs without product key", {"t": "obs", "v": 1, "seq": 1, "ts": 1.0, "product_conf": 0.0, "pose": None,
                                 "parts": {}, "timing": {}}, "missing_field", "product"),
    ("obs pose R short", {"t": "obs", "v": 1, "seq": 1, "ts": 1.0, "product": None, "product_conf": 0.0,
                          "pose": {"R": [1.0] * 8, "t": [0, 0, 1]}, "parts": {}, "timing": {}}, "bad_field", "pose"),
    ("obs conf above 1", {"t": "obs", "v": 1, "seq": 1, "ts": 1.0, "product": None, "product_conf": 1.5,
                          "pose": None, "parts": {}, "timing": {}}, "bad_field", "product_conf"),
    ("step progress past total", {"t": "step", "v": 1, "step": "s", "text": "x", "progress": {"index": 6,
                                                                                              "total": 5}},
     "bad_field", "progress.index"),
    ("step progress 0-based", {"t": "step", "v": 1, "step": "s", "text": "x", "progress": {"index": 0,
                                                                                           "total": 5}},
     "bad_field", "progress.index"),
    ("step accepts_done int", {"t": "step", "v": 1, "step": "s", "text": "x", "accepts_done": 1},
     "bad_field", "accepts_done"),
    ("error missing message", {"t": "error", "v": 1, "code": "x"}, "missing_field", "message"),
    ("client type from server", {"t": "hello", "v": 1}, "unknown_type", "t"),
]


@pytest.mark.parametrize(("payload", "code", "field"), [row[1:] for row in BAD_SERVER],
                         ids=[row[0] for row in BAD_SERVER])
def test_bad_server_message(payload: dict[str, Any], code: str, field: str | None) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_server(pack(payload))
    assert (info.value.code, info.value.field) == (code, field), str(info.value)


def test_encode_check_catches_an_invalid_server_message() -> None:
    with pytest.raises(ProtocolError) as info:
        encode_server(Notice(code="has space", text="x"), check=True)
    assert info.value.field == "code"
    with pytest.raises(ProtocolError) as info:
        encode_server(Notice(code="turn_device", text="x", part="port power"), check=True)
    assert info.value.field == "part"


def test_protocol_imports_no_heavy_packages() -> None:
    code = ("import sys, ar_server.protocol\n"
            "heavy = [m for m in ('aiohttp', 'cv2', 'torch', 'panda3d', 'numpy') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
