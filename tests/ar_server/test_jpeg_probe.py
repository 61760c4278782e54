from __future__ import annotations

import pytest

from ar_server.errors import ProtocolError
from ar_server.jpeg_probe import probe_jpeg
from tests.ar_server.protocol.jpegs import header_jpeg, real_jpeg


@pytest.mark.parametrize(("width", "height", "progressive"), [(64, 48, False), (33, 17, True), (640, 480, False)])
def test_reads_size_of_real_jpegs(width: int, height: int, progressive: bool) -> None:
    info = probe_jpeg(real_jpeg(width, height, progressive=progressive))
    assert (info.width, info.height, info.components, info.progressive) == (width, height, 3, progressive)


def test_reads_declared_size_without_decoding() -> None:
    info = probe_jpeg(header_jpeg(60000, 40000))
    assert (info.width, info.height) == (60000, 40000)


def test_fill_bytes_and_restart_markers_are_skipped() -> None:
    data = header_jpeg(20, 10)
    data = data[:2] + b"\xff\xff\xff\xd0" + data[2:]  # fill bytes, then a standalone RST0
    assert probe_jpeg(data).width == 20


@pytest.mark.parametrize(("limits", "field_text"), [({"max_width": 1920}, "width 4000"),
                                                    ({"max_height": 1000}, "height 3000")])
def test_declared_size_over_limit(limits: dict[str, int], field_text: str) -> None:
    with pytest.raises(ProtocolError, match=field_text) as info:
        probe_jpeg(header_jpeg(4000, 3000), **limits)
    assert info.value.code == "too_large" and info.value.field == "jpeg"


BAD = [
    ("empty", b""),
    ("png", b"\x89PNG\r\n\x1a\n" + b"\0" * 30),
    ("soi only", b"\xff\xd8"),
    ("soi then eoi", b"\xff\xd8\xff\xd9"),
    ("sos before sof", b"\xff\xd8\xff\xda\x00\x08" + b"\0" * 6),
    ("no marker after soi", b"\xff\xd8\x00\x00\x00"),
    ("segment length 0", b"\xff\xd8\xff\xe0\x00\x00"),
    ("truncated length", b"\xff\xd8\xff\xe0\x00"),
    ("segment runs off the end", b"\xff\xd8\xff\xe0\x01\x00abc"),
    ("only fill bytes", b"\xff\xd8\xff\xff\xff"),
    ("truncated sof", header_jpeg(10, 10)[:28]),
    ("zero height (DNL)", header_jpeg(10, 0)),
    ("zero width", header_jpeg(0, 10)),
    ("two components", header_jpeg(10, 10, components=2)),
    ("second soi", b"\xff\xd8\xff\xd8" + header_jpeg(10, 10)[2:]),
]


@pytest.mark.parametrize("data", [row[1] for row in BAD], ids=[row[0] for row in BAD])
def test_bad_jpeg(data: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        probe_jpeg(data, field="frame.jpeg")
    assert info.value.code == "bad_jpeg" and info.value.field == "frame.jpeg"
