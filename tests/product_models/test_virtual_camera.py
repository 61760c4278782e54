from __future__ import annotations

import numpy as np
import pytest

from product_models import CatalogError, default_catalog
from product_models.camera import CameraIntrinsics, project
from product_models.twin import Twin
from product_models.virtual_camera import HandheldCamera, HandheldSample, VirtualCamera

CAM = CameraIntrinsics.from_fov(640, 480)
FPS = 30.0


def _walk(handheld: HandheldCamera, t0: float, t1: float) -> list[HandheldSample]:
    return [handheld.sample_at(t) for t in np.arange(t0, t1, 1.0 / FPS)]


@pytest.mark.parametrize("product_id", ["router_ax1800", "printer_lx400"])
@pytest.mark.parametrize("seed", [0, 7])
def test_walk_stays_within_ranges(product_id: str, seed: int) -> None:
    product = default_catalog().get(product_id)
    handheld = HandheldCamera(product, CAM, seed=seed, yaw_range=(-30.0, 20.0), pitch_range=(15.0, 50.0),
                              roll_range=(-5.0, 5.0))
    samples = _walk(handheld, 0.0, 4.0)
    handheld.aim(product.parts[-1].name, 4.0)  # ranges hold while the walk turns toward a part, too
    samples += _walk(handheld, 4.0, 20.0)
    lo, hi = handheld.distance_range
    for s in samples:
        assert -30.0 - 1e-9 <= s.yaw_deg - s.centre_yaw_deg <= 20.0 + 1e-9
        assert 15.0 <= s.pitch_deg <= 50.0
        assert lo - 1e-9 <= s.distance <= hi + 1e-9
        assert -5.0 - 1e-9 <= s.roll_deg <= 5.0 + 1e-9
        np.testing.assert_allclose(s.pose.R @ s.pose.R.T, np.eye(3), atol=1e-9)
    # It does wander: a handheld phone is never still.
    yaws = np.array([s.yaw_deg for s in samples[:120]])
    assert yaws.max() - yaws.min() > 2.0


def test_motion_is_smooth_frame_to_frame() -> None:
    router = default_catalog().get("router_ax1800")
    handheld = HandheldCamera(router, CAM, seed=3, shake_px=1.5)
    samples = _walk(handheld, 0.0, 2.0)
    handheld.aim("port_wan", 2.0)  # the fastest motion: walking round to the back
    samples += _walk(handheld, 2.0, 12.0)
    yaw = np.array([s.yaw_deg for s in samples])
    pitch = np.array([s.pitch_deg for s in samples])
    dist = np.array([s.distance for s in samples])
    centre_uv = np.array([project(handheld.centre_point, s.pose, CAM)[0][0] for s in samples])
    assert np.abs(np.diff(yaw)).max() < 5.0  # degrees per frame at 30 fps
    assert np.abs(np.diff(pitch)).max() < 2.0
    assert np.abs(np.diff(dist)).max() < 0.02  # metres per frame
    # Velocity is continuous too (no Brownian jitter): the per-frame change itself changes slowly.
    assert np.abs(np.diff(yaw, 2)).max() < 1.5
    assert np.linalg.norm(np.diff(centre_uv, axis=0), axis=1).max() < 15.0  # pixels per frame


def test_shake_is_small_and_high_frequency() -> None:
    router = default_catalog().get("router_ax1800")
    still = HandheldCamera(router, CAM, seed=5, shake_px=0.0)
    shaky = HandheldCamera(router, CAM, seed=5, shake_px=2.0)
    offsets = []
    for t in np.arange(0.0, 3.0, 1.0 / FPS):
        a = project(still.centre_point, still.pose_at(t), CAM)[0][0]
        b = project(shaky.centre_point, shaky.pose_at(t), CAM)[0][0]
        offsets.append(np.linalg.norm(a - b))
    assert 0.3 < float(np.sqrt(np.mean(np.square(offsets)))) < 4.0
    assert max(offsets) < 8.0


def test_seeded_runs_are_identical_and_independent_of_sampling_rate() -> None:
    router = default_catalog().get("router_ax1800")

    def run(seed: int, fps: float) -> np.ndarray:
        handheld = HandheldCamera(router, CAM, seed=seed)
        for t in np.arange(0.0, 3.0, 1.0 / fps):
            handheld.pose_at(t)
        handheld.aim("led_internet", 3.0)
        for t in np.arange(3.0, 6.0, 1.0 / fps):
            handheld.pose_at(t)
        return handheld.pose_at(6.0).as_matrix()

    np.testing.assert_array_equal(run(11, 30.0), run(11, 30.0))
    np.testing.assert_allclose(run(11, 30.0), run(11, 7.0), atol=1e-9)
    assert not np.allclose(run(11, 30.0), run(12, 30.0))


