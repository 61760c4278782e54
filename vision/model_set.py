"""One weights folder's networks, the products its detector names, and stages 2-5 of the pipeline for them.

A weights folder is a *model set*: a detector, the crop keypoint network, the part-state network (and its
occlusion network) and the appearance check, trained together. The shipped folder's set knows the shipped
products. A product added later can bring a set of its own (``products/<ID>/`` inside the weights folder, as
``fixlens train product ID`` writes it): its own one-class detector and networks, trained without touching
the shipped ones, and, optionally, pose-check thresholds of its own (``pose-check.json``).
:class:`vision.pipeline.Pipeline` holds every set and routes each frame between them.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from product_models.camera import CameraIntrinsics, Pose, project
from product_models.catalog import Catalog, Product
from vision.appearance import MODEL_NAME as APPEARANCE_MODEL_NAME
from vision.appearance import AppearanceCheck, box_crop
from vision.detector import KEYPOINT_MIN_CONF, Detector, DetectorConfig
from vision.errors import ModelUnavailable, VisionError
from vision.keypoint_layout import KeypointLayout
from vision.keypoints import MODEL_NAME as KEYPOINT_MODEL_NAME
from vision.keypoints import KeypointModel
from vision.part_reader import PartReader
from vision.pose import resolve_camera
from vision.pose_check import (
    DEFAULT_THRESHOLDS,
    THRESHOLDS_FILE,
    Refused,
    Thresholds,
    read_thresholds,
    verified_pose,
)
from vision.types import Detections, FrameInput, ImageQuality, Keypoints, Observation
from vision.weights_check import WeightsRecord, check_weights

QUALITY_SIZE = (160, 120)  # the small grey copy that ImageQuality is measured on

# A fresh detection the pose check refuses gets a second look at the box of its own sure keypoints (round 10's
# finding, kept from round 12 on, when the appearance check holds false detections down): at least this many
# sure keypoints, and that box at most this share of the detector's.
SECOND_LOOK_MIN_SURE = 5
SECOND_LOOK_MAX_AREA = 0.8
# Two sets' boxes show one object when they overlap as much as a detection must to count as right in every
# figure of this project (IoU, vision.training.scoring.RECALL_IOU), or when the earlier set's box lies almost
# wholly inside the later set's: a set that takes part of a product for one of its own boxes only that part (the
# shipped set reads the generated NAS's front as its printer, in a box 0.3-0.5 of the NAS's and inside it). Not
# the other way round: a later set's small box inside an earlier one's is a part of that product, not the product.
SAME_OBJECT_IOU = 0.5
SAME_OBJECT_INSIDE = 0.8  # the share of the earlier set's box inside the later set's


class ModelSet:
    """The networks in ``weights_dir``, checked against ``catalog`` (:mod:`vision.weights_check`) when loaded.
    ``product_ids`` are the ones its detector names, in class order: the set recognises those and no other."""

    def __init__(self, weights_dir: str | Path, catalog: Catalog, *, backend: str = "auto", device: str = "auto",
                 detector_config: DetectorConfig | None = None) -> None:
        self.path = Path(weights_dir)
        self.catalog = catalog
        self.detector = Detector.from_weights(weights_dir, backend, device, detector_config)
        self.parts = PartReader.from_weights(weights_dir)
        appearance = Path(weights_dir) / APPEARANCE_MODEL_NAME  # optional: weights before round 12 have none
        self.appearance: AppearanceCheck | None = AppearanceCheck(appearance) if appearance.is_file() else None
        try:
            self.keypoints: KeypointModel | None = KeypointModel(Path(weights_dir) / KEYPOINT_MODEL_NAME)
        except ModelUnavailable:
            self.keypoints = None  # fall back to the detector's keypoint head
        record = WeightsRecord(tuple(self.detector.names), self._keypoint_layout(),
                               self.keypoints.fingerprints if self.keypoints else {},
                               self.parts.net.index.entries if self.parts.net is not None else None)
        check_weights(self.catalog, str(weights_dir), record)  # raises on a mismatch; unknown products are fine
        self._products: list[Product] = [self.catalog.get(n) for n in self.detector.names]
        tuned = self.path / THRESHOLDS_FILE  # a product's own set may bring its own (vision.pose_check)
        self.thresholds: Thresholds = read_thresholds(tuned) if tuned.is_file() else DEFAULT_THRESHOLDS
        self._model_points = [np.array([k.position for k in p.keypoints]) for p in self._products]  # (k, 3) m

    def _keypoint_layout(self) -> KeypointLayout | None:
        """The keypoint network's layout; for a network that predates recorded layouts, one block per
        detector class of the count it records, when those agree with the detector."""
        if self.keypoints is None or self.keypoints.layout is not None:
            return self.keypoints.layout if self.keypoints else None
        classes, count = self.keypoints.legacy_counts
        if classes != len(self.detector.names):
            raise VisionError(f"{self.keypoints.path}: trained for {classes} products, the detector has "
                              f"{len(self.detector.names)} ({', '.join(self.detector.names)}); retrain with "
                              "`fixlens train all`")
        self.keypoints.assume_layout(KeypointLayout(tuple(
            (n, tuple(k.name for k in self.catalog.get(n).keypoints)[:count] if n in self.catalog else ())
            for n in self.detector.names)))
        return self.keypoints.layout

    @property
    def product_ids(self) -> tuple[str, ...]:
        return tuple(self.detector.names)

    def follow(self, frame: FrameInput, image: np.ndarray, decode_ms: float) -> Observation | None:
        """The frame seen where its track says the product is, without the detector; None when it has no
        track (of a product the detector knows) or the track does not verify."""
        track = frame.track
        if track is None or track.product_id not in self.detector.names:
            return None
        t = time.perf_counter()
        h, w = image.shape[:2]
        cls, box = self.detector.names.index(track.product_id), np.asarray(track.box, dtype=np.float32)
        keypoints = self._keypoints_in(image, cls, box, None)
        obs = self._posed(frame, image, resolve_camera(frame.camera, w, h), cls, box, track.confidence,
                          {"decode_ms": decode_ms, "detect_ms": 0.0}, t, keypoints, None)
        return obs if isinstance(obs, Observation) else None

    def observe(self, frame: FrameInput, image: np.ndarray, det: Detections, decode_ms: float,
                detect_ms: float) -> Observation:
        """Stages 3-5 on the best of this set's detections ``det`` in ``image``; an observation without a
        product when there is none (``refused`` "not_detected"), or when no rigid product explains the
        detection (``refused`` names what refused the first look)."""
        h, w = image.shape[:2]
        camera = resolve_camera(frame.camera, w, h)  # bad intrinsics are an error even with nothing in view
        timing = {"decode_ms": decode_ms, "detect_ms": detect_ms}
        if len(det) == 0:
            timing.update(pose_ms=0.0, states_ms=0.0, total_ms=decode_ms + detect_ms)
            return Observation(frame.seq, frame.ts, timing_ms=timing, quality=image_quality(image),
                               refused="not_detected")
        best = self.pick(det, frame.product_hint)
        head = Keypoints.from_detections(det, best, KEYPOINT_MIN_CONF)
        cls, box, confidence = int(det.class_id[best]), det.xyxy[best], float(det.confidence[best])
        t = time.perf_counter()
        keypoints = self._keypoints_in(image, cls, box, head)
        obs = self._posed(frame, image, camera, cls, box, confidence, timing, t, keypoints, head)
        # A detection under the confidence floor stays under it on any box: no second look.
        tighter = (None if isinstance(obs, Observation) or obs.reason == "detector_confidence" or keypoints is None
                   or self.keypoints is None else sure_box(keypoints, box, w, h))
        if tighter is not None:  # a second look: the keypoint network again, on the box of its sure keypoints
            t = time.perf_counter()
            second = self._posed(frame, image, camera, cls, tighter, confidence, timing, t,
                                 self._keypoints_in(image, cls, tighter, head), head)
            obs = second if isinstance(second, Observation) else obs  # refused twice: the first look says why
        if isinstance(obs, Refused):  # no rigid product explains what the detector saw: report nothing, not a phantom
            timing.update(states_ms=0.0, total_ms=sum(timing.values()))
            return Observation(frame.seq, frame.ts, timing_ms=timing, quality=image_quality(image),
                               refused=obs.reason)
        return obs

    def _keypoints_in(self, image: np.ndarray, cls: int, box: np.ndarray, head: Keypoints | None) -> Keypoints | None:
        """Stage 3: the crop keypoint network's keypoints in ``box``, else the detector's own (``head``); None
        for a tracked frame without the crop network."""
        product = self._products[cls]
        if self.keypoints is not None:
            return self.keypoints.predict(image, box, product.id)
        if head is not None:  # the detector's head pads every product to the longest keypoint list
            k = len(product.keypoints)
            return Keypoints(head.uv[:k], head.confidence[:k], head.min_confidence)
        return None  # tracking needs the crop keypoint network

    def _posed(self, frame: FrameInput, image: np.ndarray, camera: CameraIntrinsics, cls: int, box: np.ndarray,
               confidence: float, timing: dict[str, float], t: float, keypoints: Keypoints | None,
               head: Keypoints | None) -> Observation | Refused:
        """Stages 4-5 for ``keypoints`` found in ``box`` since ``t`` (``head``: the detector's own keypoints on
        a fresh detection, None on a tracked frame): the verified pose and part states, or what refused it."""
        product = self._products[cls]
        if keypoints is None:  # a tracked frame without the crop keypoint network (follow() drops the reason)
            return Refused("too_few_keypoints")
        timing["keypoints_ms"] = timing.get("keypoints_ms", 0.0) + (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        # A fresh detection's box must look like the product; a tracked one started from such a detection.
        check = self.appearance
        appearance = None if head is None or check is None else (lambda: check.score(image, box, product.id))
        verified = verified_pose(keypoints, self._model_points[cls], camera, box, self.thresholds,  # 4. pose
                                 detection_confidence=None if head is None else confidence, appearance=appearance)
        timing["pose_ms"] = timing.get("pose_ms", 0.0) + (time.perf_counter() - t) * 1000
        if isinstance(verified, Refused):
            return verified
        t = time.perf_counter()
        parts = self.parts.read(image, product, verified.pose, camera)  # 5. states
        timing["states_ms"] = (time.perf_counter() - t) * 1000
        timing["total_ms"] = sum(timing.values())
        tracked = head is None
        out_box = self._pose_box(cls, verified.pose, camera, box) if tracked else tuple(float(v) for v in box)
        return Observation(frame.seq, frame.ts, product.id, confidence, out_box, verified.pose,  # type: ignore[arg-type]
                           verified.reprojection_error_px, parts, timing_ms=timing, tracked=tracked,
                           quality=image_quality(image))

    def _pose_box(self, cls: int, pose: Pose, camera: CameraIntrinsics, fallback: np.ndarray
                  ) -> tuple[float, float, float, float]:
        """The box of the product's keypoints projected with ``pose``, clipped to the frame: where the
        next frame's keypoint crop goes when it is tracked. The detector's box when the projection fails."""
        uv, depth = project(self._model_points[cls], pose, camera)
        if (depth <= 0).any():
            return tuple(float(v) for v in fallback)  # type: ignore[return-value]
        x1, y1 = max(0.0, float(uv[:, 0].min())), max(0.0, float(uv[:, 1].min()))
        x2, y2 = min(camera.width - 1.0, float(uv[:, 0].max())), min(camera.height - 1.0, float(uv[:, 1].max()))
        if x2 - x1 < 4 or y2 - y1 < 4:
            return tuple(float(v) for v in fallback)  # type: ignore[return-value]
        return (x1, y1, x2, y2)

    def judges(self, product_id: str) -> bool:
        """Whether this set's appearance check has seen ``product_id`` (then it may claim that product's box,
        :meth:`claims`): a product's own set is trained on data that shows every catalog product."""
        return self.appearance is not None and product_id in self.appearance.classes[:-1]

    def claims(self, image: np.ndarray, mine: Observation, theirs: Observation) -> bool:
        """Whether ``mine`` (this set's verified observation of ``image``) takes the frame from ``theirs``, an
        earlier set's: both saw one object (:func:`same_object`), and this set's
        appearance check, which has seen both products, finds its own likelier there. An earlier set's
        appearance check never saw a product added after it, so it cannot tell that product from its own."""
        check = self.appearance
        if (check is None or mine.box is None or theirs.box is None or mine.product_id not in check.classes[:-1]
                or theirs.product_id not in check.classes[:-1]
                or not same_object(mine.box, theirs.box)):
            return False
        prob = check.probabilities(box_crop(image, np.asarray(mine.box))[None])[0]
        return bool(prob[check.classes.index(mine.product_id)] > prob[check.classes.index(theirs.product_id)])

    def pick(self, det: Detections, hint: str | None) -> int:
        """The most confident detection; the hinted product wins a near-tie (within 0.05)."""
        order = np.argsort(-det.confidence)
        best = int(order[0])
        if hint is not None:
            for i in order[1:]:
                if (self.detector.names[int(det.class_id[i])] == hint
                        and det.confidence[best] - det.confidence[i] < 0.05):
                    return int(i)
        return best



