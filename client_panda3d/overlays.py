"""Overlays of a step, built in the product frame: highlight ring, arrow, billboard label, ghost action.

``build_overlays`` runs on the render thread and returns a NodePath holding every overlay of the step at
time ``now`` (animations are a function of ``now``), plus the product-frame centre of each highlight so
the caller can report where it was drawn. Overlays on parts the product lacks are skipped; the protocol's
decoder has already dropped kinds, directions and actions it does not know.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ar_server.protocol import Animate, Arrow, Highlight, Label, Overlay
from client_panda3d import geometry as g
from client_panda3d.panel import words
from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import Motion, Part, Product, face_frame, localized

# Tuning (metres and seconds).
RING_MARGIN_M = 0.004  # ring radius beyond the part's half size
AGENT_RING_SCALE = 1.6  # an agent's mark: a ring this much wider than a step's, so both stay visible
AGENT_COLOR = "#3fa9f5"  # an agent's mark when the server names no colour
RING_MIN_RADIUS_M = 0.007
LIFT_M = 0.0015  # overlays float this far off the surface so they never sink into it
ARROW_LENGTH_M = 0.045
ARROW_TILT = 0.9  # arrows lean toward the face's "up" so a head-on view still shows their length
LABEL_TEXT_PX = 15.0  # label glyph height on screen, whatever the distance
PRESS_PERIOD_S = 1.4
SLIDE_PERIOD_S = 2.0
MOVE_PERIOD_S = 2.4
DEFAULT_HOLD_S = 5.0
GHOST_ALPHA = 0.6
REMOVABLE_DEPTH_M = 0.03  # the deepest a removable part's ghost block reaches into its bay
BEHIND_ALPHA = 0.3  # overlays of a part on the far side are drawn this faint: they show through the device


@dataclass(frozen=True)
class AgentMark:
    """A person from support points at ``part`` (the server's ``agent`` ``point``): drawn as a wider ring
    than a step's highlight, anchored the same way. Its centre is reported as ``agent:<part>``."""

    part: str
    color: str
    agent: str


@dataclass(frozen=True)
class PartFrame:
    """Where a part is now: anchor (3,), outward normal (3,), face right and up (3,) in the product frame,
    its ring radius and size (metres)."""

    anchor: np.ndarray
    normal: np.ndarray
    right: np.ndarray
    up: np.ndarray
    radius: float
    size: tuple[float, float]


def part_frame(product: Product, part: Part, states: dict[str, str]) -> PartFrame:
    """The part's frame once ``states`` (observed, healthy for the rest) have moved it."""
    right, up, normal = product.face_frame(part.name, states)
    w, h = part.size_mm[0] / 1000.0, part.size_mm[1] / 1000.0
    radius = max(RING_MIN_RADIUS_M, 0.5 * max(w, h) + RING_MARGIN_M)
    if part.kind == "antenna":
        radius = RING_MIN_RADIUS_M + 0.004
    return PartFrame(product.anchor_at(part.name, states), normal, right, up, radius, (w, h))


def _place(node: Any, origin: np.ndarray, z_axis: np.ndarray, up: np.ndarray | None = None) -> Any:
    node.setMat(g.frame_matrix(origin, z_axis, up))
    return node


def _cycle(now: float, period: float) -> float:
    return (now % period) / period


def _press_depth(phase: float) -> float:
    """0 (away) .. 1 (pressed) .. 0 over one cycle, resting pressed in the middle third."""
    if phase < 0.35:
        return 0.5 - 0.5 * math.cos(math.pi * phase / 0.35)
    if phase < 0.65:
        return 1.0
    return 0.5 + 0.5 * math.cos(math.pi * (phase - 0.65) / 0.35)


def _ease(s: float) -> float:
    s = min(max(s, 0.0), 1.0)
    return s * s * (3 - 2 * s)


def rgb_of(color: str) -> tuple[float, float, float]:
    """0..1 RGB of a ``#rrggbb`` colour, as the protocol sends it."""
    return (int(color[1:3], 16) / 255.0, int(color[3:5], 16) / 255.0, int(color[5:7], 16) / 255.0)


class OverlayBuilder:
    """Builds a step's overlays for one product (see the module docstring)."""

    def __init__(self, product: Product, locale: str = "en") -> None:
        self.product, self.locale = product, locale

    def build(self, overlays: tuple[Overlay | AgentMark, ...], states: dict[str, str], now: float, opacity: float,
              pose: Pose, camera: CameraIntrinsics) -> tuple[Any, dict[str, np.ndarray]]:
        """(root NodePath, {part: highlight centre (3,) product frame}) for ``overlays`` at ``now``."""
        from panda3d.core import NodePath

        root = NodePath("overlays")
        centres: dict[str, np.ndarray] = {}
        full = {**self.product.healthy_states(), **states}
        eye = pose.camera_position
        told_behind: set[str] = set()
        for i, ov in enumerate(overlays):
            if not self.product.has_part(ov.part):
                continue
            part = self.product.part(ov.part)
            frame = part_frame(self.product, part, full)
            rgb = rgb_of(ov.color)
            sort = 10 + 4 * i
            # Overlays draw over the camera image without a depth test, so a ring on a part that faces
            # away would float on the near side of the device as if it were there. Draw it faint, and
            # say once where the part is.
            facing = float(frame.normal @ (eye - frame.anchor))
            opacity_here = opacity
            if facing <= 0.0:
                opacity_here = opacity * BEHIND_ALPHA
                if part.name not in told_behind:  # the part's own label gives way to this one
                    told_behind.add(part.name)
                    text = words(self.locale)["behind"].format(part=localized(part.label, self.locale))
                    self._label(root, frame, text, opacity, sort + 40, pose, camera)
                if isinstance(ov, Label):
                    continue
            if isinstance(ov, Highlight):
                centres[part.name] = self._highlight(root, frame, rgb, opacity_here, sort)
            elif isinstance(ov, AgentMark):
                wide = replace(frame, radius=frame.radius * AGENT_RING_SCALE)
                centres[f"agent:{part.name}"] = self._highlight(root, wide, rgb, opacity_here, sort)
            elif isinstance(ov, Arrow):
                self._arrow(root, frame, rgb, opacity_here, sort, ov.direction, now)
            elif isinstance(ov, Label):
                self._label(root, frame, ov.text or localized(part.label, self.locale), opacity, sort + 40, pose,
                            camera)
            elif isinstance(ov, Animate):
                self._ghost(root, part, frame, full, ov.action, rgb, opacity_here, sort, now)
        return root, centres

    # -------------------------------------------------------------------------------------------- kinds

    def _highlight(self, root: Any, f: PartFrame, rgb: tuple[float, float, float], opacity: float,
                   sort: int) -> np.ndarray:
        centre = f.anchor + f.normal * LIFT_M
        width = max(0.003, f.radius * 0.24)
        # A dark halo under the coloured ring keeps it readable on light and dark products alike.
        halo = _place(g.ring("highlight-halo", f.radius, width * 1.9), centre, f.normal, f.up)
        halo.reparentTo(root)
        g.overlay_style(halo, (0.05, 0.05, 0.05), 0.45 * opacity, sort)
        fill = _place(g.disc("highlight-fill", f.radius - width / 2), centre, f.normal, f.up)
        fill.reparentTo(root)
        g.overlay_style(fill, rgb, 0.16 * opacity, sort + 1)
        ring = _place(g.ring("highlight", f.radius, width), centre, f.normal, f.up)
        ring.reparentTo(root)
        g.overlay_style(ring, rgb, 0.95 * opacity, sort + 2)
        return centre

    def _arrow(self, root: Any, f: PartFrame, rgb: tuple[float, float, float], opacity: float, sort: int,
               direction: str, now: float) -> None:
        # Lean toward the upper right of the face: a head-on view still shows the arrow's length, and the
        # label (straight above the part) stays clear of it.
        lean = f.normal + ARROW_TILT * (0.75 * f.right + 0.45 * f.up)
        lean /= np.linalg.norm(lean)
        bob = 0.006 * math.sin(2 * math.pi * now / 1.2)
        gap = f.radius + 0.004
        if direction == "out":
            start = f.anchor + f.normal * gap + lean * (0.004 + bob)
            axis = lean
        else:
            tip = f.anchor + lean * (gap + bob)
            start, axis = tip + lean * ARROW_LENGTH_M, -lean
        shadow = _place(g.arrow("arrow-outline", ARROW_LENGTH_M, 0.0042), start, axis, f.normal)
        shadow.reparentTo(root)
        g.overlay_style(shadow, (0.05, 0.05, 0.05), 0.5 * opacity, sort)
        node = _place(g.arrow("arrow", ARROW_LENGTH_M, 0.003), start, axis, f.normal)
        node.reparentTo(root)
        g.overlay_style(node, rgb, 0.95 * opacity, sort + 1)

    def _label(self, root: Any, f: PartFrame, text: str, opacity: float, sort: int, pose: Pose,
               camera: CameraIntrinsics) -> None:
        from panda3d.core import TextNode

        node = TextNode("label")
        node.setFont(g.ui_font(bold=True))
        node.setText(text)
        node.setAlign(TextNode.ACenter)
        node.setTextColor(1, 1, 1, opacity)
        node.setCardColor(0.06, 0.07, 0.09, 0.82 * opacity)
        node.setCardAsMargin(0.35, 0.35, 0.2, 0.25)
        node.setCardDecal(True)
        where = f.anchor + f.up * (f.radius + 0.012) + f.normal * 0.006
        depth = float(pose.transform(where[None, :])[0, 2])
        path = root.attachNewNode(node)
        path.setPos(*where)
        path.setBillboardPointEye()
        # Constant on-screen size: a glyph 1 unit tall appears fy / depth pixels tall.
        path.setScale(LABEL_TEXT_PX * max(depth, 0.02) / camera.fy)
        path.setLightOff(10)
        path.setTransparency(True)
        path.setDepthTest(False)
        path.setDepthWrite(False)
        path.setBin("fixed", sort)

    def _ghost(self, root: Any, part: Part, f: PartFrame, states: dict[str, str], action: str,
               accent: tuple[float, float, float], opacity: float, sort: int, now: float) -> None:
        rgb, alpha = (0.75, 0.92, 1.0), GHOST_ALPHA * opacity
        if action in ("press", "hold"):
            seconds = DEFAULT_HOLD_S
            if action == "press":
                depth = _press_depth(_cycle(now, PRESS_PERIOD_S))
            else:
                phase = _cycle(now, seconds + 1.0)
                depth = _ease(phase * (seconds + 1.0) / 0.5)  # press in over 0.5 s, then stay
                sweep = max(0.0, (phase * (seconds + 1.0) - 0.5) / seconds)
                arc = _place(g.ring("hold-progress", f.radius + 0.006, 0.003, sweep=sweep),
                             f.anchor + f.normal * LIFT_M, f.normal, f.up)
                arc.reparentTo(root)
                g.overlay_style(arc, accent, 0.95 * opacity, sort + 3)
            finger_r = max(0.0035, min(0.007, 0.5 * min(f.size)))
            tip = f.anchor + f.normal * (LIFT_M + 0.035 * (1.0 - depth))
            finger = g.prism("ghost-finger", g.circle_profile(14) * finger_r, 0.0, 0.06)
            cap = g.prism("ghost-tip", g.circle_profile(14) * finger_r, -finger_r * 0.6, 0.0, radii=(0.55, 1.0))
            node = _place(root.attachNewNode("ghost-press"), tip, f.normal, f.up)
            finger.reparentTo(node)
            cap.reparentTo(node)
            g.overlay_style(node, rgb, alpha, sort)
        elif action in ("plug", "unplug", "insert", "remove"):
            s = _ease(_cycle(now, SLIDE_PERIOD_S) * 1.25)
            inward = action in ("plug", "insert")
            out = (1.0 - s) if inward else s  # 0 = seated, 1 = fully out
            w, h = f.size
            if part.kind == "port":
                node = root.attachNewNode("ghost-plug")
                plug = g.box("plug", (w * 0.8, h * 0.8, 0.016))
                plug.setPos(0, 0, 0.008)
                plug.reparentTo(node)
                cable = g.prism("cable", g.circle_profile(10) * min(w, h) * 0.22, 0.016, 0.09)
                cable.reparentTo(node)
            elif part.kind == "removable":  # a drive or cartridge: a block sliding out of (or into) its bay
                node = root.attachNewNode("ghost-block")
                depth = min(max(0.5 * max(w, h), 0.008), REMOVABLE_DEPTH_M)
                block = g.box("block", (w, h, depth))
                block.setPos(0, 0, -depth / 2)  # its outer face on the part's face when seated
                block.reparentTo(node)
            else:  # paper and the like: a sheet sliding along the face normal
                node = root.attachNewNode("ghost-sheet")
                g.box("sheet", (w, h, 0.002)).reparentTo(node)
            _place(node, f.anchor + f.normal * (LIFT_M + 0.05 * out), f.normal, f.up)
            g.overlay_style(node, rgb, alpha, sort)
        elif action in ("open", "close"):
            self._ghost_move(root, part, action, rgb, alpha, sort, now)

    def _ghost_move(self, root: Any, part: Part, action: str,
                    rgb: tuple[float, float, float], alpha: float, sort: int, now: float) -> None:
        """A translucent slab the size of the part, swinging or sliding along its ``Part.moves``."""
        motion = next(iter(part.moves.values()), None)
        _, up, normal = face_frame(part.facing)
        w, h = part.size_mm[0] / 1000.0, part.size_mm[1] / 1000.0
        s = _ease(_cycle(now, MOVE_PERIOD_S) * 1.3)
        amount = s if action == "open" else 1.0 - s
        if motion is None:  # nothing modelled: slide out along the normal
            m = np.eye(4)
            m[:3, 3] = normal * 0.05 * amount
        else:
            m = Motion(tuple(np.asarray(motion.translate) * amount), motion.pivot, motion.axis,
                       motion.degrees * amount).matrix()
        slab = g.box("ghost-part", (w, h, 0.004))
        rest = np.asarray(part.anchor) + normal * 0.002
        slab.setMat(g.frame_matrix(rest, normal, up) * g.matrix4(m))
        slab.reparentTo(root)
        g.overlay_style(slab, rgb, alpha, sort)
