"""Step panel wrapping and frame-source strings."""

from __future__ import annotations

import numpy as np
import pytest

from ar_server.protocol import Progress
from client_panda3d.ar_view import ARView
from client_panda3d.errors import SourceError
from client_panda3d.sources import open_source, parse_twin
from client_panda3d.steps import Status, StepView
from product_models.camera import CameraIntrinsics

LONG_GERMAN = ("Ziehen Sie das Netzwerkkabel vorsichtig aus dem gelben WAN-Anschluss auf der Rückseite des "
               "Routers, warten Sie zehn Sekunden und stecken Sie es dann wieder fest hinein, bis es hörbar "
               "einrastet. Überprüfen Sie anschließend, ob die Internet-Leuchte grün wird. Größe: ä ö ü ß ñ é.")


@pytest.mark.parametrize("width, height", [(320, 240), (640, 480)])
def test_long_german_text_wraps_inside_the_panel(width: int, height: int) -> None:
    view = ARView(None, CameraIntrinsics.from_fov(width, height), locale="de")
    step = StepView("s", LONG_GERMAN, (), (("ok", "Leuchtet grün"), ("red", "Immer noch rot")), Progress(2, 5),
                    accepts_done=True)
    shot = view.compose(np.zeros((height, width, 3), np.uint8), None, {}, step, Status("connected", False),
                        now=0.0)
    view.close()
    layout = shot.layout
    assert layout is not None and layout.panel is not None and layout.text is not None
    x0, y0, x1, y1 = layout.text
    _, py0, _, py1 = layout.panel
    assert 0 <= x0 and x1 <= width and py0 >= 0 and y1 <= py1 <= height and y0 >= py0
    assert layout.wrapped.split() == LONG_GERMAN.split()  # every word drawn, none cut
    assert {b.action for b in shot.buttons} == {"choose:ok", "choose:red", "back", "help", "done"}
    for b in shot.buttons:
        assert 0 <= b.rect[0] and b.rect[2] <= width and b.rect[3] <= height
    # The text is drawn: light pixels on the dark panel inside the text block.
    block = shot.image[int(y0):int(y1), int(x0):int(x1)]
    assert (block.mean(axis=2) > 180).sum() > 200


def test_done_button_only_on_a_step_that_takes_done() -> None:
    """Regression: every step showed Done, and the server refused it on steps without a Done target."""
    view = ARView(None, CameraIntrinsics.from_fov(320, 240))
    shots = [view.compose(np.zeros((240, 320, 3), np.uint8), None, {}, StepView("s", "Wait.", accepts_done=done),
                          Status("connected", True), now=0.0) for done in (False, True)]
    view.close()
    assert [{b.action for b in shot.buttons} for shot in shots] == [{"back", "help"}, {"back", "help", "done"}]


@pytest.mark.parametrize("spec, words", [
    ("", "empty"),
    ("twin:", "no product"),
    ("twin:router_ax1800?fault=wan_unplugged&speed=3", "unknown parameter"),
    ("twin:router_ax1800?seed=abc", "seed must be an integer"),
    ("twin:router_ax1800?clumsy=2", "clumsy must be"),
    ("twin:router_ax1800?clumsy=lots", "clumsy must be"),
    ("twin:no_such_product", "no_such_product"),
    ("twin:router_ax1800?fault=on_fire", "on_fire"),
    ("webcam:front", "webcam index must be a number"),
    ("file:/nope/video.mp4", "no such video file"),
    ("/nope/clip.avi", "no such video file"),
    ("gopro", "not understood"),
])
def test_bad_source_strings_name_the_string(spec: str, words: str) -> None:
    with pytest.raises(SourceError) as info:
        open_source(spec, 64, 48)
    assert words in str(info.value)
    assert repr(spec) in str(info.value)


def test_twin_source_parses_and_renders() -> None:
    assert parse_twin("twin:router_ax1800?fault=wan_unplugged&seed=4&clumsy=0.3") == \
        ("router_ax1800", "wan_unplugged", 4, 0.3)
    source = open_source("twin:router_ax1800?fault=wan_unplugged&seed=2", 160, 120)
    frame = source.read(10.0)
    assert frame is not None and frame.image.shape == (120, 160, 3) and frame.ts == 10.0
    assert frame.truth.states["port_wan"] == "empty"


def test_video_file_source_reads_and_resizes(tmp_path) -> None:
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (80, 60))
    for i in range(3):
        writer.write(np.full((60, 80, 3), 40 * i, np.uint8))
    writer.release()
    source = open_source(f"file:{path}", 40, 30)
    frames = [source.read(i) for i in range(4)]
    source.close()
    assert [f is None for f in frames] == [False, False, False, True]
    assert frames[0].image.shape == (30, 40, 3)
