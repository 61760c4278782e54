"""The robustness conditions, and the scenes they are rendered from.

A :class:`Condition` changes one thing against ``as_rendered``: a degradation of the image
(:mod:`vision.training.degradations`), or how the frame is made (its size, field of view, background, the
device's size in the frame, the JPEG quality). Scenes are drawn from separate generators for content (product
and part states), view, light and background, each seeded by the base seed and the frame's index, so frame
*i* shows the same device in the same states from the same direction under every condition that does not
change the geometry: differences between conditions are the condition's, not the draw's.

Scenes (every figure here is a choice for evaluation, independent of the training generator):

- frames: any yaw, looking down 10-65 degrees, roll ~N(0, 5) degrees, the device's footprint diagonal
  30-70 % of the frame width (``device_share``), off-centre as far as its size allows; each stateful part
  healthy half the time, otherwise in a random state; neutral indoor light from above;
- clips: the device healthy but for one part in a fault state, filmed from the side that part faces, from
  a camera that orbits slowly (up to 4 degrees/s, with a sway of 2-3 degrees) and shakes a little
  (look-at point ~N(0, 3 mm), roll ~N(0, 0.5) degrees per frame); for a part under 20 mm the camera leans in
  until it is ``LEAN_PX`` across, as a person asked to look at an LED does;
- backgrounds: ``clutter`` is the project's procedural room (:func:`product_models.backdrop.random_background`),
  ``plain`` a uniform grey (the renderer's default, as ``fixlens products render`` gives) or white surface,
  ``real_photo`` one of the real photos of scikit-image and matplotlib, scaled to cover the frame and cropped.
  Product-free frames add plain walls and desks drawn here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from product_models.backdrop import random_background
from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import Product
from product_models.render import DEFAULT_BACKGROUND, Lighting
from vision.training import degradations as dg

BackgroundKind = Literal["clutter", "plain", "real_photo"]

# ---- tuning -------------------------------------------------------------------------------------------
PITCH_DEG = (10.0, 65.0)
ROLL_SIGMA_DEG = 5.0
LEAN_PX = 6.0  # a small part the clip is about is at least this big on screen
FACING_VIEW = {"front": (0.0, 30.0), "back": (180.0, 28.0), "top": (10.0, 55.0), "left": (-90.0, 25.0),
               "right": (90.0, 25.0)}  # (yaw, pitch) degrees that show a face
ORBIT_DEG_S = 4.0
SWAY_DEG = (2.5, 2.0)  # yaw, pitch
SHAKE_M = 0.003
SHAKE_ROLL_DEG = 0.5


@dataclass(frozen=True)
class Condition:
    """One way a frame can be worse than ``as_rendered``."""

    name: str
    description: str
    degrade: dg.Degrade | None = None
    width: int = 640
    height: int = 480
    hfov_deg: float = 63.0
    device_share: tuple[float, float] = (0.30, 0.70)  # the device's footprint diagonal, share of frame width
    background: BackgroundKind = "clutter"
    jpeg_quality: int = 85
    lean_in: bool = True  # clips lean in on a small part (not when the condition is about a small device)
    phone: bool = False  # a phone extra (frame geometry or encoding), not a degradation of the scene

    @property
    def camera(self) -> CameraIntrinsics:
        return CameraIntrinsics.from_fov(self.width, self.height, self.hfov_deg)


CONDITIONS: dict[str, Condition] = {c.name: c for c in (
    Condition("as_rendered", "the render as it is, over a procedural room, JPEG quality 85"),
    Condition("warm_cast", "tungsten-like cast: R x1.25, B x0.75", dg.warm_cast),
    Condition("cool_cast", "daylight-like cast: R x0.8, B x1.2", dg.cool_cast),
    Condition("mild_cast", "each channel x U(0.9, 1.1)", dg.mild_cast),
    Condition("real_photo_background", "over real photos (scikit-image, matplotlib), scaled to cover the frame",
              background="real_photo"),
    Condition("hand", "a hand (palm, fingers, thumb, forearm; six skin tones) over 15-30 % of the product box",
              dg.hand),
    Condition("low_light", "x0.35 with the sensor noise of a camera at 2.9x gain", dg.low_light),
    Condition("glare", "a white specular highlight on the product's body", dg.glare),
    Condition("small_device", "the device's footprint diagonal 8-12 % of the frame width",
              device_share=(0.08, 0.12), lean_in=False),
    Condition("led_bloom", "lit LEDs: a coloured halo and a core clipped to white", dg.led_bloom),
    Condition("motion_blur", "a 15 px line blur at a random angle", dg.motion_blur),
    Condition("defocus", "a disc blur of radius 4-6 px", dg.defocus),
    Condition("plain_surface", "over a plain grey or white surface", background="plain"),
    Condition("portrait", "a 480 x 640 portrait frame", width=480, height=640, phone=True),
    Condition("wide_fov", "an 85-degree horizontal field of view", hfov_deg=85.0, phone=True),
    Condition("jpeg_low", "JPEG quality 30", jpeg_quality=30, phone=True),
)}


@dataclass(frozen=True)
class Scene:
    """Everything the renderer needs for one frame."""

    product: Product
    states: dict[str, str]
    pose: Pose
    camera: CameraIntrinsics
    lighting: Lighting
    background: np.ndarray  # (h, w, 3) uint8 RGB


def stream(seed: int, *keys: int) -> np.random.Generator:
    """An independent generator for ``keys`` under ``seed``."""
    return np.random.default_rng([seed, *keys])


def random_states(product: Product, rng: np.random.Generator) -> dict[str, str]:
    return {p.name: p.healthy if (rng.random() < 0.5 and p.healthy is not None) else str(rng.choice(p.states))
            for p in product.stateful_parts()}


def neutral_lighting(rng: np.random.Generator) -> Lighting:
    """Ordinary indoor light from above: no colour of its own (casts are conditions)."""
    az, el = rng.uniform(0, 2 * math.pi), math.radians(rng.uniform(35.0, 75.0))
    direction = (-math.cos(el) * math.cos(az), -math.cos(el) * math.sin(az), -math.sin(el))
    return Lighting(float(rng.uniform(0.30, 0.45)), direction, (1.0, 1.0, 1.0), float(rng.uniform(0.6, 0.95)),
                    float(rng.uniform(0.15, 0.30)))


def frame_scene(condition: Condition, products: list[Product], seed: int, index: int, attempt: int,
                photos: list[np.ndarray]) -> Scene:
    """Frame ``index`` under ``condition``; ``attempt`` > 0 redraws only the view (the last one missed)."""
    content = stream(seed, 1, index)
    product = products[int(content.integers(len(products)))]
    states = random_states(product, content)
    view = stream(seed, 2, index, attempt)
    camera = condition.camera
    w, d, h = product.size_m
    lo, hi = condition.device_share
    share = lo + (hi - lo) * view.random()
    distance = camera.fx * math.hypot(w, d) / (share * camera.width)
    yaw, pitch, roll = view.uniform(-180.0, 180.0), view.uniform(*PITCH_DEG), view.normal(0.0, ROLL_SIGMA_DEG)
    centre = np.array([0.0, 0.0, h / 2.0])
    base = Pose.orbit(yaw, pitch, distance, target=tuple(centre), roll_deg=roll)
    room = 0.4 * (1.0 - share)  # a large device has little room to move before it leaves the frame
    du, dv = view.uniform(-room, room) * camera.width, view.uniform(-room, room) * camera.height
    target = centre + base.R.T @ (np.array([-du / camera.fx, -dv / camera.fy, 0.0]) * distance)
    pose = Pose.look_at(base.camera_position, target, roll_deg=roll)
    background = make_background(condition.background, stream(seed, 4, index), camera.width, camera.height, photos)
    return Scene(product, states, pose, camera, neutral_lighting(stream(seed, 3, index)), background)


@dataclass(frozen=True)
class Clip:
    """A short handheld film of a device with one part in a fault state."""

    product: Product
    part: str  # the unfixed part
    states: dict[str, str]
    camera: CameraIntrinsics
    lighting: Lighting
    background: np.ndarray  # (h, w, 3) uint8 RGB
    poses: tuple[Pose, ...]  # one per frame


def clip_scene(condition: Condition, product: Product, part_name: str, fault_state: str, seed: int, index: int,
               frames: int, fps: float, photos: list[np.ndarray]) -> Clip:
    rng = stream(seed, 5, index)
    part = product.part(part_name)
    camera = condition.camera
    w, d, h = product.size_m
    lo, hi = condition.device_share
    share = lo + (hi - lo) * rng.random()
    distance = camera.fx * math.hypot(w, d) / (share * camera.width)
    centre = np.array([0.0, 0.0, h / 2.0])
    target = centre
    small = max(part.size_mm) < 20.0
    if condition.lean_in and small and camera.fx * max(part.size_mm) / 1000.0 / distance < LEAN_PX:
        distance = camera.fx * max(part.size_mm) / 1000.0 / LEAN_PX
        target = 0.5 * (centre + np.asarray(part.anchor))  # the part and the device both in view
    yaw0, pitch0 = FACING_VIEW.get(part.facing, (20.0, 30.0))
    yaw0 += rng.uniform(-25.0, 25.0)
    pitch0 = float(np.clip(pitch0 + rng.uniform(-8.0, 8.0), *PITCH_DEG))
    orbit = rng.uniform(-ORBIT_DEG_S, ORBIT_DEG_S)
    phase = rng.uniform(0, 2 * math.pi, size=3)
    poses = []
    for f in range(frames):
        t = f / fps
        yaw = yaw0 + orbit * t + SWAY_DEG[0] * math.sin(2 * math.pi * t / 3.1 + phase[0])
        pitch = pitch0 + SWAY_DEG[1] * math.sin(2 * math.pi * t / 2.7 + phase[1])
        dist = distance * (1.0 + 0.03 * math.sin(2 * math.pi * t / 3.7 + phase[2]))
        roll = rng.normal(0.0, SHAKE_ROLL_DEG)
        look = target + rng.normal(0.0, SHAKE_M, size=3)
        eye = Pose.orbit(yaw, pitch, dist, target=tuple(look)).camera_position
        poses.append(Pose.look_at(eye, look, roll_deg=roll))
    states = {**product.healthy_states(), part_name: fault_state}
    return Clip(product, part_name, states, camera, neutral_lighting(rng),
                make_background(condition.background, rng, camera.width, camera.height, photos), tuple(poses))


# ---- backgrounds --------------------------------------------------------------------------------------

def make_background(kind: BackgroundKind, rng: np.random.Generator, width: int, height: int,
                    photos: list[np.ndarray]) -> np.ndarray:
    """(height, width, 3) uint8 RGB behind the device (``photos``: RGB, for ``real_photo``)."""
    if kind == "plain":
        return plain_surface(rng, width, height)
    if kind == "real_photo":
        if not photos:
            raise ValueError("real_photo backgrounds need the real photos of scikit-image or matplotlib")
        return cover_crop(photos[int(rng.integers(len(photos)))], width, height, rng)
    return random_background(rng, width, height, [])


def plain_surface(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    grey = np.asarray(DEFAULT_BACKGROUND) * 255.0
    colour = grey if rng.random() < 0.5 else np.full(3, rng.uniform(236.0, 250.0))
    return np.broadcast_to(np.round(colour).astype(np.uint8), (height, width, 3)).copy()


def cover_crop(image: np.ndarray, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """``image`` scaled to cover ``width`` x ``height`` and cropped at a random place."""
    scale = max(width / image.shape[1], height / image.shape[0])
    size = (max(width, math.ceil(image.shape[1] * scale)), max(height, math.ceil(image.shape[0] * scale)))
    big = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x0 = int(rng.integers(0, big.shape[1] - width + 1))
    y0 = int(rng.integers(0, big.shape[0] - height + 1))
    return np.ascontiguousarray(big[y0:y0 + height, x0:x0 + width])


def _lit(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light falling off across the frame, and fine surface texture."""
    h, w = img.shape[:2]
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = ((xx / w - 0.5) * math.cos(angle) + (yy / h - 0.5) * math.sin(angle)) * rng.uniform(0.1, 0.3)
    out = img * (1.0 + ramp)[:, :, None] + rng.normal(0.0, 2.0, size=(h, w, 1)).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def wall(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A painted wall: one paint colour, maybe a skirting board, a socket plate or a framed picture."""
    paint = np.asarray([(238, 234, 226), (222, 212, 190), (205, 208, 210), (196, 212, 222), (200, 212, 190),
                        (230, 220, 200)][int(rng.integers(6))], np.float32) * rng.uniform(0.85, 1.02)
    img = np.empty((height, width, 3), np.float32)
    img[:] = paint
    if rng.random() < 0.5:
        top = int(height * rng.uniform(0.75, 0.9))
        img[top:] = (245, 245, 240) if rng.random() < 0.5 else (150, 105, 70)
        img[top:top + 2] *= 0.8
    if rng.random() < 0.5:
        x, y, s = int(rng.uniform(0.1, 0.8) * width), int(rng.uniform(0.4, 0.8) * height), int(rng.uniform(40, 80))
        cv2.rectangle(img, (x, y), (x + s, y + s), (248, 248, 246), -1, cv2.LINE_AA)
        cv2.rectangle(img, (x, y), (x + s, y + s), tuple(float(c) * 0.8 for c in paint), 1, cv2.LINE_AA)
        for hx in (0.35, 0.65):
            cv2.circle(img, (x + int(hx * s), y + s // 2), max(2, s // 14), (60, 60, 60), -1, cv2.LINE_AA)
    if rng.random() < 0.5:
        x, y = int(rng.uniform(0.05, 0.6) * width), int(rng.uniform(0.05, 0.4) * height)
        fw, fh = int(rng.uniform(80, 220)), int(rng.uniform(60, 160))
        cv2.rectangle(img, (x, y), (x + fw, y + fh), tuple(float(c) for c in rng.uniform(20, 120, 3)), -1)
        inner = random_background(rng, max(fw - 16, 4), max(fh - 16, 4), []).astype(np.float32)
        img[y + 8:y + 8 + inner.shape[0], x + 8:x + 8 + inner.shape[1]] = inner[:max(0, height - y - 8),
                                                                                :max(0, width - x - 8)]
    return _lit(img, rng)


def desk(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A desk top: wood grain or laminate, with a few everyday things on it."""
    if rng.random() < 0.6:
        base = np.asarray([(150, 100, 60), (190, 140, 90), (110, 70, 40), (210, 175, 130)][int(rng.integers(4))],
                          np.float32)
        grain = cv2.resize(rng.normal(0, 1, size=(max(2, height // 6), max(2, width // 64))).astype(np.float32),
                           (width, height), interpolation=cv2.INTER_CUBIC)
        img = base[None, None, :] * (1.0 + 0.08 * grain)[:, :, None]
    else:
        img = np.empty((height, width, 3), np.float32)
        img[:] = np.asarray([(235, 235, 232), (120, 120, 124), (60, 60, 62)][int(rng.integers(3))], np.float32)
    for _ in range(int(rng.integers(2, 6))):
        kind = int(rng.integers(5))
        x, y = int(rng.uniform(0, width)), int(rng.uniform(0, height))
        colour = tuple(float(c) for c in rng.uniform(20, 240, 3))
        if kind == 0:  # a mug seen from above
            r = int(rng.uniform(25, 50))
            cv2.circle(img, (x, y), r, colour, -1, cv2.LINE_AA)
            cv2.circle(img, (x, y), int(r * 0.8), (70, 45, 30), -1, cv2.LINE_AA)
        elif kind == 1:  # a notebook
            box = cv2.boxPoints(((x, y), (rng.uniform(120, 220), rng.uniform(160, 280)), rng.uniform(0, 180)))
            cv2.fillPoly(img, [np.round(box).astype(np.int32)], colour, cv2.LINE_AA)
        elif kind == 2:  # a cable
            pts = np.cumsum(rng.normal(0, 40, size=(8, 2)), axis=0) + np.array([x, y])
            cv2.polylines(img, [np.round(pts).astype(np.int32)], False, (25, 25, 25) if rng.random() < 0.6
                          else (235, 235, 235), int(rng.integers(3, 7)), cv2.LINE_AA)
        elif kind == 3:  # a phone, face down
            box = cv2.boxPoints(((x, y), (70, 145), rng.uniform(0, 180)))
            cv2.fillPoly(img, [np.round(box).astype(np.int32)], (35, 35, 38), cv2.LINE_AA)
        else:  # a sticky note
            box = cv2.boxPoints(((x, y), (75, 75), rng.uniform(0, 90)))
            cv2.fillPoly(img, [np.round(box).astype(np.int32)], (250, 235, 110), cv2.LINE_AA)
    return _lit(img, rng)
