from __future__ import annotations

import resource
import struct
import tracemalloc

import numpy as np
import pytest

from vision.decode import decode_jpeg, encode_jpeg
from vision.errors import FrameError, FrameTooLarge
from vision.jpeg_header import DecodeLimits, check_jpeg, read_jpeg_header


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:480, 0:640]
    img = np.stack([xx % 256, yy % 256, (xx + yy) % 256], axis=-1).astype(np.int16)
    return np.clip(img + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def jpeg(image: np.ndarray) -> bytes:
    return encode_jpeg(image, 90)


def _header_only(width: int, height: int) -> bytes:
    """SOI, an APP0 segment, a baseline SOF0 declaring width x height, then EOI: no image data at all."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def test_good_jpeg_round_trips(image: np.ndarray, jpeg: bytes) -> None:
    out = decode_jpeg(jpeg)
    assert out.shape == (480, 640, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - image).mean() < 8.0  # JPEG q90 error on a busy image
    assert read_jpeg_header(jpeg).width == 640


def test_reduced_decode_halves_the_size(jpeg: bytes) -> None:
    assert decode_jpeg(jpeg, reduce=2).shape == (240, 320, 3)
    assert decode_jpeg(jpeg, reduce=8).shape == (60, 80, 3)


def test_odd_size_reduced_decode_rounds_up() -> None:
    data = encode_jpeg(np.zeros((101, 99, 3), np.uint8))
    assert decode_jpeg(data, reduce=2).shape == (51, 50, 3)


def test_greyscale_jpeg_decodes_to_three_channels() -> None:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.full((20, 30), 128, np.uint8))
    assert ok and decode_jpeg(buf.tobytes()).shape == (20, 30, 3)


def _png() -> bytes:
    import cv2

    return cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()


@pytest.mark.parametrize(("make", "message"), [
    (lambda j: b"", "frame is empty: expected JPEG data, got 0 bytes"),
    (lambda j: _png(), "frame is not a JPEG: expected the SOI marker ff d8 ff, got PNG data"),
    (lambda j: np.random.default_rng(5).bytes(4000), "frame is not a JPEG: expected the SOI marker"),
    (lambda j: j[: len(j) // 2], r"JPEG is truncated: no end-of-image marker \(ff d9\)"),
    (lambda j: j[:40], "JPEG is truncated|JPEG header is truncated"),
    (lambda j: b"\xff\xd8\xff", "JPEG header is truncated"),
    (lambda j: _header_only(30000, 30000), "declares 30000x30000 = 900000000 pixels, expected at most 3686400"),
    (lambda j: _header_only(0, 480), "JPEG declares an empty image: expected width and height >= 1, got 0x480"),
    (lambda j: _header_only(640, 0), "got 640x0"),
    (lambda j: b"\xff\xd8\xff\xda\x00\x08" + bytes(100) + b"\xff\xd9", r"no frame header \(SOFn\)"),
    (lambda j: b"\xff\xd8\xff\xe0\x00\x01rest\xff\xd9", "declares length 1, expected >= 2"),
    (lambda j: _header_only(640, 480), "JPEG is corrupt: the decoder could not read"),
    (lambda j: j[:600] + bytes(len(j) - 602) + b"\xff\xd9", "JPEG is corrupt"),
], ids=["empty", "png", "random", "truncated-half", "truncated-header", "soi-only", "huge", "zero-width",
        "zero-height", "sos-first", "bad-length", "header-without-data", "zeroed-scan"])
def test_bad_frames_are_refused_with_a_reason(jpeg: bytes, make, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        decode_jpeg(make(jpeg))


def test_limits_are_configurable(jpeg: bytes) -> None:
    with pytest.raises(FrameTooLarge, match="307200 pixels, expected at most 100000"):
        decode_jpeg(jpeg, DecodeLimits(max_pixels=100_000))
    with pytest.raises(FrameTooLarge, match="frame is too large: expected at most 1000 bytes"):
        decode_jpeg(jpeg, DecodeLimits(max_bytes=1000))
    with pytest.raises(FrameTooLarge, match="declares width 640, expected at most 600"):
        decode_jpeg(jpeg, DecodeLimits(max_width=600))
    with pytest.raises(FrameTooLarge, match="declares height 480, expected at most 400"):
        decode_jpeg(jpeg, DecodeLimits(max_height=400))
    with pytest.raises(FrameError, match="reduce: expected 1, 2, 4 or 8, got 3"):
        decode_jpeg(jpeg, reduce=3)


def test_trailing_bytes_after_eoi_are_accepted(jpeg: bytes) -> None:
    assert decode_jpeg(jpeg + bytes(100)).shape == (480, 640, 3)


def test_huge_declared_size_allocates_nothing() -> None:
    """A 30000x30000 header would need a 2.7 GB buffer; it must be refused from the header alone."""
    data = _header_only(30000, 30000) + bytes(1000) + b"\xff\xd9"
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    try:
        with pytest.raises(FrameError, match="30000x30000"):
            decode_jpeg(data, DecodeLimits(max_pixels=1920 * 1920))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert peak < 256 * 1024
    assert rss_growth_kib < 64 * 1024


def test_header_check_accepts_fill_bytes_and_standalone_markers() -> None:
    data = _header_only(64, 48)
    padded = data[:2] + b"\xff\xff" + data[2:]  # fill bytes before a marker are legal
    assert check_jpeg(padded).width == 64 and check_jpeg(padded).height == 48


def test_a_header_read_earlier_is_not_parsed_again(jpeg: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's probe reads a frame's header once; the decoder trusts it and still applies its limits."""
    import vision.jpeg_header

    header = read_jpeg_header(jpeg)

    def refuse(data: object) -> None:
        raise AssertionError("the header was parsed again")

    monkeypatch.setattr(vision.jpeg_header, "read_jpeg_header", refuse)
    assert decode_jpeg(jpeg, header=header).shape == (480, 640, 3)
    with pytest.raises(FrameTooLarge, match="307200 pixels"):
        decode_jpeg(jpeg, DecodeLimits(max_pixels=100_000), header=header)
    with pytest.raises(FrameError, match="truncated"):
        decode_jpeg(jpeg[: len(jpeg) // 2], header=header)
