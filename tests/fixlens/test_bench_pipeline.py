"""``fixlens bench pipeline``: the report as a pure unit, then a tiny run with the shipped weights, side by side
with the naive baseline at the same input size and thread count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixlens.bench_pipeline import summarise
from fixlens.cli import main
from vision.detector import WEIGHTS_DIR, WEIGHTS_STEM


def test_report_has_medians_and_ratios_against_both_baselines() -> None:
    times = {"pipeline": [10.0, 20.0, 30.0, 40.0, 50.0], "naive_same_size": [20.0, 40.0, 60.0, 60.0, 60.0],
             "naive_640": [100.0] * 5}
    report = summarise(times, {"detect_ms": [5.0, 7.0, 6.0]})
    assert report == {"p50_ms": 30.0, "p95_ms": 40.0, "stages_p50_ms": {"detect_ms": 6.0},
                      "naive_same_size_p50_ms": 60.0, "ratio_vs_naive_same_size": 0.5,
                      "naive_640_p50_ms": 100.0, "ratio_vs_naive_640": 0.3}


def test_without_the_baseline_there_are_no_ratios() -> None:
    assert set(summarise({"pipeline": [1.0, 2.0]}, {})) == {"p50_ms", "p95_ms", "stages_p50_ms"}


@pytest.mark.parametrize("frames", ["4", "10001"])
def test_frames_out_of_range_exit_2(frames: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "pipeline", "--frames", frames]) == 2
    assert "--frames must be within 5..10000" in capsys.readouterr().err


def test_a_missing_weights_folder_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["bench", "pipeline", "--weights-dir", str(tmp_path / "none")]) == 2
    assert f"--weights-dir {tmp_path / 'none'}: no such folder" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_run_compares_at_the_same_size_and_threads(capsys: pytest.CaptureFixture[str]) -> None:
    """The baseline ran at 640 px on the 1 torch thread Ultralytics picks, against a 320 px detector on 2."""
    for suffix in (".onnx", ".pt"):
        if not (WEIGHTS_DIR / f"{WEIGHTS_STEM}{suffix}").is_file():
            pytest.skip(f"no shipped detector weights: {Path(WEIGHTS_DIR, WEIGHTS_STEM + suffix)} is missing")
    assert main(["bench", "pipeline", "--frames", "5", "--backend", "onnx", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["frames"], report["width"], report["height"], report["backend"]) == (5, 640, 480, "onnx:cpu")
    assert report["model_sets"] == [str(WEIGHTS_DIR)]
    assert report["input_size"] > 0 and report["threads"] >= 1
    assert report["naive_torch_threads"] == [report["threads"]] and report["naive_device"] == "cpu"
    for key in ("p50_ms", "naive_same_size_p50_ms", "naive_640_p50_ms"):
        assert report[key] > 0
    assert report["ratio_vs_naive_same_size"] == pytest.approx(
        report["p50_ms"] / report["naive_same_size_p50_ms"], abs=0.01)
    assert report["ratio_vs_naive_640"] == pytest.approx(report["p50_ms"] / report["naive_640_p50_ms"], abs=0.01)
    # The stream: five frames of one clip through the session's tracker; the first has no track to follow.
    stream = report["stream"]
    assert (stream["fps"], stream["clip_frames"]) == (15.0, 30) and stream["p50_ms"] > 0
    assert 1 / 5 <= stream["detector_share"] <= 1.0 and 0.0 <= stream["recall"] <= 1.0
