"""``fixlens demo`` set-up errors and the vision-vs-truth summary (the guided runs are in tests/e2e)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fixlens.cli import main
from fixlens.demo import reading_summary, write_keyframes


def test_demo_without_detector_weights_says_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "weights"
    empty.mkdir()
    code = main(["demo", "--headless", "--weights-dir", str(empty), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "fixlens-pose.onnx" in err and "not found" in err


def test_demo_refuses_a_weights_folder_that_does_not_exist(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["demo", "--headless", "--weights-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "out")])
    assert code == 2
    assert "weights_dir: expected an existing directory" in capsys.readouterr().err


def _reading(product: str | None, pose: bool, parts: dict, in_view: bool = True, pose_px: float | None = None) -> dict:
    return {"at": 0.0, "ts": 0.0, "product": product, "true_product": "router_ax1800", "in_view": in_view,
            "pose": pose, "pose_px": pose_px, "parts": parts}


def test_reading_summary_counts_right_wrong_and_unknown_per_part() -> None:
    readings = [
        _reading("router_ax1800", True, {"led_internet": ["red", "red", True], "port_wan": [None, "empty", True]},
                 pose_px=2.0),
        _reading("router_ax1800", True, {"led_internet": ["green", "red", True], "port_wan": ["empty", "empty", False]},
                 pose_px=4.0),
        _reading("printer_lx400", True, {"led_internet": ["off", "red", True]}),  # wrong product: parts not scored
        _reading(None, False, {}, in_view=False),  # product out of view: not counted at all
    ]
    summary = reading_summary(readings)
    assert summary["frames_in_view"] == 3 and summary["product_right"] == 2 and summary["with_pose"] == 2
    assert summary["parts"]["led_internet"] == {"frames": 2, "right": 1, "unknown": 0, "wrong": {"green<-red": 1}}
    assert summary["parts"]["port_wan"] == {"frames": 1, "right": 0, "unknown": 1, "wrong": {}}
    assert summary["pose_px_median"] == 4.0


@pytest.mark.parametrize(("count", "shape"), [(0, (120, 320)), (1, (262, 320)), (2, (262, 640)), (4, (524, 960))])
def test_the_contact_sheet_has_as_many_columns_as_it_needs_up_to_three(tmp_path: Path, count: int,
                                                                       shape: tuple[int, int]) -> None:
    frames = [(f"{i}.0s step", np.full((480, 640, 3), 40 * i, np.uint8)) for i in range(count)]
    write_keyframes(tmp_path, frames)
    sheet = cv2.imread(str(tmp_path / "contact_sheet.png"))
    assert sheet.shape[:2] == shape
    assert len(list((tmp_path / "keyframes").glob("*.png"))) == count
    if count == 0:
        assert (sheet < 128).any()  # it says that no step was shown, not a blank page
