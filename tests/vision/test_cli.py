from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixlens.cli import main
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


def test_train_options_with_bad_paths_fail_with_a_clear_error(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d"
    (data / "truth" / "train").mkdir(parents=True)
    assert main(["train", "keypoints", "--data", str(data), "--init", str(tmp_path / "none.pt"),
                 "--out-dir", str(tmp_path / "o")]) == 2
    assert "--init" in capsys.readouterr().err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a state dict")
    assert main(["train", "keypoints", "--data", str(data), "--init", str(junk), "--out-dir", str(tmp_path / "o")]) == 2
    assert "not a keypoints.state.pt" in capsys.readouterr().err
    assert main(["train", "parts", "--data", str(data), "--estimated-poses", str(tmp_path / "nowhere"),
                 "--out-dir", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "--estimated-poses" in err and "not found" in err
    assert main(["train", "parts", "--data", str(data), "--epochs", "0", "--out-dir", str(tmp_path / "p")]) == 2
    assert "--epochs must be within 1..1000" in capsys.readouterr().err
    assert main(["train", "parts", "--data", str(data), "--keep-known", "--out-dir", str(tmp_path / "p")]) == 2
    assert "--keep-known needs --init" in capsys.readouterr().err
    assert main(["train", "keypoints", "--data", str(data), "--only", "nas_x", "--out-dir", str(tmp_path / "o")]) == 2
    assert "--only nas_x: not in the catalog (printer_lx400, router_ax1800)" in capsys.readouterr().err
    (data / "data.yaml").write_text("names: {0: printer_lx400, 1: router_ax1800}\n")
    assert main(["train", "detector", "--data", str(data / "data.yaml"), "--only", "nas_x",
                 "--out-dir", str(tmp_path / "o")]) == 2
    assert "--only nas_x: " in (err := capsys.readouterr().err) and "has no nas_x" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "p").exists()


def test_train_appearance_refuses_a_folder_that_is_not_synth_data_and_bad_counts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    assert main(["train", "appearance", "--data", str(tmp_path / "nowhere"), "--out-dir", str(out)]) == 2
    assert "nowhere: no images/train or data.yaml" in capsys.readouterr().err
    data = tmp_path / "d"
    (data / "images" / "train").mkdir(parents=True)
    (data / "data.yaml").write_text("names: [router_ax1800]\n")
    for flag in ("--negatives", "--epochs"):
        assert main(["train", "appearance", "--data", str(data), flag, "0", "--out-dir", str(out)]) == 2
        assert f"{flag} must be within 1..1000000, got 0" in capsys.readouterr().err
    assert main(["train", "product", "router_ax1800", "--work", str(tmp_path / "w"), "--appearance-epochs", "-1"]) == 2
    assert "--appearance-epochs must be within 0..1000, got -1" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "w").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--focus", "nas_x"], "--focus: unknown product 'nas_x'; the catalog has printer_lx400, router_ax1800"),
    (["--focus", "router_ax1800", "--focus-share", "1.5"], "--focus-share must be within (0, 1], got 1.5"),
])
def test_data_synth_refuses_a_bad_focus_before_writing(args: list[str], message: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "synth", "--out", str(tmp_path / "d"), "--images", "4", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
