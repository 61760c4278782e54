from __future__ import annotations

import numpy as np
import pytest

from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import default_catalog
from vision.parts import project_parts

CAMERA = CameraIntrinsics.from_fov(640, 480)


def test_front_view_sees_top_and_front_not_back() -> None:
    router = default_catalog().get("router_ax1800")
    parts = project_parts(router, Pose.orbit(0, 30, 0.5), CAMERA)
    assert parts["led_internet"].visible and parts["button_wifi"].visible
    assert not parts["port_wan"].visible and not parts["pinhole_reset"].visible
    led = parts["led_power"]
    assert led.size_px[0] == pytest.approx(0.004 * CAMERA.fx / led.depth)
    assert 3.0 < led.size_px[0] < 6.0  # a 4 mm LED at about half a metre


def test_back_view_sees_the_ports() -> None:
    router = default_catalog().get("router_ax1800")
    parts = project_parts(router, Pose.orbit(180, 25, 0.5), CAMERA)
    assert all(parts[p].visible for p in ("port_wan", "port_lan1", "port_power", "pinhole_reset"))
    assert not parts["button_wifi"].visible
    # seen from behind, +x (product right) is on the left of the image
    assert parts["port_power"].uv[0] < parts["pinhole_reset"].uv[0]


def test_parts_outside_the_frame_are_not_visible() -> None:
    router = default_catalog().get("router_ax1800")
    parts = project_parts(router, Pose.orbit(0, 30, 0.5, target=(0.8, 0.0, 0.0)), CAMERA)
    assert not any(p.visible for p in parts.values())


def test_moving_parts_follow_their_state() -> None:
    printer = default_catalog().get("printer_lx400")
    view = Pose.orbit(0, 30, 0.9)
    closed = project_parts(printer, view, CAMERA)
    opened = project_parts(printer, view, CAMERA, {"tray_paper": "open", "cover_front": "open"})
    # the open tray slides 17 cm toward the camera: it looks lower in the image and closer
    assert opened["tray_paper"].depth < closed["tray_paper"].depth - 0.1
    assert opened["tray_paper"].uv[1] > closed["tray_paper"].uv[1]
    # the paper rides in the tray
    assert opened["tray_media"].depth < closed["tray_media"].depth - 0.1
    # the open cover's outer face turns down, away from a camera above; a cover is a thin sheet, so its
    # inner face, turned up, is what that camera sees (the renderer's ground truth agrees)
    assert closed["cover_front"].visible and opened["cover_front"].visible
    assert opened["cover_front"].uv[1] > closed["cover_front"].uv[1]


def test_an_open_front_cover_seen_from_behind_is_behind_the_body() -> None:
    from vision.parts import behind_body

    printer = default_catalog().get("printer_lx400")
    behind = Pose.orbit(180, 20, 1.0).camera_position
    front = Pose.orbit(0, 20, 1.0).camera_position
    for state in ("closed", "open"):
        anchor = printer.anchor_at("cover_front", {"cover_front": state})
        assert behind_body(printer, anchor, behind), state
        assert not behind_body(printer, anchor, front), state
    # A point inside the body (paper in the cassette) is left to the part-state network.
    assert not behind_body(printer, np.array([0.0, 0.0, 0.1]), behind)


@pytest.mark.parametrize("product_id", sorted(default_catalog().products))
def test_each_part_is_placed_and_measured_as_the_ground_truth_does(product_id: str) -> None:
    """``project_parts`` places and sizes parts with its own faster arithmetic; it must agree with the
    renderer's ground truth (``Product.anchor_at``, ``render_truth.part_samples``' corners) in every state."""
    from product_models.camera import project
    from product_models.render_truth import part_samples

    product = default_catalog().get(product_id)
    placements = [product.healthy_states()] + [product.fault_states(f) for f in sorted(product.faults)]
    for yaw, pitch, distance in ((0, 30, 0.5), (150, 20, 0.9), (-70, 55, 0.4)):
        pose = Pose.orbit(yaw, pitch, distance)
        for states in placements:
            projected = project_parts(product, pose, CAMERA, states)
            for part in product.parts:
                got = projected[part.name]
                uv, depth = project(product.anchor_at(part.name, states)[None, :], pose, CAMERA)
                assert got.uv == pytest.approx(tuple(uv[0]), abs=1e-9) and got.depth == pytest.approx(depth[0])
                c_uv, c_depth = project(part_samples(part, product.part_transform(part.name, states))[2], pose, CAMERA)
                extent = float((c_uv.max(axis=0) - c_uv.min(axis=0)).max()) if (c_depth > 1e-6).all() else 0.0
                assert got.extent_px == pytest.approx(extent, rel=1e-9, abs=1e-9), (part.name, states)
