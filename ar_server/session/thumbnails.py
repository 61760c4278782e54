"""The small copy of a customer's frame that watching agents see (downscaled, never stored)."""

from __future__ import annotations

import base64

import cv2
import numpy as np

AGENT_JPEG_QUALITY = 70


def shrink_jpeg(jpeg: bytes, width: int) -> tuple[str, int, int] | None:
    """The frame at ``width`` pixels wide (never enlarged), as base64 JPEG text with its size; None when the
    JPEG does not decode. Blocking: run it on a worker thread."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None
    height_px, width_px = image.shape[:2]
    if width_px > width:
        height = max(1, round(height_px * width / width_px))
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, AGENT_JPEG_QUALITY])
    if not ok:
        return None
    return base64.b64encode(data.tobytes()).decode("ascii"), int(image.shape[1]), int(image.shape[0])
