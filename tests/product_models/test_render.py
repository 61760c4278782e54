"""Headless rendering: the image agrees with the pinhole model to the pixel, and the labels are exact."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from product_models import default_catalog
from product_models.camera import CameraIntrinsics, Pose, project
from product_models.render import MARKER_RADIUS_PX, Lighting, Renderer
from product_models.render_sheet import part_view, product_view

ROUTER, PRINTER = "router_ax1800", "printer_lx400"


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    r = Renderer(320, 240)
    yield r
    r.close()


def _marker_centroids(image: np.ndarray) -> np.ndarray:
    img = image.astype(int)
    mask = ((img[:, :, 0] > 200) & (img[:, :, 1] < 60) & (img[:, :, 2] > 200)).astype(np.uint8)
    _, _, _, centroids = cv2.connectedComponentsWithStats(mask)
    return centroids[1:]


# (yaw, pitch, distance factor of the phone distance): front, back, oblique, close, far.
POSES = [(0, 20, 1.0), (180, 25, 1.0), (35, 40, 1.0), (-30, 30, 0.6), (60, 15, 2.2)]
CAMERAS = [CameraIntrinsics.from_fov(320, 240), CameraIntrinsics(300.0, 330.0, 141.3, 128.6, 320, 240)]


@pytest.mark.parametrize("product_id", [ROUTER, PRINTER])
@pytest.mark.parametrize("view", POSES)
@pytest.mark.parametrize("camera", CAMERAS, ids=["centred", "offset-principal-point"])
def test_keypoint_markers_land_on_projected_keypoints(renderer: Renderer, product_id: str, view: tuple,
                                                      camera: CameraIntrinsics) -> None:
    product = default_catalog().get(product_id)
    yaw, pitch, factor = view
    from product_models.render_sheet import default_distance

    pose = product_view(product, yaw, pitch, factor * default_distance(product))
    res = renderer.render(product, {}, pose, camera, markers=True)
    centroids = _marker_centroids(res.image)
    uv, _ = project(np.array([k.position for k in product.keypoints]), pose, camera)
    np.testing.assert_allclose(res.truth.keypoints, uv)
    checked = 0
    kps = res.truth.keypoints
    for i, (point, visible) in enumerate(zip(kps, res.truth.keypoint_visible, strict=True)):
        inside = 4 <= point[0] <= camera.width - 5 and 4 <= point[1] <= camera.height - 5
        others = np.delete(kps, i, axis=0)
        apart = np.linalg.norm(others - point, axis=1).min() > 2 * MARKER_RADIUS_PX + 3  # dots do not merge
        if not (visible and inside and apart):
            continue
        nearest = np.linalg.norm(centroids - point, axis=1).min()
        assert nearest < 1.0, f"marker {nearest:.2f} px from keypoint at {point}"
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize(("product_id", "led", "colour", "view"), [
    (ROUTER, "led_internet", "red", (0, 50, 0.45)), (ROUTER, "led_power", "green", (-35, 60, 0.3)),
    (ROUTER, "led_wifi", "amber", (25, 35, 0.6)),
    (PRINTER, "led_status", "red", (10, 55, 0.8)), (PRINTER, "led_jam", "amber", (40, 45, 1.1)),
])
def test_lit_led_is_drawn_where_its_anchor_projects(product_id: str, led: str, colour: str, view: tuple) -> None:
    product = default_catalog().get(product_id)
    states = {p.name: "off" for p in product.parts if p.kind == "led"}
    states[led] = colour
    camera = CameraIntrinsics.from_fov(640, 480)
    pose = product_view(product, *view)
    res = Renderer(640, 480).render(product, states, pose, camera)
    img = res.image.astype(int)
    if colour == "red":
        mask = (img[:, :, 0] > 200) & (img[:, :, 1] < 110) & (img[:, :, 2] < 110)
    elif colour == "green":
        mask = (img[:, :, 1] > 200) & (img[:, :, 0] < 150) & (img[:, :, 2] < 170)
    else:
        mask = (img[:, :, 0] > 200) & (img[:, :, 1] > 120) & (img[:, :, 2] < 90)
    ys, xs = np.nonzero(mask)
    assert len(xs) >= 3, "the lit LED is not drawn"
    centroid = np.array([xs.mean(), ys.mean()])
    expected = project(product.anchor_at(led, states)[None], pose, camera)[0][0]
    assert res.truth.parts[led].visible
    np.testing.assert_allclose(res.truth.parts[led].center_uv, expected)
    assert np.linalg.norm(centroid - expected) < 1.0, (centroid, expected)


@pytest.mark.parametrize(("product_id", "view", "hidden", "shown"), [
    (ROUTER, (0, 30, 0.5), ["bottom_back_left", "bottom_back_right"], ["top_front_left", "bottom_front_right"]),
    (ROUTER, (180, 30, 0.5), ["bottom_front_left", "bottom_front_right"], ["bottom_back_left", "top_back_right"]),
    (PRINTER, (0, 3, 1.0), ["top_back_left", "top_back_right", "bottom_back_left", "bottom_back_right"],
     ["top_front_left", "bottom_front_left"]),
    (PRINTER, (0, 45, 1.0), ["bottom_back_left", "bottom_back_right"], ["top_back_left", "panel_right"]),
])
def test_occluded_keypoints_are_invisible(renderer: Renderer, product_id: str, view: tuple, hidden: list[str],
                                          shown: list[str]) -> None:
    product = default_catalog().get(product_id)
    res = renderer.render(product, {}, product_view(product, *view), CameraIntrinsics.from_fov(320, 240))
    vis = dict(zip(res.truth.keypoint_names, res.truth.keypoint_visible, strict=True))
    assert not any(vis[k] for k in hidden), vis
    assert all(vis[k] for k in shown), vis


def test_part_visibility_follows_facing_and_states(renderer: Renderer) -> None:
    camera = CameraIntrinsics.from_fov(320, 240)
    router = default_catalog().get(ROUTER)
    front = renderer.render(router, {}, product_view(router, 0, 30), camera).truth.parts
    back = renderer.render(router, {}, product_view(router, 180, 30), camera).truth.parts
    assert front["led_internet"].visible and not front["port_wan"].visible
    assert back["port_wan"].visible and not back["button_wifi"].visible
    printer = default_catalog().get(PRINTER)
    pose = product_view(printer, 0, 40)
    closed = renderer.render(printer, {"tray_paper": "closed"}, pose, camera).truth
    opened = renderer.render(printer, {"tray_paper": "open"}, pose, camera).truth
    assert not closed.parts["tray_media"].visible and opened.parts["tray_media"].visible
    assert opened.parts["tray_media"].center_uv[1] > closed.parts["tray_media"].center_uv[1]  # slid toward us
    jammed = renderer.render(printer, {"paper_jam": "jammed"}, pose, camera).truth
    assert not jammed.parts["paper_jam"].visible  # behind the closed cover
    assert renderer.render(printer, {"paper_jam": "jammed", "cover_front": "open"}, pose,
                           camera).truth.parts["paper_jam"].visible


@pytest.mark.parametrize(("part", "absent", "opener"), [("paper_jam", "clear", "cover_front"),
                                                        ("tray_media", "empty", "tray_paper")])
def test_part_drawn_as_nothing_is_still_visible_where_it_sits(renderer: Renderer, part: str, absent: str,
                                                              opener: str) -> None:
    """Regression: a part drawn as nothing in its state (cleared jam, empty tray) was labelled invisible."""
    printer = default_catalog().get(PRINTER)
    camera = CameraIntrinsics.from_fov(320, 240)
    pose = product_view(printer, 0, 40)
    opened = renderer.render(printer, {part: absent, opener: "open"}, pose, camera)
    truth = opened.truth.parts[part]
    assert truth.visible and truth.visible_fraction > 0.5 and truth.state == absent
    assert opened.truth.to_dict()["parts"][part]["visible"] is True
    closed = renderer.render(printer, {part: absent, opener: "closed"}, pose, camera).truth.parts[part]
    assert not closed.visible and closed.state == absent
    # The absent state really is drawn as nothing: showing the part changes the picture.
    present = next(s for s in printer.part(part).states if s != absent)
    drawn = renderer.render(printer, {part: present, opener: "open"}, pose, camera)
    assert np.abs(drawn.image.astype(int) - opened.image.astype(int)).sum() > 1000


def test_product_box_matches_drawn_pixels(renderer: Renderer) -> None:
    camera = CameraIntrinsics.from_fov(320, 240)
    background = np.zeros((240, 320, 3), np.uint8)
    background[:] = (0, 255, 0)  # no product colour is pure green
    for product_id, view in ((ROUTER, (30, 30)), (PRINTER, (-40, 25))):
        product = default_catalog().get(product_id)
        res = renderer.render(product, {}, product_view(product, *view), camera, background=background)
        ys, xs = np.nonzero(np.any(res.image != background, axis=2))
        drawn = np.array([xs.min(), ys.min(), xs.max(), ys.max()], float)
        np.testing.assert_allclose(res.truth.product_box, drawn, atol=1.5)


def test_box_clips_and_disappears_out_of_view(renderer: Renderer) -> None:
    router = default_catalog().get(ROUTER)
    camera = CameraIntrinsics.from_fov(320, 240)
    close = renderer.render(router, {}, product_view(router, 0, 30, 0.15), camera).truth
    assert close.product_box is not None
    assert close.product_box_unclipped[0] < close.product_box[0] == -0.5
    away = Pose.look_at((0.0, -0.5, 0.2), (0.0, -1.5, 0.2))  # looking away from the router
    gone = renderer.render(router, {}, away, camera).truth
    assert gone.product_box is None and not gone.keypoint_visible.any()


def test_states_change_the_picture(renderer: Renderer) -> None:
    router = default_catalog().get(ROUTER)
    camera = CameraIntrinsics.from_fov(320, 240)
    back = product_view(router, 180, 25)
    empty = renderer.render(router, {"port_wan": "empty"}, back, camera)
    plugged = renderer.render(router, {"port_wan": "plugged"}, back, camera)
    assert np.abs(empty.image.astype(int) - plugged.image.astype(int)).sum() > 1000
    assert plugged.truth.states["port_wan"] == "plugged"
    printer = default_catalog().get(PRINTER)
    side = product_view(printer, 60, 20)
    closed = renderer.render(printer, {"cover_front": "closed"}, side, camera).truth
    opened = renderer.render(printer, {"cover_front": "open"}, side, camera).truth
    assert not np.allclose(closed.parts["cover_front"].center_uv, opened.parts["cover_front"].center_uv)


def test_background_lighting_and_truth_json(renderer: Renderer) -> None:
    router = default_catalog().get(ROUTER)
    camera = CameraIntrinsics.from_fov(320, 240)
    rng = np.random.default_rng(3)
    background = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    res = renderer.render(router, {}, product_view(router, 20, 30), camera, Lighting.random(rng), background)
    assert res.image.shape == (240, 320, 3) and res.image.dtype == np.uint8
    np.testing.assert_array_equal(res.image[:5, :5], background[:5, :5])  # corner: only background
    dark = renderer.render(router, {}, product_view(router, 20, 30), camera,
                           Lighting(ambient=0.05, key_intensity=0.1, fill_intensity=0.0)).image
    bright = renderer.render(router, {}, product_view(router, 20, 30), camera,
                             Lighting(ambient=0.9, key_intensity=1.0, fill_intensity=0.5)).image
    box = res.truth.product_box.astype(int)
    assert bright[box[1]:box[3], box[0]:box[2]].mean() > dark[box[1]:box[3], box[0]:box[2]].mean()
    data = json.loads(json.dumps(res.truth.to_dict()))
    assert data["product"] == ROUTER and len(data["keypoints"]) == len(router.keypoints)
    assert set(data["parts"]) == {p.name for p in router.parts}
    with pytest.raises(ValueError, match="background must be"):
        renderer.render(router, {}, product_view(router), camera, background=background[:10])


@pytest.mark.parametrize("product_id", [ROUTER, PRINTER])
def test_every_state_of_every_part_renders(product_id: str) -> None:
    """Small images keep this fast; each tile is checked for the product being in view."""
    product = default_catalog().get(product_id)
    renderer = Renderer(160, 120)
    camera = CameraIntrinsics.from_fov(160, 120)
    for part in product.stateful_parts():
        for state in part.states:
            states = {**product.healthy_states(), part.name: state}
            res = renderer.render(product, states, part_view(product, part.name, states), camera)
            assert res.truth.states[part.name] == state
            assert res.truth.product_box is not None
            assert res.image.std() > 5
            if part.kind == "led" and state != "off" and res.truth.parts[part.name].visible:
                u, v = np.round(res.truth.parts[part.name].center_uv).astype(int)
                patch = res.image[v - 1:v + 2, u - 1:u + 2].reshape(-1, 3).astype(int)
                channel = {"green": 1, "red": 0, "amber": 0}[state]
                assert patch[:, channel].max() > 180, (part.name, state, patch)


def test_first_frame_of_a_fresh_buffer_shows_the_background() -> None:
    """Regression: a new buffer's first frame was drawn before its background texture was ready (grey)."""
    from product_models.backdrop import room_backdrop
    from product_models.camera import CameraIntrinsics, Pose
    from product_models.catalog import default_catalog
    from product_models.render import Renderer

    cam = CameraIntrinsics.from_fov(104, 78)  # a size no other test uses, so the buffer is new
    background = room_backdrop(104, 78, seed=3)
    with Renderer(104, 78) as r:
        image = r.render(default_catalog().get("router_ax1800"), {}, Pose.orbit(0, 30, 2.0), cam,
                         background=background).image
    np.testing.assert_array_equal(image[:4, :4], background[:4, :4])


def test_opaque_geometry_is_drawn_in_scene_graph_order() -> None:
    """Panda3D's default opaque bin sorts by render state, which compares the states' addresses in memory:
    faces that tie in depth (a part's face on a far device's body) then rendered differently from one run to
    the next. In scene-graph order a seed renders the same frame whatever the process drew before."""
    from panda3d.core import CullBinEnums, CullBinManager

    from product_models.render_engine import engine

    engine()
    bins = CullBinManager.getGlobalPtr()
    assert bins.getBinType(bins.findBin("opaque")) == CullBinEnums.BT_unsorted
