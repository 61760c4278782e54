from __future__ import annotations

import math

import numpy as np
import pytest

from product_models.camera import CameraIntrinsics, Pose, project


def test_orbit_front_view_projects_centre_to_principal_point() -> None:
    cam = CameraIntrinsics.from_fov(640, 480, 60.0)
    pose = Pose.orbit(0.0, 0.0, 0.5)
    uv, depth = project(np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.0, 0.1]]), pose, cam)
    assert depth[0] == pytest.approx(0.5)
    np.testing.assert_allclose(uv[0], [cam.cx, cam.cy], atol=1e-9)
    assert uv[1, 0] > cam.cx  # +x is to the right on screen
    assert uv[2, 1] < cam.cy  # +z is up on screen
    np.testing.assert_allclose(pose.camera_position, [0.0, -0.5, 0.0], atol=1e-12)


def test_pose_is_a_rotation() -> None:
    pose = Pose.orbit(37.0, 25.0, 0.8, roll_deg=8.0)
    np.testing.assert_allclose(pose.R @ pose.R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(pose.R) == pytest.approx(1.0)


@pytest.mark.parametrize("field", ["fx", "cy"])
def test_intrinsics_reject_nan(field: str) -> None:
    cam = CameraIntrinsics.from_fov(640, 480)
    bad = CameraIntrinsics(**{**cam.__dict__, field: math.nan})
    with pytest.raises(ValueError, match=field):
        bad.validate()


def test_intrinsics_reject_negative_focal() -> None:
    cam = CameraIntrinsics(-500.0, 500.0, 320.0, 240.0, 640, 480)
    with pytest.raises(ValueError, match="'fx' must be > 0"):
        cam.validate()
