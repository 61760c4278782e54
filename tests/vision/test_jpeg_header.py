"""The one JPEG header reader that the server's probe and the decoder share."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from vision.errors import FrameError, FrameTooLarge
from vision.jpeg_header import MAX_SCANS, DecodeLimits, check_jpeg, check_size, count_scans, read_jpeg_header


def _header(width: int, height: int, *, sof: int = 0xC0, components: int = 3) -> bytes:
    """SOI, an APP0 segment, a SOF header declaring width x height, then EOI: no image data at all."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    comps = b"".join(bytes([i + 1, 0x11, 0]) for i in range(components))
    body = bytes([8]) + struct.pack(">HH", height, width) + bytes([components]) + comps
    return b"\xff\xd8" + app0 + bytes([0xFF, sof]) + struct.pack(">H", 2 + len(body)) + body + b"\xff\xd9"


@pytest.mark.parametrize(("sof", "components", "progressive"), [(0xC0, 3, False), (0xC2, 1, True), (0xC1, 4, False)])
def test_reads_what_the_frame_header_declares(sof: int, components: int, progressive: bool) -> None:
    header = read_jpeg_header(_header(4000, 3000, sof=sof, components=components))
    assert (header.width, header.height, header.components, header.progressive) == (4000, 3000, components,
                                                                                  progressive)


BAD = [
    ("empty", b"", "frame is empty"),
    ("png", b"\x89PNG\r\n\x1a\n" + b"\0" * 30, "got PNG data"),
    ("soi only", b"\xff\xd8", "expected the SOI marker"),
    ("soi then eoi", b"\xff\xd8\xff\xd9", "reached EOI"),
    ("sos before sof", b"\xff\xd8\xff\xda\x00\x08" + b"\0" * 6, r"reached the scan \(SOS\)"),
    ("no marker after soi", b"\xff\xd8\x00\x00\x00", "expected the SOI marker"),
    ("ff 00 is no marker", b"\xff\xd8\xff\x00\x00\x10" + b"\0" * 16, "expected a marker code at byte 3"),
    ("segment length 0", b"\xff\xd8\xff\xe0\x00\x00", "declares length 0"),
    ("truncated length", b"\xff\xd8\xff\xe0\x00", "ends inside a segment length"),
    ("segment runs off the end", b"\xff\xd8\xff\xe0\x01\x00abc", "ends before the frame header"),
    ("only fill bytes", b"\xff\xd8\xff\xff\xff", "ends inside a marker"),
    ("truncated sof", _header(10, 10)[:28], "frame header .SOFn. is cut short"),
    ("zero height (DNL)", _header(10, 0), "got 10x0"),
    ("zero width", _header(0, 10), "got 0x10"),
    ("two components", _header(10, 10, components=2), "2 colour components"),
    ("second soi", b"\xff\xd8\xff\xd8" + _header(10, 10)[2:], "a second SOI"),
]


@pytest.mark.parametrize(("data", "message"), [row[1:] for row in BAD], ids=[row[0] for row in BAD])
def test_a_bad_header_is_refused_saying_why(data: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message) as info:
        read_jpeg_header(data)
    assert not isinstance(info.value, FrameTooLarge)


def test_limits_refuse_with_frame_too_large() -> None:
    header = read_jpeg_header(_header(4000, 3000))
    check_size(header, max_width=4096, max_height=4096, max_pixels=4000 * 3000)
    with pytest.raises(FrameTooLarge, match="declares width 4000, expected at most 1920"):
        check_size(header, max_width=1920)
    with pytest.raises(FrameTooLarge, match="declares height 3000, expected at most 1920"):
        check_size(header, max_height=1920)
    with pytest.raises(FrameTooLarge, match="4000x3000 = 12000000 pixels"):
        check_jpeg(_header(4000, 3000))  # the default limits: 1920 x 1920 pixels
    assert check_jpeg(_header(4000, 3000), DecodeLimits(max_pixels=4000 * 3000)).width == 4000


def _scan_bomb(extra_scans: int, size: int = 640) -> bytes:
    """A flat progressive JPEG whose last scan is repeated: each repeat is decoded over the whole image."""
    import cv2

    image = np.full((size, size, 3), 128, np.uint8)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    data = buf.tobytes()
    last, eoi = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
    return data[:eoi] + data[last:eoi] * extra_scans + data[eoi:]


def test_scans_are_counted_through_the_entropy_coded_data() -> None:
    import cv2

    image = np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)  # many FF bytes to skip
    baseline = cv2.imencode(".jpg", image)[1].tobytes()
    progressive = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert count_scans(baseline) == 1
    assert 2 <= count_scans(progressive) <= 12
    check_jpeg(progressive)  # an ordinary progressive frame passes
    assert count_scans(_scan_bomb(100)) == count_scans(_scan_bomb(0)) + 100
    assert count_scans(_scan_bomb(100), stop_after=5) == 5


def test_a_scan_bomb_is_refused_before_decoding() -> None:
    """A 300 kB progressive JPEG whose last scan was repeated 8,026 times took 16.6 s to decode, and every
    session sharing the inference worker waited."""
    bomb = _scan_bomb(8026)
    with pytest.raises(FrameError, match=f"more than {MAX_SCANS} scans"):
        check_jpeg(bomb, DecodeLimits())
    with pytest.raises(FrameError, match="more than 3 scans"):
        check_jpeg(_scan_bomb(0), DecodeLimits(max_scans=3))
