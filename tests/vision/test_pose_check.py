"""Geometric verification of a pose: the rules that keep phantoms on product-free frames out."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from product_models.camera import CameraIntrinsics, Pose, project
from product_models.catalog import default_catalog
from vision.pose_check import (
    DEFAULT_THRESHOLDS,
    MAX_REPROJECTION_PX,
    MAX_REPROJECTION_SHARE,
    MIN_INLIERS,
    MIN_SURENESS,
    SURE_INLIERS,
    THIN_POSE_MIN_CONF,
    Refused,
    Thresholds,
    VerifiedPose,
    plausible,
    verified_pose,
)
from vision.types import Keypoints

CAMERA = CameraIntrinsics.from_fov(640, 480)
POSE = Pose.orbit(165.0, 30.0, 0.45, target=(0.0, 0.0, 0.02))


def test_a_pose_on_few_inliers_needs_a_sure_keypoint_network() -> None:
    assert plausible(POSE, 3.0, 300.0, SURE_INLIERS, MIN_SURENESS + 0.01)
    assert not plausible(POSE, 3.0, 300.0, SURE_INLIERS, MIN_SURENESS - 0.01)  # unsure of every keypoint
    assert plausible(POSE, 3.0, 300.0, SURE_INLIERS - 1, THIN_POSE_MIN_CONF + 0.1)
    assert not plausible(POSE, 3.0, 300.0, SURE_INLIERS - 1, THIN_POSE_MIN_CONF - 0.1)
    assert not plausible(POSE, 30.0, 300.0, 10, 0.9)  # residuals too large for a 300 px product
    assert not plausible(POSE, 1.0, 300.0, MIN_INLIERS - 1, 0.99)  # four points fit almost anything


def test_a_camera_under_the_floor_is_not_plausible() -> None:
    below = Pose.orbit(165.0, -30.0, 0.45, target=(0.0, 0.0, 0.02))
    assert not plausible(below, 1.0, 300.0, 10, 0.9)


def test_the_residual_allowed_grows_with_the_box() -> None:
    """A small phantom box must not hide behind a fixed pixel allowance: the share of the side rules."""
    for side in (40.0, 100.0, 400.0):
        allowed = max(MAX_REPROJECTION_PX, MAX_REPROJECTION_SHARE * side)
        assert plausible(POSE, 0.99 * allowed, side, 10, 0.9)
        assert not plausible(POSE, 1.01 * allowed, side, 10, 0.9)
    assert not plausible(POSE, 0.09 * 200.0, 200.0, 10, 0.9)  # 9 % of a 200 px box: what phantoms leave


def check(keypoints: Keypoints, thresholds: Thresholds = DEFAULT_THRESHOLDS, **kw: Any) -> VerifiedPose | Refused:
    """:func:`verified_pose` of the router's keypoints found at ``keypoints``, in the box of :data:`POSE`'s."""
    _, xyz, box = _keypoints_of(POSE, 0.9)
    return verified_pose(keypoints, xyz, CAMERA, box, thresholds, **kw)


def _keypoints_of(pose: Pose, conf: float) -> tuple[Keypoints, np.ndarray, np.ndarray]:
    xyz = np.array([k.position for k in default_catalog().get("router_ax1800").keypoints])
    uv, _ = project(xyz, pose, CAMERA)
    box = np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])
    return Keypoints(uv, np.full(len(uv), conf), 0.15), xyz, box


def test_exact_keypoints_give_their_pose_and_scattered_ones_none() -> None:
    keypoints, xyz, box = _keypoints_of(POSE, 0.9)
    verified = verified_pose(keypoints, xyz, CAMERA, box)
    assert isinstance(verified, VerifiedPose) and verified.reprojection_error_px < 0.5
    assert np.linalg.norm(verified.pose.camera_position - POSE.camera_position) < 0.01
    scattered = Keypoints(np.random.default_rng(3).uniform(100, 400, keypoints.uv.shape), keypoints.confidence, 0.15)
    assert verified_pose(scattered, xyz, CAMERA, box) in (Refused("residual"), Refused("inliers"))
    # Sure of only three keypoints: fewer than any pose needs, named apart from a pose PnP could not find.
    three = Keypoints(keypoints.uv, np.where(np.arange(len(xyz)) < 3, 0.9, 0.05), 0.15)
    assert verified_pose(three, xyz, CAMERA, box) == Refused("too_few_keypoints")


def test_a_detection_must_reach_the_confidence_floor_and_a_tracked_frame_is_not_asked() -> None:
    keypoints, _, _ = _keypoints_of(POSE, 0.9)
    strict = Thresholds(min_detection_conf=0.6)
    assert check(keypoints, strict, detection_confidence=0.59) == Refused("detector_confidence")
    assert isinstance(check(keypoints, strict, detection_confidence=0.61), VerifiedPose)
    assert isinstance(check(keypoints, strict, detection_confidence=None), VerifiedPose)  # tracked
    floor = DEFAULT_THRESHOLDS.min_detection_conf
    assert isinstance(check(keypoints, detection_confidence=floor), VerifiedPose)


def test_a_detection_must_look_like_the_product_and_the_check_runs_only_for_a_pose_that_passed() -> None:
    keypoints, _, _ = _keypoints_of(POSE, 0.9)
    asked = []

    def score(value: float | None) -> Callable[[], float | None]:
        def ask() -> float | None:
            asked.append(value)
            return value
        return ask

    floor = DEFAULT_THRESHOLDS.min_appearance
    assert check(keypoints, detection_confidence=0.9, appearance=score(floor - 0.01)) == Refused("appearance")
    assert isinstance(check(keypoints, detection_confidence=0.9, appearance=score(floor)), VerifiedPose)
    assert isinstance(check(keypoints, detection_confidence=0.9, appearance=score(None)), VerifiedPose)
    assert len(asked) == 3
    # A detection under the confidence floor, or keypoints no rigid product explains, never runs the check.
    assert check(keypoints, detection_confidence=0.1, appearance=score(1.0)) == Refused("detector_confidence")
    scattered = Keypoints(np.random.default_rng(3).uniform(100, 400, keypoints.uv.shape), keypoints.confidence, 0.15)
    assert check(scattered, detection_confidence=0.9, appearance=score(1.0)).reason in ("residual", "inliers")
    assert len(asked) == 3


def test_thresholds_are_read_from_a_set_file_and_what_it_leaves_out_is_the_modules(tmp_path: Path) -> None:
    from vision.pose_check import DEFAULT_THRESHOLDS, Thresholds, read_thresholds, write_thresholds

    path = tmp_path / "pose-check.json"
    path.write_text('{"thresholds": {"min_detection_conf": 0.4, "min_inliers": 6}, "tuned": {"seed": 8800}}')
    got = read_thresholds(path)
    assert (got.min_detection_conf, got.min_inliers) == (0.4, 6)
    assert got.min_appearance == DEFAULT_THRESHOLDS.min_appearance
    chosen = Thresholds(min_detection_conf=0.3, min_sureness=0.25, sure_inliers=7)
    write_thresholds(path, chosen, {"tuned": {"seed": 8801}})
    assert read_thresholds(path) == chosen
    assert [p.name for p in tmp_path.iterdir()] == ["pose-check.json"]  # written whole, then moved in place


@pytest.mark.parametrize(("text", "message"), [
    ("{", "unreadable pose-check thresholds"),
    ('["min_detection_conf"]', "expected an object with a 'thresholds' object"),
    ('{"thresholds": 0.5}', "expected an object with a 'thresholds' object"),
    ('{"thresholds": {"min_detection_confidence": 0.5}}', "thresholds.min_detection_confidence: unknown field"),
    ('{"thresholds": {"min_detection_conf": "0.5"}}', "thresholds.min_detection_conf: expected a number"),
    ('{"thresholds": {"min_detection_conf": true}}', "thresholds.min_detection_conf: expected a number"),
    ('{"thresholds": {"min_detection_conf": NaN}}', "thresholds.min_detection_conf: expected a number"),
    ('{"thresholds": {"min_inliers": 5.5}}', "thresholds.min_inliers: expected an integer"),
    ('{"thresholds": {"min_inliers": 2}}', "thresholds.min_inliers: 2 is outside 4..1000"),
    ('{"thresholds": {"min_appearance": -0.1}}', "thresholds.min_appearance: -0.1 is outside 0.0..1.0"),
    ('{"thresholds": {"max_reprojection_px": 1' + "0" * 400 + '}}', "thresholds.max_reprojection_px: 1000"),
    ('{"thresholds": {"max_reprojection_px": 1' + "0" * 5000 + '}}', "unreadable pose-check thresholds"),
    ('{"thresholds": {"min_inliers": 7, "sure_inliers": 6}}', "sure_inliers (6) is below min_inliers (7)"),
])
def test_a_bad_thresholds_file_is_refused_naming_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    from vision.errors import ModelUnavailable
    from vision.pose_check import read_thresholds

    path = tmp_path / "pose-check.json"
    path.write_text(text)
    with pytest.raises(ModelUnavailable, match=re.escape(message)) as info:
        read_thresholds(path)
    assert str(path) in str(info.value)


def test_the_first_rule_a_pose_breaks_is_named_and_a_nan_pose_breaks_one() -> None:
    from vision.pose_check import refusal

    assert refusal(POSE, 3.0, 300.0, 10, 0.9) is None
    assert refusal(POSE, 30.0, 300.0, MIN_INLIERS - 1, 0.0) == "residual"  # the first of several broken
    assert refusal(POSE, 3.0, 300.0, MIN_INLIERS - 1, 0.0) == "inliers"
    assert refusal(POSE, 3.0, 300.0, SURE_INLIERS - 1, THIN_POSE_MIN_CONF - 0.1) == "unsure"
    assert refusal(POSE, 3.0, 300.0, SURE_INLIERS, MIN_SURENESS - 0.01) == "unsure"
    assert refusal(Pose.orbit(165.0, -30.0, 0.45, target=(0.0, 0.0, 0.02)), 1.0, 300.0, 10, 0.9) == "below"
    nan = Pose(np.eye(3), np.full(3, np.nan))  # every comparison with NaN is False: it must still be refused
    assert refusal(nan, 1.0, 300.0, 10, 0.9) == "below" and not plausible(nan, 1.0, 300.0, 10, 0.9)
