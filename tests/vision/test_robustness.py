"""``fixlens vision robustness``: the degradations, the plain scores, option checks, and a small real run."""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest

from fixlens.cli import main
from product_models.camera import CameraIntrinsics, Pose, project
from product_models.catalog import default_catalog
from vision.tracking import TrackPolicy
from vision.training import conditions as cn
from vision.training import degradations as dg
from vision.training import robustness
from vision.training.evaluate import REFUSALS
from vision.training.scoring import FrameTruth, PartSighting, Tally, frame_interval, nearest_rank
from vision.types import Observation, PartState

CATALOG = default_catalog()
ROUTER = CATALOG.get("router_ax1800")
CAMERA = CameraIntrinsics.from_fov(640, 480)
LIT = {"led_power": "green", "led_internet": "red", "led_wifi": "amber", "led_lan1": "green", "led_lan2": "green"}
BRIEF_CONDITIONS = {"as_rendered", "warm_cast", "cool_cast", "mild_cast", "real_photo_background", "hand",
                    "low_light", "glare", "small_device", "led_bloom", "motion_blur", "defocus", "plain_surface",
                    "portrait", "wide_fov", "jpeg_low"}


@pytest.fixture(scope="module")
def router_view() -> Iterator[tuple[np.ndarray, dg.InView]]:
    """The router from above the front, its five LEDs lit, over a mid-grey background."""
    from product_models.render import Renderer

    with Renderer(640, 480) as renderer:
        result = renderer.render(ROUTER, LIT, Pose.orbit(10.0, 55.0, 0.42, target=(0.0, 0.0, 0.02)), CAMERA,
                                 background=np.full((480, 640, 3), 110, np.uint8))
    yield result.image, dg.InView(ROUTER, result.truth)


def rngs(seed: int = 0) -> tuple[np.random.Generator, np.random.Generator]:
    return np.random.default_rng(seed), np.random.default_rng(seed + 1000)


# ---- the condition table ------------------------------------------------------------------------------

def test_every_condition_of_the_brief_exists_with_its_geometry() -> None:
    assert set(cn.CONDITIONS) == BRIEF_CONDITIONS
    assert (cn.CONDITIONS["portrait"].width, cn.CONDITIONS["portrait"].height) == (480, 640)
    assert cn.CONDITIONS["wide_fov"].camera.fx == pytest.approx(320 / math.tan(math.radians(42.5)))
    assert cn.CONDITIONS["jpeg_low"].jpeg_quality == 30
    assert cn.CONDITIONS["small_device"].device_share == (0.08, 0.12)
    assert cn.CONDITIONS["real_photo_background"].background == "real_photo"
    assert cn.CONDITIONS["plain_surface"].background == "plain"
    assert all(c.width == 640 and c.height == 480 for n, c in cn.CONDITIONS.items() if n != "portrait")


def test_frame_scenes_share_the_device_and_view_across_conditions() -> None:
    products = [CATALOG.get(p) for p in sorted(CATALOG.products)]
    base = cn.frame_scene(cn.CONDITIONS["as_rendered"], products, 7301, 3, 0, [])
    warm = cn.frame_scene(cn.CONDITIONS["warm_cast"], products, 7301, 3, 0, [])
    small = cn.frame_scene(cn.CONDITIONS["small_device"], products, 7301, 3, 0, [])
    assert base.product is warm.product is small.product and base.states == warm.states == small.states
    np.testing.assert_array_equal(base.pose.t, warm.pose.t)
    np.testing.assert_array_equal(base.background, warm.background)
    assert np.linalg.norm(small.pose.camera_position) > 2 * np.linalg.norm(base.pose.camera_position)


def test_plain_surface_is_one_flat_grey_or_white() -> None:
    for seed in range(6):
        img = cn.plain_surface(np.random.default_rng(seed), 64, 48)
        assert img.shape == (48, 64, 3) and np.ptp(img.reshape(-1, 3), axis=0).max() == 0
        assert img.min() >= 200 and np.ptp(img[0, 0].astype(int)) <= 10  # light and (near) neutral


# ---- each degradation does what it says -----------------------------------------------------------------

@pytest.mark.parametrize(("degrade", "red_up", "blue_up"),
                         [(dg.warm_cast, True, False), (dg.cool_cast, False, True)], ids=["warm", "cool"])
