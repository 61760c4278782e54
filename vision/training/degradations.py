"""Image degradations for the robustness evaluation (:mod:`vision.training.robustness`), one per condition.

They are written for evaluation only and share nothing with the training augmentation
(:mod:`vision.training.synth`), so a change to training cannot quietly change what is measured here.

Every degradation takes an RGB frame, what the renderer knows about the product in it (or None for a
product-free frame) and two generators: ``look`` draws what the degradation looks like (a hand's place and
skin, a cast's gains, a blur's direction) and ``noise`` draws per-frame sensor noise. A clip passes a
``look`` generator seeded the same way on every frame, so the hand stays the same hand and the cast the
same cast while the camera moves. It returns the new frame and the pixels it covered (parts under them are
not truly visible), or None when it covers nothing.

Parameters (all in the tuning block below):

- colour casts: warm R x1.25, B x0.75; cool R x0.8, B x1.2; mild: each channel x U(0.9, 1.1);
- hand: palm, four fingers, thumb and forearm, entering the product box from a side, sized so it covers
  15-30 % of the box; six skin tones from light to dark, x U(0.85, 1.08), with shading;
- low light: x0.35, then noise of a camera that raised its gain 1/0.35 to compensate:
  sigma = g * sqrt(READ^2 + SHOT * s / g) in 8-bit levels, s the darkened value (about 3 at s=20, 6 at 90);
- glare: a white specular ellipse on the product's silhouette (0.10-0.18 of the box's larger side, peak
  0.9-1.0 of the way to white); where it is >= 0.8 of the way to white it covers what is under it;
- LED bloom: each lit, truly visible LED gets a coloured halo (Gaussian, sigma 1.2-1.8 LED sizes, at least
  2 px) and a core pushed past white and clipped;
- motion blur: a 15 px line kernel at a random angle; defocus: a disc of radius 4-6 px.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from product_models.catalog import Product
from product_models.render_truth import GroundTruth

# ---- tuning -------------------------------------------------------------------------------------------
WARM_GAINS = (1.25, 1.0, 0.75)  # R, G, B
COOL_GAINS = (0.8, 1.0, 1.2)
MILD_CAST = 0.10  # each channel x U(1 - this, 1 + this)
HAND_COVER = (0.15, 0.30)  # share of the product box under the hand
SKIN_TONES_RGB = ((255, 224, 196), (238, 196, 160), (224, 172, 120), (190, 130, 85), (141, 90, 56), (92, 60, 40))
LOW_LIGHT = 0.35  # scene light relative to normal
READ_NOISE = 0.5  # levels (8-bit) before the gain
SHOT_NOISE = 0.12  # levels per level of signal before the gain
GLARE_SIZE = (0.10, 0.18)  # blob half-axis, share of the product box's larger side
GLARE_PEAK = (0.9, 1.0)  # share of the way to white at the blob's centre
GLARE_COVERS = 0.8  # a part under glare at least this white is hidden
LED_RGB = {"green": (70, 255, 110), "red": (255, 50, 35), "amber": (255, 165, 25), "blue": (60, 120, 255),
           "white": (255, 255, 255)}
BLOOM_SIGMA = (1.2, 1.8)  # halo sigma in LED sizes
BLOOM_HALO = (0.45, 0.7)  # halo strength at its centre
MOTION_BLUR_PX = 15
DEFOCUS_RADIUS_PX = (4.0, 6.0)


@dataclass(frozen=True)
class InView:
    """The product in a rendered frame: what a degradation may know about it."""

    product: Product
    truth: GroundTruth


@dataclass(frozen=True)
class Degraded:
    image: np.ndarray  # (h, w, 3) uint8 RGB
    covered: np.ndarray | None = None  # (h, w) bool: pixels drawn over (a hand, a glare core); None if none


Degrade = Callable[[np.ndarray, InView | None, np.random.Generator, np.random.Generator], Degraded]


def _gains(image: np.ndarray, gains: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    out = image.astype(np.float32) * np.asarray(gains, np.float32)[None, None, :]
    return np.clip(out, 0, 255).astype(np.uint8)


def warm_cast(image: np.ndarray, view: InView | None, look: np.random.Generator,
              noise: np.random.Generator) -> Degraded:
    return Degraded(_gains(image, WARM_GAINS))


def cool_cast(image: np.ndarray, view: InView | None, look: np.random.Generator,
              noise: np.random.Generator) -> Degraded:
    return Degraded(_gains(image, COOL_GAINS))


def mild_cast(image: np.ndarray, view: InView | None, look: np.random.Generator,
              noise: np.random.Generator) -> Degraded:
    return Degraded(_gains(image, look.uniform(1 - MILD_CAST, 1 + MILD_CAST, size=3)))


def low_light(image: np.ndarray, view: InView | None, look: np.random.Generator,
              noise: np.random.Generator) -> Degraded:
    gain = 1.0 / LOW_LIGHT
    dark = image.astype(np.float32) * LOW_LIGHT
    sigma = gain * np.sqrt(READ_NOISE ** 2 + SHOT_NOISE * dark / gain)
    out = dark + noise.standard_normal(dark.shape).astype(np.float32) * sigma
    return Degraded(np.clip(np.round(out), 0, 255).astype(np.uint8))


def motion_blur(image: np.ndarray, view: InView | None, look: np.random.Generator,
                noise: np.random.Generator) -> Degraded:
    size = MOTION_BLUR_PX + 2  # room for the anti-aliased ends
    kernel = np.zeros((size, size), np.float32)
    angle = look.uniform(0.0, math.pi)
    c, half = (size - 1) / 2.0, (MOTION_BLUR_PX - 1) / 2.0
    shift = 4  # cv2 fixed-point bits: sub-pixel end points
    p1 = (round((c - half * math.cos(angle)) * 16), round((c - half * math.sin(angle)) * 16))
    p2 = (round((c + half * math.cos(angle)) * 16), round((c + half * math.sin(angle)) * 16))
    cv2.line(kernel, p1, p2, 1.0, 1, cv2.LINE_AA, shift)
    kernel /= kernel.sum()
    return Degraded(cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT))


def defocus(image: np.ndarray, view: InView | None, look: np.random.Generator,
            noise: np.random.Generator) -> Degraded:
    radius = look.uniform(*DEFOCUS_RADIUS_PX)
    n = math.ceil(radius) + 1
    y, x = np.mgrid[-n:n + 1, -n:n + 1]
    kernel = np.clip(radius + 0.5 - np.hypot(x, y), 0.0, 1.0).astype(np.float32)  # anti-aliased disc
    kernel /= kernel.sum()
    return Degraded(cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT))


def silhouette(view: InView, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) bool: the convex hull of the product's projected keypoints (its box corners): the body."""
    pts = np.clip(np.round(view.truth.keypoints), -10_000, 10_000).astype(np.int32)
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(pts), 1)
    return mask.astype(bool)


