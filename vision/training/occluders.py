"""Things in front of the product in training frames: hands and clutter, each with its exact mask.

A customer holds the phone in one hand and reaches for the device with the other, so training frames show
hands over the product (palm, fingers, skin tones from light to dark, a fingertip on a part) and everyday
objects between the camera and the device (a cable, a cup, the edge of a box or a book). Each drawer paints
onto a float RGB image and returns the (h, w) float mask of what it covered, so the ground truth can mark the
parts and keypoints underneath as hidden, and say what hid them (``hand`` or ``object``).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Skin tones (RGB) from light to dark; each draw scales one by the light falling on it.
SKIN_TONES = np.array([[236, 200, 175], [224, 172, 138], [198, 144, 108], [160, 108, 74], [120, 78, 52],
                       [88, 56, 38], [62, 40, 28]], np.float32)


def _shade(mask: np.ndarray, colour: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """(h, w, 3) colour field with a smooth light gradient across the masked shape (a 3-D look)."""
    h, w = mask.shape
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ys, xs = np.nonzero(mask > 0.5)
    if len(xs) == 0:
        return np.broadcast_to(colour, (h, w, 3)).astype(np.float32)
    cx, cy = xs.mean(), ys.mean()
    extent = max(float(np.ptp(xs)), float(np.ptp(ys)), 1.0)
    ramp = ((xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)) / extent
    light = 1.0 + strength * np.clip(ramp, -0.6, 0.6)
    return colour[None, None, :] * light[:, :, None]


def _composite(img: np.ndarray, mask: np.ndarray, fill: np.ndarray) -> None:
    soft = cv2.GaussianBlur(mask, (0, 0), 0.8)[:, :, None]
    img *= 1.0 - soft
    img += fill * soft


def draw_hand(img: np.ndarray, rng: np.random.Generator, box: np.ndarray,
              fingertip: tuple[float, float] | None = None) -> np.ndarray:
    """Draw a hand reaching into ``box`` (x1, y1, x2, y2), covering roughly 10-35 % of it; the index finger
    ends at ``fingertip`` when given (a finger on a button or a port). Returns the hand's mask."""
    h, w = img.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = max(x2 - x1, 8.0), max(y2 - y1, 8.0)
    scale = math.sqrt(bw * bh) * rng.uniform(0.16, 0.32)  # palm width in pixels
    if fingertip is None:
        fingertip = (rng.uniform(x1 + 0.2 * bw, x2 - 0.2 * bw), rng.uniform(y1 + 0.2 * bh, y2 - 0.2 * bh))
    tip = np.array(fingertip, np.float32)
    # The arm comes in from a frame edge, mostly from below or the sides.
    entry = rng.choice(4, p=[0.45, 0.2, 0.2, 0.15])
    towards = {0: (0.0, -1.0), 1: (1.0, 0.0), 2: (-1.0, 0.0), 3: (0.0, 1.0)}[int(entry)]
    direction = np.array(towards, np.float32) + rng.normal(0, 0.35, 2).astype(np.float32)
    direction /= max(float(np.linalg.norm(direction)), 1e-6)
    side = np.array([-direction[1], direction[0]], np.float32)
    finger_len = scale * rng.uniform(0.9, 1.4)
    palm_c = tip - direction * (finger_len + 0.55 * scale)
    mask = np.zeros((h, w), np.float32)
    # Palm and the forearm behind it, out to the frame edge.
    cv2.ellipse(mask, (int(palm_c[0]), int(palm_c[1])), (int(0.55 * scale), int(0.62 * scale)),
                math.degrees(math.atan2(direction[1], direction[0])), 0, 360, 1.0, -1, cv2.LINE_AA)
    arm_end = palm_c - direction * (h + w)
    cv2.line(mask, (int(palm_c[0]), int(palm_c[1])), (int(arm_end[0]), int(arm_end[1])), 1.0,
             max(int(0.8 * scale), 2), cv2.LINE_AA)
    # Fingers: the index reaches the tip; the others curl shorter beside it (sometimes only the index shows).
    width = max(int(0.2 * scale), 2)
    fingers = [(0.0, 1.0)]
    if rng.random() < 0.7:
        fingers += [(0.28, rng.uniform(0.35, 0.8)), (0.52, rng.uniform(0.3, 0.7)), (0.74, rng.uniform(0.25, 0.6))]
    thumb_side = 1.0 if rng.random() < 0.5 else -1.0
    for offset, length in fingers:
        base = palm_c + direction * 0.45 * scale + side * (offset - 0.3) * scale * thumb_side
        end = base + direction * finger_len * length if offset else tip
        cv2.line(mask, (int(base[0]), int(base[1])), (int(end[0]), int(end[1])), 1.0, width, cv2.LINE_AA)
        cv2.circle(mask, (int(end[0]), int(end[1])), width // 2, 1.0, -1, cv2.LINE_AA)
    thumb_base = palm_c - side * 0.4 * scale * thumb_side
    thumb_end = thumb_base + (direction * 0.5 - side * 0.6 * thumb_side) * scale
    cv2.line(mask, (int(thumb_base[0]), int(thumb_base[1])), (int(thumb_end[0]), int(thumb_end[1])), 1.0,
             int(width * 1.2), cv2.LINE_AA)
    tone = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))] * rng.uniform(0.6, 1.15)
    fill = _shade(mask, tone, rng, 0.5)
    fill += rng.normal(0, 3, fill.shape).astype(np.float32)
    _composite(img, mask, fill)
    return mask


