"""The part reader: why a part is not read, and the LED fallback when no part-state network is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import default_catalog
from tests.vision.synthetic import as_camera_frame, constant_network, draw_led, housing
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


def _constant_occlusion_net(path: Path, index_entries: list[tuple[str, str]], label: str) -> Path:
    """An ONNX file with the part networks' inputs and metadata whose answer is always ``label``: the
    occlusion network's wiring is tested apart from what a trained one sees."""
    from vision.part_net import PartIndex

    classes = ("visible", "hand", "covered", "hidden")
    index = PartIndex(tuple((p, n, classes) for p, n in index_entries))
    bias = [10.0 if c == label else 0.0 for _ in index_entries for c in classes]
    return constant_network(path, ("patch", 32), bias, {"part_index": index.to_json()}, extra_inputs=("part",))


def test_the_occlusion_network_turns_a_read_part_into_unknown_with_its_reason(tmp_path: Path) -> None:
    """With ``part-occlusion.onnx`` beside the state network, a part it finds under a hand is unknown ("hand")
    whatever the state network read, one it finds hidden is unknown ("covered"); a part it finds visible keeps
    its reading."""
    import shutil

    from product_models.render import Renderer
    from vision.detector import WEIGHTS_DIR
    from vision.part_net import MODEL_NAME, OCCLUSION_MODEL_NAME

    router = default_catalog().get("router_ax1800")
    pose = Pose.orbit(180, 25, 0.5)  # the back: ports and LEDs in view
    renderer = Renderer(640, 480)
    try:
        frame = renderer.render(router, router.fault_states("wan_unplugged"), pose, CAMERA).image[:, :, ::-1].copy()
    finally:
        renderer.close()
    plain = PartReader.from_weights(WEIGHTS_DIR).read(frame, router, pose, CAMERA)
    read = {n for n, s in plain.items() if s.state is not None}
    assert "port_wan" in read
    entries = [("router_ax1800", n) for n in ("port_wan", "port_lan1")]
    # ``hidden`` (inside the device, behind another part) reads as covered: not a hand, nothing to read.
    for label, expect in (("visible", None), ("hand", "hand"), ("hidden", "covered")):
        folder = tmp_path / label
        folder.mkdir()
        shutil.copy(WEIGHTS_DIR / MODEL_NAME, folder / MODEL_NAME)
        _constant_occlusion_net(folder / OCCLUSION_MODEL_NAME, entries, label)
        states = PartReader.from_weights(folder).read(frame, router, pose, CAMERA)
        for name, state in states.items():
            if expect is not None and name in ("port_wan", "port_lan1") and name in read:
                assert state.state is None and state.reason == expect, (name, state)
            else:  # parts it does not know, or finds visible, read as before
                assert state == plain[name], (name, state, plain[name])


def _slid(pose: Pose, by: np.ndarray) -> Pose:
    """``pose`` slid along the product by ``by`` (product frame, metres): what it shows at a point, the slid
    pose shows at that point minus ``by``, as a pose one part off along a row of look-alikes does."""
    return Pose(pose.R, pose.t + pose.R @ by)


@pytest.mark.parametrize("row", [("port_wan", "port_lan1"), ("led_internet", "led_wifi")], ids=["ports", "leds"])
def test_a_pose_one_part_off_along_a_row_is_read_back_in_place_or_not_at_all(row: tuple[str, str]) -> None:
    """The shipped networks on a render of the router with its WAN cable out (internet LED red). Under a pose
    slid by one spacing along the port row (or the LED row), every patch shows the neighbour; the part past
    the row's end reads ``absent``, and the reader reads the row shifted back. No part of the row may be read
    as its neighbour's state: never the WAN port "plugged" or the internet LED "green"."""
    from product_models.render import Renderer
    from vision.detector import WEIGHTS_DIR

    router = default_catalog().get("router_ax1800")
    truth = router.fault_states("wan_unplugged")
    # Near enough that every part of the row is ROW_MIN_PX or more across (ports 14-22 px, LEDs 9 px).
    pose = Pose.orbit(180, 25, 0.45) if row[0].startswith("port") else Pose.orbit(0, 35, 0.3)
    renderer = Renderer(640, 480)
    try:
        frame = renderer.render(router, truth, pose, CAMERA).image[:, :, ::-1].copy()
    finally:
        renderer.close()
    reader = PartReader.from_weights(WEIGHTS_DIR)
    kind = router.part(row[0]).kind
    members = [p.name for p in router.parts if p.kind == kind and p.facing == router.part(row[0]).facing]
    assert reader.read(frame, router, pose, CAMERA)[row[0]].state == truth[row[0]]
    step = np.asarray(router.part(row[1]).anchor, float) - np.asarray(router.part(row[0]).anchor, float)
    for by in (step, -step):
        states = reader.read(frame, router, _slid(pose, by), CAMERA)
        for name in members:
            s = states[name]
            assert s.state in (truth[name], None), (name, by, s)
        assert all(states[n].state == truth[n] for n in members) or all(
            states[n].reason == "ambiguous_pose" for n in members), {n: states[n] for n in members}
