"""Exact labels for a render: boxes, keypoints with visibility, per-part visibility. Pure numpy.

Occlusion is decided by casting a ray from the camera centre to each point against the posed triangles of
the product (Moller-Trumbore), the same triangles the renderer draws. A point counts as hidden only if
something lies more than an epsilon in front of it, so a point on a surface never hides itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from product_models.camera import CameraIntrinsics, Pose, project
from product_models.catalog import EDGE_ON_DEG, TWO_SIDED_KINDS, Part, Product

KEYPOINT_EPS_M = 0.012  # keypoints are the sharp box corners; bevels cut up to ~1 cm off them
SURFACE_EPS_M = 0.002  # part sample points lie on (or 0.2 mm above) a surface
FACING_MIN_COS = math.cos(math.radians(EDGE_ON_DEG))  # a face seen this edge-on or worse counts as turned away
SAMPLE_GRID = (-0.35, 0.0, 0.35)  # sample offsets over a part's face, as fractions of its size


@dataclass(frozen=True)
class PartTruth:
    box: np.ndarray | None  # (4,) float64 xyxy pixels, clipped to the image; None when out of view
    center_uv: np.ndarray  # (2,) float64 pixels: the projected (posed) anchor
    visible: bool  # the part's place faces the camera, is in the image and is not occluded
    visible_fraction: float  # share of sample points over the part that pass the same test
    state: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"box": None if self.box is None else [float(v) for v in self.box],
                "center_uv": [float(v) for v in self.center_uv], "visible": bool(self.visible),
                "visible_fraction": float(self.visible_fraction), "state": self.state}


@dataclass(frozen=True)
class GroundTruth:
    product: str
    product_box: np.ndarray | None  # (4,) float64 xyxy pixels of the rendered product, clipped; None if unseen
    product_box_unclipped: np.ndarray | None  # (4,) float64 xyxy pixels before clipping
    keypoint_names: tuple[str, ...]
    keypoints: np.ndarray  # (k, 2) float64 pixels
    keypoint_visible: np.ndarray  # (k,) bool
    parts: dict[str, PartTruth]
    states: dict[str, str]
    pose: Pose
    camera: np.ndarray  # (3, 3) float64 K
    width: int
    height: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (lists and plain numbers)."""
        def box(b: np.ndarray | None) -> list[float] | None:
            return None if b is None else [float(v) for v in b]
        return {
            "product": self.product, "width": self.width, "height": self.height,
            "product_box": box(self.product_box), "product_box_unclipped": box(self.product_box_unclipped),
            "keypoint_names": list(self.keypoint_names),
            "keypoints": self.keypoints.tolist(), "keypoint_visible": [bool(v) for v in self.keypoint_visible],
            "parts": {k: v.to_dict() for k, v in self.parts.items()}, "states": dict(self.states),
            "pose": {"R": self.pose.R.tolist(), "t": self.pose.t.tolist()}, "camera": self.camera.tolist(),
        }


def ray_blocked(origin: np.ndarray, points: np.ndarray, triangles: np.ndarray, eps: float | np.ndarray,
                ray_owner: np.ndarray | None = None, triangle_owner: np.ndarray | None = None) -> np.ndarray:
    """(m,) bool: whether the segment from ``origin`` to each of ``points`` (m, 3) crosses a triangle
    (n, 3, 3) more than ``eps`` metres (scalar or (m,)) before reaching the point. Moller-Trumbore,
    vectorised. With owners given, a triangle never blocks a ray of the same owner (>= 0)."""
    if len(points) == 0 or len(triangles) == 0:
        return np.zeros(len(points), dtype=bool)
    d = points - origin  # (m, 3), unnormalised: t in [0, 1] spans the segment
    length = np.linalg.norm(d, axis=1)
    limit_all = 1.0 - np.broadcast_to(np.asarray(eps, dtype=float), (len(points),)) / np.maximum(length, 1e-9)
    v0, e1, e2 = triangles[:, 0], triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]
    s = origin - v0  # (n, 3)
    q = np.cross(s, e1)  # (n, 3)
    e2q = np.einsum("nk,nk->n", e2, q)
    blocked = np.zeros(len(points), dtype=bool)
    for start in range(0, len(points), 64):  # bounded memory: 64 rays x n triangles at a time
        sl = slice(start, start + 64)
        dd = d[sl]
        p = np.cross(dd[:, None, :], e2[None, :, :])  # (r, n, 3)
        det = np.einsum("rnk,nk->rn", p, e1)
        ok = np.abs(det) > 1e-14
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        u = np.einsum("rnk,nk->rn", p, s) * inv
        v = np.einsum("rk,nk->rn", dd, q) * inv
        t = e2q[None, :] * inv
        hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 1e-9) & (t < limit_all[sl, None])
        if ray_owner is not None and triangle_owner is not None:
            own = ray_owner[sl]
            hit &= (own[:, None] < 0) | (triangle_owner[None, :] != own[:, None])
        blocked[sl] = hit.any(axis=1)
    return blocked


