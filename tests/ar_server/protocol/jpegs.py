"""JPEG bytes for protocol tests: real encodes (OpenCV) and hand-built headers that declare any size."""

from __future__ import annotations

import struct

import cv2
import numpy as np


def real_jpeg(width: int = 64, height: int = 48, *, progressive: bool = False) -> bytes:
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])
    assert ok
    return buf.tobytes()


def header_jpeg(width: int, height: int, *, sof: int = 0xC0, components: int = 3) -> bytes:
    """SOI, an APP0 segment, a SOF header declaring width x height, then EOI: no image data at all."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    comps = b"".join(bytes([i + 1, 0x11, 0]) for i in range(components))
    sof_body = bytes([8]) + struct.pack(">HH", height, width) + bytes([components]) + comps
    return b"\xff\xd8" + app0 + bytes([0xFF, sof]) + struct.pack(">H", 2 + len(sof_body)) + sof_body + b"\xff\xd9"
