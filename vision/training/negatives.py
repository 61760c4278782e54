"""Product-free frames drawn for training, and the boxes on them that the pipeline must refuse.

Each frame is drawn like the synth negatives: a home background (:func:`product_models.backdrop.home_background`),
sometimes a hand or an everyday object drawn in, through the phone's optics and a JPEG of random quality, so
the detector sees what it sees at run time. The boxes on it:

- the detector's own boxes, down to the confidence the caller's detector is configured with (its phantoms:
  what the appearance check and the keypoint network must learn to refuse);
- the hand's or the object's box, jittered;
- ``RANDOM_BOXES`` random boxes.

The evaluation's real photos are never used; with ``photos``, a share of the frames are other real photos
(:mod:`vision.training.photos`). Used by ``fixlens train appearance`` (crops labelled
``none``) and ``fixlens train keypoints --negatives`` (crops where no keypoint should be found).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision.training.photos import PhotoBackgrounds

RANDOM_BOXES = 2  # random boxes per product-free frame
NEGATIVE_SIZES = ((640, 480), (640, 480), (480, 640), (640, 360))  # landscape, portrait and 16:9 phones
HAND_P, OBJECT_P = 0.4, 0.2  # drawn negatives with a hand, with an everyday object
JITTER = 0.08  # a box's centre and log-size jitter, as a share of the box
SOURCE_MISS, SOURCE_RANDOM, SOURCE_OCCLUDER = 2, 3, 4  # a detector box on no product; random; a hand or object
MINE_CONF = 0.05  # the detector's floor while mining (the pipeline's is 0.3): its near-misses teach too


@dataclass(frozen=True)
class NegativeBox:
    """One box on a drawn product-free frame."""

    image: np.ndarray  # (h, w, 3) uint8 BGR: the phone's JPEG, decoded
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 pixels
    confidence: float  # the detector's; -1 for a box it did not give
    class_id: int | None  # the detector's class for its own box; None for a drawn or random box
    source: int  # SOURCE_*


def mining_detector(weights_dir: Path | None = None) -> Any:
    """The detector in ``weights_dir`` (default the shipped one) with its floor at ``MINE_CONF``."""
    from vision.detector import WEIGHTS_DIR, Detector, DetectorConfig

    return Detector.from_weights(weights_dir or WEIGHTS_DIR, backend="onnx",
                                 config=DetectorConfig(conf=MINE_CONF, max_det=8))


def random_box(rng: np.random.Generator, w: int, h: int) -> tuple[float, float, float, float]:
    """A box of 8-70 % of the frame's width, aspect within e^+-0.5, at most a tenth of it off the frame."""
    s, a = rng.uniform(0.08, 0.7) * w, float(np.exp(rng.uniform(-0.5, 0.5)))
    bw, bh = min(s * a, 0.95 * w), min(s / a, 0.95 * h)
    x1, y1 = rng.uniform(-0.1 * bw, w - 0.9 * bw), rng.uniform(-0.1 * bh, h - 0.9 * bh)
    return (x1, y1, x1 + bw, y1 + bh)


def jittered(box: Sequence[float], rng: np.random.Generator) -> tuple[float, float, float, float]:
    """``box`` moved and scaled by up to ``JITTER`` of its size."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2 + rng.uniform(-JITTER, JITTER) * w, (y1 + y2) / 2 + rng.uniform(-JITTER, JITTER) * h
    k = float(np.exp(rng.uniform(-JITTER, JITTER)))
    return (cx - k * w / 2, cy - k * h / 2, cx + k * w / 2, cy + k * h / 2)


def drawn_negatives(count: int, seed: int, detector: Any, photos: Sequence[np.ndarray] = (),
                    photo_share: float = 0.0) -> Iterator[list[NegativeBox]]:
    """The boxes of ``count`` drawn product-free frames (module docstring), one list per frame. ``detector``:
    a :class:`vision.detector.Detector`; its configured confidence floor decides which of its boxes come.
    ``photos``: real photos (:mod:`vision.training.photos`), the background of ``photo_share`` of the frames."""
    from product_models.backdrop import home_background
    from vision.training.occluders import draw_hand, draw_object
    from vision.training.synth import _load_textures, phone_frame

    rng = np.random.default_rng(seed)
    textures = _load_textures()
    backgrounds = PhotoBackgrounds(photos, photo_share, seed)
    for _ in range(count):
        w, h = NEGATIVE_SIZES[int(rng.integers(len(NEGATIVE_SIZES)))]
        # Drawn even when a photo replaces it: its draws keep the seed's stream.
        img = backgrounds.maybe(home_background(rng, w, h, textures)).astype(np.float32)
        drawn = []
        for p, draw in ((HAND_P, draw_hand), (OBJECT_P, draw_object)):
            if rng.random() < p:
                side = rng.uniform(0.15, 0.6) * w
                x1, y1 = rng.uniform(0, w - side), rng.uniform(0, h - 0.7 * side)
                box = np.array([x1, y1, x1 + side, y1 + 0.7 * side])
                draw(img, rng, box)
                drawn.append(box)
        rgb = phone_frame(img, rng, [])
        _, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 96))])
        image = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)  # the phone's JPEG, as the detector will get it
        det = detector.detect_batch([image])[0]
        boxes = [NegativeBox(image, _xyxy(det.xyxy[k]), float(det.confidence[k]), int(det.class_id[k]), SOURCE_MISS)
                 for k in range(len(det))]
        boxes += [NegativeBox(image, jittered(box, rng), -1.0, None, SOURCE_OCCLUDER) for box in drawn]
        boxes += [NegativeBox(image, random_box(rng, w, h), -1.0, None, SOURCE_RANDOM) for _ in range(RANDOM_BOXES)]
        yield boxes


def _xyxy(v: Sequence[float]) -> tuple[float, float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]), float(v[3]))
