"""The wire side of a JPEG's header: read it before a frame is accepted, refuse it with a protocol code.

The header is read by :func:`vision.jpeg_header.read_jpeg_header`, the same reader the decoder uses; this
module only applies the wire limits and turns a refusal into a ``ProtocolError`` (``bad_jpeg`` or
``too_large``, by ``ar_server.inference.wire_code``). It imports nothing heavy: the protocol codec uses it.
"""

from __future__ import annotations

from ar_server.errors import ProtocolError
from ar_server.inference import wire_code
from vision.errors import FrameError
from vision.jpeg_header import JpegHeader, check_size, read_jpeg_header


def probe_jpeg(data: bytes, *, max_width: int | None = None, max_height: int | None = None,
               field: str = "jpeg") -> JpegHeader:
    """Return what the JPEG's frame header declares, or raise ``ProtocolError``.

    Raises code ``bad_jpeg`` when ``data`` does not start with SOI, when a segment is truncated or
    malformed, when scanning reaches image data (SOS) or EOI before a frame header, or when the header
    declares a zero dimension (height 0 defers to a DNL marker, which we do not accept) or other than 1, 3
    or 4 components. Raises ``too_large`` when the declared width/height exceeds ``max_width``/``max_height``.
    ``field`` names the message field in errors.
    """
    try:
        header = read_jpeg_header(data)
        check_size(header, max_width=max_width, max_height=max_height)
    except FrameError as exc:
        raise ProtocolError(wire_code(exc)[0], str(exc), field) from None
    return header
