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

import cv2
import numpy as np

from vision.errors import ModelUnavailable
from vision.ort_session import cpu_session

INPUT = 128  # pixels, square network input
CONTEXT = 1.15  # the crop is the detected box's longer side times this
MODEL_NAME = "keypoints.onnx"
PAD_VALUE = 114


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


def soft_argmax(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k, h, w) logits -> (k, 2) crop-pixel coordinates of each expectation, and (k,) confidences
    (the probability mass within one cell of the peak)."""
    k, h, w = heatmaps.shape
    flat = heatmaps.reshape(k, -1).astype(np.float64)
    flat = np.exp(flat - flat.max(axis=1, keepdims=True))
    prob = (flat / flat.sum(axis=1, keepdims=True)).reshape(k, h, w)
    ys, xs = np.arange(h) + 0.5, np.arange(w) + 0.5
    u = (prob.sum(axis=1) * xs).sum(axis=1) * (INPUT / w)
    v = (prob.sum(axis=2) * ys).sum(axis=1) * (INPUT / h)
    peak = prob.reshape(k, -1).argmax(axis=1)
    py, px = np.divmod(peak, w)
    conf = np.array([prob[i, max(0, py[i] - 1): py[i] + 2, max(0, px[i] - 1): px[i] + 2].sum() for i in range(k)])
    return np.stack([u, v], axis=1), conf


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

    def predict(self, image: np.ndarray, box: tuple[float, float, float, float] | np.ndarray,
                class_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(k, 2) frame-pixel keypoints and (k,) confidences for the product of class ``class_id``."""
        crop, tf = crop_square(image, box)
        blob = (crop[:, :, ::-1].astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        heat = self.session.run(None, {self.input_name: blob})[0][0]  # (classes * k, h, w)
        k = heat.shape[0] // self._classes(heat)
        heat = heat[class_id * k:(class_id + 1) * k]
        uv, conf = soft_argmax(heat)
        return uv * tf.scale + [tf.x0, tf.y0], conf

    def _classes(self, heat: np.ndarray) -> int:
        if self.num_keypoints:
            return heat.shape[0] // self.num_keypoints
        return 1
