"""``fixlens bench plain``: viewpoints and figures as pure units, then a tiny run through a real server with the
shipped weights. The recognition rate is a benchmark figure, not asserted here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ar_server.config import Config
from fixlens.bench_plain import FrameResult, summarise_product
from fixlens.cli import main
from fixlens.plain_frames import (
    PITCH_RANGE_DEG,
    WIDTH_SHARE_RANGE,
    YAW_RANGE_DEG,
    PlainFrame,
    Surface,
    Viewpoint,
    viewpoints,
)
from product_models.camera import CameraIntrinsics

ROUTER = "router_ax1800"


def test_viewpoints_are_seeded_in_range_and_go_all_round() -> None:
    views = viewpoints(40, 3)
    assert views == viewpoints(40, 3) and views != viewpoints(40, 4)
    yaws = sorted(v.yaw_deg for v in views)
    assert YAW_RANGE_DEG[0] <= yaws[0] and yaws[-1] <= YAW_RANGE_DEG[1]
    assert max(np.diff([YAW_RANGE_DEG[0], *yaws, YAW_RANGE_DEG[1]])) <= 2 * (YAW_RANGE_DEG[1] - YAW_RANGE_DEG[0]) / 40
    assert all(PITCH_RANGE_DEG[0] <= v.pitch_deg <= PITCH_RANGE_DEG[1] for v in views)
    assert all(WIDTH_SHARE_RANGE[0] <= v.width_share <= WIDTH_SHARE_RANGE[1] for v in views)


@pytest.mark.parametrize(("text", "name", "rgb"), [
    ("grey", "grey", (0.80, 0.81, 0.83)),
    ("White", "white", (1.0, 1.0, 1.0)),
    ("0,51,255", "rgb-0-51-255", (0.0, 0.2, 1.0)),
])
def test_surfaces_read_what_products_render_takes(text: str, name: str, rgb: tuple[float, float, float]) -> None:
    surface = Surface.from_text(text)
    assert surface.name == name and np.allclose(surface.rgb, rgb)


def _frame(surface: str, index: int) -> PlainFrame:
    return PlainFrame(ROUTER, surface, index, Viewpoint(10.0 * index, 30.0, 0.4), 0.5, 0.4 + 0.01 * index,
                      index == 0, b"", np.zeros((1, 1, 3), np.uint8), CameraIntrinsics.from_fov(640, 480))


def test_figures_count_recognised_other_missing_and_unanswered_frames() -> None:
    frames = {"grey": [_frame("grey", i) for i in range(4)], "white": [_frame("white", i) for i in range(2)]}
    results = {
        "grey": [FrameResult(True, ROUTER, 0.8, 40.0, 30.0), FrameResult(True, ROUTER, 0.6, 60.0, 50.0),
                 FrameResult(True, None, 0.0, 50.0, 45.0), FrameResult(True, "printer_lx400", 0.7, 45.0, 40.0)],
        "white": [FrameResult(True, ROUTER, 0.9, 20.0, 10.0), FrameResult(error="bad_frame: no")],
    }
    report = summarise_product(ROUTER, frames, results)
    grey, white, overall = report["surfaces"]["grey"], report["surfaces"]["white"], report["overall"]
    assert (grey["frames"], grey["answered"], grey["recognised"], grey["recognised_share"]) == (4, 4, 2, 0.5)
    assert (grey["other_product"], grey["no_product"], grey["errors"], grey["cut_off"]) == (1, 1, 0, 1)
    assert (grey["latency_p50_ms"], grey["server_total_p50_ms"], grey["product_conf_p50"]) == (47.5, 42.5, 0.7)
    assert grey["width_share"] == pytest.approx([0.4, 0.43])
    assert (white["answered"], white["recognised"], white["errors"]) == (1, 1, 1)
    assert (overall["frames"], overall["recognised"], overall["recognised_share"]) == (6, 3, 0.5)
    assert [(m["surface"], m["index"], m["got"]) for m in report["misses"]] == [
        ("grey", 2, None), ("grey", 3, "printer_lx400"), ("white", 1, "bad_frame: no")]


@pytest.fixture(scope="module")
def shipped_weights() -> Path:
    folder = Config().weights_dir
    if not (folder / "fixlens-pose.onnx").is_file():
        pytest.skip(f"no shipped detector weights: {folder / 'fixlens-pose.onnx'} is missing")
    return folder


def test_bench_plain_streams_every_frame_to_the_server(shipped_weights: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "plain", "--json", "--frames", "4", "--weights-dir", str(shipped_weights)])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (report["bench"], report["frame_size"], report["surfaces"]) == ("plain", [640, 480], ["grey", "white"])
    assert report["pipeline"].startswith("Pipeline") and report["weights_dir"] == str(shipped_weights)
    assert set(report["products"]) == {"router_ax1800", "printer_lx400"}
    # Every frame reached the vision pipeline and came back as an `obs`, as the server itself counts them.
    assert (report["frames_sent"] == report["frames_answered"] == report["server_frames_received"]
            == report["server_frames_processed"] == 2 * 2 * 4)
    for row in report["products"].values():
        assert set(row) == {"surfaces", "overall", "misses"}
        assert row["surfaces"]["grey"]["rgb"] == [204, 207, 212] and row["surfaces"]["white"]["rgb"] == [255] * 3
        for figures in (*row["surfaces"].values(), row["overall"]):
            assert figures["answered"] == figures["frames"] and figures["errors"] == 0
            assert figures["recognised"] + figures["other_product"] + figures["no_product"] == figures["frames"]
            assert 0.0 <= figures["recognised_share"] <= 1.0 and figures["latency_p50_ms"] > 0
            assert 0.15 <= figures["width_share"][0] <= figures["width_share"][1] <= 0.75
        assert row["overall"]["frames"] == 8 and len(row["misses"]) == 8 - row["overall"]["recognised"]
    assert isinstance(report["target"]["met"], bool) and report["target"]["min_share"] == 0.95


@pytest.mark.parametrize(("argv", "message"), [
    (["--frames", "0"], "expected --frames 1..10000"),
    (["--surface", "blue"], "--surface: expected grey, white or R,G,B"),
    (["--surface", "white", "--surface", "WHITE"], "--surface: each surface once, got white, white"),
    (["--product", "toaster"], "unknown product 'toaster'"),
    (["--width", "8"], "--width/--height must be within 16..8192"),
    (["--weights-dir", "/nonexistent/weights"], "weights_dir: expected an existing directory"),
])
def test_bad_input_exits_2_with_a_message(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "plain", "--frames", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_weights_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "plain", "--frames", "1", "--weights-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "fixlens-pose.onnx" in err and "Traceback" not in err
