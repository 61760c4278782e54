"""The part reader: why a part is not read, and the LED fallback when no part-state network is installed."""

from __future__ import annotations

from pathlib import Path

from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import default_catalog
from tests.vision.synthetic import as_camera_frame, draw_led, housing
from vision.part_reader import READ_ANGLE_DEG, PartReader, unreadable
from vision.parts import project_parts, visible_in_some_state

CAMERA = CameraIntrinsics.from_fov(640, 480)


def test_without_a_network_leds_are_read_by_colour_and_other_parts_are_unknown() -> None:
    router = default_catalog().get("router_ax1800")
    pose = Pose.orbit(10, 40, 0.45)
    truth = router.fault_states("wan_unplugged")  # internet red, the rest healthy
    projected = project_parts(router, pose, CAMERA, {}, READ_ANGLE_DEG)
    img = housing(480, 640)
    for part in router.parts:
        if part.kind == "led":
            draw_led(img, projected[part.name].uv, max(projected[part.name].size_px), truth[part.name])
    states = PartReader(None).read(as_camera_frame(img), router, pose, CAMERA)
    assert set(states) == {p.name for p in router.stateful_parts()}
    for name in ("led_power", "led_internet", "led_wifi", "led_lan1", "led_lan2"):
        assert states[name].state == truth[name], (name, states[name])
        assert states[name].confidence > 0.8 and states[name].visible
    # Ports face the back: unknown, with the reason, never guessed.
    assert states["port_wan"].state is None and states["port_wan"].reason == "facing_away"


def test_a_reader_without_installed_weights_has_no_network(tmp_path: Path) -> None:
    assert PartReader.from_weights(tmp_path).net is None


def test_a_cover_seen_from_behind_is_not_read_because_the_body_hides_it() -> None:
    printer = default_catalog().get("printer_lx400")
    pose = Pose.orbit(180, 20, 1.0)
    part = printer.part("cover_front")
    projected = visible_in_some_state(printer, part, pose, CAMERA, {}, max_angle_deg=READ_ANGLE_DEG)
    assert projected.visible  # two-sided and facing the camera when open: the facing rule alone would read it
    assert unreadable(printer, part, projected, pose, CAMERA, {}) == "behind_product"
    front = Pose.orbit(0, 20, 1.0)
    projected = visible_in_some_state(printer, part, front, CAMERA, {}, max_angle_deg=READ_ANGLE_DEG)
    assert unreadable(printer, part, projected, front, CAMERA, {}) is None
