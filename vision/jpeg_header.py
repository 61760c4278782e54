"""A JPEG's declared size, read from its marker segments before anything is decoded, and the guards on it.

A decoder allocates width x height x 3 bytes as soon as it reads the frame header, so a 20 kB file that
declares 60000 x 60000 pixels costs gigabytes. :func:`read_jpeg_header` walks the marker segments (a few
dozen bytes each, skipped by their length fields) up to the first SOFn header and returns what it
declares; it never touches the entropy-coded data, so it costs microseconds and allocates nothing large.
The server's frame probe (``ar_server.jpeg_probe``) and the decoder (:mod:`vision.decode`) both use it,
and the header the server reads travels with the frame (``FrameInput.header``): a frame is parsed once.

Rules, in the order :func:`check_jpeg` applies them:
1. Empty data, or more than ``max_bytes``, is refused.
2. The data must start with the JPEG SOI marker ``FF D8 FF``; PNG, GIF and random bytes are refused by magic.
3. The marker segments are walked up to the first SOFn (frame header) to read the declared width and height.
   A zero dimension (including height 0, "defined later by a DNL marker"), a component count other than
   1, 3 or 4, or a width, height or pixel count over the limits is refused here, so a 30000x30000 header
   costs a few bytes of parsing, never a 2.7 GB buffer.
4. Truncation policy: the EOI marker ``FF D9`` must appear within the last ``EOI_WINDOW`` bytes. A camera or
   browser frame ends with EOI (some encoders add a few padding bytes or a small trailer after it); a frame
   cut off in transit does not, and libjpeg would otherwise decode it "successfully" with a grey bottom.
   Byte stuffing (``FF 00``) means ``FF D9`` cannot occur inside entropy-coded data, so the test is sound.

5. Scan budget: at most ``max_scans`` scans (SOS segments). A progressive JPEG refines the whole image once
   per scan, and a decoder does all of that work: a 300 kB file of a flat 1920x1920 image whose last scan
   is repeated 8,026 times took 16.6 s to decode, and every session sharing the inference worker waited.
   Encoders write 1 (baseline) to about 10 (progressive) scans. Counting walks the entropy-coded data with
   ``bytes.find`` for ``FF`` (stuffed ``FF 00`` and restart markers are data), so it costs milliseconds
   for megabytes and never decodes.

Over-limit frames raise :class:`FrameTooLarge`, everything else :class:`FrameError`. This module imports
only the standard library: the wire protocol imports it and must stay light.
"""

from __future__ import annotations

from dataclasses import dataclass

from vision.errors import FrameError, FrameTooLarge

EOI_WINDOW = 512  # bytes at the end of the data that must contain the EOI marker
MAX_SCANS = 32  # three times the most a common progressive encoder writes (libjpeg, mozjpeg: about 10)
# Start-of-frame markers carry the image size. C4 (DHT), C8 (JPG, reserved) and CC (DAC) share the range
# but are not frame headers.
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RSTn carry no length field
_COMPONENTS = (1, 3, 4)  # grey, YCbCr, CMYK
_MAGIC = {b"\x89PNG": "PNG", b"GIF8": "GIF", b"RIFF": "RIFF/WebP", b"BM": "BMP", b"II*\x00": "TIFF",
          b"MM\x00*": "TIFF"}


@dataclass(frozen=True)
class DecodeLimits:
    """Guards for untrusted frames. Defaults allow up to 1920x1920 pixels and 8 MiB of data; the server
    builds its own from its configuration (``Config.decode_limits()``), so both refuse the same frames."""

    max_pixels: int = 1920 * 1920
    max_bytes: int = 8 * 1024 * 1024
    max_width: int | None = None  # pixels; None: only ``max_pixels`` bounds the size
    max_height: int | None = None  # pixels
    max_scans: int = MAX_SCANS  # SOS segments (rule 5)


@dataclass(frozen=True)
class JpegHeader:
    """What a JPEG's frame header (SOFn) declares."""

    width: int  # pixels, >= 1
    height: int  # pixels, >= 1
    components: int  # 1 grey, 3 YCbCr, 4 CMYK
    progressive: bool  # SOF2/SOF6/SOF10/SOF14


