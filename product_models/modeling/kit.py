"""Shared building blocks of the procedural product models: label quads and per-part anchoring."""

from __future__ import annotations

import numpy as np

from product_models.catalog import Part
from product_models.modeling.gltf import Node
from product_models.modeling.labels import LabelSlot
from product_models.modeling.mesh import Vec3, face_frame, rect

LABEL_MATERIAL = "label_print"
DECAL_LIFT = 0.0003  # metres proud of the surface: clear of z-fighting, too thin to see from the side


def label_quad(node: Node, slots: dict[str, LabelSlot], key: str, center: Vec3, facing: str,
               height: float) -> None:
    """Add the atlas label ``key`` to ``node`` as a quad ``height`` metres tall, centred on ``center``."""
    slot = slots[key]
    node.add(LABEL_MATERIAL, rect(center, facing, height * slot.aspect, height, DECAL_LIFT, slot.uv))


def on_face(part: Part, right: float = 0.0, up: float = 0.0, out: float = 0.0) -> Vec3:
    """A point offset from ``part``'s anchor in its face's (right, up, normal) frame, metres."""
    r, u, n = face_frame(part.facing)
    p = np.asarray(part.anchor, dtype=float) + r * right + u * up + n * out
    return (float(p[0]), float(p[1]), float(p[2]))
