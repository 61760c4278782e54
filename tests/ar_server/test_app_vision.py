"""The server builds its own vision pipeline from its config: the configured catalog and frame limits.

A real server on a real port, the real pipeline (shipped weights on ONNX Runtime) built by ``create_app``
itself, and frames rendered offscreen. ONNX, not torch: this process renders with Panda3D.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from ar_server.app import PIPELINE, create_app
from ar_server.app_keys import CATALOG, CONFIG
from ar_server.config import Config
from ar_server.inference import VISION_ERROR_CODES, wire_code
from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import CATALOG_DIR, default_catalog
from tests.ar_server.conftest import StreamClient, make_config
from vision.errors import CameraError, FrameError, FrameFault, FrameTooLarge, PoseError, VisionError

PRODUCT = "router_ax1800"
RENAMED = "led_lan_two"  # led_lan2 under another name: a part only the copied catalog has


@pytest.fixture(scope="module")
def router_640() -> np.ndarray:
    """The router from behind and above, over a room, 640x480 BGR, at the default field of view."""
    from product_models.backdrop import room_backdrop
    from product_models.render import Renderer

    product = default_catalog().get(PRODUCT)
    cam = CameraIntrinsics.from_fov(640, 480)
    pose = Pose.orbit(165.0, 30.0, 0.45, target=(0.0, 0.0, product.size_m[2] / 2))
    with Renderer(cam.width, cam.height) as renderer:
        rgb = renderer.render(product, {}, pose, cam, background=room_backdrop(cam.width, cam.height, seed=7)).image
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _jpeg(image: np.ndarray, width: int, height: int) -> bytes:
    """``image`` scaled to ``width`` x ``height`` (same aspect ratio, so the default field of view still fits)."""
    if image.shape[1] != width:
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


def _catalog_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "catalog"
    shutil.copytree(CATALOG_DIR, folder)
    yaml = folder / PRODUCT / "product.yaml"
    yaml.write_text(re.sub(r"\bled_lan2\b", RENAMED, yaml.read_text()))
    return folder


@pytest.fixture
async def served(aiohttp_server: Any, tmp_path: Path) -> Any:
    if not (Config().weights_dir / "fixlens-pose.onnx").is_file():
        pytest.skip("no detector weights in vision/weights")
    config = make_config(tmp_path, catalog_dir=_catalog_copy(tmp_path), backend="onnx", max_width=4096,
                         max_height=4096, max_frame_bytes=8 * 1024 * 1024)
    return await aiohttp_server(create_app(config))  # no pipeline given: the app builds the real one


async def test_the_served_pipeline_has_the_configured_catalog_and_limits(served: Any, tmp_path: Path) -> None:
    """Regression: load_pipeline ignored --catalog-dir and the frame limits, so vision used its defaults."""
    pipeline = served.app[PIPELINE]
    assert pipeline.catalog is served.app[CATALOG] and pipeline.catalog.root == tmp_path / "catalog"
    assert RENAMED in {p.name for p in pipeline.catalog.get(PRODUCT).parts}
    assert pipeline.limits == served.app[CONFIG].decode_limits()
    assert (pipeline.limits.max_width, pipeline.limits.max_height) == (4096, 4096)


async def test_a_frame_within_the_configured_limits_is_processed(served: Any, authority: Any,
                                                                 router_640: np.ndarray) -> None:
    """Regression: a 4000x3000 frame passed the server's probe (limit 4096) and vision's 1920x1920 cap then
    refused it as bad_jpeg."""
    client = await StreamClient.connect(served)
    try:
        await client.hello(authority.mint("customer", "cust-limits", 600))
        for width, height in ((640, 480), (4000, 3000)):
            seq = await client.frame(_jpeg(router_640, width, height))
            obs = await client.expect("obs", timeout=60, seq=seq)
            assert obs.product == PRODUCT and obs.pose is not None, (width, height)
            # The parts are the configured catalog's: the renamed LED is read, under its new name.
            assert RENAMED in obs.parts and "led_lan2" not in obs.parts
        assert not [m for m in client.received if m.t == "error"]
    finally:
        await client.close()


async def test_a_frame_over_the_configured_limits_is_refused_as_too_large(served: Any, authority: Any,
                                                                          router_640: np.ndarray) -> None:
    client = await StreamClient.connect(served)
    try:
        await client.hello(authority.mint("customer", "cust-over", 600))
        await client.frame(_jpeg(router_640, 4400, 3300))
        error = await client.expect("error", timeout=30)
        assert (error.code, error.field, error.fatal) == ("too_large", "jpeg", False)
        assert "width 4400" in error.message
        seq = await client.frame(_jpeg(router_640, 640, 480))  # the session goes on
        assert (await client.expect("obs", timeout=60, seq=seq)).product == PRODUCT
    finally:
        await client.close()


@pytest.mark.parametrize(("error", "code", "field"), [
    (FrameTooLarge("over"), "too_large", "jpeg"),
    (FrameError("not a JPEG"), "bad_jpeg", "jpeg"),
    (CameraError("fx"), "bad_field", "camera"),
    (PoseError("few keypoints"), "bad_frame", None),
    (VisionError("anything else"), "bad_frame", None),
    (FrameFault("frame 3: the vision pipeline failed on this frame"), "bad_frame", None),  # not fatal: go on
])
def test_vision_errors_map_to_wire_codes_in_one_table(error: VisionError, code: str, field: str | None) -> None:
    assert wire_code(error) == (code, field)
    kinds = [kind for kind, _code, _field in VISION_ERROR_CODES]
    # A subclass must come before its base, or the base would take its errors.
    assert all(not issubclass(later, earlier) for i, earlier in enumerate(kinds) for later in kinds[i + 1:])


def test_the_decoder_limits_are_the_protocol_limits() -> None:
    config = Config.from_sources({"max_width": "4096", "max_height": "3072", "max_frame_bytes": "9000000"}, {})
    limits, wire = config.decode_limits(), config.limits()
    assert (limits.max_width, limits.max_height, limits.max_bytes) == (wire.max_width, wire.max_height,
                                                                      wire.max_frame_bytes)
    assert limits.max_pixels == 4096 * 3072