def _in_image(uv: np.ndarray, depth: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
    return ((depth > 1e-6) & (uv[:, 0] >= -0.5) & (uv[:, 0] <= camera.width - 0.5)
            & (uv[:, 1] >= -0.5) & (uv[:, 1] <= camera.height - 0.5))


def clip_box(uv: np.ndarray, camera: CameraIntrinsics) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(clipped, unclipped) xyxy boxes of points ``uv`` (n, 2); clipped is None when off the image."""
    if len(uv) == 0:
        return None, None
    raw = np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])
    lo_x, lo_y, hi_x, hi_y = -0.5, -0.5, camera.width - 0.5, camera.height - 0.5
    clipped = np.array([max(raw[0], lo_x), max(raw[1], lo_y), min(raw[2], hi_x), min(raw[3], hi_y)])
    if clipped[0] >= clipped[2] or clipped[1] >= clipped[3]:
        return None, raw
    return clipped, raw


# The eight corners of a part's thin box, as signs along (right, up, normal); the order part_samples returns.
_CORNER_SIGNS = np.array([(sa, sb, sc) for sa in (-1, 1) for sb in (-1, 1) for sc in (-1, 1)], dtype=float)


def part_samples(part: Part, transform: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample points (m, 3) over the part in its posed place (anchor first), their normals (m, 3) and the
    (8, 3) corners of a thin box around the part for its image box (:func:`part_corners`). Antennas are
    sampled along their length, standing up, instead of as a patch on the top face."""
    w, h = part.size_mm[0] / 1000.0, part.size_mm[1] / 1000.0
    anchor = np.asarray(part.anchor, dtype=float)
    right, up, normal = part.face_frame()
    offsets = [(a, b) for a in SAMPLE_GRID for b in SAMPLE_GRID]
    offsets.sort(key=lambda ab: (ab != (0.0, 0.0)))  # anchor first
    pts = np.array([anchor + right * a * w + up * b * h for a, b in offsets])
    rot, shift = transform[:3, :3], transform[:3, 3]
    normals = np.repeat((rot @ normal)[None, :], len(pts), axis=0)
    return pts @ rot.T + shift, normals, part_corners(part, transform)


def part_corners(part: Part, transform: np.ndarray) -> np.ndarray:
    """The (8, 3) corners of a thin box around ``part`` moved by ``transform``: its face, 1 mm deep (an
    antenna: as deep as it is wide). The image box the ground truth's "at least 4 px across" measures."""
    w, h = part.size_mm[0] / 1000.0, part.size_mm[1] / 1000.0
    right, up, normal = part.face_frame()
    depth = w if part.kind == "antenna" else 0.001
    axes = np.stack([right * w / 2, up * h / 2, normal * depth / 2])
    corners = np.asarray(part.anchor, dtype=float) + _CORNER_SIGNS @ axes
    return corners @ transform[:3, :3].T + transform[:3, 3]


def compute_truth(product: Product, model: Any, states: dict[str, str], pose: Pose,
                  camera: CameraIntrinsics) -> GroundTruth:
    """Labels for ``model`` (a posed :class:`~product_models.render_model.LoadedModel`) seen by ``camera``."""
    eye = pose.camera_position
    part_index = {p.name: i for i, p in enumerate(product.parts)}
    everything, owners = model.posed_triangles_with_owners(part_index)
    # Product box: every shown vertex in front of the camera, projected.
    uv_all, depth_all = project(everything.reshape(-1, 3), pose, camera)
    front = depth_all > 1e-6
    product_box, product_box_raw = clip_box(uv_all[front], camera) if front.any() else (None, None)
    kp_pos = np.array([k.position for k in product.keypoints], dtype=float)
    kp_uv, kp_depth = project(kp_pos, pose, camera)
    kp_ok = _in_image(kp_uv, kp_depth, camera)

    # Every candidate ray (keypoints, then part samples) goes through one batched occlusion test.
    samples = []
    for i, part in enumerate(product.parts):
        t = product.part_transform(part.name, states)
        pts, normals, corners = part_samples(part, t)
        uv, depth = project(pts, pose, camera)
        ok = _in_image(uv, depth, camera)
        if part.kind != "antenna":
            to_eye = eye[None, :] - pts
            to_eye /= np.linalg.norm(to_eye, axis=1, keepdims=True)
            cos = np.einsum("mk,mk->m", to_eye, normals)
            # Thin sheets (covers, paper) show either side: an opened cover is seen by its inner face.
            ok &= (np.abs(cos) if part.kind in TWO_SIDED_KINDS else cos) > FACING_MIN_COS
        # A part drawn as nothing in its current state (a cleared paper jam, an empty tray, a drive taken out
        # of its bay) is still *observed* where it sits: seeing the empty place is how a person verifies
        # "clear", "empty" or "absent". Its own triangles are not drawn, so only the rest of the product can
        # occlude the place.
        samples.append((part, i, pts, uv, ok, corners))
    ray_pts = [kp_pos[kp_ok]] + [pts[ok] for _, _, pts, _, ok, _ in samples]
    ray_eps = [np.full(int(kp_ok.sum()), KEYPOINT_EPS_M)] + [np.full(int(ok.sum()), SURFACE_EPS_M)
                                                           for *_, ok, _ in samples]
    ray_own = [np.full(int(kp_ok.sum()), -1)] + [np.full(int(ok.sum()), i) for _, i, _, _, ok, _ in samples]
    blocked = ray_blocked(eye, np.concatenate(ray_pts), everything, np.concatenate(ray_eps),
                          np.concatenate(ray_own), owners)
    kp_visible = kp_ok.copy()
    kp_visible[kp_ok] = ~blocked[:int(kp_ok.sum())]
    cursor = int(kp_ok.sum())
    parts: dict[str, PartTruth] = {}
    for part, _, _, uv, ok, corners in samples:
        n = int(ok.sum())
        ok = ok.copy()
        ok[ok] = ~blocked[cursor:cursor + n]
        cursor += n
        c_uv, c_depth = project(corners, pose, camera)
        box = clip_box(c_uv, camera)[0] if (c_depth > 1e-6).all() else None
        parts[part.name] = PartTruth(box, uv[0].copy(), bool(ok[0]), float(ok.mean()), states.get(part.name))
    return GroundTruth(product.id, product_box, product_box_raw, tuple(k.name for k in product.keypoints),
                       kp_uv, kp_visible, parts, dict(states), pose, camera.matrix, camera.width, camera.height)
