"""Where each part of a product appears in the frame, as a pose and the catalog put it.

Projection: every part's anchor goes through ``Product.anchor_at`` (so an open tray or cover is where its
state puts it) and the pose. A part is *visible* when its face points toward the camera (the angle between
its outward normal, turned with the part's own motion, and the direction to the camera is below
``MAX_VIEW_ANGLE_DEG``, the catalog's ``EDGE_ON_DEG``: the same rule as the renderer's ground truth;
covers and paper are thin sheets, seen from either side) and its anchor lies in front of the camera and inside
the frame. Products are box-like, so facing away is the same as hidden by the body; other objects in front
are not modelled here; :func:`behind_body` covers the product's own body for a part that faces the camera
from its far side. Reading the states is :class:`vision.part_reader.PartReader`'s.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from product_models.camera import CameraIntrinsics, Pose, project
from product_models.catalog import EDGE_ON_DEG, TWO_SIDED_KINDS, Part, Product
from product_models.render_truth import part_corners

MAX_VIEW_ANGLE_DEG = EDGE_ON_DEG  # beyond this a face is too oblique to read anything from it


@dataclass(frozen=True)
class ProjectedPart:
    name: str
    uv: tuple[float, float]  # pixels, the anchor's projection
    depth: float  # metres along the optical axis
    size_px: tuple[float, float]  # the part's size_mm seen face-on at this depth, pixels (not foreshortened)
    view_cos: float  # cosine between the part's normal and the direction to the camera; > 0 = facing
    visible: bool
    # The larger side of the part's box in the image (its outline as projected, foreshortened and turned):
    # the measure the ground truth's "at least 4 px across" uses (render_truth.part_corners).
    extent_px: float = 0.0


def project_parts(product: Product, pose: Pose, camera: CameraIntrinsics, states: Mapping[str, str] | None = None,
                  max_angle_deg: float = MAX_VIEW_ANGLE_DEG) -> dict[str, ProjectedPart]:
    """Project every part of ``product``; ``states`` (part -> state) place moving parts, healthy otherwise."""
    states = dict(states or {})
    return {part.name: project_part(product, part, pose, camera, states, max_angle_deg) for part in product.parts}


def project_part(product: Product, part: Part, pose: Pose, camera: CameraIntrinsics,
                 states: Mapping[str, str], max_angle_deg: float = MAX_VIEW_ANGLE_DEG) -> ProjectedPart:
    """One part of :func:`project_parts`; ``max_angle_deg``: the most oblique view that counts as visible."""
    transform = product.part_transform(part.name, states)
    rot = transform[:3, :3]
    anchor = rot @ np.asarray(part.anchor, dtype=float) + transform[:3, 3]  # Product.anchor_at
    normal = rot @ np.asarray(part.normal, dtype=float)
    to_cam = pose.camera_position - anchor
    dist = float(np.linalg.norm(to_cam))
    view_cos = float(normal @ to_cam / dist) if dist > 0 else -1.0
    if part.kind in TWO_SIDED_KINDS:
        view_cos = abs(view_cos)
    # The anchor and the box corners in one projection: this runs for every part of every frame.
    uv, depth = project(np.vstack([anchor, part_corners(part, transform)]), pose, camera)
    u, v, z = float(uv[0, 0]), float(uv[0, 1]), float(depth[0])
    inside = z > 0 and -0.5 <= u <= camera.width - 0.5 and -0.5 <= v <= camera.height - 0.5
    scale = camera.fx / z if z > 0 else 0.0
    size = (part.size_mm[0] / 1000.0 * scale, part.size_mm[1] / 1000.0 * scale)
    min_cos = math.cos(math.radians(max_angle_deg))
    return ProjectedPart(part.name, (u, v), z, size, view_cos, bool(inside and view_cos > min_cos),
                         _extent_px(uv[1:], depth[1:]))


def _extent_px(uv: np.ndarray, depth: np.ndarray) -> float:
    """The larger side of a part's image box from its projected corners, as the ground truth measures it;
    0 when any corner is behind the camera."""
    if (depth <= 1e-6).any():
        return 0.0
    span = uv.max(axis=0) - uv.min(axis=0)
    return float(span.max())


BODY_INSET_M = 0.004  # the body box used for self-occlusion, shrunk so a point on its surface never hides itself


def behind_body(product: Product, point: np.ndarray, camera_position: np.ndarray) -> bool:
    """Whether the product's own body (its ``size_mm`` box, slightly shrunk) lies between the camera and
    ``point`` (product frame, metres). Covers the case the facing rule cannot: a part that faces the camera
    from the far side of the product, such as an open front cover seen from behind. A point inside the
    box (paper in a cassette) is not tested: the part-state network's ``hidden`` class reads those."""
    w, d, h = product.size_m
    lo = np.array([-w / 2 + BODY_INSET_M, -d / 2 + BODY_INSET_M, BODY_INSET_M])
    hi = np.array([w / 2 - BODY_INSET_M, d / 2 - BODY_INSET_M, h - BODY_INSET_M])
    p = np.asarray(point, dtype=float)
    if np.all(p > lo) and np.all(p < hi):
        return False
    origin = np.asarray(camera_position, dtype=float)
    direction = p - origin
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (lo - origin) / direction, (hi - origin) / direction
    t1 = np.where(direction == 0, np.where((origin > lo) & (origin < hi), -np.inf, np.inf), t1)
    t2 = np.where(direction == 0, np.where((origin > lo) & (origin < hi), np.inf, -np.inf), t2)
    near, far = float(np.max(np.minimum(t1, t2))), float(np.min(np.maximum(t1, t2)))
    return near <= far and far > 0.0 and near < 1.0


def visible_in_some_state(product: Product, part: Part, pose: Pose, camera: CameraIntrinsics,
                          place: Mapping[str, str], rest: ProjectedPart | None = None,
                          max_angle_deg: float = MAX_VIEW_ANGLE_DEG) -> ProjectedPart:
    """``part`` projected at rest, marked visible when it faces the camera in at least one of its states.
    A moving part (an open cover faces up, not forward) must be looked at before its state is known.
    ``rest``: the part already projected with ``place``, to save projecting it again."""
    rest = rest or project_part(product, part, pose, camera, place, max_angle_deg)
    if rest.visible or not part.moves:
        return rest
    for state in part.moves:
        if project_part(product, part, pose, camera, {**place, part.name: state}, max_angle_deg).visible:
            return dataclasses.replace(rest, visible=True)
    return rest
