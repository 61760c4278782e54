from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from vision.errors import VisionError
from vision.hands import HandTracker, nearest_part, with_nearest_parts
from vision.model_files import ModelFiles
from vision.parts import ProjectedPart
from vision.types import Hand


def _part(name: str, uv: tuple[float, float], visible: bool = True) -> ProjectedPart:
    return ProjectedPart(name, uv, 0.5, (5.0, 5.0), 0.9, visible)


PARTS = {"button_power": _part("button_power", (100.0, 100.0)), "led_power": _part("led_power", (130.0, 100.0)),
         "port_wan": _part("port_wan", (101.0, 101.0), visible=False)}


def test_tracker_loads_the_bundle_and_finds_no_hands_in_an_empty_frame(models: ModelFiles) -> None:
    with HandTracker(models.hand_task.parent) as tracker:
        assert tracker.available and tracker.unavailable_reason is None
        assert tracker.detect(np.full((480, 640, 3), 128, np.uint8)) == ()
    assert not tracker.available  # closed


def test_missing_model_turns_hands_off_with_one_message(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vision.hands"):
        tracker = HandTracker(tmp_path)
        for _ in range(5):
            assert tracker.detect(np.zeros((48, 64, 3), np.uint8)) == ()
    assert not tracker.available
    assert len(caplog.records) == 1
    assert "hand features are off" in caplog.text and "fixlens vision models" in caplog.text


def test_nearest_visible_part() -> None:
    assert nearest_part((104.0, 104.0), PARTS)[0] == "button_power"  # port_wan is closer but hidden
    name, dist = nearest_part((128.0, 100.0), PARTS)
    assert name == "led_power" and dist == pytest.approx(2.0)
    assert nearest_part((500.0, 500.0), PARTS, max_distance_px=50.0) == (None, None)


def test_hands_get_their_nearest_part() -> None:
    hand = Hand("Right", 0.9, np.zeros((21, 2), np.float32), {"index": (125.0, 99.0), "thumb": (99.0, 99.0),
                                                             "middle": (0, 0), "ring": (0, 0), "pinky": (0, 0)})
    (index,) = with_nearest_parts((hand,), PARTS)
    assert index.nearest_part == "led_power" and index.nearest_part_px == pytest.approx(26 ** 0.5)
    (thumb,) = with_nearest_parts((hand,), PARTS, finger="thumb")
    assert thumb.nearest_part == "button_power"
    with pytest.raises(VisionError, match="finger: expected one of thumb, index"):
        with_nearest_parts((hand,), PARTS, finger="toe")
