"""JPEG decoding after the guards of :mod:`vision.jpeg_header`, which run before any pixel buffer exists.

Rules 1-4 (size, magic, the header's declared size, truncation) are :func:`vision.jpeg_header.check_jpeg`'s.
Then:

5. ``cv2.imdecode`` returning nothing, or an image whose size differs from the header's, is refused.
   Corruption inside the scan that libjpeg only warns about is not detected (OpenCV gives no hook for its
   warnings); such a frame decodes with visible damage and recognition confidence drops for that frame.

EXIF orientation is ignored on purpose: pixels stay in sensor order, which is what the camera intrinsics
describe.
"""

from __future__ import annotations

import numpy as np

from vision.errors import FrameError
from vision.jpeg_header import DecodeLimits, JpegHeader, check_jpeg

DEFAULT_LIMITS = DecodeLimits()


def decode_jpeg(data: bytes | bytearray | memoryview, limits: DecodeLimits = DEFAULT_LIMITS, *,
                reduce: int = 1, header: JpegHeader | None = None) -> np.ndarray:
    """Decode a JPEG frame to a (h, w, 3) uint8 BGR array after the guards in the module docstring.

    ``reduce`` = 2, 4 or 8 decodes at 1/reduce size (libjpeg's DCT scaling: cheaper than decoding at full
    size and resizing); the result is ceil(w / reduce) x ceil(h / reduce). ``header``: these bytes'
    header as read earlier (the server's probe); the limits and the truncation check still apply.
    """
    import cv2  # heavy; imported on first use so that `import vision` stays cheap

    flags = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
             8: cv2.IMREAD_REDUCED_COLOR_8}
    if reduce not in flags:
        raise FrameError(f"reduce: expected 1, 2, 4 or 8, got {reduce!r}")
    header = check_jpeg(data, limits, header)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags[reduce] | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise FrameError(f"JPEG is corrupt: the decoder could not read its {header.width}x{header.height} "
                         "image data")
    want = (-(-header.height // reduce), -(-header.width // reduce))
    if image.shape[:2] != want:
        raise FrameError(f"JPEG is corrupt: decoded {image.shape[1]}x{image.shape[0]} pixels, expected "
                         f"{want[1]}x{want[0]} from its header")
    if image.ndim == 2:  # defensive: IMREAD_COLOR always gives 3 channels, even for greyscale JPEGs
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """Encode a (h, w, 3) uint8 BGR image as baseline JPEG (4:2:0 chroma, as phone cameras send)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise FrameError(f"could not encode a {image.shape} {image.dtype} image as JPEG")
    return buf.tobytes()
