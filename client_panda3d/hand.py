"""A stylised low-poly pointing hand (palm, curled fingers, thumb, extended index) and where it goes.

The hand is built with its index fingertip at the local origin, the finger pointing along local -z (so a
hand placed with +z on a part's outward normal touches the part with its fingertip), the back of the
hand toward local +y. Units are metres.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from client_panda3d import geometry as g
from client_panda3d.overlays import PRESS_PERIOD_S, SLIDE_PERIOD_S, PartFrame, _cycle, _ease, _press_depth
from product_models.catalog import Motion, Part

SKIN = (0.96, 0.78, 0.62)
SLEEVE = (0.2, 0.42, 0.75)
HAND_SCALE = 0.65  # a stylised hand a little smaller than life keeps the part in view
APPROACH_S = 1.0  # the hand travels to the part this long before it demonstrates


def build_hand() -> Any:
    """The hand NodePath (render thread)."""
    from panda3d.core import NodePath

    root = NodePath("guide-hand")
    skin = root.attachNewNode("skin")
    finger = g.circle_profile(8) * 0.0075
    g.prism("index", finger, 0.0, 0.075, radii=(0.8, 1.0)).reparentTo(skin)
    palm = g.box("palm", (0.075, 0.03, 0.08))
    palm.setPos(0.022, 0.0, 0.11)
    palm.reparentTo(skin)
    for i, dx in enumerate((0.02, 0.038, 0.054)):  # curled fingers: short stubs folded under the palm
        stub = g.prism(f"curl{i}", finger * 1.05, 0.0, 0.035)
        stub.setPos(dx, -0.012, 0.07)
        stub.setHpr(0, -70, 0)
        stub.reparentTo(skin)
    thumb = g.prism("thumb", finger * 1.15, 0.0, 0.05)
    thumb.setPos(-0.012, -0.008, 0.1)
    thumb.setHpr(0, 0, 35)
    thumb.reparentTo(skin)
    skin.setColor(*SKIN, 1)
    sleeve = g.prism("sleeve", g.circle_profile(12) * 0.035, 0.15, 0.26)
    sleeve.setPos(0.022, 0.0, 0.0)
    sleeve.reparentTo(root)
    sleeve.setColor(*SLEEVE, 1)
    return root


def fingertip(part: Part, frame: PartFrame, action: str, t_demo: float) -> tuple[np.ndarray, float]:
    """(3,) product-frame point where the fingertip is ``t_demo`` seconds into demonstrating ``action`` on
    ``part`` (negative: still approaching), and 0..1 how far into the approach it is."""
    n = frame.normal
    if action in ("press", "hold"):
        depth = _press_depth(_cycle(max(t_demo, 0.0), PRESS_PERIOD_S)) if action == "press" else \
            _ease(max(t_demo, 0.0) / 0.5)
        tip = frame.anchor + n * (0.002 + 0.035 * (1.0 - depth))
    elif action in ("plug", "unplug", "insert", "remove"):
        s = _ease(_cycle(max(t_demo, 0.0), SLIDE_PERIOD_S) * 1.25)
        out = (1.0 - s) if action in ("plug", "insert") else s
        tip = frame.anchor + n * (0.05 * out + 0.03)
    elif action in ("open", "close") and part.moves:
        motion = next(iter(part.moves.values()))
        s = _ease(_cycle(max(t_demo, 0.0), 2.4) * 1.3)
        amount = s if action == "open" else 1.0 - s
        m = Motion(tuple(np.asarray(motion.translate) * amount), motion.pivot, motion.axis,
                   motion.degrees * amount).matrix()
        edge = np.asarray(part.anchor) + frame.up * (-0.4 * frame.size[1])
        tip = (m @ np.array([*edge, 1.0]))[:3] + n * 0.01
    else:
        tip = frame.anchor + n * 0.02
    approach = 1.0 if t_demo >= 0 else max(0.0, 1.0 + t_demo / APPROACH_S)
    return tip, approach


def place_hand(hand: Any, tip: np.ndarray, normal: np.ndarray, up: np.ndarray, approach: float) -> None:
    """Put the fingertip at ``tip`` pointing against ``normal``; while approaching (< 1) the hand comes in
    from further out along the normal and to the side."""
    a = _ease(approach)
    side = np.cross(up, normal)  # screen right for a camera looking against the normal
    start = tip + normal * 0.12 + side * 0.1 + up * 0.05
    pos = start + (tip - start) * a
    # The arm reaches in from the side and a little from above, so it does not hide the part from a camera
    # looking along the normal.
    lean = 0.55 * normal + 0.75 * side + 0.3 * up
    hand.setMat(g.frame_matrix(pos, lean / np.linalg.norm(lean), normal))
    hand.setScale(HAND_SCALE)
    hand.setShaderOff(10)

