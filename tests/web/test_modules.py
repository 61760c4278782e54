"""The page's pure modules, run in Chromium and held to the Python they mirror: the msgpack subset against
msgpack-python (what the server packs and unpacks), the pose filter against client_panda3d/pose_filter.py,
and the camera model against product_models/camera.py."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np
import pytest

from ar_server.protocol import (
    Animate,
    Choice,
    Highlight,
    Limits,
    Obs,
    PartObs,
    PoseData,
    Progress,
    Step,
    Timing,
    Welcome,
    encode_server,
)
from client_panda3d.pose_filter import PoseTracker
from product_models.camera import CameraIntrinsics, Pose
from tests.web.conftest import ServerThread, watch_errors


@pytest.fixture(scope="module")
def js(browser: Any, page_server: ServerThread) -> Iterator[Any]:
    """``js(expression_body, arg)``: run an async function body in the page with the modules imported."""
    context = browser.new_context()
    page = context.new_page()
    watch_errors(page)
    page.goto(page_server.url + "/")  # without a token the page stops at once; its origin is what matters

    def run(body: str, arg: Any = None) -> Any:
        return page.evaluate(
            "async (arg) => { const mp = await import('/web/js/msgpack.js');"
            " const pose = await import('/web/js/pose.js'); const cam = await import('/web/js/camera.js');"
            " const ov = await import('/web/js/overlays.js'); const i18n = await import('/web/js/i18n.js');"
            f" {body} }}", arg)

    yield run
    context.close()
    assert not page.errors, page.errors


ENCODED = [
    None, True, False, 0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53 - 1,
    -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**53) + 1,
    0.5, -1.25, 1764500000.125, 1e-300, "", "a", "ä€😀", "x" * 31, "x" * 32, "x" * 255, "x" * 256, "x" * 65536,
    [], list(range(15)), list(range(16)), {"t": "hello", "v": 1},
    {f"k{i}": i for i in range(15)}, {f"k{i}": i for i in range(16)}, {"nested": [{"a": [1, [2, {"b": None}]]}]},
]


@pytest.mark.parametrize("value", ENCODED, ids=lambda v: repr(v)[:30])
def test_msgpack_encodes_as_msgpack_python_does(js: Any, value: Any) -> None:
    out = js("return Array.from(mp.encode(arg));", value)
    assert bytes(out) == msgpack.packb(value, use_bin_type=True)


def test_msgpack_encodes_bytes_as_bin_and_floats_on_request(js: Any) -> None:
    out = js("return [Array.from(mp.encode(new Uint8Array(arg))), Array.from(mp.encode(new mp.Float(3)))];",
             list(range(300)))
    assert bytes(out[0]) == msgpack.packb(bytes(range(256)) + bytes(range(44)), use_bin_type=True)
    assert bytes(out[1]) == b"\xcb" + struct.pack(">d", 3.0)


SERVER_MESSAGES = [
    Welcome("s1", "resume-token", Limits(), 1764500000.25, resumed=True),
    Step("check_wan", "Stecken Sie das Kabel ein: ä ö ü ß", overlays=(Highlight("port_wan", "#ffcc00"),
         Animate("port_wan", "plug", "#ffcc00")), choices=(Choice("still_red", "Rot"),), progress=Progress(1, 4),
         accepts_done=True),
    Obs(41, 1523.071, "router_ax1800", 0.94, PoseData((1.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 1.0, 0.0),
        (0.01, 0.03, 0.42)), {"led_internet": PartObs("red", 0.91, True), "port_wan": PartObs(None, 0.0, False)},
        Timing(2.1, 14.8, 0.4, 0.9, 3.0, 21.6)),
]


@pytest.mark.parametrize("message", SERVER_MESSAGES, ids=lambda m: m.t)
def test_msgpack_decodes_what_the_server_sends(js: Any, message: Any) -> None:
    data = encode_server(message, check=True)
    out = js("return JSON.stringify(mp.decode(new Uint8Array(arg)));", list(data))
    assert json.loads(out) == msgpack.unpackb(data)


@pytest.mark.parametrize("data, why", [
    (b"\xca" + struct.pack(">f", 1.5), None),  # float32 is fine
    (b"\xd4\x01\x00", "ext"), (b"\xc7\x00\x01", "ext"), (b"\x81\xa1t", "truncated"), (b"\x01\x02", "after"),
    (b"\xa2\xc3\x28", "UTF-8"), (b"\x81\x01\x02", "key"), (b"\xc1", "reserved"), (b"", "truncated"),
])
def test_msgpack_refuses_what_the_protocol_refuses(js: Any, data: bytes, why: str | None) -> None:
    out = js("try { return {value: mp.decode(new Uint8Array(arg))}; } catch (e) {"
             " return {error: e.message, ours: e instanceof mp.MsgpackError}; }", list(data))
    if why is None:
        assert out == {"value": 1.5}
    else:
        assert out["ours"] and why in out["error"], out


def test_intrinsics_match_the_servers_default_camera(js: Any) -> None:
    for width, height in ((640, 480), (1280, 960), (320, 240)):
        got = js("return cam.intrinsics(arg[0], arg[1]);", [width, height])
        want = CameraIntrinsics.from_fov(width, height)
        assert got == pytest.approx({"fx": want.fx, "fy": want.fy, "cx": want.cx, "cy": want.cy, "width": width,
                                     "height": height}, rel=1e-12)
    portrait = js("return cam.intrinsics(480, 640);")
    assert portrait["fx"] == pytest.approx(CameraIntrinsics.from_fov(640, 480).fx)  # the long side spans 63 degrees
    assert js("return cam.fitWithin(640, 480, 320, 1920);") == {"width": 320, "height": 240}


def test_the_projection_puts_a_point_on_the_pixel_opencv_does(js: Any) -> None:
    camera = CameraIntrinsics.from_fov(640, 480)
    pose = Pose.look_at((0.1, -0.4, 0.25), (0.0, 0.0, 0.02))
    point = np.array([0.036, 0.075, 0.017])
    cam_point = pose.transform(point[None, :])[0]
    u = camera.fx * cam_point[0] / cam_point[2] + camera.cx
    v = camera.fy * cam_point[1] / cam_point[2] + camera.cy
    ndc = js("const c = cam.intrinsics(640, 480); const p = ov.poseMatrix(arg.pose);"
             " const m = ov.projectionMatrix(c).multiply(p).elements;"
             " const [x, y, z] = arg.point; const clip = [0, 1, 2, 3].map((r) =>"
             " m[r] * x + m[4 + r] * y + m[8 + r] * z + m[12 + r]); return [clip[0] / clip[3], clip[1] / clip[3]];",
             {"pose": {"R": pose.R.ravel().tolist(), "t": pose.t.tolist()}, "point": point.tolist()})
    # NDC -1..1 spans the image edges; pixel centres sit half a pixel in.
    assert (ndc[0] + 1) / 2 * 640 - 0.5 == pytest.approx(u, abs=1e-6)
    assert (1 - ndc[1]) / 2 * 480 - 0.5 == pytest.approx(v, abs=1e-6)


def test_pose_tracker_draws_what_the_panda3d_clients_draws(js: Any) -> None:
    poses = [Pose.orbit(170 + 4 * i, 30 + i, 0.45 - 0.01 * i) for i in range(4)]
    samples = [(10.0 + 0.12 * i, p, 10.05 + 0.12 * i) for i, p in enumerate(poses)]
    times = [10.06, 10.1, 10.2, 10.31, 10.4, 10.45, 10.5, 10.7, 11.2, 11.5, 11.7, 12.0]
    python = PoseTracker()
    want = []
    queue = list(samples)
    for now in times:
        while queue and queue[0][2] <= now:
            ts, pose, received = queue.pop(0)
            python.add(ts, pose, received)
        drawn = python.pose_at(now)
        want.append(None if drawn is None else (drawn.R.ravel().tolist(), drawn.t.tolist(), python.opacity(now)))
    got = js("const tracker = new pose.PoseTracker(); const queue = [...arg.samples]; const out = [];"
             " for (const now of arg.times) {"
             "  while (queue.length && queue[0].received <= now) { const s = queue.shift();"
             "   tracker.add(s.ts, {R: s.R, t: s.t}, s.received); }"
             "  const p = tracker.poseAt(now); out.push(p && [p.R, p.t, tracker.opacity(now)]); }"
             " return out;",
             {"times": times, "samples": [{"ts": ts, "R": p.R.ravel().tolist(), "t": p.t.tolist(), "received": r}
                                          for ts, p, r in samples]})
    for now, w, g in zip(times, want, got, strict=True):
        assert (w is None) == (g is None), now
        if w is not None:
            assert np.allclose(g[0], w[0], atol=1e-9) and np.allclose(g[1], w[1], atol=1e-9), now
            assert math.isclose(g[2], w[2], abs_tol=1e-9), now


def test_rotation_log_and_exp_agree_near_half_a_turn(js: Any) -> None:
    from client_panda3d.pose_filter import rotation_exp, rotation_log

    for w in ([0.0, 0.0, math.pi - 1e-8], [0.3, -0.2, 0.1], [math.pi * 0.6, math.pi * 0.8, 0.0]):
        R = rotation_exp(np.array(w))
        got = js("return pose.rotationLog(arg);", R.ravel().tolist())
        assert np.allclose(got, rotation_log(R), atol=1e-6)


def test_locale_is_taken_from_the_browser_when_the_protocol_accepts_it(js: Any) -> None:
    assert js("return i18n.browserLocale(['de-CH', 'en']);") == "de-CH"
    assert js("return i18n.browserLocale(['x', 'en-US-u-ca-buddhist-long-tag', 'es']);") == "es"
    assert js("return i18n.browserLocale([]);") == "en"
    assert js("return i18n.words('pt-BR').done;") == "Done"


def test_part_transform_moves_parts_as_the_catalog_does(js: Any) -> None:
    """An opened cover turns on its hinge, an opened tray slides out and the paper in it rides along."""
    from ar_server.rest import _product_json
    from product_models.catalog import default_catalog

    printer = default_catalog().get("printer_lx400")
    parts = _product_json(printer, True)["parts"]
    cases = [("cover_front", {"cover_front": "open"}), ("tray_paper", {"tray_paper": "open"}),
             ("tray_media", {"tray_paper": "open", "tray_media": "loaded"}), ("tray_media", {}),
             ("cover_front", {"cover_front": "closed"})]
    got = js("const parts = new Map(arg.parts.map((p) => [p.name, p]));"
             " return arg.cases.map(([name, states]) => ov.partTransform(parts, name, states).elements);",
             {"parts": parts, "cases": cases})
    for (name, states), elements in zip(cases, got, strict=True):
        want = printer.part_transform(name, states)
        assert np.allclose(np.asarray(elements).reshape(4, 4).T, want, atol=1e-9), (name, states)
    assert not np.allclose(printer.part_transform("cover_front", {"cover_front": "open"}), np.eye(4))
