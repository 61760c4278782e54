"""What a phone camera does to a frame, for training data: white balance, exposure, sensor noise, optics.

Every function takes and returns a float32 RGB image on the 0..255 scale (values may exceed 255 until the
final clip, as a bright sensor would saturate) and draws from the caller's generator, so a dataset is
reproducible from its seed.

Hue is never rotated: a hue shift turns a red LED green. White balance changes the *gains* of the three
channels, as a wrong colour temperature does, which keeps a lit red LED the reddest thing in view.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Lit LED colours as a sensor sees them (RGB), by catalog state name.
LED_COLOURS = {"green": (40, 255, 90), "red": (255, 40, 30), "amber": (255, 160, 20), "orange": (255, 130, 20),
               "blue": (40, 110, 255), "white": (255, 255, 255), "yellow": (255, 220, 40)}


def white_balance(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Per-channel gains of a colour temperature from candle-warm to shade-cool, with a little green-magenta
    tint. ``strength`` 1 spans about R x0.72-1.32 and B x0.68-1.3: wider than the casts a phone's auto white
    balance leaves, so those are inside the training range."""
    temperature = rng.uniform(-1.0, 1.0) * strength
    tint = rng.normal(0.0, 0.04) * strength
    gains = np.array([1.0 + 0.3 * temperature, 1.0 + tint, 1.0 - 0.31 * temperature], np.float32)
    gains /= gains.mean() ** 0.5  # keep the overall level roughly where it was
    return img * gains[None, None, :]


def exposure(img: np.ndarray, rng: np.random.Generator, low_light: bool) -> tuple[np.ndarray, float]:
    """Exposure and a tone curve. Returns the image and the analogue gain the camera would have needed
    (> 1 in dim light), which scales the sensor noise. ``low_light`` draws a dim room (x0.25-0.5)."""
    level = float(rng.uniform(0.25, 0.5)) if low_light else float(math.exp(rng.uniform(math.log(0.6), math.log(1.5))))
    gamma = float(rng.uniform(0.8, 1.25))
    out = 255.0 * np.power(np.clip(img * level, 0, None) / 255.0, gamma)
    return out, 1.0 / min(level, 1.0)


def sensor_noise(img: np.ndarray, rng: np.random.Generator, gain: float) -> np.ndarray:
    """Shot noise (grows with the signal), read noise, and chroma blotches, all growing with ``gain``."""
    base = float(rng.uniform(1.0, 4.0)) * gain
    shot = np.sqrt(np.clip(img, 0, None) / 255.0) * base * 2.0
    noise = rng.normal(0, 1, img.shape).astype(np.float32) * (shot + base * 0.5)
    if gain > 1.5:  # phones' low-light noise is blotchy in colour, not only per pixel
        h, w = img.shape[:2]
        low = rng.normal(0, base * 0.6, (max(h // 6, 1), max(w // 6, 1), 3)).astype(np.float32)
        noise += cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
    return img + noise


def motion_blur(img: np.ndarray, rng: np.random.Generator, max_px: int = 15) -> np.ndarray:
    """A straight hand shake of 3..``max_px`` pixels in any direction."""
    length = int(rng.integers(3, max_px + 1))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
    kernel = cv2.warpAffine(kernel, rot, (length, length))
    kernel /= max(float(kernel.sum()), 1e-6)
    return cv2.filter2D(img, -1, kernel)


def defocus(img: np.ndarray, rng: np.random.Generator, max_radius: float = 6.0) -> np.ndarray:
    """A lens out of focus: a disc kernel of radius 1.5..``max_radius`` pixels."""
    r = float(rng.uniform(1.5, max_radius))
    size = 2 * math.ceil(r) + 1
    kernel = np.zeros((size, size), np.float32)
    cv2.circle(kernel, (size // 2, size // 2), round(r), 1.0, -1, cv2.LINE_AA)
    kernel /= kernel.sum()
    return cv2.filter2D(img, -1, kernel)


def glare(img: np.ndarray, rng: np.random.Generator, box: np.ndarray) -> np.ndarray:
    """A specular highlight on the product's body: a soft, bright, slightly elongated blob inside ``box``.
    Returns its strength map (h, w) in 0..1, so parts under its core can be marked unreadable."""
    h, w = img.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy = rng.uniform(x1, x2), rng.uniform(y1, y2)
    side = math.sqrt(max(x2 - x1, 4.0) * max(y2 - y1, 4.0))
    sx, sy = side * rng.uniform(0.04, 0.18), side * rng.uniform(0.03, 0.12)
    theta = rng.uniform(0, math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    u = dx * math.cos(theta) + dy * math.sin(theta)
    v = -dx * math.sin(theta) + dy * math.cos(theta)
    strength = np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2)).astype(np.float32)
    tint = np.array([1.0, 1.0, 1.0], np.float32) * float(rng.uniform(180, 320))
    img += strength[:, :, None] * tint[None, None, :]
    return strength


def led_bloom(img: np.ndarray, rng: np.random.Generator, leds: list[tuple[tuple[float, float], float, str]]) -> None:
    """A phone sensor's view of lit LEDs: the core clips toward white and a halo of the LED's colour spreads
    around it. ``leds``: (centre pixel, LED size in pixels, state) of each visible lit LED. In place."""
    h, w = img.shape[:2]
    spread = float(rng.uniform(1.5, 4.0))
    core_white = float(rng.uniform(0.3, 0.9))
    for (u, v), size, state in leds:
        colour = np.array(LED_COLOURS.get(state, (255, 255, 255)), np.float32)
        radius = max(size * spread, 2.0)
        x0, x1 = int(max(u - 3 * radius, 0)), int(min(u + 3 * radius + 1, w))
        y0, y1 = int(max(v - 3 * radius, 0)), int(min(v + 3 * radius + 1, h))
        if x1 <= x0 or y1 <= y0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        d2 = (xx - u) ** 2 + (yy - v) ** 2
        halo = np.exp(-0.5 * d2 / radius**2)[:, :, None] * float(rng.uniform(0.4, 0.9))
        core = np.exp(-0.5 * d2 / max(size * 0.45, 0.7) ** 2)[:, :, None]
        region = img[y0:y1, x0:x1]
        region += halo * colour[None, None, :]
        white = colour * (1 - core_white) + 255.0 * core_white
        region[:] = region * (1 - core) + np.maximum(region, white[None, None, :] * 1.2) * core