def read_jpeg_header(data: bytes | bytearray | memoryview) -> JpegHeader:
    """Parse the markers up to the first SOFn and return what it declares. Raises :class:`FrameError` when
    the data is not a JPEG, a segment is malformed or cut short, or the header declares no pixels or an
    unsupported number of components. Allocates nothing proportional to the image."""
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
        if pos >= n:
            raise FrameError("JPEG header is truncated: data ends before the frame header (SOFn)")
        if buf[pos] != 0xFF:
            raise FrameError(f"JPEG header is corrupt: expected a marker at byte {pos}, got 0x{buf[pos]:02x}")
        while pos < n and buf[pos] == 0xFF:  # any number of fill bytes may precede a marker code
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
        if marker == 0x00:
            raise FrameError(f"JPEG header is corrupt: expected a marker code at byte {pos - 1}, got 0x00")
        if pos + 2 > n:
            raise FrameError("JPEG header is truncated: data ends inside a segment length")
        length = (buf[pos] << 8) | buf[pos + 1]
        if length < 2:
            raise FrameError(f"JPEG header is corrupt: segment 0xff{marker:02x} at byte {pos - 2} declares "
                             f"length {length}, expected >= 2")
        if marker in _SOF_MARKERS:
            return _frame_header(buf, pos, length, marker)
        pos += length


def _frame_header(buf: bytes | memoryview, pos: int, length: int, marker: int) -> JpegHeader:
    # SOF payload: length(2) precision(1) height(2) width(2) components(1) ...
    if length < 8 or pos + 8 > len(buf):
        raise FrameError("JPEG header is truncated: the frame header (SOFn) is cut short")
    height = (buf[pos + 3] << 8) | buf[pos + 4]
    width = (buf[pos + 5] << 8) | buf[pos + 6]
    components = buf[pos + 7]
    if width == 0 or height == 0:
        raise FrameError(f"JPEG declares an empty image: expected width and height >= 1, got {width}x{height}")
    if components not in _COMPONENTS:
        raise FrameError(f"JPEG header declares {components} colour components: expected 1, 3 or 4")
    return JpegHeader(width, height, components, marker in _PROGRESSIVE)


def check_size(header: JpegHeader, *, max_width: int | None = None, max_height: int | None = None,
               max_pixels: int | None = None) -> None:
    """Raise :class:`FrameTooLarge` when ``header`` declares more than a limit (None: no limit)."""
    if max_width is not None and header.width > max_width:
        raise FrameTooLarge(f"JPEG is too large: declares width {header.width}, expected at most {max_width}")
    if max_height is not None and header.height > max_height:
        raise FrameTooLarge(f"JPEG is too large: declares height {header.height}, expected at most {max_height}")
    pixels = header.width * header.height
    if max_pixels is not None and pixels > max_pixels:
        raise FrameTooLarge(f"JPEG is too large: declares {header.width}x{header.height} = {pixels} pixels, "
                            f"expected at most {max_pixels}")


def check_jpeg(data: bytes | bytearray | memoryview, limits: DecodeLimits = DecodeLimits(),
               header: JpegHeader | None = None) -> JpegHeader:
    """Run every guard that needs no decoding (the module rules) and return the header. ``header``: these
    very bytes' header, read earlier (the server's probe), so it is not parsed again."""
    n = len(data)
    if n > limits.max_bytes:
        raise FrameTooLarge(f"frame is too large: expected at most {limits.max_bytes} bytes, got {n}")
    if header is None:
        header = read_jpeg_header(data)
    check_size(header, max_width=limits.max_width, max_height=limits.max_height, max_pixels=limits.max_pixels)
    tail = bytes(memoryview(data)[max(0, n - EOI_WINDOW):])
    if b"\xff\xd9" not in tail:
        raise FrameError(f"JPEG is truncated: no end-of-image marker (ff d9) in its last {EOI_WINDOW} bytes "
                         f"({n} bytes received)")
    scans = count_scans(data, stop_after=limits.max_scans + 1)
    if scans > limits.max_scans:
        raise FrameError(f"JPEG has more than {limits.max_scans} scans (progressive passes); each is decoded "
                         f"in full, so at most {limits.max_scans} are accepted")
    return header


def count_scans(data: bytes | bytearray | memoryview, stop_after: int | None = None) -> int:
    """How many scans (SOS segments) the JPEG holds, counting at most ``stop_after``. Marker segments are
    skipped by their lengths; entropy-coded data is skipped to the next ``FF`` that starts a marker. Data it
    cannot follow ends the count (the decoder reports the corruption)."""
    buf = bytes(data)
    n, pos, scans = len(buf), 2, 0
    while pos + 4 <= n:
        if buf[pos] != 0xFF:
            break
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # EOI
            break
        if marker in _STANDALONE or marker == 0xD8:
            pos += 2
            continue
        pos += 2 + ((buf[pos + 2] << 8) | buf[pos + 3])
        if marker != 0xDA:
            continue
        scans += 1
        if stop_after is not None and scans >= stop_after:
            break
        while True:  # entropy-coded data: find the FF that starts the next marker
            pos = buf.find(b"\xff", pos)
            if pos < 0 or pos + 1 >= n:
                return scans
            following = buf[pos + 1]
            if following == 0x00 or 0xD0 <= following <= 0xD7:
                pos += 2  # stuffed FF 00, or a restart marker inside the scan
            elif following == 0xFF:
                pos += 1
            else:
                break
    return scans
