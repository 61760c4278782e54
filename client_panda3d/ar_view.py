"""The composed AR view: camera frame behind, the step's overlays in 3-D on the product, panel on top.

    view = ARView(product, camera, locale="de")
    shot = view.compose(frame_rgb, pose, states, step, status, now=t, opacity=1.0)
    shot.image          # (h, w, 3) uint8 RGB
    shot.anchors_uv     # {part: (2,) pixels}: where each highlight's centre was drawn
    shot.buttons        # panel buttons with their pixel rectangles (for mouse clicks)

It renders on the process's one Panda3D engine (``product_models.render_engine``), into the same
offscreen buffer as the product renderer for that size, adding a 2-D layer (a display region with an
orthographic pixel lens) that is active only while the view draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from client_panda3d.overlays import OverlayBuilder
from client_panda3d.panel import Button, PanelLayout, layout_panel
from client_panda3d.steps import Status, StepView
from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import Product
from product_models.render_engine import Engine, Target, configure_camera, engine

NO_POSE_BACKGROUND = (0.1, 0.1, 0.12)


@dataclass
class Shot:
    image: np.ndarray  # (h, w, 3) uint8 RGB
    anchors_uv: dict[str, np.ndarray] = field(default_factory=dict)  # part -> (2,) pixels
    buttons: list[Button] = field(default_factory=list)
    layout: PanelLayout | None = None


@dataclass
class _UiLayer:
    region: Any  # DisplayRegion, sort 2
    root: Any  # NodePath in pixel units


_layers: dict[tuple[int, int], _UiLayer] = {}


def ui_layer(eng: Engine, target: Target) -> _UiLayer:
    """The 2-D layer of ``target`` (made on first use, inactive between draws). Render thread only."""
    key = (target.width, target.height)
    if key not in _layers:
        from panda3d.core import Camera, NodePath, OrthographicLens

        root = NodePath("ui")
        lens = OrthographicLens()
        lens.setFilmSize(target.width, target.height)
        lens.setFilmOffset(target.width / 2.0, -target.height / 2.0)  # (0, 0) at the top-left corner
        lens.setNearFar(-10, 10)
        cam = root.attachNewNode(Camera("ui-camera", lens))
        cam.setHpr(0, 0, 0)
        region = target.buffer.makeDisplayRegion()
        region.setSort(2)
        region.setClearDepthActive(True)
        region.setCamera(cam)
        region.setActive(False)
        root.setDepthTest(False)
        root.setDepthWrite(False)
        root.setBin("unsorted", 0)  # draw in scene-graph order: plates first, then their text
        root.setLightOff(10)
        _layers[key] = _UiLayer(region, root)
    return _layers[key]


def project_through_lens(target: Target, scene_point: Any) -> np.ndarray | None:
    """(2,) pixels where the lens of ``target`` puts ``scene_point`` (LPoint3 in the scene root's frame),
    or None behind the camera. Pixel (0, 0) is the centre of the top-left pixel."""
    from panda3d.core import LPoint2, LPoint3

    p_cam = target.camera.getRelativePoint(target.scene, scene_point)
    film = LPoint2()
    if p_cam.getY() <= 0 or not target.lens.project(LPoint3(p_cam), film):
        # project() is False outside the film; still report the point when it is in front of the lens
        if p_cam.getY() <= 0:
            return None
    return np.array([(film.getX() + 1.0) / 2.0 * target.width - 0.5,
                     (1.0 - film.getY()) / 2.0 * target.height - 0.5])


class ARView:
    """Composes AR frames for one product and camera (see the module docstring)."""

    def __init__(self, product: Product | None, camera: CameraIntrinsics, locale: str = "en") -> None:
        camera.validate()
        self.camera, self.locale = camera, locale
        self.product: Product | None = None
        self.overlays: OverlayBuilder | None = None
        self.set_product(product)
        self._engine = engine()
        self._panel_key: tuple | None = None
        self._panel_root: Any = None
        self._panel_layout: PanelLayout | None = None

    def set_product(self, product: Product | None) -> None:
        """The product overlays are placed on (None until it is recognised: no overlays)."""
        self.product = product
        self.overlays = OverlayBuilder(product, self.locale) if product is not None else None

    def compose(self, frame: np.ndarray, pose: Pose | None, states: dict[str, str], step: StepView | None,
                status: Status, *, now: float, opacity: float = 1.0, panel: bool = True) -> Shot:
        """Draw ``frame`` (h, w, 3 uint8 RGB, the camera's size) with ``step``'s overlays placed by ``pose``
        (None or ``opacity`` 0: no overlays) and the panel. ``states`` moves moving parts (open trays)."""
        eng = self._engine
        return eng.call(lambda: self._compose(eng, frame, pose, states, step, status, now, opacity, panel))

    def _compose(self, eng: Engine, frame: np.ndarray, pose: Pose | None, states: dict[str, str],
                 step: StepView | None, status: Status, now: float, opacity: float, panel: bool) -> Shot:
        from panda3d.core import LPoint3

        target = eng.target(self.camera.width, self.camera.height)
        for child in target.scene.getChildren():
            if child != target.camera:
                child.detachNode()
        anchors: dict[str, np.ndarray] = {}
        root = None
        if pose is not None and step is not None and opacity > 0.0 and self.overlays is not None:
            configure_camera(target, pose, self.camera)
            root, centres = self.overlays.build(step.overlays, states, now, opacity, pose, self.camera)
            root.reparentTo(target.scene)
            for name, c in centres.items():
                uv = project_through_lens(target, LPoint3(*c))
                if uv is not None:
                    anchors[name] = uv
        layer = ui_layer(eng, target)
        layout = None
        if panel:
            key = (step, status.key(), self.locale)
            if key != self._panel_key:
                if self._panel_root is not None:
                    self._panel_root.removeNode()
                self._panel_root = layer.root.attachNewNode("panel")
                self._panel_layout = layout_panel(self._panel_root, step, status, target.width, target.height,
                                                  self.locale)
                self._panel_key = key
            self._panel_root.reparentTo(layer.root)
            layout = self._panel_layout
        layer.region.setActive(panel)
        try:
            image = eng.draw(target, frame, NO_POSE_BACKGROUND)
        finally:
            layer.region.setActive(False)
            if root is not None:
                root.removeNode()
            if self._panel_root is not None:
                self._panel_root.detachNode()
        return Shot(image, anchors, list(layout.buttons) if layout else [], layout)

    def close(self) -> None:
        """Drop the cached panel nodes (the engine and its buffers stay)."""
        if self._panel_root is not None:
            root = self._panel_root
            self._engine.call(root.removeNode)
            self._panel_root = None
