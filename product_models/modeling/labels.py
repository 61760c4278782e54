"""Printed text baked into one texture atlas per product, so labels render with any glTF viewer."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

ATLAS_WIDTH = 512  # pixels
TEXT_PX = 26  # glyph cap height in the atlas; enough for crisp text at phone distance
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_SCALE = TEXT_PX / 22.0  # Hershey simplex caps are ~22 px tall at scale 1
_THICK = 2
_PAD = 6


@dataclass(frozen=True)
class LabelSlot:
    """Where one label sits in the atlas: ``uv`` = (u0, v0, u1, v1) with v up, and its aspect (w / h)."""

    uv: tuple[float, float, float, float]
    aspect: float


def build_atlas(labels: list[tuple[str, str, tuple[int, int, int], tuple[int, int, int]]]
                ) -> tuple[bytes, dict[str, LabelSlot]]:
    """Draw each ``(key, text, ink_rgb, paper_rgb)`` into a PNG atlas. Returns the PNG and the slots by key."""
    row_h = TEXT_PX + 2 * _PAD
    placed: list[tuple[str, str, tuple, tuple, int, int, int]] = []
    x = y = 0
    for key, text, ink, paper in labels:
        (tw, _), _ = cv2.getTextSize(text, _FONT, _SCALE, _THICK)
        w = min(tw + 2 * _PAD, ATLAS_WIDTH)
        if x + w > ATLAS_WIDTH:
            x, y = 0, y + row_h
        placed.append((key, text, ink, paper, x, y, w))
        x += w
    height = 1
    while height < y + row_h:  # power-of-two height keeps every texture path happy
        height *= 2
    img = np.zeros((height, ATLAS_WIDTH, 3), np.uint8)
    slots: dict[str, LabelSlot] = {}
    for key, text, ink, paper, px, py, w in placed:
        img[py:py + row_h, px:px + w] = paper
        cv2.putText(img, text, (px + _PAD, py + _PAD + TEXT_PX), _FONT, _SCALE, ink, _THICK, cv2.LINE_AA)
        # Sample half a texel inside the slot so bilinear filtering never bleeds the neighbour in.
        u0, u1 = (px + 0.5) / ATLAS_WIDTH, (px + w - 0.5) / ATLAS_WIDTH
        v1, v0 = 1.0 - (py + 0.5) / height, 1.0 - (py + row_h - 0.5) / height
        slots[key] = LabelSlot((u0, v0, u1, v1), w / row_h)
    ok, png = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError("PNG encoding of the label atlas failed")
    return png.tobytes(), slots
