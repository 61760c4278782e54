"""Patch rectangles of part faces: what the part-state network is shown."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from product_models.catalog import FACING_NORMALS, default_catalog
from vision.part_patches import face_corners


@pytest.mark.parametrize("facing", list(FACING_NORMALS))
def test_a_patch_is_its_face_as_seen_from_outside_not_a_mirror_image(facing: str) -> None:
    router = default_catalog().get("router_ax1800")
    part = dataclasses.replace(router.part("led_power"), facing=facing)
    top_left, top_right, _bottom_right, bottom_left = face_corners(router, part, {})
    # Left to right along the top, then up the left edge: counter-clockwise seen from outside.
    turn = np.cross(top_right - top_left, top_left - bottom_left)
    assert np.allclose(turn / np.linalg.norm(turn), FACING_NORMALS[facing])