AIM_CASES = [
    ("router_ax1800", "port_wan"), ("router_ax1800", "pinhole_reset"), ("router_ax1800", "button_wifi"),
    ("router_ax1800", "led_internet"), ("printer_lx400", "tray_paper"), ("printer_lx400", "led_status"),
    ("printer_lx400", "cover_front"),
]


@pytest.mark.parametrize(("product_id", "part_name"), AIM_CASES)
@pytest.mark.parametrize("start_yaw", [0.0, 120.0])
def test_aim_turns_the_part_toward_the_camera_and_keeps_the_product_in_frame(
        product_id: str, part_name: str, start_yaw: float) -> None:
    product = default_catalog().get(product_id)
    part = product.part(part_name)
    handheld = HandheldCamera(product, CAM, seed=2, start_yaw_deg=start_yaw)
    _walk(handheld, 0.0, 1.0)
    handheld.aim(part_name, 1.0)
    assert handheld.aimed_part == part_name
    for s in _walk(handheld, 5.0, 15.0):  # within 4 s of the aim, and from then on
        to_camera = s.pose.camera_position - np.asarray(part.anchor)
        facing = float(np.dot(part.normal, to_camera / np.linalg.norm(to_camera)))
        assert facing > 0.3, f"t={s.t:.2f}: {part_name} faces away (dot {facing:.2f})"
        uv, depth = project(np.array([handheld.centre_point, part.anchor]), s.pose, CAM)
        assert (depth > 0).all()
        assert ((uv >= 0) & (uv <= [CAM.width - 1, CAM.height - 1])).all(), f"t={s.t:.2f}: {uv}"


def test_look_at_starts_facing_the_part() -> None:
    router = default_catalog().get("router_ax1800")
    handheld = HandheldCamera(router, CAM, seed=4, look_at="port_wan")
    s = handheld.sample_at(0.0)
    assert abs(abs(s.centre_yaw_deg) - 180.0) < 1e-9
    assert handheld.aimed_part == "port_wan"


def test_bad_input_is_refused() -> None:
    router = default_catalog().get("router_ax1800")
    handheld = HandheldCamera(router, CAM, seed=0)
    handheld.pose_at(2.0)
    with pytest.raises(ValueError, match="time must not go back"):
        handheld.pose_at(1.0)
    with pytest.raises(CatalogError, match="no part 'port_usb'"):
        handheld.aim("port_usb", 3.0)
    with pytest.raises(ValueError, match="pitch_range"):
        HandheldCamera(router, CAM, pitch_range=(50.0, 10.0))
    with pytest.raises(ValueError, match="distance_range must be > 0"):
        HandheldCamera(router, CAM, distance_range=(-1.0, 1.0))
    printer = default_catalog().get("printer_lx400")
    with pytest.raises(ValueError, match="walks around 'router_ax1800' but the twin is 'printer_lx400'"):
        VirtualCamera(Twin.healthy(printer), handheld)


def test_capture_renders_the_twin_states_from_the_handheld_pose() -> None:
    from product_models.render import Renderer

    router = default_catalog().get("router_ax1800")
    cam = CameraIntrinsics.from_fov(320, 240)
    twin = Twin(router, fault="wan_unplugged")
    camera = VirtualCamera(twin, HandheldCamera(router, cam, seed=1, look_at="led_internet"),
                           Renderer(cam.width, cam.height))
    same_walk = HandheldCamera(router, cam, seed=1, look_at="led_internet")
    twin.act("plug", "port_wan", now=1.0)
    colours = {}
    for t, expected in ((1.0, "amber"), (1.25, "off"), (5.0, "green")):  # blink lit, blink dark, connected
        image, truth = camera.capture(t)
        assert image.shape == (240, 320, 3) and image.dtype == np.uint8
        assert truth.states == twin.states(t)
        np.testing.assert_allclose(truth.pose.as_matrix(), same_walk.pose_at(t).as_matrix(), atol=1e-12)
        led = truth.parts["led_internet"]
        assert led.visible and led.state == expected
        u, v = np.round(led.center_uv).astype(int)
        colours[expected] = image[v - 1:v + 2, u - 1:u + 2].reshape(-1, 3).mean(axis=0)
    r, g, b = colours["amber"]
    assert r > g > b and r > 100  # lit amber
    assert colours["off"].max() < r - 40  # the dark half of the blink is visibly darker
    r, g, b = colours["green"]
    assert g > r + 40 and g > b + 40
