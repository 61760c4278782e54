"""Frames in, observations out: decode, pose, part projection and states, smoothing, hands and privacy.

Public names are re-exported lazily: ``import vision`` loads no OpenCV, MediaPipe or torch; each name's
module is imported on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "VisionError": "vision.errors", "FrameError": "vision.errors", "CameraError": "vision.errors",
    "PoseError": "vision.errors", "ModelUnavailable": "vision.errors",
    "Detections": "vision.types", "PartState": "vision.types", "Hand": "vision.types",
    "Observation": "vision.types",
    "DecodeLimits": "vision.decode", "JpegHeader": "vision.decode", "read_jpeg_header": "vision.decode",
    "check_jpeg": "vision.decode", "decode_jpeg": "vision.decode", "encode_jpeg": "vision.decode",
    "PoseEstimate": "vision.pose", "estimate_pose": "vision.pose", "resolve_camera": "vision.pose",
    "rotation_error_deg": "vision.pose",
    "ProjectedPart": "vision.parts", "PartStateClassifier": "vision.parts", "project_parts": "vision.parts",
    "recognize_part_states": "vision.parts",
    "LedReading": "vision.led", "classify_led": "vision.led",
    "SmoothingConfig": "vision.smoothing", "TemporalSmoother": "vision.smoothing",
    "VerificationConfig": "vision.verification", "StepVerifier": "vision.verification",
    "HandTracker": "vision.hands", "nearest_part": "vision.hands", "with_nearest_parts": "vision.hands",
    "FaceBlurrer": "vision.privacy",
    "ModelFiles": "vision.model_files", "ensure_models": "vision.model_files",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vision' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
