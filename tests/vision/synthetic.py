"""Synthetic LED pictures for tests: a glowing blob with an overexposed centre, as a phone camera sees a
lit LED, then a JPEG round trip at phone quality (4:2:0 chroma subsampling smears the colour)."""

from __future__ import annotations

import numpy as np

from vision.decode import decode_jpeg, encode_jpeg

COLOURS_BGR: dict[str, tuple[int, int, int]] = {
    "red": (30, 30, 255), "amber": (0, 160, 255), "green": (70, 255, 40), "blue": (255, 80, 20),
}


def housing(height: int = 240, width: int = 320, grey: int = 45, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.full((height, width, 3), grey, np.float32) + rng.normal(0, 3, (height, width, 3)), 0, 255)


def draw_led(image: np.ndarray, uv: tuple[float, float], diameter: float, state: str) -> None:
    """Paint an LED in ``state`` ("off" or a colour of COLOURS_BGR) into a float32 BGR image, in place."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((xx - uv[0]) ** 2 + (yy - uv[1]) ** 2) / (diameter / 2.0) ** 2
    if state == "off":  # a dark lens, a little lighter than the housing
        image[r2 < 1.0] = image[r2 < 1.0] * 0.7 + 20.0
        return
    glow = np.exp(-r2 * 0.7)[..., None]
    core = np.exp(-r2 * 2.0)[..., None]
    image[:] = image * (1 - glow) + np.array(COLOURS_BGR[state], np.float32) * glow
    image[:] = image * (1 - 0.6 * core) + 255.0 * 0.6 * core


def as_camera_frame(image: np.ndarray, quality: int = 75) -> np.ndarray:
    return decode_jpeg(encode_jpeg(np.clip(image, 0, 255).astype(np.uint8), quality))
