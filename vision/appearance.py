"""The appearance check: does a detected box look like the product it was detected as?

The pose check (:mod:`vision.pose_check`) asks whether a rigid product explains the keypoints found in a
box. Busy real scenes still get through it now and then: a shelf of cardboard boxes, a dark cabinet with
bright spots, where the keypoint network finds ten corners that a box-shaped product happens to fit. This is
a second, independent opinion: a small network that sees only the box, cut square with some context
(:func:`box_crop`), and says which catalog product it shows, or ``none``. It was trained
(:mod:`vision.training.appearance_train`) on the synthetic frames' products, on the detector's own boxes
there, and on the detector's boxes over drawn product-free rooms, hands and objects: the detector's
mistakes are its negatives.

A fresh detection is verified only when the network gives its product at least
:data:`vision.pose_check.MIN_APPEARANCE`. A product the network does not know (one added to the catalog
after it was trained) is not checked: :meth:`AppearanceCheck.score` returns None.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from vision.errors import ModelUnavailable, VisionError
from vision.ort_session import cpu_session
from vision.part_net import to_input  # the same input layout as the part networks': uint8 BGR to RGB in [0, 1]

MODEL_NAME = "product-appearance.onnx"
CROP = 64  # the network's input side, pixels
CONTEXT = 1.2  # the crop's side over the box's longer side: the product's edges with a margin of what is around
NONE = "none"  # the class of everything that is not a catalog product


def box_crop(image: np.ndarray, box: np.ndarray | tuple[float, ...]) -> np.ndarray:
    """The (CROP, CROP, 3) square of ``image`` centred on ``box`` (x1, y1, x2, y2 pixels), ``CONTEXT`` times
    its longer side, the frame's edge pixels repeated where the square leaves the frame. Aspect is kept: a
    wide router stays wide. Training and run time both cut with this function."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 8.0 / CONTEXT) * CONTEXT
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    scale = CROP / side
    m = np.float32([[scale, 0.0, CROP / 2.0 - cx * scale], [0.0, scale, CROP / 2.0 - cy * scale]])
    interp = cv2.INTER_AREA if side > CROP else cv2.INTER_LINEAR
    return cv2.warpAffine(image, m, (CROP, CROP), flags=interp, borderMode=cv2.BORDER_REPLICATE)


class AppearanceCheck:
    """Loads ``product-appearance.onnx``; :meth:`score` gives a box's probability of showing a product."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        p = Path(path)
        if not p.is_file():
            raise ModelUnavailable(f"{p}: appearance model not found; train it with `fixlens train appearance`")
        self.session = cpu_session(p, "appearance model", threads or min(2, os.cpu_count() or 1))
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            names = json.loads(meta["classes"])
        except (KeyError, ValueError):
            raise VisionError(f"{p}: appearance model lacks its classes metadata (a JSON list)") from None
        if (not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) for n in names)
                or names[-1] != NONE or len(set(names)) != len(names)):
            raise VisionError(f"{p}: appearance model classes must be distinct product ids then {NONE!r}, "
                              f"got {names!r}")
        self.classes: tuple[str, ...] = tuple(names)

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        """(n, classes) probabilities for (n, CROP, CROP, 3) uint8 BGR crops."""
        logits = self.session.run(None, {"crop": to_input(crops)})[0]
        logits = logits - logits.max(axis=1, keepdims=True)
        prob = np.exp(logits)
        return prob / prob.sum(axis=1, keepdims=True)

    def score(self, image: np.ndarray, box: np.ndarray, product_id: str) -> float | None:
        """The probability that ``box`` of ``image`` (BGR) shows ``product_id``; None for a product the
        network was not trained on."""
        if product_id not in self.classes[:-1]:
            return None
        prob = self.probabilities(box_crop(image, box)[None])[0]
        return float(prob[self.classes.index(product_id)])
