"""Anchoring: in the composed AR view, the highlight lands on the part's true projected position."""

from __future__ import annotations

import numpy as np
import pytest

from ar_server.protocol import Highlight
from client_panda3d.ar_view import ARView
from client_panda3d.pose_filter import PoseTracker
from client_panda3d.steps import Status, StepView
from product_models.camera import CameraIntrinsics
from product_models.catalog import default_catalog
from product_models.render import Renderer
from product_models.twin import Twin
from product_models.virtual_camera import HandheldCamera, VirtualCamera

CAMERA_FPS = 30.0
RESULT_HZ = 8.0
LATENCY_S = 0.1
TOLERANCE_PX = 8.0


def handheld_run(part: str, seconds: float, seed: int = 5, *, predict: bool = True, vision: bool = False,
                 size: tuple[int, int] = (320, 240)):
    """Yield (truth uv, drawn uv, shot) per camera frame: poses arrive as 'server results' at RESULT_HZ,
    each LATENCY_S after the frame it belongs to; the view draws every camera frame. The poses are the
    ground truth, or with ``vision`` what the real pipeline (shipped weights) estimates from the frame's
    JPEG; a frame it cannot read gives no result, as on the server."""
    product = default_catalog().get("router_ax1800")
    camera = CameraIntrinsics.from_fov(*size)
    pipeline = None
    if vision:
        import cv2

        from vision.pipeline import FrameInput, Pipeline

        pipeline = Pipeline(backend="onnx")  # this process renders: never torch
    twin = Twin(product, fault="wan_unplugged", now=0.0)
    handheld = HandheldCamera(product, camera, seed=seed, look_at=part)
    renderer = Renderer(320, 240)
    vcam = VirtualCamera(twin, handheld, renderer)
    view = ARView(product, camera)
    tracker = PoseTracker(predict=predict)
    step = StepView("s", "Plug the cable into the WAN port.", (Highlight(part, "#ffb800"),))
    pending: list[tuple[float, object]] = []  # (arrives at, (ts, pose))
    next_result = 0.0
    out = []
    for i in range(int(seconds * CAMERA_FPS)):
        now = i / CAMERA_FPS
        image, truth = vcam.capture(now)
        if now >= next_result:  # the server takes this frame
            pose = truth.pose
            if pipeline is not None:
                _ok, jpeg = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
                pose = pipeline.process(FrameInput(jpeg.tobytes(), i, now, camera)).pose
            if pose is not None:
                pending.append((now + LATENCY_S, (now, pose)))
            next_result += 1.0 / RESULT_HZ
        while pending and pending[0][0] <= now:
            _, (ts, pose) = pending.pop(0)
            tracker.add(ts, pose, now)
        shot = view.compose(image, tracker.pose_at(now), truth.states, step, Status("connected", True), now=now,
                            opacity=tracker.opacity(now), panel=False)
        if part in shot.anchors_uv and truth.parts[part].visible:
            out.append((truth.parts[part].center_uv, shot.anchors_uv[part], shot))
    view.close()
    renderer.close()
    return out


def test_highlight_within_8px_on_90_percent_of_frames() -> None:
    rows = handheld_run("port_wan", 4.0)
    assert len(rows) > 60, "the part must be in view for most of the run"
    errors = np.array([np.linalg.norm(t - d) for t, d, _ in rows])
    share = float((errors <= TOLERANCE_PX).mean())
    print(f"anchoring: {share:.1%} of {len(rows)} frames within {TOLERANCE_PX} px; "
          f"median {np.median(errors):.2f} px, p95 {np.percentile(errors, 95):.2f} px")
    assert share >= 0.9


def test_highlight_with_vision_poses_within_8px_on_90_percent_of_frames() -> None:
    """Hand-held runs at 640 x 480 with the poses the real detector, keypoint network and PnP estimate from
    each frame sent (what a customer sees): a port on the back and a status light, three camera paths each."""
    errors = []
    for part in ("port_wan", "led_internet"):
        for seed in (1, 2, 3):
            rows = handheld_run(part, 4.0, seed=seed, vision=True, size=(640, 480))
            assert len(rows) > 60, f"{part}, seed {seed}: the part must be in view, and recognised, most of the run"
            errors += [float(np.linalg.norm(t - d)) for t, d, _ in rows]
    e = np.array(errors)
    share = float((e <= TOLERANCE_PX).mean())
    print(f"anchoring with vision poses: {share:.1%} of {len(e)} frames within {TOLERANCE_PX} px; "
          f"median {np.median(e):.2f} px, p95 {np.percentile(e, 95):.2f} px")
    assert share >= 0.9


def test_reported_anchor_is_where_the_ring_is_drawn() -> None:
    """The anchor read back through the lens matches the amber ring's pixels in the composed image."""
    rows = handheld_run("port_wan", 0.5)
    _, drawn, shot = rows[-1]
    img = shot.image.astype(int)
    amber = (img[:, :, 0] > 200) & (img[:, :, 1] > 120) & (img[:, :, 1] < 215) & (img[:, :, 2] < 90)
    ys, xs = np.nonzero(amber)
    near = np.hypot(xs - drawn[0], ys - drawn[1]) < 30
    assert near.sum() > 10
    centre = np.array([xs[near].mean(), ys[near].mean()])
    assert np.linalg.norm(centre - drawn) < 3.0


@pytest.mark.parametrize("age, expected", [(0.5, 1.0), (1.25, 0.5), (2.0, 0.0)])
def test_stale_overlay_fades(age: float, expected: float) -> None:
    from product_models.camera import Pose

    tracker = PoseTracker()
    tracker.add(0.0, Pose.orbit(0, 20, 0.5), received=0.0)
    assert tracker.opacity(age) == pytest.approx(expected)
