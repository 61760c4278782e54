"""Frames in, observations out: decode, pose, part projection and states, smoothing, hands and privacy.

Public names are re-exported lazily: ``import vision`` loads no OpenCV, MediaPipe or torch; each name's
module is imported on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "VisionError": "vision.errors", "FrameError": "vision.errors", "FrameTooLarge": "vision.errors",
    "CameraError": "vision.errors", "PoseError": "vision.errors", "TooFewKeypoints": "vision.errors",
    "ModelUnavailable": "vision.errors", "FrameFault": "vision.errors",
    "FrameInput": "vision.types", "Track": "vision.types", "Detections": "vision.types",
    "Keypoints": "vision.types", "PartState": "vision.types", "Hand": "vision.types",
    "ImageQuality": "vision.types", "Observation": "vision.types",
    "DecodeLimits": "vision.jpeg_header", "JpegHeader": "vision.jpeg_header",
    "read_jpeg_header": "vision.jpeg_header", "check_jpeg": "vision.jpeg_header",
    "decode_jpeg": "vision.decode", "encode_jpeg": "vision.decode",
    "Pipeline": "vision.pipeline",
    "TrackPolicy": "vision.tracking", "Tracker": "vision.tracking", "track_from": "vision.tracking",
    "PoseEstimate": "vision.pose", "estimate_pose": "vision.pose", "resolve_camera": "vision.pose",
    "ProjectedPart": "vision.parts", "project_parts": "vision.parts",
    "PartReader": "vision.part_reader",
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