def draw_object(img: np.ndarray, rng: np.random.Generator, box: np.ndarray) -> np.ndarray:
    """Draw an everyday object partly in front of ``box``: a cable, a cup, or the corner of a box or book.
    Returns its mask."""
    h, w = img.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = max(x2 - x1, 8.0), max(y2 - y1, 8.0)
    mask = np.zeros((h, w), np.float32)
    kind = rng.random()
    colour = rng.uniform(20, 235, 3).astype(np.float32)
    if kind < 0.35:  # a cable hanging across: a smooth curve
        pts = np.stack([np.linspace(x1 - 0.3 * bw, x2 + 0.3 * bw, 6), rng.uniform(y1, y2, 6)], 1)
        if rng.random() < 0.5:
            pts = np.stack([rng.uniform(x1, x2, 6), np.linspace(y1 - 0.3 * bh, y2 + 0.3 * bh, 6)], 1)
        t = np.linspace(0, 1, 60)
        curve = np.stack([np.interp(t, np.linspace(0, 1, 6), pts[:, i]) for i in range(2)], 1)
        curve = cv2.GaussianBlur(curve.reshape(-1, 1, 2).astype(np.float32), (1, 9), 0).reshape(-1, 2)
        thick = max(int(math.sqrt(bw * bh) * rng.uniform(0.02, 0.06)), 2)
        cv2.polylines(mask, [curve.astype(np.int32)], False, 1.0, thick, cv2.LINE_AA)
    elif kind < 0.6:  # a cup or bottle: a cylinder, upright in the image
        cw = bw * rng.uniform(0.15, 0.35)
        ch = cw * rng.uniform(1.0, 2.2)
        cx = rng.uniform(x1 - 0.1 * bw, x2 + 0.1 * bw)
        bottom = rng.uniform(y1 + 0.5 * bh, y2 + 0.3 * bh)
        cv2.rectangle(mask, (int(cx - cw / 2), int(bottom - ch)), (int(cx + cw / 2), int(bottom)), 1.0, -1)
        cv2.ellipse(mask, (int(cx), int(bottom)), (int(cw / 2), max(int(cw / 6), 1)), 0, 0, 360, 1.0, -1)
        cv2.ellipse(mask, (int(cx), int(bottom - ch)), (int(cw / 2), max(int(cw / 6), 1)), 0, 0, 360, 1.0, -1)
    else:  # the corner of a box or book standing in front, from a frame side
        cw, ch = bw * rng.uniform(0.2, 0.5), bh * rng.uniform(0.3, 0.9)
        left = rng.random() < 0.5
        ox = x1 - cw * rng.uniform(0.2, 0.6) if left else x2 - cw * rng.uniform(0.4, 0.8)
        oy = rng.uniform(y1 + 0.2 * bh, y2)
        quad = np.array([[ox, oy], [ox + cw, oy + rng.normal(0, 0.05) * ch], [ox + cw, h + 10.0], [ox, h + 10.0]])
        cv2.fillPoly(mask, [quad.astype(np.int32)], 1.0, cv2.LINE_AA)
    fill = _shade(mask, colour, rng, 0.6)
    _composite(img, mask, fill)
    return mask