def glare(image: np.ndarray, view: InView | None, look: np.random.Generator,
          noise: np.random.Generator) -> Degraded:
    h, w = image.shape[:2]
    if view is not None and view.truth.product_box is not None:
        body = silhouette(view, (h, w))
        x1, y1, x2, y2 = view.truth.product_box
        side = max(x2 - x1, y2 - y1)
    else:  # a shiny spot on whatever surface is in view
        body, side = np.ones((h, w), bool), 0.5 * min(h, w)
    ys, xs = np.nonzero(body)
    if len(xs) == 0:
        return Degraded(image)
    pick = int(look.integers(len(xs)))
    cx, cy = float(xs[pick]), float(ys[pick])
    major = side * look.uniform(*GLARE_SIZE)
    minor = major * look.uniform(0.4, 0.8)
    angle = look.uniform(0.0, math.pi)
    peak = look.uniform(*GLARE_PEAK)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    along = dx * math.cos(angle) + dy * math.sin(angle)
    across = -dx * math.sin(angle) + dy * math.cos(angle)
    alpha = peak * np.exp(-0.5 * ((along / major) ** 2 + (across / minor) ** 2))
    alpha *= cv2.GaussianBlur(body.astype(np.float32), (0, 0), 1.0)  # the highlight stays on the body
    img = image.astype(np.float32)
    img += (255.0 - img) * alpha[:, :, None]
    return Degraded(np.clip(img, 0, 255).astype(np.uint8), alpha >= GLARE_COVERS)