def test_colour_casts_move_the_channel_means_the_right_way(router_view: tuple[np.ndarray, dg.InView],
                                                           degrade: dg.Degrade, red_up: bool, blue_up: bool) -> None:
    image, view = router_view
    out = degrade(image, view, *rngs())
    before, after = image.reshape(-1, 3).mean(0), out.image.reshape(-1, 3).mean(0)
    assert (after[0] > before[0] + 5) == red_up and (after[0] < before[0] - 5) == (not red_up)
    assert (after[2] > before[2] + 5) == blue_up and (after[2] < before[2] - 5) == (not blue_up)
    assert after[1] == pytest.approx(before[1], abs=0.01) and out.covered is None


def test_mild_cast_changes_each_channel_by_at_most_ten_percent() -> None:
    image = np.full((48, 64, 3), 100, np.uint8)
    ratios = []
    for seed in range(8):
        ratios.append(dg.mild_cast(image, None, *rngs(seed)).image.reshape(-1, 3).mean(0) / 100.0)
    ratios_arr = np.array(ratios)
    assert ratios_arr.min() >= 0.9 - 0.01 and ratios_arr.max() <= 1.1 + 0.01
    assert np.ptp(ratios_arr, axis=0).min() > 0.02  # the cast is random per channel, not one gain


def test_low_light_darkens_and_adds_noise_that_grows_with_the_signal() -> None:
    image = np.concatenate([np.full((100, 100, 3), 40, np.uint8), np.full((100, 100, 3), 220, np.uint8)], axis=1)
    out = dg.low_light(image, None, *rngs()).image.astype(float)
    dark, bright = out[:, :100], out[:, 100:]
    assert dark.mean() == pytest.approx(40 * 0.35, abs=0.5) and bright.mean() == pytest.approx(220 * 0.35, abs=0.5)
    assert 2.0 < dark.std() < bright.std() < 10.0


def _spread(image: np.ndarray) -> tuple[float, float]:
    """Square roots of the principal second moments of a blurred dot (pixels)."""
    w = image[:, :, 1].astype(float)
    w = w / w.sum()
    yy, xx = np.mgrid[0:w.shape[0], 0:w.shape[1]]
    mx, my = (w * xx).sum(), (w * yy).sum()
    cov = np.array([[(w * (xx - mx) ** 2).sum(), (w * (xx - mx) * (yy - my)).sum()],
                    [(w * (xx - mx) * (yy - my)).sum(), (w * (yy - my) ** 2).sum()]])
    small, large = np.sqrt(np.linalg.eigvalsh(cov))
    return float(small), float(large)


def test_motion_blur_is_a_15px_line_and_defocus_a_round_disc() -> None:
    dot = np.zeros((61, 61, 3), np.uint8)
    dot[30, 30] = 255
    # A 15-pixel line has a standard deviation of 15 / sqrt(12) = 4.3 px along it and ~0 across.
    small, large = _spread(dg.motion_blur(dot, None, *rngs(3)).image)
    assert large == pytest.approx(15 / math.sqrt(12), abs=0.6) and small < 1.0
    # A disc of radius r has a standard deviation of r / 2 along any axis: 2-3 px for r = 4-6.
    small, large = _spread(dg.defocus(dot, None, *rngs(3)).image)
    assert 1.9 < small <= large < 3.1 and large - small < 0.2


