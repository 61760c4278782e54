"""Backgrounds for renders: plausible indoor clutter, procedural and seeded.

The detector is trained on products over varied backgrounds (:mod:`vision.training.synth`), and the
digital twin's virtual camera films the twin over one too: nobody's router stands in a featureless grey
void, and a detector is right to doubt one that does.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def random_background(rng: np.random.Generator, width: int, height: int,
                      textures: list[np.ndarray]) -> np.ndarray:
    """A plausible indoor clutter surface: smooth colour fields, a texture, edges and blobs."""
    kind = rng.random()
    if kind < 0.35 and textures:
        tex = textures[int(rng.integers(len(textures)))]
        scale = float(rng.uniform(0.6, 2.0))
        tex = cv2.resize(tex, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        reps = (math.ceil(height / tex.shape[0]) + 1, math.ceil(width / tex.shape[1]) + 1, 1)
        tiled = np.tile(tex, reps)
        y0, x0 = int(rng.integers(0, tex.shape[0])), int(rng.integers(0, tex.shape[1]))
        img = tiled[y0:y0 + height, x0:x0 + width].astype(np.float32)
        tint = rng.uniform(0.5, 1.3, size=3)
        img = img * tint[None, None, :]
    else:
        low = rng.uniform(0, 255, size=(int(rng.integers(2, 6)), int(rng.integers(2, 6)), 3)).astype(np.float32)
        img = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
        noise = cv2.resize(rng.normal(0, 1, size=(height // 8, width // 8, 3)).astype(np.float32),
                           (width, height), interpolation=cv2.INTER_LINEAR)
        img += noise * float(rng.uniform(0, 25))
    # Clutter: rectangles (desk edges, books, boxes), lines (cables) and ellipses (cups).
    for _ in range(int(rng.integers(0, 8))):
        colour = tuple(float(c) for c in rng.uniform(0, 255, size=3))
        shape = rng.random()
        p1 = (int(rng.integers(-50, width)), int(rng.integers(-50, height)))
        if shape < 0.45:
            p2 = (p1[0] + int(rng.integers(20, 300)), p1[1] + int(rng.integers(20, 250)))
            cv2.rectangle(img, p1, p2, colour, -1)
        elif shape < 0.75:
            p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(img, p1, p2, colour, int(rng.integers(2, 10)), cv2.LINE_AA)
        else:
            axes = (int(rng.integers(10, 90)), int(rng.integers(10, 90)))
            cv2.ellipse(img, p1, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
    return np.clip(img, 0, 255).astype(np.uint8)


def room_backdrop(width: int, height: int, seed: int = 0) -> np.ndarray:
    """(height, width, 3) uint8 RGB: a fixed procedural background for the twin's virtual camera, in
    muted room colours (mostly grey, a little colour) so the device stands out to a person too."""
    img = random_background(np.random.default_rng(seed), width, height, []).astype(np.float32)
    grey = img.mean(axis=2, keepdims=True)
    muted = 0.35 * img + 0.65 * grey
    return np.clip(0.75 * muted + 40.0, 0, 255).astype(np.uint8)
