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

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision.errors import ModelUnavailable, VisionError
from vision.keypoint_layout import KeypointLayout
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
    """ONNX Runtime inference of the crop keypoint network.

    ``layout`` says which heatmap rows belong to which product (:class:`KeypointLayout`); ``fingerprints``
    the keypoint fingerprint of each product at training time (empty for a network that predates them).
    A network exported before layouts were recorded says only its class and keypoint counts; the pipeline
    then lays it out over the detector's classes (:meth:`assume_layout`)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        p = Path(path)
        if not p.is_file():
            raise ModelUnavailable(f"{p}: keypoint model not found; train it with `fixlens train keypoints`")
        self.path = p
        self.session = cpu_session(p, "usable ONNX model", threads)
        self.input_name = self.session.get_inputs()[0].name
        meta = self.session.get_modelmeta().custom_metadata_map
        self.layout: KeypointLayout | None = None
        self.fingerprints: dict[str, str] = {}
        try:
            if "keypoint_layout" in meta:
                self.layout = KeypointLayout.from_json(meta["keypoint_layout"])
            if "keypoint_fingerprints" in meta:
                self.fingerprints = dict(json.loads(meta["keypoint_fingerprints"]))
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            raise VisionError(f"{p}: keypoint model has bad layout metadata ({exc})") from None
        # Older exports: one block of num_keypoints rows per detector class.
        self.legacy_counts = (int(meta.get("num_classes", "0")), int(meta.get("num_keypoints", "0")))

    def assume_layout(self, layout: KeypointLayout) -> None:
        """Use ``layout`` for a network that does not record one (see the class docstring)."""
        self.layout = layout

    def predict(self, image: np.ndarray, box: tuple[float, float, float, float] | np.ndarray,
                product_id: str) -> Keypoints:
        """Frame-pixel keypoints and their confidences for ``product_id`` in ``box``."""
        if self.layout is None:
            raise VisionError(f"{self.path}: keypoint model has no layout; the pipeline sets one when it loads")
        crop, tf = crop_square(image, box)
        heat = self.session.run(None, {self.input_name: to_input(crop[None])})[0][0]  # (rows, h, w)
        uv, prob = soft_argmax(heat[self.layout.rows(product_id)])
        return Keypoints(uv * tf.scale + [tf.x0, tf.y0], peak_mass(prob), CROP_KEYPOINT_MIN_CONF)