def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two xyxy boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def same_object(mine: tuple[float, ...], theirs: tuple[float, ...]) -> bool:
    """Whether a later set's xyxy box ``mine`` shows the object of an earlier set's ``theirs``: IoU at least
    ``SAME_OBJECT_IOU``, or ``theirs`` at least ``SAME_OBJECT_INSIDE`` inside ``mine``."""
    w = min(mine[2], theirs[2]) - max(mine[0], theirs[0])
    h = min(mine[3], theirs[3]) - max(mine[1], theirs[1])
    if w <= 0 or h <= 0:
        return False
    inside = w * h / max((theirs[2] - theirs[0]) * (theirs[3] - theirs[1]), 1e-9)
    return box_iou(mine, theirs) >= SAME_OBJECT_IOU or inside >= SAME_OBJECT_INSIDE


def sure_box(keypoints: Keypoints, box: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """The box of ``keypoints``' sure points (at least ``SECOND_LOOK_MIN_SURE``) when it is much tighter than the
    detector's ``box`` (at most ``SECOND_LOOK_MAX_AREA`` of its area), else None. Over a busy room the detector's
    box is often far larger than the product, and the keypoint network, seeing the product small in its crop,
    places the keypoints too coarsely for the pose check; on the tighter box it sees the product large."""
    sure = keypoints.confidence >= keypoints.min_confidence
    if int(sure.sum()) < SECOND_LOOK_MIN_SURE:
        return None
    uv = keypoints.uv[sure]
    tight = np.clip([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()],
                    0.0, [width - 1, height - 1, width - 1, height - 1]).astype(np.float32)
    area = float((tight[2] - tight[0]) * (tight[3] - tight[1]))
    if area <= 16.0 or area > SECOND_LOOK_MAX_AREA * float((box[2] - box[0]) * (box[3] - box[1])):
        return None
    return tight


def image_quality(image: np.ndarray) -> ImageQuality:
    """Mean brightness and sharpness of a small grey copy of ``image`` (BGR): about 0.3 ms a frame."""
    import cv2

    small = cv2.cvtColor(cv2.resize(image, QUALITY_SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    return ImageQuality(float(small.mean()), float(cv2.Laplacian(small, cv2.CV_32F).var()))


