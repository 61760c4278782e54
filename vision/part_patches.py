"""Pose-rectified patches of a product's parts: what the part-state network (:mod:`vision.part_net`) reads.

With the product's pose known, each part's face (a rectangle around its anchor, in the plane the catalog
gives it) maps to the image by a homography. Warping that region to a fixed ``PATCH`` x ``PATCH`` patch
removes perspective, scale and roll, so one small network reads every part of every product.

Training patches (:func:`training_patches`) are cut from synthetic renders with the poses a live pipeline
would have: its own estimate, and the true pose perturbed by about its errors (:func:`perturb_pose`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import cv2
import numpy as np

from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import Part, Product

PATCH = 32  # pixels, side of the rectified patch
MARGIN = 1.8  # the patch covers the part's size times this, so context (a cable below a plug) is in view
MIN_SIDE_M = 0.028  # ... and at least this much, so a small socket's plug body fits in the patch
HIDDEN = "hidden"
# What the network says when a patch does not show the part's state, so the pipeline abstains instead of
# guessing: a hand over the part, something else over it (an object, a glare's highlight), or no such part
# at all under the patch (the pose is off, e.g. by one LED spacing along a row of look-alike LEDs). Networks
# trained before a part could have a state named "absent" (a removable part) called that last class "absent":
# :meth:`vision.part_net.PartIndex.from_json` renames it as it loads them.
HAND = "hand"
COVERED = "covered"
OFF_PART = "off_part"
UNREADABLE_CLASSES = (HAND, COVERED)  # every classified part learns these
ROW_KINDS = frozenset({"led", "port"})  # parts in rows of look-alikes; these also learn ``off_part``
OFF_PART_P = 0.35  # share of a row part's training sightings that also yield a shifted, ``off_part`` patch
CLASSIFIED_KINDS = frozenset({"led", "port", "tray", "cover", "paper", "cable", "switch", "removable"})
LED_SIDE_M = 0.022  # an LED's patch: the lens, its glow and room for pose error, not the label beside it
MIN_READABLE_PX = 4.0  # a part smaller than this in the image cannot be read by anyone: it is "not visible"
# Kinds that sit inside the device, so another part's state (a closed cover, a closed tray) can hide
# them while their place still faces the camera. Only these learn the ``hidden`` class.
HIDEABLE_KINDS = frozenset({"paper"})


def face_corners(product: Product, part: Part, states: Mapping[str, str]) -> np.ndarray:
    """(4, 3) metres: the patch rectangle of ``part`` (moved by its state), product frame, in the order
    top-left, top-right, bottom-right, bottom-left as seen from outside."""
    right, up, _normal = part.face_frame()
    if part.kind == "led":
        hw = hh = LED_SIDE_M / 2.0
    elif part.kind == "port":
        # Narrow, so a neighbour's plug stays out; tall, so the plug's cable run below is in.
        hw = part.size_mm[0] / 1000.0 * 1.35 / 2.0
        hh = max(part.size_mm[1] / 1000.0 * MARGIN, MIN_SIDE_M) / 2.0
    else:
        hw = max(part.size_mm[0] / 1000.0 * MARGIN, MIN_SIDE_M) / 2.0
        hh = max(part.size_mm[1] / 1000.0 * MARGIN, MIN_SIDE_M) / 2.0
    a = np.asarray(part.anchor, dtype=float)
    local = np.array([a - right * hw + up * hh, a + right * hw + up * hh, a + right * hw - up * hh,
                      a - right * hw - up * hh])
    m = product.part_transform(part.name, dict(states))
    return local @ m[:3, :3].T + m[:3, 3]


def face_patch(image: np.ndarray, product: Product, part: Part, pose: Pose, camera: CameraIntrinsics,
               states: Mapping[str, str], size: int = PATCH, extent: float = 1.0,
               offset_m: np.ndarray | None = None) -> np.ndarray | None:
    """(size, size, 3) uint8 BGR rectified patch of the part's face, or None when the face is behind
    the camera or degenerate in the image. ``extent`` > 1 widens the face rectangle about its centre
    (training cuts a wider patch, then crops it at random offsets). ``offset_m`` moves the rectangle
    (product frame, metres): where the part would be under a shifted pose."""
    corners = face_corners(product, part, states)
    if offset_m is not None:
        corners = corners + np.asarray(offset_m, dtype=float)[None, :]
    if extent != 1.0:
        centre = corners.mean(axis=0)
        corners = centre + (corners - centre) * extent
    pc = pose.transform(corners)
    if (pc[:, 2] <= 1e-3).any():
        return None
    uv = np.stack([camera.fx * pc[:, 0] / pc[:, 2] + camera.cx, camera.fy * pc[:, 1] / pc[:, 2] + camera.cy], 1)
    if cv2.contourArea(uv.astype(np.float32)) < 9.0:
        return None
    dst = np.array([[0, 0], [size - 1, 0], [size - 1, size - 1], [0, size - 1]], np.float32)
    h = cv2.getPerspectiveTransform(uv.astype(np.float32), dst)
    return cv2.warpPerspective(image, h, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


WIDE_ROT_DEG = 1.5  # a close-up's PnP error (the product filling the frame, half its keypoints outside)
WIDE_TRANS_FRAC = 0.02


def perturb_pose(pose: Pose, rng: np.random.Generator, rot_deg: float = 0.6, trans_frac: float = 0.008) -> Pose:
    """A pose off by about what keypoint-based PnP gets wrong, so training patches look like live ones."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = math.radians(rng.normal(0, rot_deg))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    r = np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)
    t = pose.t * (1 + rng.normal(0, trans_frac)) + rng.normal(0, trans_frac * 0.3, 3) * np.linalg.norm(pose.t)
    return Pose(r @ pose.R, t)


