"""Hands: MediaPipe HandLandmarker fingertips in pixels, and the projected part a fingertip is closest to
(for "press this button" guidance).

The model bundle comes from ``fixlens vision models`` (see :mod:`vision.model_files`). When it is absent or
does not load, or mediapipe is not installed (a ``fixlens[server]`` install has none), :class:`HandTracker`
turns hand features off: it logs one warning saying why and how to fix it, ``available`` is False and
``detect`` returns no hands. :func:`unavailable_reason` tells the same without building a tracker. Nothing
is downloaded while the program runs. The landmarker runs in IMAGE mode: frames of many sessions go through
one tracker, so there is no single monotonic video timeline to track along.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from vision import _mediapipe
from vision.errors import VisionError
from vision.model_files import model_files
from vision.parts import ProjectedPart
from vision.types import Hand

log = logging.getLogger(__name__)

FINGERTIPS: dict[str, int] = {"thumb": 4, "index": 8, "middle": 12, "ring": 16, "pinky": 20}  # landmark ids


class HandTracker:
    """Finds up to ``max_hands`` hands per frame. Use as a context manager, or call :meth:`close`."""

    def __init__(self, models_dir: Path | None = None, *, max_hands: int = 2, min_confidence: float = 0.5) -> None:
        self._landmarker: Any = None
        self.unavailable_reason: str | None = None
        path = model_files(models_dir).hand_task
        reason = _mediapipe.unavailable_reason(path)
        if reason is not None:
            self._turn_off(reason)
            return
        try:
            _, base_options, mp_vision = _mediapipe.tasks()
            options = mp_vision.HandLandmarkerOptions(
                base_options=base_options(model_asset_path=str(path)),
                running_mode=mp_vision.RunningMode.IMAGE, num_hands=max_hands,
                min_hand_detection_confidence=min_confidence, min_hand_presence_confidence=min_confidence)
            self._landmarker = mp_vision.HandLandmarker.create_from_options(options)
        except (VisionError, RuntimeError, ValueError, OSError) as exc:
            self._turn_off(f"hand model {path} does not load: {exc}")

    def _turn_off(self, reason: str) -> None:
        self.unavailable_reason = reason
        log.warning("hand features are off: %s", reason)

    @property
    def available(self) -> bool:
        return self._landmarker is not None

    def detect(self, image: np.ndarray) -> tuple[Hand, ...]:
        """Hands in a (h, w, 3) uint8 BGR image; () when none, or when hand features are off."""
        if self._landmarker is None:
            return ()
        h, w = image.shape[:2]
        result = self._landmarker.detect(_mediapipe.to_mp_image(image))
        hands = []
        for landmarks, handedness in zip(result.hand_landmarks, result.handedness, strict=True):
            # MediaPipe's normalised x = 0 is the image's left edge; our pixel 0 is the first pixel's centre.
            uv = np.array([[lm.x * w - 0.5, lm.y * h - 0.5] for lm in landmarks], dtype=np.float32)
            tips = {name: (float(uv[i, 0]), float(uv[i, 1])) for name, i in FINGERTIPS.items()}
            top = handedness[0]
            hands.append(Hand(str(top.category_name), float(top.score), uv, tips))
        return tuple(hands)

    def close(self) -> None:
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self) -> HandTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unavailable_reason(models_dir: Path | None = None) -> str | None:
    """Why hands (and the face blur, which needs the same install) would be off, or None; imports no MediaPipe."""
    files = model_files(models_dir)
    return _mediapipe.unavailable_reason(files.hand_task) or _mediapipe.unavailable_reason(files.face_model)


def nearest_part(point: tuple[float, float], projected: Mapping[str, ProjectedPart],
                 max_distance_px: float = math.inf) -> tuple[str | None, float | None]:
    """The visible projected part whose anchor is closest to ``point`` (pixels), and the distance;
    ``(None, None)`` when no visible part is within ``max_distance_px``."""
    best: tuple[str | None, float | None] = (None, None)
    for name, p in projected.items():
        if not p.visible:
            continue
        d = math.hypot(p.uv[0] - point[0], p.uv[1] - point[1])
        if d <= max_distance_px and (best[1] is None or d < best[1]):
            best = (name, d)
    return best


def with_nearest_parts(hands: tuple[Hand, ...], projected: Mapping[str, ProjectedPart],
                       finger: str = "index", max_distance_px: float = math.inf) -> tuple[Hand, ...]:
    """``hands`` with ``nearest_part`` / ``nearest_part_px`` set from ``finger``'s tip."""
    if finger not in FINGERTIPS:
        raise VisionError(f"finger: expected one of {', '.join(FINGERTIPS)}, got {finger!r}")
    return tuple(replace(h, nearest_part=n, nearest_part_px=d)
                 for h in hands for n, d in [nearest_part(h.fingertips[finger], projected, max_distance_px)])
