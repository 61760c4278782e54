"""Headless Panda3D rendering of a catalog product in any part state and pose, with exact ground truth.

    r = Renderer(width=640, height=480)
    res = r.render(product, {"led_internet": "red"}, Pose.orbit(20, 25, 0.45), camera)
    res.image   # (h, w, 3) uint8 RGB, top row first
    res.truth   # GroundTruth: boxes, keypoints + visibility, per-part visibility and states

The Panda3D camera reproduces the OpenCV pinhole of ``camera`` exactly (see
:func:`~product_models.render_engine.configure_camera`), so ``camera.project`` of any product point lands
on the pixel where it is drawn. Renderers share one process-wide engine; each may be reused for any
product and size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from product_models.camera import CameraIntrinsics, Pose, project
from product_models.catalog import Product
from product_models.errors import CatalogError
from product_models.render_engine import Engine, configure_camera, engine
from product_models.render_model import LoadedModel
from product_models.render_truth import GroundTruth, PartTruth, compute_truth

__all__ = ["GroundTruth", "Lighting", "PartTruth", "RenderResult", "Renderer"]

DEFAULT_BACKGROUND = (0.80, 0.81, 0.83)  # light neutral grey: dark and light products both stand out
MARKER_RADIUS_PX = 3.0
MARKER_COLOUR = (1.0, 0.0, 1.0)  # magenta: no product material is this colour


@dataclass(frozen=True)
class Lighting:
    """Scene light: an ambient level, one directional key light, and a weak fill from the camera."""

    ambient: float = 0.38  # 0..1 grey level of the ambient light
    key_direction: tuple[float, float, float] = (0.35, 0.55, -1.0)  # direction the key light travels, product frame
    key_colour: tuple[float, float, float] = (1.0, 0.97, 0.92)
    key_intensity: float = 0.85
    fill_intensity: float = 0.25  # headlight from the camera, so faces turned from the key stay legible

    @classmethod
    def random(cls, rng: np.random.Generator) -> Lighting:
        """Plausible indoor light for synthetic data: dim to bright, warm to cool, from above."""
        az, el = rng.uniform(0, 2 * math.pi), rng.uniform(math.radians(25), math.radians(80))
        direction = (-math.cos(el) * math.cos(az), -math.cos(el) * math.sin(az), -math.sin(el))
        warmth = rng.uniform(-0.12, 0.12)
        colour = (min(1.0, 1.0 + warmth), 1.0, min(1.0, 1.0 - warmth))
        return cls(float(rng.uniform(0.15, 0.55)), direction, colour, float(rng.uniform(0.4, 1.1)),
                   float(rng.uniform(0.0, 0.4)))


@dataclass(frozen=True)
class RenderResult:
    image: np.ndarray  # (h, w, 3) uint8 RGB, top row first
    truth: GroundTruth


class Renderer:
    """Offscreen renderer. One per process is enough; it caches loaded product models."""

    def __init__(self, width: int = 640, height: int = 480) -> None:
        if not (0 < width <= 8192 and 0 < height <= 8192):
            raise ValueError(f"render size must be within 1..8192 pixels, got {width}x{height}")
        self.width, self.height = int(width), int(height)
        self._engine: Engine | None = engine()
        eng = self._engine
        eng.call(lambda: eng.target(self.width, self.height))
        self._models: dict[tuple[str, str], LoadedModel] = {}
        self._lights: dict[tuple[int, int], tuple] = {}

    @property
    def display(self) -> str:
        """The Panda3D display module in use (``p3headlessgl`` or ``p3tinydisplay``)."""
        return self._live().display

    def _live(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("Renderer is closed")
        return self._engine

    def model(self, product: Product, path: str | Path | None = None) -> LoadedModel:
        """The loaded (and cached) model of ``product``. Raises CatalogError for a bad or incomplete file."""
        self._live()
        file = Path(path) if path is not None else product.folder / "model.glb"
        key = (product.id, str(file))
        if key not in self._models:
            self._models[key] = self._live().call(lambda: LoadedModel(product, file))
        return self._models[key]

    def render(self, product: Product, states: dict[str, str], pose: Pose, camera: CameraIntrinsics,
               lighting: Lighting | None = None, background: np.ndarray | None = None, *,
               background_rgb: tuple[float, float, float] = DEFAULT_BACKGROUND, markers: bool = False,
               model_path: str | Path | None = None) -> RenderResult:
        """Render ``product`` in ``states`` (unnamed parts healthy) at ``pose``, seen by ``camera``.

        ``background``: (h, w, 3) uint8 RGB drawn behind the product; without it the product stands on the
        plain colour ``background_rgb`` (0..1 per channel). ``markers`` draws a magenta dot of
        ``MARKER_RADIUS_PX`` at every keypoint, on top of everything (a debugging and test aid).
        Raises CatalogError for an unknown part or state or an unusable model file.
        """
        eng = self._live()
        try:
            camera.validate()
        except ValueError as exc:
            raise CatalogError(str(exc)) from None
        if len(background_rgb) != 3 or not all(0.0 <= float(c) <= 1.0 for c in background_rgb):
            raise ValueError(f"background_rgb must be three numbers in 0..1, got {background_rgb!r}")
        plain = (float(background_rgb[0]), float(background_rgb[1]), float(background_rgb[2]))
        return eng.call(lambda: self._render_on_thread(eng, product, states, pose, camera, lighting, background,
                                                       plain, markers, model_path))

    def _render_on_thread(self, eng: Engine, product: Product, states: dict[str, str], pose: Pose,
                       camera: CameraIntrinsics, lighting: Lighting | None, background: np.ndarray | None,
                       plain: tuple[float, float, float], markers: bool,
                       model_path: str | Path | None) -> RenderResult:
        model = self.model(product, model_path)
        full = model.apply(states)
        target = eng.target(camera.width, camera.height)
        for child in target.scene.getChildren():
            if child != target.camera:
                child.detachNode()
        model.root.reparentTo(target.scene)
        configure_camera(target, pose, camera)
        self._light(target, model, lighting or Lighting(), pose)
        marker_np = self._markers(target, product, pose, camera) if markers else None
        image = eng.draw(target, background, plain)
        if marker_np is not None:
            marker_np.removeNode()
        model.root.clearLight()
        truth = compute_truth(product, model, full, pose, camera)
        return RenderResult(image, truth)

    def _light(self, target, model: LoadedModel, lighting: Lighting, pose: Pose) -> None:
        from panda3d.core import AmbientLight, DirectionalLight

        key = (target.width, target.height)
        if key not in self._lights:
            amb = target.scene.attachNewNode(AmbientLight("ambient"))
            sun = target.scene.attachNewNode(DirectionalLight("key"))
            fill = target.scene.attachNewNode(DirectionalLight("fill"))
            self._lights[key] = (amb, sun, fill)
        amb, sun, fill = self._lights[key]
        for np_ in (amb, sun, fill):
            np_.reparentTo(target.scene)
        a = lighting.ambient
        amb.node().setColor((a, a, a, 1.0))
        k = lighting.key_intensity
        sun.node().setColor((lighting.key_colour[0] * k, lighting.key_colour[1] * k, lighting.key_colour[2] * k, 1))
        sun.node().setSpecularColor((k * 0.6, k * 0.6, k * 0.6, 1.0))
        sun.lookAt(*lighting.key_direction)
        sun.setPos(0, 0, 0)
        f = lighting.fill_intensity
        fill.node().setColor((f, f, f, 1.0))
        forward = pose.R[2]  # camera viewing direction in the product frame
        fill.lookAt(*forward)
        for np_ in (amb, sun, fill):
            model.root.setLight(np_)

    def _markers(self, target, product: Product, pose: Pose, camera: CameraIntrinsics):
        """Camera-facing discs at the keypoints; fronto-parallel, so each projects to a circle centred
        exactly on the keypoint's projection."""
        from panda3d.core import Geom, GeomNode, GeomTriangles, GeomVertexData, GeomVertexFormat, GeomVertexWriter

        pts = np.array([k.position for k in product.keypoints], dtype=float)
        _, depth = project(pts, pose, camera)
        right, down = pose.R[0], pose.R[1]
        vdata = GeomVertexData("markers", GeomVertexFormat.getV3(), Geom.UH_static)
        writer = GeomVertexWriter(vdata, "vertex")
        tris = GeomTriangles(Geom.UH_static)
        segments, base = 16, 0
        for p, z in zip(pts, depth, strict=True):
            if z <= 1e-6:
                continue
            r = MARKER_RADIUS_PX * z / camera.fx
            writer.addData3(*p)
            for i in range(segments):
                a = 2 * math.pi * i / segments
                writer.addData3(*(p + r * (math.cos(a) * right + math.sin(a) * down)))
            for i in range(segments):
                tris.addVertices(base, base + 1 + i, base + 1 + (i + 1) % segments)
                tris.addVertices(base, base + 1 + (i + 1) % segments, base + 1 + i)
            base += segments + 1
        geom = Geom(vdata)
        geom.addPrimitive(tris)
        node = GeomNode("keypoint-markers")
        node.addGeom(geom)
        np_ = target.scene.attachNewNode(node)
        np_.setColor(*MARKER_COLOUR, 1.0)
        np_.setLightOff(100)
        np_.setDepthTest(False)
        np_.setDepthWrite(False)
        np_.setBin("fixed", 100)
        return np_

    def close(self) -> None:
        """Drop this renderer's models. The engine and its buffers stay for the next renderer."""
        if self._engine is not None:
            models = list(self._models.values())
            self._engine.call(lambda: [m.root.removeNode() for m in models])
        self._models.clear()
        self._engine = None

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
