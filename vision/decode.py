"""JPEG decoding with guards that run before any pixel buffer is allocated.

Rules, in the order they are checked:
1. Empty data, or more than ``max_bytes``, is refused.
2. The data must start with the JPEG SOI marker ``FF D8 FF``; PNG, GIF and random bytes are refused by magic.
3. The marker segments are walked up to the first SOFn (frame header) to read the declared width and height.
   A zero dimension (including height 0, "defined later by a DNL marker"), or more than ``max_pixels``, is
   refused here, so a 30000x30000 header costs a few bytes of parsing, never a 2.7 GB buffer.
4. Truncation policy: the EOI marker ``FF D9`` must appear within the last ``EOI_WINDOW`` bytes. A camera or
   browser frame ends with EOI (some encoders add a few padding bytes or a small trailer after it); a frame
   cut off in transit does not, and libjpeg would otherwise decode it "successfully" with a grey bottom.
   Byte stuffing (``FF 00``) means ``FF D9`` cannot occur inside entropy-coded data, so the test is sound.
5. ``cv2.imdecode`` returning nothing, or an image whose size differs from the header's, is refused.
   Corruption inside the scan that libjpeg only warns about is not detected (OpenCV gives no hook for its
   warnings); such a frame decodes with visible damage and recognition confidence drops for that frame.

EXIF orientation is ignored on purpose: pixels stay in sensor order, which is what the camera intrinsics
describe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vision.errors import FrameError

EOI_WINDOW = 512  # bytes at the end of the data that must contain the EOI marker
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RSTn carry no length field
_MAGIC = {b"\x89PNG": "PNG", b"GIF8": "GIF", b"RIFF": "RIFF/WebP", b"BM": "BMP", b"II*\x00": "TIFF",
          b"MM\x00*": "TIFF"}


@dataclass(frozen=True)
class DecodeLimits:
    """Guards for untrusted frames. Defaults allow up to 1920x1920 pixels and 8 MiB of data."""

    max_pixels: int = 1920 * 1920
    max_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class JpegHeader:
    width: int  # pixels
    height: int  # pixels
    components: int  # 1 = greyscale, 3 = colour
    progressive: bool


def read_jpeg_header(data: bytes | bytearray | memoryview) -> JpegHeader:
    """Parse the markers up to the first SOFn and return the declared size. Raises :class:`FrameError`
    when the data is not a JPEG or the header is cut short. Allocates nothing proportional to the image."""
    buf = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    n = len(buf)
    if n == 0:
        raise FrameError("frame is empty: expected JPEG data, got 0 bytes")
    if bytes(buf[:3]) != b"\xff\xd8\xff":
        head = bytes(buf[:4])
        kind = next((name for magic, name in _MAGIC.items() if head.startswith(magic)), None)
        got = f"{kind} data" if kind else f"bytes {head.hex(' ')}"
        raise FrameError(f"frame is not a JPEG: expected the SOI marker ff d8 ff, got {got}")
    pos = 2
    while True:
        # Markers may be preceded by any number of 0xFF fill bytes.
        if pos >= n:
            raise FrameError("JPEG header is truncated: data ends before the frame header (SOFn)")
        if buf[pos] != 0xFF:
            raise FrameError(f"JPEG header is corrupt: expected a marker at byte {pos}, got 0x{buf[pos]:02x}")
        while pos < n and buf[pos] == 0xFF:
            pos += 1
        if pos >= n:
            raise FrameError("JPEG header is truncated: data ends inside a marker")
        marker = buf[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker in (0xD8, 0xD9, 0xDA):
            what = {0xD8: "a second SOI", 0xD9: "EOI", 0xDA: "the scan (SOS)"}[marker]
            raise FrameError(f"JPEG header has no frame header (SOFn): reached {what} at byte {pos - 2}")
        if pos + 2 > n:
            raise FrameError("JPEG header is truncated: data ends inside a segment length")
        length = (buf[pos] << 8) | buf[pos + 1]
        if length < 2:
            raise FrameError(f"JPEG header is corrupt: segment 0xff{marker:02x} at byte {pos - 2} declares "
                             f"length {length}, expected >= 2")
        if marker in _SOF_MARKERS:
            if length < 8 or pos + 8 > n:
                raise FrameError("JPEG header is truncated: the frame header (SOFn) is cut short")
            height = (buf[pos + 3] << 8) | buf[pos + 4]
            width = (buf[pos + 5] << 8) | buf[pos + 6]
            return JpegHeader(width, height, buf[pos + 7], marker in (0xC2, 0xC6, 0xCA, 0xCE))
        pos += length


def check_jpeg(data: bytes | bytearray | memoryview, limits: DecodeLimits = DecodeLimits()) -> JpegHeader:
    """Run every guard that needs no decoding; return the header. Raises :class:`FrameError`."""
    n = len(data)
    if n > limits.max_bytes:
        raise FrameError(f"frame is too large: expected at most {limits.max_bytes} bytes, got {n}")
    header = read_jpeg_header(data)
    if header.width == 0 or header.height == 0:
        raise FrameError(f"JPEG declares an empty image: expected width and height >= 1, got "
                         f"{header.width}x{header.height}")
    if header.width * header.height > limits.max_pixels:
        raise FrameError(f"JPEG is too large: declares {header.width}x{header.height} = "
                         f"{header.width * header.height} pixels, expected at most {limits.max_pixels}")
    tail = bytes(memoryview(data)[max(0, n - EOI_WINDOW):])
    if b"\xff\xd9" not in tail:
        raise FrameError(f"JPEG is truncated: no end-of-image marker (ff d9) in its last {EOI_WINDOW} bytes "
                         f"({n} bytes received)")
    return header


def decode_jpeg(data: bytes | bytearray | memoryview, limits: DecodeLimits = DecodeLimits(), *,
                reduce: int = 1) -> np.ndarray:
    """Decode a JPEG frame to a (h, w, 3) uint8 BGR array after the guards in the module docstring.

    ``reduce`` = 2, 4 or 8 decodes at 1/reduce size (libjpeg's DCT scaling: cheaper than decoding at full
    size and resizing); the result is ceil(w / reduce) x ceil(h / reduce).
    """
    import cv2  # heavy; imported on first use so that `import vision` stays cheap

    flags = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
             8: cv2.IMREAD_REDUCED_COLOR_8}
    if reduce not in flags:
        raise FrameError(f"reduce: expected 1, 2, 4 or 8, got {reduce!r}")
    header = check_jpeg(data, limits)
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