def test_the_hand_covers_its_share_of_the_box_and_hides_the_parts_under_it(
        router_view: tuple[np.ndarray, dg.InView]) -> None:
    image, view = router_view
    x1, y1, x2, y2 = (round(float(v)) for v in view.truth.product_box)
    clear = FrameTruth.from_render(ROUTER, view.truth)
    hid_a_part = False
    for seed in range(30):
        out = dg.hand(image, view, *rngs(seed))
        assert out.covered is not None
        share = out.covered[y1:y2 + 1, x1:x2 + 1].mean()
        assert 0.14 <= share <= 0.31
        changed = np.abs(out.image.astype(int) - image.astype(int)).max(axis=2) > 0
        assert changed[out.covered].mean() > 0.95  # skin is drawn where it covers
        far = cv2.dilate(out.covered.astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
        assert not changed[far].any()  # and nowhere else
        truth = FrameTruth.from_render(ROUTER, view.truth, out.covered)
        for before, after in zip(clear.parts, truth.parts, strict=True):
            u, v = (round(float(c)) for c in view.truth.parts[before.name].center_uv)
            under = 0 <= u < 640 and 0 <= v < 480 and bool(out.covered[v, u])
            if before.visible and under:
                assert not after.visible
                hid_a_part = True
            if not before.visible:
                assert not after.visible
    assert hid_a_part, "no hand in 30 draws covered a visible part: the test view needs changing"


def test_glare_whitens_the_body_only_and_covers_its_core(router_view: tuple[np.ndarray, dg.InView]) -> None:
    image, view = router_view
    body = dg.silhouette(view, image.shape[:2])
    for seed in range(5):
        out = dg.glare(image, view, *rngs(seed))
        lift = out.image.astype(int) - image.astype(int)
        assert lift.min() >= 0 and lift.max() > 100
        outside = cv2.dilate(body.astype(np.uint8), np.ones((7, 7), np.uint8)) == 0
        assert lift[outside].max() <= 1
        assert out.covered is not None and out.covered.any() and not (out.covered & ~body).any()
        assert out.image[out.covered].min() >= 0.8 * 255 - 1


def test_led_bloom_adds_a_halo_of_the_led_colour_and_a_white_core(router_view: tuple[np.ndarray, dg.InView]) -> None:
    image, view = router_view
    out = dg.led_bloom(image, view, *rngs()).image.astype(int)
    seen = 0
    for name, colour in LIT.items():
        part = view.truth.parts[name]
        if not part.visible:
            continue
        seen += 1
        u, v = (round(float(c)) for c in part.center_uv)
        assert out[v, u].min() >= 250  # the core clips to white
        ring = (out - image.astype(int))[v - 6:v + 7, u - 6:u + 7].reshape(-1, 3).mean(0)
        dominant = {"green": 1, "red": 0, "amber": 0}[colour]
        assert ring.argmax() == dominant and ring[2] < ring[dominant]
    assert seen >= 3
    np.testing.assert_array_equal(dg.led_bloom(image, None, *rngs()).image, image)  # no device, no LEDs


# ---- plain scores -------------------------------------------------------------------------------------

def _truth(parts: tuple[PartSighting, ...]) -> FrameTruth:
    kp = np.zeros((len(ROUTER.keypoints), 2))
    return FrameTruth(ROUTER.id, np.array([100.0, 100.0, 300.0, 200.0]), kp, parts)


PORT = PartSighting("port_wan", "port", "empty", "plugged", True, 20.0)
LED_SMALL = PartSighting("led_power", "led", "green", "green", True, 2.0)
HIDDEN_PORT = PartSighting("port_lan1", "port", "empty", "plugged", False, 20.0)


def test_a_missed_product_counts_against_recall_parts_and_pose() -> None:
    tally = Tally()
    misreads = tally.add(_truth((PORT, LED_SMALL)), Observation(0, 0.0), ROUTER, CAMERA)
    assert [(m.part, m.read, m.reason, m.pose_error_px) for m in misreads] == [  # the 2 px LED is not listed
        ("port_wan", None, "missed_product", None)]
    s = tally.summary()
    assert s["product_recall"] == 0.0 and s["part_state_accuracy_4px"] == 0.0
    assert s["part_state_count_4px"] == 1 and s["part_state_count_all"] == 2  # the 2 px LED only in "all"
    assert s["abstained_share"] == 1.0 and s["abstained_share_by_kind"] == {"led": 1.0, "port": 1.0}
    assert s["pose_missing"] == 1 and s["pose_error_median_px"] is None


def test_unsafe_reads_are_sure_healthy_reads_of_a_faulty_part() -> None:
    tally = Tally(0.8)
    reads = {"port_wan": PartState("plugged", 0.95, True), "port_lan1": PartState("plugged", 0.99, True),
             "led_power": PartState("green", 0.7, True)}
    obs = Observation(0, 0.0, ROUTER.id, 0.9, (100.0, 100.0, 300.0, 200.0), parts=reads)
    misreads = tally.add(_truth((PORT, LED_SMALL, HIDDEN_PORT)), obs, ROUTER, CAMERA)
    assert [m.to_json() for m in misreads] == [  # the hidden port is not truly visible: not a misread
        {"product": ROUTER.id, "part": "port_wan", "kind": "port", "truth": "empty", "read": "plugged",
         "confidence": 0.95, "reason": None, "size_px": 20.0, "pose_error_px": None}]
    s = tally.summary()
    assert s["product_recall"] == 1.0 and s["pose_missing"] == 1  # a product without a pose
    assert s["unsafe_reads"] == 1 and s["unsafe_reads_not_visible"] == 1
    assert s["unsafe_read_rate"] == 0.5 and s["part_state_accuracy_all"] == 0.5  # the LED read right
    assert s["part_state_accuracy_all_by_kind"] == {"led": 1.0, "port": 0.0} and s["abstained_share"] == 0.0
    unsure = Tally(0.99)
    unsure.add(_truth((PORT,)), obs, ROUTER, CAMERA)
    assert unsure.summary()["unsafe_reads"] == 0


def test_parts_4px_and_up_are_also_reported_by_size_beside_the_plain_figure() -> None:
    small = PartSighting("led_power", "led", "green", "green", True, 4.5)
    middle = PartSighting("led_internet", "led", "green", "green", True, 7.9)
    tally = Tally()
    reads = {"port_wan": PartState("empty", 0.9, True), "led_power": PartState("off", 0.9, True),
             "led_internet": PartState("green", 0.9, True)}
    obs = Observation(0, 0.0, ROUTER.id, 0.9, (100.0, 100.0, 300.0, 200.0), parts=reads)
    tally.add(_truth((PORT, small, middle, LED_SMALL)), obs, ROUTER, CAMERA)
    tally.add(_truth((small,)), Observation(1, 0.0), ROUTER, CAMERA)  # a missed product counts in its bin too
    s = tally.summary()
    assert s["part_state_count_4px_by_size"] == {"4-6px": 2, "6-8px": 1, ">=8px": 1}  # not the 2 px LED
    assert s["part_state_accuracy_4px_by_size"] == {"4-6px": 0.0, "6-8px": 1.0, ">=8px": 1.0}
    assert s["part_state_accuracy_4px"] == 0.5 and s["part_state_count_4px"] == 4  # the plain figure, as ever
    pooled = Tally()
    pooled.merge(tally)
    pooled.merge(tally)
    assert pooled.summary()["part_state_count_4px_by_size"] == {"4-6px": 4, "6-8px": 2, ">=8px": 2}


def test_intervals_count_whole_frames_and_hold_the_figure() -> None:
    """Parts that fail together (a missed product takes every part of its frame) are one draw, not many: the
    same 75 % of 400 parts is less certain when it comes in whole frames than when every frame has a miss."""
    together = frame_interval([4] * 75 + [0] * 25, [4] * 100)
    spread = frame_interval([3] * 100, [4] * 100)
    assert together is not None and spread is not None
    assert together[0] < spread[0] < 0.75 < spread[1] < together[1]
    # 100 frames that fail whole are 100 draws; 400 parts that fail alone are 400 (Wilson's interval of each).
    assert together == [0.657, 0.8245] and spread == [0.7053, 0.7899]
    # One part per frame: the binomial Wilson interval of the frames (132 of 150 right).
    assert frame_interval([1] * 132 + [0] * 18, [1] * 150) == [0.8183, 0.9227]
    # Nothing missed in 150 frames bounds the miss rate near 4 / 150, not at zero; two parts a frame that never
    # miss are still only 150 frames' worth.
    assert frame_interval([1] * 150, [1] * 150) == [0.975, 1.0] and frame_interval([0] * 150, [2] * 150) == [0.0, 0.025]
    # One miss in 150 frames: the interval reaches well under the figure (a percentile bootstrap's would not).
    low, high = frame_interval([1] * 149 + [0], [1] * 150)
    assert low < 0.965 and high < 1.0
    assert frame_interval([], []) is None and frame_interval([0, 0], [0, 0]) is None
    wide, narrow = frame_interval([1] * 9 + [0], [1] * 10), frame_interval([1] * 900 + [0] * 100, [1] * 1000)
    assert wide[1] - wide[0] > 3 * (narrow[1] - narrow[0])  # ten frames say far less than a thousand


def test_a_tally_reports_each_figure_with_its_interval_and_pools_them() -> None:
    tally = Tally()
    reads = {"port_wan": PartState("empty", 0.9, True)}
    hit = Observation(0, 0.0, ROUTER.id, 0.9, (100.0, 100.0, 300.0, 200.0), parts=reads)
    for k in range(20):
        tally.add(_truth((PORT,)), hit if k % 4 else Observation(k, 0.0), ROUTER, CAMERA)
    s = tally.summary()
    assert s["product_recall"] == 0.75 and s["part_state_accuracy_4px"] == 0.75
    assert s["product_recall_ci95"][0] < 0.75 < s["product_recall_ci95"][1]
    assert s["part_state_accuracy_4px_ci95"] == s["product_recall_ci95"]  # one part per frame: the same draws
    pooled = Tally()
    pooled.merge(tally)
    pooled.merge(tally)
    p = pooled.summary()
    assert p["product_recall"] == 0.75 and p["frames"] == 40
    assert p["product_recall_ci95"][1] - p["product_recall_ci95"][0] < s["product_recall_ci95"][1] - s[
        "product_recall_ci95"][0]


def test_pose_error_is_the_mean_over_all_keypoints() -> None:
    pose = Pose.orbit(30.0, 40.0, 0.5, target=(0.0, 0.0, 0.02))
    uv, _ = project(np.array([k.position for k in ROUTER.keypoints]), pose, CAMERA)
    truth = FrameTruth(ROUTER.id, np.array([100.0, 100.0, 300.0, 200.0]), uv, ())
    tally = Tally()
    tally.add(truth, Observation(0, 0.0, ROUTER.id, 0.9, (100.0, 100.0, 300.0, 200.0), pose), ROUTER, CAMERA)
    shifted = Pose(pose.R, pose.t + np.array([0.01, 0.0, 0.0]))  # 1 cm sideways: ~10 px at half a metre
    tally.add(truth, Observation(0, 0.0, ROUTER.id, 0.9, (100.0, 100.0, 300.0, 200.0), shifted), ROUTER, CAMERA)
    errors = sorted(tally.pose_errors)
    assert errors[0] == pytest.approx(0.0, abs=1e-6)
    assert 0.01 * CAMERA.fx / 0.6 < errors[1] < 0.01 * CAMERA.fx / 0.4  # every keypoint is 0.4-0.6 m away


def test_synth_records_give_the_same_sightings() -> None:
    """``vision eval`` scores ``fixlens data synth`` records: covered parts are not visible, size is the box's."""
    record = {"box": [10, 20, 300, 200], "keypoints": [[0.0, 0.0]] * len(ROUTER.keypoints),
              "parts": {"port_wan": {"state": "empty", "visible": True, "box": [50.0, 60.0, 62.0, 66.0]},
                        "led_power": {"state": "green", "visible": False, "box": [5.0, 5.0, 8.0, 8.0]},
                        "button_wifi": {"state": None, "visible": True, "box": None}}}
    truth = FrameTruth.from_record(ROUTER, record)
    by_name = {p.name: p for p in truth.parts}
    assert set(by_name) == {"port_wan", "led_power"}  # stateless and unlisted parts are not sightings
    assert by_name["port_wan"] == PartSighting("port_wan", "port", "empty", "plugged", True, 12.0)
    assert not by_name["led_power"].visible and by_name["led_power"].size_px == 3.0


def test_percentiles_are_nearest_rank_and_failures_are_infinite() -> None:
    assert nearest_rank([3.0, 1.0, 2.0, 4.0], 0.5) == 2.0
    assert nearest_rank([1.0] * 9 + [math.inf], 0.9) == 1.0
    assert nearest_rank([1.0] * 8 + [math.inf] * 2, 0.9) == math.inf


# ---- options ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "message"), [
    (["--frames", "0"], "--frames must be within 1..100000, got 0"),
    (["--clips", "-1"], "--clips must be within 0..10000, got -1"),
    (["--backgrounds", "-2"], "--backgrounds must be within 0..10000"),
    (["--conditions", "hand,fog"], "unknown condition 'fog'; expected some of: as_rendered"),
    (["--conditions", "hand,,glare"], "expected comma-separated names"),
    (["--conditions", "hand,hand"], "named twice"),
    (["--seed", "4000"], "outside the training seeds 1000-6999 and 8000-8999, got 4000"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--chart", "chart.svg"], "expected a .png file name"),
    (["--misreads", "misreads.csv"], "--misreads misreads.csv: expected a .json file name"),
    (["--weights-dir", "/nonexistent/weights"], "--weights-dir /nonexistent/weights: not found"),
], ids=["frames", "clips", "backgrounds", "unknown-condition", "empty-name", "twice", "training-seed",
        "negative-seed", "chart-not-png", "misreads-not-json", "weights-dir"])
