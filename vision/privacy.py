"""Face blur for frames that are ever stored, with MediaPipe's short-range face detector.

It fails closed: without the model file, :class:`FaceBlurrer` raises :class:`ModelUnavailable`, so a caller
can refuse to store a frame rather than store one with faces. The short-range model is made for faces
within about 2 m of the camera, which is the case for a person holding a phone at a device; a small,
distant or strongly turned face may be missed.

Each detected box is grown by ``margin`` on every side (hair, ears, chin), then pixelated to a few cells and
smoothed, which leaves no facial detail. Pixels outside the grown boxes are not touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vision import _mediapipe
from vision.errors import ModelUnavailable
from vision.model_files import missing_message, model_files

CELLS_ACROSS = 6  # a blurred face keeps at most this many colour cells across: no identity survives


class FaceBlurrer:
    """Detects and blurs faces. Use as a context manager, or call :meth:`close`."""

    def __init__(self, models_dir: Path | None = None, *, min_confidence: float = 0.5, margin: float = 0.25) -> None:
        path = model_files(models_dir).face_model
        if not path.is_file():
            raise ModelUnavailable(missing_message(path))
        self.margin = margin
        _, base_options, mp_vision = _mediapipe.tasks()
        options = mp_vision.FaceDetectorOptions(base_options=base_options(model_asset_path=str(path)),
                                                running_mode=mp_vision.RunningMode.IMAGE,
                                                min_detection_confidence=min_confidence)
        try:
            self._detector: Any = mp_vision.FaceDetector.create_from_options(options)
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelUnavailable(f"face model {path} does not load: {exc}") from None

    def detect(self, image: np.ndarray) -> np.ndarray:
        """(n, 4) int64 boxes x1, y1, x2, y2 (pixels, x2/y2 exclusive), grown by ``margin``, clipped."""
        if self._detector is None:
            raise ModelUnavailable("FaceBlurrer is closed")
        h, w = image.shape[:2]
        boxes = []
        for det in self._detector.detect(_mediapipe.to_mp_image(image)).detections:
            bb = det.bounding_box
            mx, my = bb.width * self.margin, bb.height * self.margin
            x1, y1 = max(0, int(bb.origin_x - mx)), max(0, int(bb.origin_y - my))
            x2 = min(w, int(np.ceil(bb.origin_x + bb.width + mx)))
            y2 = min(h, int(np.ceil(bb.origin_y + bb.height + my)))
            if x2 > x1 and y2 > y1:
                boxes.append((x1, y1, x2, y2))
        return np.array(boxes, dtype=np.int64).reshape(-1, 4)

    def blur(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A copy of ``image`` ((h, w, 3) uint8 BGR) with every detected face blurred, and the boxes."""
        import cv2

        boxes = self.detect(image)
        out = image.copy()
        for x1, y1, x2, y2 in boxes:
            region = out[y1:y2, x1:x2]
            bw, bh = x2 - x1, y2 - y1
            cells = (max(1, min(CELLS_ACROSS, bw)), max(1, min(CELLS_ACROSS, round(CELLS_ACROSS * bh / bw))))
            small = cv2.resize(region, cells, interpolation=cv2.INTER_AREA)
            out[y1:y2, x1:x2] = cv2.resize(small, (bw, bh), interpolation=cv2.INTER_LINEAR)
        return out, boxes

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def __enter__(self) -> FaceBlurrer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
