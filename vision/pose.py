"""Product pose from 2D keypoints: camera intrinsics resolution and PnP.

Intrinsics: a client may send its own (``CameraIntrinsics``). They are validated field by field, and
scaled when the frame was resized on the way (same aspect ratio). With none, a pinhole camera with
``product_models.camera.DEFAULT_HFOV_DEG`` horizontal field of view and the principal point at the image
centre is assumed; the pose's distance then scales with the true focal length, its rotation barely does.

PnP: keypoints whose confidence is at least ``min_confidence`` are used; at least 4 are needed. Candidate
poses come from SQPnP (a global solver: no initial guess, no planar-case ambiguity for 4+ points) on all
used points and, with 6 or more, on every subset that leaves out one point, with 7 or more two, with 8 or
more three and with 9 or more four (``MAX_LEAVE_OUT``: a hand over a corner hides several keypoints, which the
keypoint network still places, wrongly).
The candidate with the lowest truncated squared residual over *all* used points wins (MSAC: each point
costs at most ``inlier_px`` squared, so a wrong point cannot drag the choice), each point's cost weighted by
its confidence, and Levenberg-Marquardt refines it on its inliers. The weights matter when a hand covers half
the product: the keypoint network then places the hidden keypoints on the hand, often as a coherent but
wrong box, and two candidates each explain about half the points; the points the network is surer of
decide (round 16 in docs/model-card.md: under a hand, part states >= 4 px 0.834 -> 0.865 on development seed
7400). Scoring every leave-two-out subset by all points matters for box-like products:
a plain maximum-consensus RANSAC with a tight threshold often settles on five corners that fit a subtly
wrong pose, which is good on those corners and tens of pixels off elsewhere. The subsets are tried in
stages (leave one out, then two, three, four) only while more points than a stage leaves out lie beyond half
the inlier distance of the best pose so far: a clean view stops after the first stage or two (all 56 solves up
to two left out cost about 2 ms for 10 points), and only a view with three or four points astray pays for the
330 solves of the last two stages. A pose that puts any
inlier behind the camera is refused.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from product_models.camera import DEFAULT_HFOV_DEG, CameraIntrinsics, Pose, project
from vision.errors import CameraError, PoseError, TooFewKeypoints

MIN_POINTS = 4
LEAVE_OUT_MIN_POINTS = 6  # from this many used points on, candidates leave points out
# Up to four points left out: a hand over a corner of the product often leaves three or four keypoints the
# crop network still places, confidently and wrongly (round 13; `fixlens vision tune-pose-check`, seed 8800,
# 160 hand frames: two at most lost 17 of them to the pose check, four 8). Each stage needs five points left.
MAX_LEAVE_OUT = 4
# Keypoints that all lie within this of their centre mark no shape a pose could fit (and OpenCV's SQPnP asserts
# on them instead of failing): a product is never seen that small.
MIN_SPREAD_PX = 1.0


@dataclass(frozen=True)
class PoseEstimate:
    pose: Pose
    reprojection_error_px: float  # mean over the inlier keypoints
    inliers: np.ndarray  # (k,) bool over the keypoints given


def resolve_camera(camera: CameraIntrinsics | None, width: int, height: int) -> CameraIntrinsics:
    """The intrinsics to use for a ``width`` x ``height`` frame. Raises :class:`CameraError` naming the bad
    field (NaN, infinite, zero or negative), or when ``camera`` has another aspect ratio than the frame."""
    if width <= 0 or height <= 0:
        raise CameraError(f"frame size: expected positive width and height, got {width}x{height}")
    if camera is None:
        return CameraIntrinsics.from_fov(width, height, DEFAULT_HFOV_DEG)
    for name in ("fx", "fy", "cx", "cy", "width", "height"):
        value = getattr(camera, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise CameraError(f"camera intrinsics field {name!r}: expected a finite number, got {value!r}")
        positive = name in ("fx", "fy", "width", "height")
        if value < 0 or (positive and value == 0):
            raise CameraError(f"camera intrinsics field {name!r}: expected a "
                              f"{'positive' if positive else 'non-negative'} number, got {value!r}")
    for name, value, limit in (("cx", camera.cx, camera.width), ("cy", camera.cy, camera.height)):
        if value > limit:
            raise CameraError(f"camera intrinsics field {name!r}: expected a principal point inside the "
                              f"{camera.width}x{camera.height} image, got {value!r}")
    if (camera.width, camera.height) == (width, height):
        return camera
    sx, sy = width / camera.width, height / camera.height
    if abs(sx / sy - 1.0) > 0.01:
        raise CameraError(f"camera intrinsics are for {camera.width}x{camera.height}, which does not scale "
                          f"to the {width}x{height} frame: expected the same aspect ratio")
    # Pixel centres: a pixel-centre coordinate c maps to (c + 0.5) * s - 0.5 under resizing.
    return CameraIntrinsics(camera.fx * sx, camera.fy * sy, (camera.cx + 0.5) * sx - 0.5,
                            (camera.cy + 0.5) * sy - 0.5, int(width), int(height))


def estimate_pose(image_points: np.ndarray, object_points: np.ndarray, camera: CameraIntrinsics,
                  confidence: np.ndarray | None = None, *, min_confidence: float = 0.5,
                  inlier_px: float = 8.0) -> PoseEstimate:
    """Pose of an object whose ``object_points`` ((k, 3) metres, product frame) appear at ``image_points``
    ((k, 2) pixels). Keypoints with ``confidence`` ((k,)) below ``min_confidence`` are ignored; a keypoint
    more than ``inlier_px`` from the chosen pose's projection is an outlier (scale it with the product's
    size in the image: keypoint errors grow with it).
    Raises :class:`PoseError` with the reason when no trustworthy pose exists."""
    import cv2  # heavy; imported on first use

    uv = np.asarray(image_points, dtype=np.float64)
    xyz = np.asarray(object_points, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise PoseError(f"image_points: expected shape (k, 2), got {uv.shape}")
    if xyz.shape != (len(uv), 3):
        raise PoseError(f"object_points: expected shape ({len(uv)}, 3), got {xyz.shape}")
    conf = np.ones(len(uv)) if confidence is None else np.asarray(confidence, dtype=np.float64)
    if conf.shape != (len(uv),):
        raise PoseError(f"confidence: expected shape ({len(uv)},), got {conf.shape}")
    used = (conf >= min_confidence) & np.all(np.isfinite(uv), axis=1)
    if used.sum() < MIN_POINTS:
        raise TooFewKeypoints(f"too few keypoints for a pose: expected >= {MIN_POINTS} with confidence >= "
                              f"{min_confidence}, got {int(used.sum())}")
    idx = np.flatnonzero(used)
    spread = float(np.linalg.norm(uv[idx] - uv[idx].mean(axis=0), axis=1).max())
    if spread < MIN_SPREAD_PX:  # a network that found nothing can put every keypoint on one spot
        raise PoseError(f"the {len(idx)} keypoints lie within {spread:.2f} px of one spot: no pose")
    K, dist = camera.matrix, np.zeros(5)
    tau2 = inlier_px * inlier_px
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    # Stages: all points, then leave one out (6+ points), two (7+), three (8+), four (9+): each keeps five. A
    # stage runs only while more points than it leaves out sit beyond half the inlier distance of the best pose.
    for drop in range(MAX_LEAVE_OUT + 1):
        if drop > 0 and (len(idx) < LEAVE_OUT_MIN_POINTS + drop - 1 or best is None
                         or _count_beyond(xyz[idx], uv[idx], best[1], best[2], K, dist, 0.25 * tau2) <= drop - 1):
            break
        for d in itertools.combinations(range(len(idx)), drop):
            subset = np.delete(idx, list(d)) if d else idx
            try:
                ok, rvec, tvec = cv2.solvePnP(xyz[subset].reshape(-1, 1, 3), uv[subset].reshape(-1, 1, 2), K, dist,
                                              flags=cv2.SOLVEPNP_SQPNP)
            except cv2.error:  # SQPnP asserts on a degenerate subset (points on one spot): no pose from it
                continue
            if not ok:
                continue
            proj, _ = cv2.projectPoints(xyz[idx], rvec, tvec, K, dist)
            cost = float((np.minimum(np.sum((proj.reshape(-1, 2) - uv[idx]) ** 2, axis=1), tau2) * conf[idx]).sum())
            if best is None or cost < best[0]:
                best = (cost, rvec, tvec)
    if best is None:
        raise PoseError(f"PnP found no pose for {len(idx)} keypoints (degenerate layout?)")
    _, rvec, tvec = best
    proj, _ = cv2.projectPoints(xyz[idx], rvec, tvec, K, dist)
    inlier_idx = idx[np.sum((proj.reshape(-1, 2) - uv[idx]) ** 2, axis=1) < tau2]
    if len(inlier_idx) < MIN_POINTS:
        inlier_idx = idx  # no consensus: refine on every used point, and let the error say so
    rvec, tvec = cv2.solvePnPRefineLM(xyz[inlier_idx].reshape(-1, 1, 3), uv[inlier_idx].reshape(-1, 1, 2),
                                      K, dist, rvec, tvec)
    R, _ = cv2.Rodrigues(rvec)
    pose = Pose(R, tvec.ravel().astype(np.float64))
    proj, depth = project(xyz[inlier_idx], pose, camera)
    if np.any(depth <= 0):
        raise PoseError(f"PnP pose puts {int(np.sum(depth <= 0))} keypoint(s) behind the camera; refused")
    error = float(np.mean(np.linalg.norm(proj - uv[inlier_idx], axis=1)))
    inliers = np.zeros(len(uv), dtype=bool)
    inliers[inlier_idx] = True
    return PoseEstimate(pose, error, inliers)


def _count_beyond(xyz: np.ndarray, uv: np.ndarray, rvec: np.ndarray, tvec: np.ndarray, K: np.ndarray,
                  dist: np.ndarray, limit2: float) -> int:
    import cv2

    proj, _ = cv2.projectPoints(xyz, rvec, tvec, K, dist)
    return int((np.sum((proj.reshape(-1, 2) - uv) ** 2, axis=1) >= limit2).sum())