def test_bad_options_fail_with_a_clear_error(argv: list[str], message: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vision", "robustness", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["--frames", "0"], "--frames must be within 1..100000, got 0"),
    (["--misreads", "misreads.txt"], "--misreads misreads.txt: expected a .json file name"),
], ids=["frames", "misreads-not-json"])
def test_bad_eval_options_fail_with_a_clear_error(argv: list[str], message: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vision", "eval", *argv]) == 2
    assert message in capsys.readouterr().err


# ---- a small real run ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def few_photos() -> Iterator[None]:
    """Two real photos instead of all of them, and clips of 10 frames: enough to check the plumbing."""
    from vision.training import photos as real

    photos = real.real_photos()[:2]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(real, "real_photos", lambda: photos)
        mp.setattr(robustness, "CLIP_FRAMES", 10)
        yield


@pytest.mark.slow
def test_json_report_chart_and_debug_frames(few_photos: None, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    chart, out, debug = tmp_path / "c" / "rob.png", tmp_path / "rob.json", tmp_path / "debug"
    misreads = tmp_path / "m" / "misreads.json"
    assert main(["vision", "robustness", "--frames", "2", "--clips", "1", "--backgrounds", "1", "--conditions",
                 "as_rendered,hand", "--json", "--chart", str(chart), "--out", str(out),
                 "--debug-dir", str(debug), "--misreads", str(misreads)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads(out.read_text())
    wrong = json.loads(misreads.read_text())
    for name, figures in report["conditions"].items():  # every wrong part >= 4 px is listed, and only those
        count = figures["part_state_count_4px"]
        listed = [m for m in wrong if m["condition"] == name]
        assert len(listed) == count - round(figures["part_state_accuracy_4px"] * count), name
        assert all(0 <= m["frame"] < 2 and m["read"] != m["truth"] and m["size_px"] >= 4 for m in listed)
    assert report["seed"] == robustness.ROBUSTNESS_SEED and 7000 <= report["seed"] < 8000
    assert report["verify_confidence"] == 0.8 and report["verifier"] == "vision.verification.StepVerifier"
    assert list(report["conditions"]) == ["as_rendered", "hand"]
    for figures in [*report["conditions"].values(), report["overall"]]:
        for key in ("product_recall", "part_state_accuracy_4px", "part_state_accuracy_all", "abstained_share",
                    "pose_error_median_px", "pose_error_p90_px", "pose_missing", "unsafe_reads", "unsafe_read_rate",
                    "false_verifications", "clips", "false_detections", "negatives", "part_state_accuracy_4px_by_kind"):
            assert key in figures, key
        assert 0.0 <= figures["product_recall"] <= 1.0
    hand, plain = report["conditions"]["hand"], report["conditions"]["as_rendered"]
    assert hand["frames"] == 2 and hand["clips"] == 1 and hand["negatives"] == 3 and hand["seconds"] > 0
    assert hand["part_state_count_all"] <= plain["part_state_count_all"]  # the same frames, less in view
    assert report["overall"]["frames"] == 4 and report["overall"]["clips"] == 2
    by_product = report["overall"]["by_product"]  # each product's frames pooled over both conditions
    from vision.training.robustness_report import format_table

    table = format_table(report).splitlines()
    assert table[-1 - len(by_product)] == "per product, every condition pooled:"
    for line, (pid, f) in zip(table[-len(by_product):], by_product.items(), strict=True):
        assert line.startswith(f"  {pid}: {f['frames']} frames, recall ")
    assert sum(f["frames"] for f in by_product.values()) == 4
    for pid, f in by_product.items():
        assert f["frames"] == sum(c["by_product"].get(pid, {"frames": 0})["frames"]
                                  for c in report["conditions"].values())
    data = chart.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[1] > 400
    sheet = cv2.imread(str(debug / "contact_sheet.jpg"))
    assert sheet is not None and sheet.shape[0] >= 2 * 168
    assert len(list((debug / "hand").glob("*.jpg"))) >= 4


@pytest.mark.slow
def test_vision_eval_reports_the_plain_figures_beside_the_older_ones(few_photos: None, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    misreads = tmp_path / "m" / "eval-misreads.json"
    assert main(["vision", "eval", "--frames", "2", "--json", "--misreads", str(misreads)]) == 0
    report = json.loads(capsys.readouterr().out)
    wrong = json.loads(misreads.read_text())  # every wrong part >= 4 px is listed, and only those
    count = report["part_state_count_4px"]
    assert len(wrong) == count - round(report["part_state_accuracy_4px"] * count)
    assert all(0 <= m["frame"] < 2 and m["read"] != m["truth"] and m["size_px"] >= 4 for m in wrong)
    for key in ("product_recall", "part_state_accuracy_4px", "part_state_accuracy_all", "abstained_share",
                "pose_error_median_px", "pose_error_p90_px", "pose_missing", "unsafe_reads",
                "detection_recall", "part_state_accuracy", "pose_reproj_median_px", "real_photo_false_positives"):
        assert key in report, key
    assert report["product_recall"] == report["detection_recall"]  # the same definition under both names
    assert list(report).index("product_recall") < list(report).index("detection_recall")
    # Each stage on its own, per product, so a failing stage is named.
    stages = report["stages_by_product"]
    assert sum(s["frames"] for s in stages.values()) == 2
    for pid, per in stages.items():
        assert set(per) == {"frames", "detector_recall", "keypoint_error_median_px", "keypoint_error_p90_px",
                            "pose_success", "product_recall", "product_recall_ci95", "part_state_accuracy_4px",
                            "part_state_accuracy_4px_ci95", "refused", "alone", "keypoint_confidence_median"}
        assert per["product_recall_ci95"][0] <= per["product_recall"] <= per["product_recall_ci95"][1]
        # Beside the plain figures, the same over the frames without another catalog product in view.
        assert 0 <= per["alone"]["frames"] <= per["frames"]
        assert 0.0 <= per["detector_recall"] <= 1.0 and 0.0 <= per["pose_success"] <= 1.0
        assert 0.0 <= per["product_recall"] <= per["pose_success"]  # recognised needs a pose (and the right product)
        # Every frame without a pose is named by what refused it; every seen keypoint has a confidence.
        assert set(per["refused"]) <= set(REFUSALS)
        assert sum(per["refused"].values()) == round(per["frames"] * (1 - per["pose_success"]))
        names = [k.name for k in CATALOG.get(pid).keypoints]
        assert list(per["keypoint_confidence_median"]) == [n for n in names if n in per["keypoint_confidence_median"]]
        assert all(0.0 <= c <= 1.0 for c in per["keypoint_confidence_median"].values())


class _Recorder:
    """A stand-in verifier that keeps what it was given and calls every part healthy (or nothing verified)."""

    seen: ClassVar[list[Observation]] = []
    healthy: ClassVar[bool] = True

    def __init__(self, config: object = None) -> None:
        _Recorder.seen = []

    def reset(self) -> None:
        pass

    def update(self, now_ms: float, obs: Observation,
               smoothed: Mapping[str, PartState] | None = None) -> dict[str, PartState]:
        _Recorder.seen.append(obs)
        if obs.product_id is None:
            return {}
        product = CATALOG.get(obs.product_id)
        return {p.name: PartState(p.healthy if _Recorder.healthy else None, 0.9, True)
                for p in product.stateful_parts()}


@pytest.mark.slow
def test_clips_run_detect_then_track_and_count_what_the_verifier_says(few_photos: None) -> None:
    run = robustness.RobustnessRun(frames=0, clips=1, backgrounds=0, verifier=_Recorder)
    try:
        _Recorder.healthy = True
        figures, _ = run.condition(cn.CONDITIONS["as_rendered"])
        assert figures["clips"] == 1 and figures["false_verifications"] == 1  # it said "healthy": counted
        tracked = [o.tracked for o in _Recorder.seen]
        assert len(tracked) == 10 and not tracked[0] and any(tracked)
        run_length = 0
        for t in tracked:
            run_length = run_length + 1 if t else 0
            assert run_length < TrackPolicy().redetect_every  # a full detection at least every 8th frame
        assert all(o.parts and any(p.size_px > 0 for p in o.parts.values()) for o in _Recorder.seen
                   if o.product_id is not None)  # raw reads, not smoothed ones
        _Recorder.healthy = False
        figures, _ = run.condition(cn.CONDITIONS["as_rendered"])
        assert figures["false_verifications"] == 0 and figures["fault_confirmed"] == 0
    finally:
        run.close()


def test_a_shipped_product_keeps_its_clip_list_and_any_other_films_every_unhealthy_state(tmp_path: Path) -> None:
    from product_models.catalog import Catalog
    from product_models.generate import generate_product

    assert robustness.clip_faults(ROUTER) == robustness.CLIP_FAULTS["router_ax1800"]
    generate_product(tmp_path, "hub_clip", seed=4)
    product = Catalog.load(tmp_path).get("hub_clip")
    faults = robustness.clip_faults(product)
    expected = {(p.name, s) for p in product.stateful_parts() if p.healthy is not None for s in p.states
                if s != p.healthy}
    assert set(faults) == expected and len(faults) == len(expected)
    assert {product.part(name).kind for name, _ in faults} >= {"led", "port", "removable"}
    # Beside two other products, 14 clips a condition give it 5: over the conditions, every fault is filmed.
    filmed = {robustness.clip_fault(product, n, zlib.crc32(name.encode())) for name in cn.CONDITIONS for n in range(5)}
    assert filmed == set(faults)
    assert [robustness.clip_fault(ROUTER, n, 12345) for n in range(5)] == list(robustness.CLIP_FAULTS["router_ax1800"])


def test_a_product_under_a_shipped_id_with_other_parts_films_its_own_faults(tmp_path: Path) -> None:
    """A catalog's own "router_ax1800" (a generated product under the shipped id) has none of the shipped
    router's ports and LEDs: its clips film its own faults, never a part it does not have."""
    from product_models.catalog import Catalog
    from product_models.generate import generate_product

    generate_product(tmp_path, "router_ax1800", seed=4)
    product = Catalog.load(tmp_path).get("router_ax1800")
    faults = robustness.clip_faults(product)
    assert faults and faults != robustness.CLIP_FAULTS["router_ax1800"]
    assert all(product.has_part(name) and state != product.part(name).healthy for name, state in faults)
    filmed = {robustness.clip_fault(product, n, zlib.crc32(name.encode())) for name in cn.CONDITIONS for n in range(5)}
    assert filmed == set(faults)


@pytest.mark.slow
def test_a_catalog_with_an_added_product_is_filmed_and_scored_per_product(few_photos: None, tmp_path: Path) -> None:
    """An added product no network knows yet is in the frames and the clips like any other (its recall is 0:
    nothing recognises it), and every product's figures come apart from the pooled ones."""
    import shutil

    from product_models.catalog import CATALOG_DIR, Catalog
    from product_models.generate import generate_product

    shutil.copytree(CATALOG_DIR, tmp_path / "catalog")
    generate_product(tmp_path / "catalog", "hub_clip", seed=4)
    run = robustness.RobustnessRun(frames=6, clips=3, backgrounds=0, verifier=_Recorder,
                                   catalog=Catalog.load(tmp_path / "catalog"))
    try:
        _Recorder.healthy = False
        figures, tally = run.condition(cn.CONDITIONS["as_rendered"])
    finally:
        run.close()
    assert [p.id for p in run.filmed] == ["hub_clip", "printer_lx400", "router_ax1800"]
    assert figures["clips"] == 3
    by_product = figures["by_product"]
    assert sum(f["frames"] for f in by_product.values()) == figures["frames"] == 6
    assert sum(round(f["product_recall"] * f["frames"]) for f in by_product.values()) == tally.recalled
    assert by_product["hub_clip"]["product_recall"] == 0.0  # the seed's six frames show it
    assert robustness.product_figures(run.by_product) == by_product  # one condition so far: the pooled ones
