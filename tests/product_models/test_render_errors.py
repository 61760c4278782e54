"""Bad input to the renderer: unknown parts and states, broken or incomplete model files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from product_models import default_catalog
from product_models.camera import CameraIntrinsics
from product_models.errors import CatalogError
from product_models.modeling import router
from product_models.modeling.gltf import write_glb
from product_models.render import Renderer
from product_models.render_sheet import product_view

ROUTER = "router_ax1800"


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(160, 120)


@pytest.mark.parametrize(("states", "message"), [
    ({"led_disco": "on"}, "no part 'led_disco'"),
    ({"led_internet": "purple"}, r"led_internet has no state 'purple'; expected one of: off, green, amber, red"),
    ({"button_wifi": "pressed"}, "has no observable state"),
])
def test_unknown_part_or_state_raises(renderer: Renderer, states: dict[str, str], message: str) -> None:
    product = default_catalog().get(ROUTER)
    with pytest.raises(CatalogError, match=message):
        renderer.render(product, states, product_view(product), CameraIntrinsics.from_fov(160, 120))


def test_bad_camera_raises(renderer: Renderer) -> None:
    product = default_catalog().get(ROUTER)
    with pytest.raises(CatalogError, match="'fx' must be > 0"):
        renderer.render(product, {}, product_view(product), CameraIntrinsics(0.0, 100.0, 80, 60, 160, 120))


def test_model_missing_parts_names_file_and_parts(renderer: Renderer, tmp_path: Path) -> None:
    product = default_catalog().get(ROUTER)
    root, materials = router.build(product)
    root.children = [c for c in root.children if c.name not in ("led_wifi", "port_lan2")]
    path = tmp_path / "model.glb"
    path.write_bytes(write_glb(root, materials))
    with pytest.raises(CatalogError, match=r"model\.glb: model has no node for part\(s\): led_wifi, port_lan2"):
        renderer.render(product, {}, product_view(product), CameraIntrinsics.from_fov(160, 120), model_path=path)


@pytest.mark.parametrize(("content", "message"), [
    (b"", "not a glTF binary"),
    (b"solid cube\nfacet normal 0 0 1\n", "not a glTF binary"),
    (None, "cannot read the product model"),
])
def test_unusable_model_file_names_the_file(renderer: Renderer, tmp_path: Path, content: bytes | None,
                                            message: str) -> None:
    product = default_catalog().get(ROUTER)
    path = tmp_path / "broken.glb"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CatalogError, match=rf"broken\.glb: {message}"):
        renderer.model(product, path)


def test_truncated_glb_names_the_file(renderer: Renderer, tmp_path: Path) -> None:
    product = default_catalog().get(ROUTER)
    path = tmp_path / "cut.glb"
    path.write_bytes((product.folder / "model.glb").read_bytes()[:5000])
    with pytest.raises(CatalogError, match=r"cut\.glb: truncated"):
        renderer.model(product, path)


def test_closed_renderer_refuses_work() -> None:
    r = Renderer(160, 120)
    r.close()
    product = default_catalog().get(ROUTER)
    with pytest.raises(RuntimeError, match="closed"):
        r.render(product, {}, product_view(product), CameraIntrinsics.from_fov(160, 120))


_TINY_CHECK = """
import numpy as np, cv2
from product_models import default_catalog
from product_models.camera import CameraIntrinsics
from product_models.render import Renderer
from product_models.render_sheet import product_view
r = Renderer(320, 240)
assert r.display == "p3tinydisplay", r.display
cam = CameraIntrinsics.from_fov(320, 240)
for pid in ("router_ax1800", "printer_lx400"):
    p = default_catalog().get(pid)
    res = r.render(p, {}, product_view(p, 30, 35), cam, markers=True)
    img = res.image.astype(int)
    mask = ((img[:, :, 0] > 200) & (img[:, :, 1] < 60) & (img[:, :, 2] > 200)).astype(np.uint8)
    cents = cv2.connectedComponentsWithStats(mask)[3][1:]
    kps = res.truth.keypoints
    for i, (uv, vis) in enumerate(zip(kps, res.truth.keypoint_visible)):
        if vis and np.linalg.norm(np.delete(kps, i, 0) - uv, axis=1).min() > 10:
            assert np.linalg.norm(cents - uv, axis=1).min() < 1.0, (pid, uv)
    assert res.image[120, 160].std() >= 0
print("ok")
"""


def test_software_fallback_display_renders_exactly() -> None:
    """The p3tinydisplay fallback (no EGL) draws keypoints where the pinhole model puts them."""
    env = {**os.environ, "FIXLENS_RENDER_DISPLAY": "p3tinydisplay"}
    out = subprocess.run([sys.executable, "-c", _TINY_CHECK], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
