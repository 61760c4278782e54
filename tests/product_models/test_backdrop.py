"""The training backgrounds: seeded, the right shape, and each family what it says it is."""

from __future__ import annotations

import numpy as np
import pytest

from product_models.backdrop import dead_leaves, home_surface, tiled_surface


@pytest.mark.parametrize("draw", [tiled_surface, home_surface, dead_leaves])
def test_a_background_is_seeded_rgb_of_the_asked_size(draw) -> None:
    a = draw(np.random.default_rng(3), 96, 72)
    assert a.shape == (72, 96, 3) and a.dtype == np.uint8
    assert np.array_equal(a, draw(np.random.default_rng(3), 96, 72))
    assert not np.array_equal(a, draw(np.random.default_rng(4), 96, 72))


def test_tiles_have_edges_everywhere_a_plain_surface_has_none() -> None:
    """Checks and tiles step in brightness all over the frame (pale pairs too); a plain wall or desk, its light
    falling off smoothly, almost nowhere."""
    def stepping(img: np.ndarray) -> float:
        grey = img.astype(np.float32).mean(axis=2)
        return float((np.abs(np.diff(grey, axis=1)) > 6).mean())

    for seed in range(12):
        assert stepping(tiled_surface(np.random.default_rng(seed), 160, 120)) > 0.08, seed
        assert stepping(home_surface(np.random.default_rng(seed), 160, 120)) < 0.01, seed
