"""The one place that imports MediaPipe; its objects never leave ``vision``.

MediaPipe is optional: no extra of ``fixlens`` can install it (its wheel asks for opencv-contrib-python, which
would shadow opencv-python's cv2), so a ``fixlens[server]`` install runs without it, with hands and face blur
off. :func:`unavailable_reason` says why without importing it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from vision.errors import ModelUnavailable
from vision.model_files import missing_message

INSTALL_HINT = "pip install 'fixlens[hands]' && pip install --no-deps 'mediapipe>=1.2.2,<1.3'"


def unavailable_reason(model: Path) -> str | None:
    """Why a MediaPipe task on the model file ``model`` cannot run (mediapipe not installed, the file
    missing), or None when it may. Imports nothing: MediaPipe takes a second to import."""
    reasons = []
    if importlib.util.find_spec("mediapipe") is None:
        reasons.append(f"mediapipe is not installed (`{INSTALL_HINT}`, see docs/vision.md)")
    if not model.is_file():
        reasons.append(missing_message(model))
    return "; ".join(reasons) or None


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
                               f"`{INSTALL_HINT}` (see docs/vision.md)") from None
    return mp, BaseOptions, mp_vision


def to_mp_image(image_bgr: Any) -> Any:
    """A MediaPipe SRGB image from a (h, w, 3) uint8 BGR array (copied: MediaPipe needs RGB, contiguous)."""
    import numpy as np

    mp, _, _ = tasks()
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ModelUnavailable(f"expected a (h, w, 3) uint8 BGR image, got {image_bgr.shape} {image_bgr.dtype}")
    rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)
