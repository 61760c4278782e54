"""Second-stage keypoints: a small heatmap network on the detected product's crop.

The detector finds the product and its box reliably, but a one-shot detector's keypoint head mixes up
which box corner is which (a router seen from behind looks much like one seen from the front). This stage
looks only at the product: the detected box, widened by ``CONTEXT`` and made square, is resized to
``INPUT`` x ``INPUT`` pixels; the network outputs one heatmap per catalog keypoint at ``INPUT / 2``
resolution, and a soft-argmax turns each into sub-pixel coordinates (the integral regression of Sun et
al. 2018). A keypoint's confidence is its heatmap's peak share, so hidden or out-of-frame keypoints come
out with low confidence and PnP ignores them.

Inference runs the exported ONNX graph with ONNX Runtime (no torch at run time); the network definition
and training (``fixlens train keypoints``) use torch and live in :mod:`vision.training.keypoints_train`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision.errors import ModelUnavailable
from vision.ort_session import cpu_session
from vision.types import Keypoints

INPUT = 128  # pixels, square network input
CONTEXT = 1.15  # the crop is the detected box's longer side times this
MODEL_NAME = "keypoints.onnx"
PAD_VALUE = 114
CROP_KEYPOINT_MIN_CONF = 0.15  # heatmap peak mass of the crop keypoint model


@dataclass(frozen=True)
class CropTransform:
    """Maps crop pixels to frame pixels: ``frame = crop * scale + (x0, y0)``."""

    x0: float
    y0: float
    scale: float  # frame pixels per crop pixel


def crop_square(image: np.ndarray, box: tuple[float, float, float, float] | np.ndarray,
                context: float = CONTEXT, size: int = INPUT) -> tuple[np.ndarray, CropTransform]:
    """The square crop around ``box`` (x1, y1, x2, y2 pixels), resized to ``size``; outside the frame is
    padded grey. One affine warp, so cost does not depend on the box size."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 8.0) * context
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    x0, y0 = cx - side / 2.0, cy - side / 2.0
    scale = side / size
    m = np.array([[1.0 / scale, 0.0, -x0 / scale], [0.0, 1.0 / scale, -y0 / scale]])
    crop = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_AREA if scale > 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(PAD_VALUE, PAD_VALUE, PAD_VALUE))
    return crop, CropTransform(x0, y0, scale)


def to_input(crops: np.ndarray) -> np.ndarray:
    """(n, INPUT, INPUT, 3) uint8 BGR crops -> (n, 3, INPUT, INPUT) float32 RGB in [0, 1]: what the network
    takes, in training and at run time alike."""
    return np.ascontiguousarray(crops[:, :, :, ::-1].transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


def soft_argmax(heatmaps: Any) -> tuple[Any, Any]:
    """(..., k, h, w) logits -> (..., k, 2) crop-pixel coordinates of each heatmap's expectation, and the
    (..., k, h, w) probabilities. One definition for run time (numpy, in float64) and training (torch
    tensors, differentiable), so the network learns exactly the readout it is used with."""
    *lead, h, w = heatmaps.shape
    if isinstance(heatmaps, np.ndarray):
        flat = heatmaps.reshape(*lead, h * w).astype(np.float64)
        flat = np.exp(flat - flat.max(axis=-1, keepdims=True))
        prob = (flat / flat.sum(axis=-1, keepdims=True)).reshape(*lead, h, w)
        xs, ys = np.arange(w) + 0.5, np.arange(h) + 0.5
        stack = np.stack
    else:  # a torch tensor: imported here only, so run time never loads torch
        import torch

        prob = torch.softmax(heatmaps.reshape(*lead, h * w), dim=-1).reshape(*lead, h, w)
        xs = torch.arange(w, dtype=heatmaps.dtype, device=heatmaps.device) + 0.5
        ys = torch.arange(h, dtype=heatmaps.dtype, device=heatmaps.device) + 0.5
        stack = torch.stack
    u = (prob.sum(-2) * xs).sum(-1) * (INPUT / w)
    v = (prob.sum(-1) * ys).sum(-1) * (INPUT / h)
    return stack([u, v], -1), prob


def peak_mass(prob: np.ndarray) -> np.ndarray:
    """(k, h, w) heatmap probabilities -> (k,) confidences: the probability within one cell of each peak."""
    k, _h, w = prob.shape
    peak = prob.reshape(k, -1).argmax(axis=1)
    py, px = np.divmod(peak, w)
    return np.array([prob[i, max(0, py[i] - 1): py[i] + 2, max(0, px[i] - 1): px[i] + 2].sum() for i in range(k)])


class KeypointModel:
    """ONNX Runtime inference of the crop keypoint network."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        p = Path(path)
        if not p.is_file():
            raise ModelUnavailable(f"{p}: keypoint model not found; train it with `fixlens train keypoints`")
        self.session = cpu_session(p, "usable ONNX model", threads)
        self.input_name = self.session.get_inputs()[0].name
        meta = self.session.get_modelmeta().custom_metadata_map
        self.num_keypoints = int(meta.get("num_keypoints", "0")) or None
        self.num_classes = int(meta.get("num_classes", "0")) or None  # products, in the detector's class order

    def predict(self, image: np.ndarray, box: tuple[float, float, float, float] | np.ndarray,
                class_id: int) -> Keypoints:
        """Frame-pixel keypoints and their confidences for the product of class ``class_id`` in ``box``."""
        crop, tf = crop_square(image, box)
        heat = self.session.run(None, {self.input_name: to_input(crop[None])})[0][0]  # (classes * k, h, w)
        k = heat.shape[0] // self._classes(heat)
        uv, prob = soft_argmax(heat[class_id * k:(class_id + 1) * k])
        return Keypoints(uv * tf.scale + [tf.x0, tf.y0], peak_mass(prob), CROP_KEYPOINT_MIN_CONF)

    def _classes(self, heat: np.ndarray) -> int:
        if self.num_keypoints:
            return heat.shape[0] // self.num_keypoints
        return 1
