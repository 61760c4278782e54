from __future__ import annotations

import numpy as np
import pytest

from tests.vision.synthetic import as_camera_frame, draw_led, housing
from vision.led import _hue_confidence, classify_led

ALL = ("off", "green", "amber", "red", "blue")


@pytest.mark.parametrize("diameter", [3.0, 5.0, 10.0])
@pytest.mark.parametrize("colour", ["red", "amber", "green", "blue"])
def test_lit_colour_is_read_through_jpeg(colour: str, diameter: float) -> None:
    img = housing()
    draw_led(img, (150.3, 100.6), diameter, colour)
    # the projected anchor is a few pixels off, as it is with a real pose
    reading = classify_led(as_camera_frame(img), (152.0, 98.0), diameter, ALL)
    assert reading.state == colour and reading.confidence > 0.8


@pytest.mark.parametrize("colour", ["red", "amber", "green"])
def test_lit_led_on_a_white_housing(colour: str) -> None:
    img = housing(grey=225)
    draw_led(img, (150.0, 100.0), 5.0, colour)
    reading = classify_led(as_camera_frame(img), (150.0, 100.0), 5.0, ALL)
    assert reading.state == colour and reading.confidence > 0.8


@pytest.mark.parametrize("grey", [45, 225])
def test_unlit_led_is_off(grey: int) -> None:
    img = housing(grey=grey)
    draw_led(img, (150.0, 100.0), 5.0, "off")
    reading = classify_led(as_camera_frame(img), (150.0, 100.0), 5.0, ALL)
    assert reading.state == "off" and reading.confidence > 0.9


def test_only_the_leds_own_colours_are_considered() -> None:
    img = housing()
    draw_led(img, (150.0, 100.0), 5.0, "amber")
    frame = as_camera_frame(img)
    assert classify_led(frame, (150.0, 100.0), 5.0, ("off", "green")).state is None
    assert classify_led(frame, (150.0, 100.0), 5.0, ("off", "amber")).state == "amber"


def test_white_glare_is_not_a_colour() -> None:
    img = housing()
    yy, xx = np.mgrid[0:240, 0:320]
    img[(xx - 150) ** 2 + (yy - 100) ** 2 < 9] = 255.0
    reading = classify_led(as_camera_frame(img), (150.0, 100.0), 5.0, ALL)
    assert reading.state is None and reading.lit >= 0.5 and reading.confidence == 0.0


def test_anchor_outside_the_frame_reads_nothing() -> None:
    reading = classify_led(as_camera_frame(housing()), (-40.0, 500.0), 5.0, ALL)
    assert reading.state is None and reading.confidence == 0.0


@pytest.mark.parametrize(("hue", "colour", "expected"), [
    (0.0, "red", 1.0), (355.0, "red", 1.0), (15.0, "red", 0.5), (20.0, "red", 0.0),
    (35.0, "amber", 1.0), (27.0, "amber", 1.0), (22.0, "amber", 0.5), (17.0, "amber", 0.0),
    (125.0, "green", 1.0), (60.0, "green", 0.0), (225.0, "blue", 1.0),
])
def test_hue_bands(hue: float, colour: str, expected: float) -> None:
    assert _hue_confidence(hue, colour) == pytest.approx(expected)