def led_bloom(image: np.ndarray, view: InView | None, look: np.random.Generator,
              noise: np.random.Generator) -> Degraded:
    if view is None:
        return Degraded(image)
    img = image.astype(np.float32)
    h, w = img.shape[:2]
    spread, halo = look.uniform(*BLOOM_SIGMA), look.uniform(*BLOOM_HALO)
    for part in view.product.stateful_parts():
        pt = view.truth.parts[part.name]
        colour = LED_RGB.get(pt.state or "")
        if part.kind != "led" or colour is None or not pt.visible:
            continue
        size = 2.0 if pt.box is None else max(2.0, float(max(pt.box[2] - pt.box[0], pt.box[3] - pt.box[1])))
        sigma, core = max(2.0, spread * size), 0.5 * size
        u, v = float(pt.center_uv[0]), float(pt.center_uv[1])
        r = math.ceil(4 * sigma)
        x1, x2, y1, y2 = max(0, int(u) - r), min(w, int(u) + r + 1), max(0, int(v) - r), min(h, int(v) + r + 1)
        if x2 <= x1 or y2 <= y1:
            continue
        yy, xx = np.mgrid[y1:y2, x1:x2].astype(np.float32)
        d2 = (xx - u) ** 2 + (yy - v) ** 2
        window = img[y1:y2, x1:x2]
        window += halo * np.exp(-d2 / (2 * sigma ** 2))[:, :, None] * np.asarray(colour, np.float32)
        window += 1.5 * 255.0 * np.exp(-d2 / (2 * core ** 2))[:, :, None]  # the sensor clips: white core
    return Degraded(np.clip(img, 0, 255).astype(np.uint8))


def hand(image: np.ndarray, view: InView | None, look: np.random.Generator,
         noise: np.random.Generator) -> Degraded:
    """A hand reaching into the product box from one side, covering ``HAND_COVER`` of it."""
    h, w = image.shape[:2]
    if view is not None and view.truth.product_box is not None:
        box = tuple(float(v) for v in view.truth.product_box)
    else:  # no product: the hand reaches toward the middle of the frame
        bw, bh = w * look.uniform(0.3, 0.6), h * look.uniform(0.3, 0.6)
        box = ((w - bw) / 2, (h - bh) / 2, (w + bw) / 2, (h + bh) / 2)
    pose = _hand_pose(box, look)
    target = look.uniform(*HAND_COVER)
    x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
    x2, y2 = min(w, math.ceil(box[2]) + 1), min(h, math.ceil(box[3]) + 1)

    def cover(scale: float) -> tuple[float, np.ndarray]:
        mask = _draw_hand(np.zeros((h, w), np.uint8), pose, scale, 255, 255)
        return float((mask[y1:y2, x1:x2] > 127).mean()) if x2 > x1 and y2 > y1 else 0.0, mask

    lo, hi = 1.0, 3.0 * max(box[2] - box[0], box[3] - box[1], 8.0)
    for _ in range(18):  # covering grows with the hand's size: bisect for the drawn share
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if cover(mid)[0] < target else (lo, mid)
    scale = 0.5 * (lo + hi)
    alpha = cover(scale)[1].astype(np.float32) / 255.0
    tone = np.asarray(SKIN_TONES_RGB[int(look.integers(len(SKIN_TONES_RGB)))], np.float32) * look.uniform(0.85, 1.08)
    layer = _draw_hand(np.zeros((h, w, 3), np.float32), pose, scale, tuple(float(c) for c in tone),
                       tuple(float(c) * 0.72 for c in tone))
    # Light falls across the hand from one side; skin has fine texture.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    side = np.array([math.cos(pose.heading), math.sin(pose.heading)], np.float32)
    across = ((xx - pose.palm[0]) * -side[1] + (yy - pose.palm[1]) * side[0]) / max(scale, 1.0)
    shade = np.clip(1.0 + 0.12 * np.tanh(across) * pose.light, 0.7, 1.2)
    layer = layer * shade[:, :, None] + noise.normal(0.0, 3.0, size=(h, w, 1)).astype(np.float32)
    out = image.astype(np.float32) * (1 - alpha[:, :, None]) + layer * alpha[:, :, None]
    return Degraded(np.clip(out, 0, 255).astype(np.uint8), alpha > 0.5)


