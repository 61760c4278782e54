"""The one place that imports MediaPipe; its objects never leave ``vision``."""

from __future__ import annotations

import os
from typing import Any

from vision.errors import ModelUnavailable


def tasks() -> tuple[Any, Any, Any]:
    """``(mediapipe, BaseOptions, mediapipe.tasks.python.vision)``, or :class:`ModelUnavailable`."""
    # MediaPipe's C++ side logs through glog; keep it to warnings and above unless the user chose otherwise.
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions
        from mediapipe.tasks.python import vision as mp_vision
    except ImportError as exc:
        raise ModelUnavailable(f"mediapipe is not installed or does not import ({exc}); install it with "
                               "`pip install --no-deps 'mediapipe>=1.2.2'` (see docs/vision.md)") from None
    return mp, BaseOptions, mp_vision


def to_mp_image(image_bgr: Any) -> Any:
    """A MediaPipe SRGB image from a (h, w, 3) uint8 BGR array (copied: MediaPipe needs RGB, contiguous)."""
    import numpy as np

    mp, _, _ = tasks()
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ModelUnavailable(f"expected a (h, w, 3) uint8 BGR image, got {image_bgr.shape} {image_bgr.dtype}")
    rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)