def row_spacing(product: Product, part: Part) -> tuple[np.ndarray, float] | None:
    """(unit direction, spacing in metres) of the row of look-alike parts ``part`` belongs to (parts of its
    kind on its face), or None when it has no neighbour there."""
    mine = np.asarray(part.anchor, dtype=float)
    best: tuple[np.ndarray, float] | None = None
    for other in product.parts:
        if other.name == part.name or other.kind != part.kind or other.facing != part.facing:
            continue
        d = np.asarray(other.anchor, dtype=float) - mine
        dist = float(np.linalg.norm(d))
        if dist > 1e-6 and (best is None or dist < best[1]):
            best = (d / dist, dist)
    return best


def absent_offset(product: Product, part: Part, rng: np.random.Generator) -> np.ndarray | None:
    """A shift of ``part``'s patch by one row spacing, either way along its row, that lands where no part of
    its kind sits (past the row's end): the patch a pose shifted by one part would cut. None if both
    directions land on a neighbour, or the part is in no row."""
    row = row_spacing(product, part)
    if row is None:
        return None
    direction, spacing = row
    mine = np.asarray(part.anchor, dtype=float)
    others = [np.asarray(o.anchor, dtype=float) for o in product.parts
              if o.kind == part.kind and o.facing == part.facing and o.name != part.name]
    for sign in rng.permutation([-1.0, 1.0]):
        offset = sign * spacing * direction
        if all(np.linalg.norm(mine + offset - o) > 0.5 * spacing for o in others):
            return offset
    return None


def training_patches(truth_files: Iterable[Path], product_lookup, rng: np.random.Generator, jitter: int = 2,
                     pose_source=None, size: int = PATCH, extent: float = 1.0, wide_jitter: int = 0):
    """Yield ((product_id, part), patch, label) from synthetic ground truth: one patch per pose used (the
    live estimate when ``pose_source`` gives one, ``jitter`` slightly noisy true poses, ``wide_jitter``
    true poses off by about a close-up's PnP error). ``size`` and ``extent`` as in :func:`face_patch`."""
    for tf in truth_files:
        rec = json.loads(tf.read_text())
        if not rec.get("product"):
            continue
        product: Product = product_lookup(rec["product"])
        image = cv2.imread(str(tf.parent.parent.parent / "images" / tf.parent.name / (tf.stem + ".jpg")))
        if image is None:
            continue
        cam = CameraIntrinsics(**rec["camera"])
        pose = Pose(np.array(rec["pose"]["R"]), np.array(rec["pose"]["t"]))
        states = rec["states"]
        estimated = pose_source(image, rec) if pose_source is not None else None
        for part in product.stateful_parts():
            if part.kind not in CLASSIFIED_KINDS:
                continue
            info = rec["parts"][part.name]
            u, v = info["uv"]
            if not (0 <= u < cam.width and 0 <= v < cam.height):
                continue
            if info["visible"]:
                label = info["state"]
            elif info.get("covered_by"):  # in view, but a hand or an object is over it
                label = HAND if info["covered_by"] == "hand" else COVERED
            elif part.kind in HIDEABLE_KINDS:
                label = HIDDEN
            else:
                continue
            # Place the patch with the states a live pipeline would assume (trays and covers at rest
            # unless they are the part itself), exactly as the pipeline cuts them.
            place = {k: s for k, s in states.items() if k == part.attached_to}
            from vision.parts import visible_in_some_state

            projected = visible_in_some_state(product, part, pose, cam, place)
            if not projected.visible or min(projected.size_px) < MIN_READABLE_PX:
                continue  # the live pipeline does not ask about parts facing away, out of frame or tiny
            # The live pipeline's own estimate (when given) carries its real errors; noisy true poses
            # keep every labelled frame in, including those the live pipeline missed.
            poses = ([estimated] if estimated is not None else []) + [perturb_pose(pose, rng) for _ in range(jitter)]
            poses += [perturb_pose(pose, rng, WIDE_ROT_DEG, WIDE_TRANS_FRAC) for _ in range(wide_jitter)]
            for use in poses:
                patch = face_patch(image, product, part, use, cam, place, size, extent)
                if patch is not None:
                    yield (product.id, part.name), patch, label
            if part.kind in ROW_KINDS and info["visible"] and rng.random() < OFF_PART_P:
                offset = absent_offset(product, part, rng)
                patch = None if offset is None else face_patch(image, product, part, perturb_pose(pose, rng), cam,
                                                               place, size, extent, offset)
                if patch is not None:
                    yield (product.id, part.name), patch, OFF_PART