@dataclass(frozen=True)
class _HandPose:
    palm: tuple[float, float]  # pixels: where the palm's centre sits on the box's entry edge
    heading: float  # radians: image direction from the wrist toward the fingertips
    inset: float  # palm widths past the entry edge (negative: the palm stays outside the box)
    mirror: float  # 1 for a right hand seen from the back, -1 for a left one
    curl: float  # finger length factor, 1 = straight
    light: float  # -1..1: which side the light comes from


def _hand_pose(box: tuple[float, ...], look: np.random.Generator) -> _HandPose:
    x1, y1, x2, y2 = box
    t = look.uniform(0.2, 0.8)
    side = look.choice(["bottom", "bottom", "left", "right", "top"])  # hands mostly come from below
    palm, heading = {"bottom": ((x1 + t * (x2 - x1), y2), -math.pi / 2), "top": ((x1 + t * (x2 - x1), y1), math.pi / 2),
                     "left": ((x1, y1 + t * (y2 - y1)), 0.0), "right": ((x2, y1 + t * (y2 - y1)), math.pi)}[side]
    return _HandPose(palm, heading + math.radians(look.uniform(-25, 25)), look.uniform(-0.3, 0.3),
                     1.0 if look.random() < 0.5 else -1.0, look.uniform(0.75, 1.0), look.uniform(-1, 1))


# Hand outline in palm widths: x across the hand (thumb on -x for mirror 1), y from the wrist to the fingers.
_FINGERS = ((-0.36, 0.74, -8.0), (-0.12, 0.86, -3.0), (0.12, 0.80, 3.0), (0.36, 0.62, 9.0))  # base x, length, tilt
_FINGER_WIDTH, _THUMB_WIDTH, _ARM_WIDTH = 0.21, 0.25, 0.78


def _draw_hand(target: np.ndarray, pose: _HandPose, scale: float, fill: float | tuple[float, ...],
               outline: float | tuple[float, ...]) -> np.ndarray:
    """Draw the hand (forearm, palm, thumb, fingers) into ``target`` with palm width ``scale`` pixels."""
    fwd = np.array([math.cos(pose.heading), math.sin(pose.heading)])
    right = np.array([-fwd[1], fwd[0]]) * pose.mirror
    centre = np.asarray(pose.palm) + fwd * pose.inset * scale

    def at(x: float, y: float) -> np.ndarray:
        return centre + scale * (x * right + y * fwd)

    def px(p: np.ndarray) -> tuple[int, int]:
        return (int(np.clip(round(p[0] * 16), -2 ** 24, 2 ** 24)), int(np.clip(round(p[1] * 16), -2 ** 24, 2 ** 24)))

    def thick(width: float) -> int:
        return max(1, min(2000, round(width * scale)))

    arm = np.array([at(-_ARM_WIDTH / 2, -0.2), at(_ARM_WIDTH / 2, -0.2), at(0.6, -6.0), at(-0.6, -6.0)])
    cv2.fillPoly(target, [np.round(arm * 16).astype(np.int64).clip(-2 ** 24, 2 ** 24).astype(np.int32)], fill,
                 cv2.LINE_AA, 4)
    axes = (max(1, round(0.5 * scale * 16)), max(1, round(0.56 * scale * 16)))
    angle = math.degrees(math.atan2(fwd[1], fwd[0])) - 90.0
    cv2.ellipse(target, px(centre), axes, angle, 0, 360, fill, -1, cv2.LINE_AA, 4)
    digits = [((-0.42, -0.05), 0.62 * pose.curl + 0.1, -48.0, _THUMB_WIDTH)]
    digits += [((x, 0.42), length * pose.curl, tilt, _FINGER_WIDTH) for x, length, tilt in _FINGERS]
    for (bx, by), length, tilt, width in digits:
        a = math.radians(tilt)
        base = at(bx, by)
        tip = base + scale * length * (math.cos(a) * fwd + math.sin(a) * right)
        cv2.line(target, px(base), px(tip), outline, thick(width) + 2, cv2.LINE_AA, 4)
        cv2.line(target, px(base), px(tip), fill, thick(width), cv2.LINE_AA, 4)
    return target
