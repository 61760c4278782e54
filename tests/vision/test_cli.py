from __future__ import annotations

import json
from pathlib import Path

import pytest

from ar_server.cli import main
from vision.model_files import ModelFiles


def test_vision_models_command_creates_the_files(models: ModelFiles, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vision", "models", "--dir", str(tmp_path)]) == 0
    assert (tmp_path / "hand_landmarker.task").read_bytes() == models.hand_task.read_bytes()
    assert "face_detection_short_range.tflite" in capsys.readouterr().out
    (tmp_path / "hand_landmarker.task").write_bytes(b"stale")
    assert main(["vision", "models", "--dir", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "hand_landmarker.task").read_bytes() == models.hand_task.read_bytes()


def test_bench_vision_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "vision", "--repeat", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("decode_640x480_noise_ms", "decode_640x480_smooth_ms", "classify_led_5px_ms",
                "estimate_pose_10kp_ms"):
        assert result[key] > 0
