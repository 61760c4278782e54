"""Read a JPEG's declared size from its headers without decoding it.

A decoder allocates width x height x 3 bytes as soon as it reads the frame header, so a 20 kB file that
declares 60000 x 60000 pixels costs gigabytes. This scanner walks the marker segments (a few dozen bytes
each, skipped by their length fields) up to the first SOF header and reports what it declares. It never
touches the entropy-coded data, so it costs microseconds and allocates nothing large.
"""

from __future__ import annotations

from dataclasses import dataclass

from ar_server.errors import ProtocolError

# Start-of-frame markers carry the image size. C4 (DHT), C8 (JPG, reserved) and CC (DAC) share the range
# but are not frame headers.
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
# Markers that stand alone, with no length field.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA


@dataclass(frozen=True)
class JpegInfo:
    width: int  # pixels, as declared by the SOF header
    height: int  # pixels
    components: int  # 1 grey, 3 YCbCr, 4 CMYK
    progressive: bool  # SOF2/SOF6/SOF10/SOF14
    sof_offset: int  # byte offset of the SOF marker


def _bad(message: str, field: str) -> ProtocolError:
    return ProtocolError("bad_jpeg", message, field)


def probe_jpeg(data: bytes, *, max_width: int | None = None, max_height: int | None = None,
               field: str = "jpeg") -> JpegInfo:
    """Return the size the JPEG declares, or raise ``ProtocolError``.

    Raises code ``bad_jpeg`` when ``data`` does not start with SOI (FF D8), when a segment is truncated or
    malformed, when scanning reaches image data (SOS) or EOI before a frame header, or when the header
    declares a zero dimension (height 0 defers to a DNL marker, which we do not accept). Raises ``too_large``
    when the declared width/height exceeds ``max_width``/``max_height``. ``field`` names the message field
    in errors.
    """
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != _SOI:
        raise _bad("not a JPEG: it must start with the SOI marker FF D8", field)
    i = 2
    while True:
        if i >= n:
            raise _bad(f"truncated: no frame header (SOF) in {n} bytes", field)
        if data[i] != 0xFF:
            raise _bad(f"expected a marker (FF) at byte {i}, got {data[i]:02X}", field)
        # Any number of FF fill bytes may precede a marker code.
        while i < n and data[i] == 0xFF:
            i += 1
        if i >= n:
            raise _bad("truncated inside a marker", field)
        marker = data[i]
        offset = i - 1
        i += 1
        if marker in _STANDALONE:
            continue
        if marker == _EOI or marker == _SOS:
            raise _bad(f"no frame header (SOF) before {'EOI' if marker == _EOI else 'SOS'} at byte {offset}", field)
        if marker == 0x00 or marker == _SOI:
            raise _bad(f"unexpected marker FF {marker:02X} at byte {offset}", field)
        if i + 2 > n:
            raise _bad(f"truncated segment length at byte {i}", field)
        length = (data[i] << 8) | data[i + 1]
        if length < 2:
            raise _bad(f"segment FF {marker:02X} at byte {offset} has length {length} (< 2)", field)
        if marker in _SOF_MARKERS:
            return _read_sof(data, i, length, marker, offset, max_width, max_height, field)
        i += length


def _read_sof(data: bytes, i: int, length: int, marker: int, offset: int,
              max_width: int | None, max_height: int | None, field: str) -> JpegInfo:
    # SOF payload: length(2) precision(1) height(2) width(2) components(1) ...
    if length < 8 or i + 8 > len(data):
        raise _bad(f"truncated frame header (SOF) at byte {offset}", field)
    height = (data[i + 3] << 8) | data[i + 4]
    width = (data[i + 5] << 8) | data[i + 6]
    components = data[i + 7]
    if width == 0 or height == 0:
        raise _bad(f"frame header declares {width}x{height} pixels; both must be at least 1", field)
    if components not in (1, 3, 4):
        raise _bad(f"frame header declares {components} colour components; expected 1, 3 or 4", field)
    if max_width is not None and width > max_width:
        raise ProtocolError("too_large", f"JPEG width {width} exceeds the limit {max_width}", field)
    if max_height is not None and height > max_height:
        raise ProtocolError("too_large", f"JPEG height {height} exceeds the limit {max_height}", field)
    progressive = marker in (0xC2, 0xC6, 0xCA, 0xCE)
    return JpegInfo(width=width, height=height, components=components, progressive=progressive,
                    sof_offset=offset)
