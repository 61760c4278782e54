"""LED state from a small crop around its projected position: off, or lit in one of its catalog colours.

How a reading is made (HSV-style rules, no trained model):
- The crop is a square around the projected anchor, half-size ``2 x`` the LED's expected pixel size (at
  least ``MIN_HALF_PX``), because the pose puts the anchor a few pixels off.
- *Lit* evidence compares the brightest core (the top-k pixels by value, k = the LED's expected area), or
  the k most colourful bright pixels, with the crop's median: either much brighter, or much more colourful
  (a lit LED on a white housing is not brighter than the housing, only more saturated). A dim core is never
  lit.
- *Colour* comes from the brightest ring, not the very centre: a bright LED overexposes to white in the
  middle, and JPEG's 4:2:0 chroma subsampling smears its colour over 2x2 blocks. So the top 3k pixels are
  averaged in BGR (never average hue, it is circular), each weighted by its chroma, and the hue of that mean
  is classified into the LED's *own* allowed colours only.
- Hue bands (degrees, 0..360): red around 0 (+-10 full, fading to 0 at +-20), amber around 35 (+-8 / +-18),
  green around 125 (+-40 / +-60), blue around 225 (+-30 / +-50). Amber and red are close: a hue of 17 is
  weakly red, 27 is amber. A lit blob whose hue fits none of the LED's colours gives ``state=None``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_HALF_PX = 6  # smallest crop half-size, pixels
MAX_HALF_PX = 48  # largest crop half-size, pixels: bounds the work for a close-up
MIN_SATURATION = 0.25  # a lit core less saturated than this is white: no colour can be read
# (centre, full-confidence half-width, zero-confidence half-width), degrees
HUE_BANDS: dict[str, tuple[float, float, float]] = {
    "red": (0.0, 10.0, 20.0),
    "amber": (35.0, 8.0, 18.0),
    "green": (125.0, 40.0, 60.0),
    "blue": (225.0, 30.0, 50.0),
}


@dataclass(frozen=True)
class LedReading:
    state: str | None  # "off", a colour from the LED's states, or None (unreadable)
    confidence: float  # [0, 1]
    lit: float  # [0, 1] evidence that the LED is lit
    hue_deg: float | None  # hue of the lit colour, degrees; None when not lit or unsaturated
    saturation: float  # [0, 1] of the colour sample
    brightness: float  # [0, 255] mean value of the brightest core


def _hue_confidence(hue: float, colour: str) -> float:
    centre, full, zero = HUE_BANDS[colour]
    d = abs((hue - centre + 180.0) % 360.0 - 180.0)
    return float(np.clip((zero - d) / (zero - full), 0.0, 1.0))


def classify_led(image: np.ndarray, uv: tuple[float, float], size_px: float,
                 allowed_states: tuple[str, ...]) -> LedReading:
    """Read an LED at pixel ``uv`` ((h, w, 3) uint8 BGR ``image``; ``size_px`` its expected diameter).
    ``allowed_states`` are the LED's catalog states ("off" and colours from :data:`HUE_BANDS`)."""
    h, w = image.shape[:2]
    half = int(min(MAX_HALF_PX, max(MIN_HALF_PX, math.ceil(2.0 * size_px))))
    u, v = round(uv[0]), round(uv[1])
    x0, x1, y0, y1 = max(0, u - half), min(w, u + half + 1), max(0, v - half), min(h, v + half + 1)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return LedReading(None, 0.0, 0.0, None, 0.0, 0.0)
    crop = image[y0:y1, x0:x1].reshape(-1, 3).astype(np.float32)
    value = crop.max(axis=1)
    chroma = value - crop.min(axis=1)
    k = int(np.clip(round(math.pi / 4.0 * size_px * size_px), 3, len(value) // 4))
    order = np.argsort(value)[::-1]
    core = order[:k]
    core_v = float(value[core].mean())
    # Chroma evidence uses the most colourful bright pixels, not the value core: on a white housing the
    # brightest pixels are the LED's overexposed white centre and the housing itself.
    colourful = np.sort(np.where(value >= 120.0, chroma, 0.0))[::-1][:k]
    evidence = max(core_v - float(np.median(value)), float(colourful.mean()) - float(np.median(chroma)))
    # Thresholds on 0..255: below 25 levels of contrast the blob is housing texture; at 75 it is clearly lit.
    lit = float(np.clip((evidence - 25.0) / 50.0, 0.0, 1.0) * np.clip((core_v - 80.0) / 80.0, 0.0, 1.0))

    ring = order[:3 * k]
    weights = chroma[ring] + 1e-3
    mean_bgr = (crop[ring] * weights[:, None]).sum(axis=0) / weights.sum()
    b, g, r = (float(c) for c in mean_bgr)
    top, bottom = max(b, g, r), min(b, g, r)
    saturation = (top - bottom) / top if top > 0 else 0.0
    hue: float | None = None
    if top - bottom > 1e-6 and saturation >= MIN_SATURATION:
        if top == r:
            hue = (60.0 * (g - b) / (top - bottom)) % 360.0
        elif top == g:
            hue = 60.0 * (b - r) / (top - bottom) + 120.0
        else:
            hue = 60.0 * (r - g) / (top - bottom) + 240.0

    colours = [s for s in allowed_states if s in HUE_BANDS]
    if lit < 0.5:
        if "off" in allowed_states:
            return LedReading("off", 1.0 - lit, lit, hue, saturation, core_v)
        return LedReading(None, 0.0, lit, hue, saturation, core_v)
    if hue is None or not colours:
        return LedReading(None, 0.0, lit, hue, saturation, core_v)  # lit white, or an LED with no colours
    best = max(colours, key=lambda c: _hue_confidence(hue, c))
    hue_conf = _hue_confidence(hue, best)
    if hue_conf <= 0.0:
        return LedReading(None, 0.0, lit, hue, saturation, core_v)
    return LedReading(best, lit * hue_conf, lit, hue, saturation, core_v)
