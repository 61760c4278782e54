"""The keypoint stage's preprocessing and soft-argmax, which training shares."""

from __future__ import annotations

import numpy as np
import pytest

from vision.keypoints import INPUT, peak_mass, soft_argmax, to_input


def _peaked(k: int = 3, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(k, size, size) logits each peaked on one cell, and the crop-pixel centres of those cells."""
    rng = np.random.default_rng(4)
    heat = np.full((k, size, size), -20.0, np.float32)
    cells = rng.integers(2, size - 2, (k, 2))
    for i, (x, y) in enumerate(cells):
        heat[i, y, x] = 20.0
    return heat, (cells + 0.5) * (INPUT / size)


def test_soft_argmax_points_at_the_peak_with_its_mass_as_confidence() -> None:
    heat, centres = _peaked()
    uv, prob = soft_argmax(heat)
    assert uv.shape == (3, 2) and np.allclose(uv, centres, atol=1e-3)
    assert np.allclose(peak_mass(prob), 1.0, atol=1e-6)
    flat_uv, flat_prob = soft_argmax(np.zeros((1, 8, 8), np.float32))
    # A flat heatmap points at the crop's centre, with the mass of its first cell's corner neighbourhood.
    assert np.allclose(flat_uv, INPUT / 2) and peak_mass(flat_prob)[0] == pytest.approx(4 / 64)


def test_training_reads_heatmaps_exactly_as_run_time_does() -> None:
    torch = pytest.importorskip("torch")
    heat = np.random.default_rng(5).normal(0, 3, (2, 4, 32, 32))
    ours = np.stack([soft_argmax(h)[0] for h in heat])
    heat_t = torch.tensor(heat, requires_grad=True)
    uv_t, _ = soft_argmax(heat_t)
    assert np.allclose(uv_t.detach().numpy(), ours, atol=1e-9)
    uv_t.sum().backward()  # differentiable: the training loss goes through it
    assert heat_t.grad is not None and float(heat_t.grad.abs().sum()) > 0


def test_crops_become_rgb_planes_in_zero_to_one() -> None:
    crops = np.zeros((2, INPUT, INPUT, 3), np.uint8)
    crops[..., 2] = 255  # red in BGR
    x = to_input(crops)
    assert x.shape == (2, 3, INPUT, INPUT) and x.dtype == np.float32 and x.flags.c_contiguous
    assert x[:, 0].min() == 1.0 and x[:, 1:].max() == 0.0
