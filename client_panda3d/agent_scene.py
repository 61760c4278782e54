"""The virtual agent scene: the product in 3-D, in the state being discussed, with a guide hand that
moves to the part and demonstrates the step, and the step text beside it.

Standalone, it runs the scene on its own twin: the scene engine sees the twin's exact states, and the
twin acts (``Twin.act``) once the hand's demonstration is over. Attached (``--session``), it polls the
server's ``GET /v1/sessions/{id}`` and mirrors the product, step and part states the server observes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ar_server.protocol import Animate
from client_panda3d.ar_view import ui_layer
from client_panda3d.hand import APPROACH_S, build_hand, fingertip, place_hand
from client_panda3d.overlays import OverlayBuilder, part_frame
from client_panda3d.panel import _rect, _text, text_height, words
from client_panda3d.pose_filter import interpolate
from client_panda3d.steps import StepView
from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import Product

BACKGROUND = (0.87, 0.89, 0.92)
VIEW_DISTANCE_M = 0.5  # camera distance from the focused part
VIEW_TAU_S = 0.6  # the camera glides to a new part this smoothly
DEMO_S = 3.0  # demonstration length before the twin acts (standalone)
TEXT_SHARE = 0.36  # share of the image width the step text takes, on the left


@dataclass
class AgentFrame:
    image: np.ndarray  # (h, w, 3) uint8 RGB
    pose: Pose


class AgentView:
    """Renders agent-scene frames for one product (see the module docstring)."""

    def __init__(self, product: Product, width: int, height: int, locale: str = "en") -> None:
        from product_models.render import Renderer

        self.product, self.locale = product, locale
        self.camera = CameraIntrinsics.from_fov(width, height, 50.0)
        self.renderer = Renderer(width, height)
        self._engine = self.renderer._live()
        self.overlays = OverlayBuilder(product, locale)
        self._pose: Pose | None = None
        self._pose_at: float | None = None
        self._hand: Any = None
        self._lights: Any = None

    def view_for(self, part_name: str | None, states: dict[str, str]) -> Pose:
        """A camera pose where ``part_name`` faces the camera, a little from above, the part left of centre
        so the text panel on the left does not cover it (whole product when None)."""
        if part_name is None:
            centre = np.array([0.0, 0.0, self.product.size_m[2] / 2])
            return Pose.orbit(25.0, 30.0, 2.2 * max(self.product.size_m), target=tuple(centre))
        f = part_frame(self.product, self.product.part(part_name), {**self.product.healthy_states(), **states})
        n = f.normal
        view_dir = n + (np.array([0, 0, 0.6]) if abs(n[2]) < 0.7 else np.array([0, -0.8, 0]))
        view_dir /= np.linalg.norm(view_dir)
        distance = max(VIEW_DISTANCE_M, 1.1 * max(self.product.size_m))
        eye = f.anchor + view_dir * distance
        pose = Pose.look_at(eye, f.anchor)
        # Shift the part right of centre: look at a point a little to its left on screen.
        shift = pose.R[0] * (-0.12 * distance)
        return Pose.look_at(eye + shift, f.anchor + shift)

    def render(self, states: dict[str, str], step: StepView | None, now: float, demo_t: float) -> AgentFrame:
        """A frame at ``now``; ``demo_t`` is seconds since the step was shown (the hand's clock)."""
        part = step.focus_part() if step else None
        goal = self.view_for(part, states)
        if self._pose is None or self._pose_at is None or now < self._pose_at:
            self._pose = goal
        else:
            self._pose = interpolate(self._pose, goal, 1.0 - math.exp(-(now - self._pose_at) / VIEW_TAU_S))
        self._pose_at = now
        pose = self._pose
        eng = self._engine
        model = self.renderer.model(self.product)
        return eng.call(lambda: AgentFrame(self._draw(eng, model, states, step, now, demo_t, pose), pose))

    def _draw(self, eng: Any, model: Any, states: dict[str, str], step: StepView | None, now: float,
              demo_t: float, pose: Pose) -> np.ndarray:
        from panda3d.core import AmbientLight, DirectionalLight

        from product_models.render_engine import configure_camera

        cam = self.camera
        target = eng.target(cam.width, cam.height)
        for child in target.scene.getChildren():
            if child != target.camera:
                child.detachNode()
        full = model.apply(states)
        model.root.reparentTo(target.scene)
        if self._lights is None:
            amb, key = AmbientLight("agent-ambient"), DirectionalLight("agent-key")
            amb.setColor((0.45, 0.45, 0.47, 1))
            key.setColor((0.8, 0.78, 0.74, 1))
            self._lights = (target.scene.attachNewNode(amb), target.scene.attachNewNode(key))
        for light in self._lights:
            light.reparentTo(target.scene)
            model.root.setLight(light)
        self._lights[1].lookAt(*pose.R[2] + np.array([0.3, 0.2, -0.6]))
        configure_camera(target, pose, cam)
        extra = []
        if step is not None:
            overlays = tuple(o for o in step.overlays
                             if not (isinstance(o, Animate) and o.action in ("press", "hold")))
            root, _ = self.overlays.build(overlays, full, now, 1.0, pose, cam)
            root.reparentTo(target.scene)
            extra.append(root)
            animate = step.demonstration()
            if animate is not None and self.product.has_part(animate.part):
                part = self.product.part(animate.part)
                frame = part_frame(self.product, part, full)
                if self._hand is None:
                    self._hand = build_hand()
                tip, approach = fingertip(part, frame, animate.action, demo_t - APPROACH_S)
                place_hand(self._hand, tip, frame.normal, frame.up, approach)
                self._hand.reparentTo(target.scene)
                for light in self._lights:
                    self._hand.setLight(light)
                extra.append(self._hand)
        layer = ui_layer(eng, target)
        panel = layer.root.attachNewNode("agent-panel")
        self._side_panel(panel, step, cam.width, cam.height)
        layer.region.setActive(True)
        try:
            image = eng.draw(target, None, BACKGROUND)
        finally:
            layer.region.setActive(False)
            panel.removeNode()
            for node in extra:
                node.detachNode()
            model.root.clearLight()
        return image

    def _side_panel(self, parent: Any, step: StepView | None, width: int, height: int) -> None:
        from product_models.catalog import localized

        px = max(10.0, height / 28.0)
        pad = px * 0.8
        panel_w = width * TEXT_SHARE
        _rect(parent, 0, 0, panel_w, height, (0.07, 0.08, 0.1, 0.9))
        _, title = _text(parent, localized(self.product.name, self.locale), pad, pad, px * 0.85,
                         wrap_px=panel_w - 2 * pad, rgba=(0.7, 0.76, 0.85, 1), bold=True)
        y = pad + text_height(title, px * 0.85) + pad * 0.5
        if step is None:
            return
        label = words(self.locale)["step"].format(n=step.progress.index, total=step.progress.total)
        _text(parent, label, pad, y, px * 0.8, rgba=(0.35, 0.8, 1.0, 1), bold=True)
        y += px * 1.4
        size = px
        while True:  # shrink until the text fits the panel: never cut off
            probe = parent.attachNewNode("probe")
            _, node = _text(probe, step.text, 0, 0, size, wrap_px=panel_w - 2 * pad)
            fits = y + text_height(node, size) <= height - pad or size <= 8
            probe.removeNode()
            if fits:
                break
            size *= 0.9
        _text(parent, step.text, pad, y, size, wrap_px=panel_w - 2 * pad)
        y += text_height(node, size) + pad
        for i, (_, label) in enumerate(step.choices):
            _, cnode = _text(parent, f"{i + 1}. {label}", pad, y, size * 0.9, wrap_px=panel_w - 2 * pad,
                             rgba=(0.55, 0.8, 1.0, 1))
            y += text_height(cnode, size * 0.9) + pad * 0.3

    def close(self) -> None:
        self.renderer.close()

