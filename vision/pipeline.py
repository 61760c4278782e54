"""Frame bytes -> :class:`~vision.types.Observation`: decode, detect, pose, part states.

Stages, each timed (``timing_ms``):

1. ``decode``: guarded JPEG decode (:mod:`vision.decode`); bad data raises :class:`FrameError` before any
   large buffer exists.
2. ``detect``: the YOLO pose detector gives the product, its box and keypoints (:mod:`vision.detector`).
3. ``pose``: ``cv2.solvePnP`` on confident keypoints against the catalog keypoints, with the client's
   intrinsics or the default field of view (:func:`vision.pose.resolve_camera`).
4. ``states``: every part projected with the pose, cut into a pose-rectified patch
   (:mod:`vision.part_patches`) and read by the part-state network (:mod:`vision.part_net`), all parts of
   a frame in one batch. Without that network, LEDs are read by colour (:mod:`vision.led`) and other
   parts report unknown.

States are per frame and unsmoothed: temporal smoothing is per session (:mod:`vision.smoothing`).
``process_batch`` never lets one bad frame fail the others: its slot holds the :class:`VisionError`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from product_models.camera import CameraIntrinsics, Pose, project
from product_models.catalog import EDGE_ON_DEG, Catalog, Part, Product, default_catalog
from vision.decode import DecodeLimits, decode_jpeg
from vision.detector import WEIGHTS_DIR, Detector, DetectorConfig
from vision.errors import ModelUnavailable, PoseError, VisionError
from vision.keypoints import MODEL_NAME as KEYPOINT_MODEL_NAME
from vision.keypoints import KeypointModel
from vision.led import classify_led
from vision.part_net import MODEL_NAME as PART_NET_NAME
from vision.part_net import PartNet
from vision.part_patches import HIDDEN, MIN_READABLE_PX, face_patch
from vision.parts import ProjectedPart, project_parts, visible_in_some_state
from vision.pose import estimate_pose, resolve_camera
from vision.types import Detections, Observation, PartState

KEYPOINT_MIN_CONF = 0.5  # the detector's own keypoints (used when no crop keypoint model is installed)
CROP_KEYPOINT_MIN_CONF = 0.15  # heatmap peak mass of the crop keypoint model
# Geometric verification: a detection counts only if a rigid product explains its keypoints. Real
# photos that fool the detector (a cat, a motorcycle, a chessboard) leave mean inlier residuals of 37-160 px
# or a pose seen from below the floor; true products leave 1-5 px, more for a product filling the frame
# (keypoint errors grow with its size in the image, hence the share of the box's longer side).
MAX_REPROJECTION_PX = 10.0
MAX_REPROJECTION_SHARE = 0.03
INLIER_SHARE = 0.05  # a keypoint farther than this share of the box's longer side from the pose is an outlier
MIN_INLIER_PX = 4.0
# A 6-degree-of-freedom pose from five points or fewer is barely over-determined: keypoints that the network
# hallucinated on a real photo (a cameraman, coins, text) can fit one within tolerance. Such a thin pose
# counts only when the keypoint network was sure of what it saw (mean confidence over all keypoints).
# Measured with the shipped weights: the 4 real photos that pass every other check on five inliers or fewer
# (a cameraman, a chessboard twice, the moon) have mean confidences of 0.25-0.35; of the 9 held-out products
# (of 400) that do, 8 have 0.45-0.83.
SURE_INLIERS = 6
THIN_POSE_MIN_CONF = 0.45
MIN_UPRIGHT = -0.2  # the product's +z axis must not point down in the image (a product upside down)
# A part is read when the estimated pose shows it facing the camera within READ_ANGLE_DEG and at least
# READ_MIN_PX across: a little past the readability rule (EDGE_ON_DEG, MIN_READABLE_PX), because the pose is
# itself a few degrees and a few percent off, and a part on the edge is better read than dropped.
READ_ANGLE_DEG = EDGE_ON_DEG + 5.0
READ_MIN_PX = 0.9 * MIN_READABLE_PX


@dataclass(frozen=True)
class Track:
    """Where a session last saw its product: the detector is skipped and the keypoint network looks at
    this box (the previous pose's projected keypoints). Verification still runs; if it fails, the frame
    goes through the detector after all."""

    product_id: str
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 pixels
    confidence: float  # the detector's confidence when it last saw the product


@dataclass(frozen=True)
class FrameInput:
    jpeg: bytes
    seq: int
    ts: float  # the client's capture time, echoed unchanged
    camera: CameraIntrinsics | None = None  # None: the default field of view
    product_hint: str | None = None  # a product id the client expects; only breaks near-ties
    track: Track | None = None  # follow the product from here instead of detecting it


def track_from(obs: Observation) -> Track | None:
    """The :class:`Track` for the frame after ``obs`` (None when ``obs`` has no verified product)."""
    if obs.product_id is None or obs.pose is None or obs.box is None:
        return None
    return Track(obs.product_id, obs.box, obs.product_confidence)


class Pipeline:
    """Load once, then call :meth:`process` or :meth:`process_batch` from a worker thread."""

    def __init__(self, weights_dir: str | Path = WEIGHTS_DIR, *, backend: str = "auto", device: str = "auto",
                 catalog: Catalog | None = None, limits: DecodeLimits | None = None,
                 detector_config: DetectorConfig | None = None) -> None:
        self.catalog = catalog or default_catalog()
        self.limits = limits or DecodeLimits()
        self.detector = Detector.from_weights(weights_dir, backend, device, detector_config)
        unknown = [n for n in self.detector.names if n not in self.catalog]
        if unknown:
            raise VisionError(f"detector knows products the catalog lacks: {', '.join(unknown)}")
        self._products: list[Product] = [self.catalog.get(n) for n in self.detector.names]
        self._keypoints = [np.array([k.position for k in p.keypoints]) for p in self._products]
        try:
            self.net: PartNet | None = PartNet(Path(weights_dir) / PART_NET_NAME)
        except ModelUnavailable:
            self.net = None  # LEDs are still read by colour; other parts report unknown
        try:
            self.keypoints: KeypointModel | None = KeypointModel(Path(weights_dir) / KEYPOINT_MODEL_NAME)
        except ModelUnavailable:
            self.keypoints = None  # fall back to the detector's keypoint head

    @property
    def backend(self) -> str:
        return f"{self.detector.backend}:{self.detector.device}"

    def process(self, frame: FrameInput) -> Observation:
        result = self.process_batch([frame])[0]
        if isinstance(result, VisionError):
            raise result
        return result

    def process_batch(self, frames: Sequence[FrameInput]) -> list[Observation | VisionError]:
        t0 = time.perf_counter()
        images: list[np.ndarray | None] = []
        results: list[Observation | VisionError | None] = []
        decode_ms: list[float] = []
        for f in frames:
            t = time.perf_counter()
            try:
                images.append(decode_jpeg(f.jpeg, self.limits))
                results.append(None)
            except VisionError as exc:
                images.append(None)
                results.append(exc)
            decode_ms.append((time.perf_counter() - t) * 1000)
        live = [i for i, img in enumerate(images) if img is not None]
        # Tracked frames skip the detector; those whose track no longer verifies join the detected ones.
        detect: list[int] = []
        for i in live:
            track = frames[i].track
            if track is None or track.product_id not in self.detector.names:
                detect.append(i)
                continue
            t = time.perf_counter()
            try:
                h, w = images[i].shape[:2]
                obs = self._from_box(frames[i], images[i], resolve_camera(frames[i].camera, w, h),
                                     self.detector.names.index(track.product_id),
                                     np.asarray(track.box, dtype=np.float32), track.confidence,
                                     {"decode_ms": decode_ms[i], "detect_ms": 0.0}, t)
            except VisionError as exc:
                results[i] = exc
                continue
            if obs is None:
                detect.append(i)
            else:
                results[i] = obs
        t = time.perf_counter()
        detections = self.detector.detect_batch([images[i] for i in detect]) if detect else []
        detect_ms = (time.perf_counter() - t) * 1000 / max(1, len(detect))
        for i, det in zip(detect, detections, strict=True):
            try:
                results[i] = self._observe(frames[i], images[i], det, decode_ms[i], detect_ms)
            except VisionError as exc:
                results[i] = exc
        batch_ms = (time.perf_counter() - t0) * 1000
        for r in results:
            if isinstance(r, Observation):
                r.timing_ms["batch_ms"] = batch_ms
        return results  # type: ignore[return-value]

    def _observe(self, frame: FrameInput, image: np.ndarray, det: Detections, decode_ms: float,
                 detect_ms: float) -> Observation:
        h, w = image.shape[:2]
        camera = resolve_camera(frame.camera, w, h)  # bad intrinsics are an error even with nothing in view
        timing = {"decode_ms": decode_ms, "detect_ms": detect_ms}
        if len(det) == 0:
            timing.update(pose_ms=0.0, states_ms=0.0, total_ms=decode_ms + detect_ms)
            return Observation(frame.seq, frame.ts, timing_ms=timing)
        best = self._pick(det, frame.product_hint)
        head = (det.keypoints[best], det.keypoint_conf[best])
        obs = self._from_box(frame, image, camera, int(det.class_id[best]), det.xyxy[best],
                             float(det.confidence[best]), timing, time.perf_counter(), head)
        if obs is None:  # no rigid product explains what the detector saw: report nothing, not a phantom
            timing.update(states_ms=0.0, total_ms=sum(timing.values()))
            return Observation(frame.seq, frame.ts, timing_ms=timing)
        return obs

    def _from_box(self, frame: FrameInput, image: np.ndarray, camera: CameraIntrinsics, cls: int, box: np.ndarray,
                  confidence: float, timing: dict[str, float], t: float,
                  head: tuple[np.ndarray, np.ndarray] | None = None) -> Observation | None:
        """Keypoints in ``box`` (or the detector's own, ``head``, without a crop keypoint network), pose,
        verification and part states; None when verification fails or no keypoints can be had."""
        product = self._products[cls]
        pose, error = None, None
        if self.keypoints is not None:
            uv, conf = self.keypoints.predict(image, box, cls)
            min_conf = CROP_KEYPOINT_MIN_CONF
        elif head is not None:
            uv, conf, min_conf = head[0], head[1], KEYPOINT_MIN_CONF
        else:
            return None  # tracking needs the crop keypoint network
        timing["keypoints_ms"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        side = float(max(box[2] - box[0], box[3] - box[1]))
        inliers, sureness = 0, float(np.mean(conf)) if len(conf) else 0.0
        try:
            est = estimate_pose(uv, self._keypoints[cls], camera, conf, min_confidence=min_conf,
                                inlier_px=max(MIN_INLIER_PX, INLIER_SHARE * side))
            pose, error, inliers = est.pose, est.reprojection_error_px, int(est.inliers.sum())
        except PoseError:
            pass
        timing["pose_ms"] = (time.perf_counter() - t) * 1000
        if pose is None or error is None or not self._plausible(pose, error, side, inliers, sureness):
            return None
        t = time.perf_counter()
        parts = self._part_states(image, product, pose, camera)
        timing["states_ms"] = (time.perf_counter() - t) * 1000
        timing["total_ms"] = sum(timing.values())
        tracked = head is None
        out_box = self._pose_box(cls, pose, camera, box) if tracked else tuple(float(v) for v in box)
        return Observation(frame.seq, frame.ts, product.id, confidence, out_box, pose, error, parts,  # type: ignore[arg-type]
                           timing_ms=timing, tracked=tracked)

    def _pose_box(self, cls: int, pose: Pose, camera: CameraIntrinsics, fallback: np.ndarray
                  ) -> tuple[float, float, float, float]:
        """The box of the product's keypoints projected with ``pose``, clipped to the frame: where the
        next frame's keypoint crop goes when it is tracked. The detector's box when the projection fails."""
        uv, depth = project(self._keypoints[cls], pose, camera)
        if (depth <= 0).any():
            return tuple(float(v) for v in fallback)  # type: ignore[return-value]
        x1, y1 = max(0.0, float(uv[:, 0].min())), max(0.0, float(uv[:, 1].min()))
        x2, y2 = min(camera.width - 1.0, float(uv[:, 0].max())), min(camera.height - 1.0, float(uv[:, 1].max()))
        if x2 - x1 < 4 or y2 - y1 < 4:
            return tuple(float(v) for v in fallback)  # type: ignore[return-value]
        return (x1, y1, x2, y2)

    @staticmethod
    def _plausible(pose: Pose, error: float, side: float, inliers: int, sureness: float) -> bool:
        """Geometric verification: small residuals, enough keypoints agreeing (or a sure keypoint network when
        few do), the camera above the floor the product stands on (no one films a router from under the
        table), and the product not upside down in the image."""
        if error > max(MAX_REPROJECTION_PX, MAX_REPROJECTION_SHARE * side):
            return False
        if inliers < SURE_INLIERS and sureness < THIN_POSE_MIN_CONF:
            return False
        return float(pose.camera_position[2]) > 0.0 and float(-(pose.R @ (0.0, 0.0, 1.0))[1]) >= MIN_UPRIGHT

    def _pick(self, det: Detections, hint: str | None) -> int:
        """The most confident detection; the hinted product wins a near-tie (within 0.05)."""
        order = np.argsort(-det.confidence)
        best = int(order[0])
        if hint is not None:
            for i in order[1:]:
                if (self.detector.names[int(det.class_id[i])] == hint
                        and det.confidence[best] - det.confidence[i] < 0.05):
                    return int(i)
        return best

    def _part_states(self, image: np.ndarray, product: Product, pose: Pose,
                     camera: CameraIntrinsics) -> dict[str, PartState]:
        # First parts that ride on nothing (trays and covers at rest), then parts attached to them, placed
        # with the state just read for their carrier. Each round is one batch through the part network.
        at_rest = project_parts(product, pose, camera, {}, READ_ANGLE_DEG)
        parts = product.stateful_parts()
        free = [p for p in parts if p.attached_to is None]
        out = dict(zip((p.name for p in free),
                       self._read_parts(image, product, pose, camera, [(p, {}, at_rest[p.name]) for p in free]),
                       strict=True))
        states = {name: r.state for name, r in out.items() if r.state is not None}
        requests: list[tuple[Part, dict[str, str], ProjectedPart | None]] = []
        for part in (p for p in parts if p.attached_to is not None):
            carrier = product.part(part.attached_to)  # type: ignore[arg-type]
            # A carrier that could not be read (a tray's front seen edge-on from above): try the attached
            # part in each place the carrier can put it, and keep the most confident reading.
            places = [states[carrier.name]] if carrier.name in states else list(carrier.states)
            requests += [(part, {carrier.name: s}, None) for s in places]
        readings = self._read_parts(image, product, pose, camera, requests)
        for (part, _place, _rest), reading in zip(requests, readings, strict=True):
            best = out.get(part.name)
            if best is None or (reading.state is not None, reading.confidence) > (best.state is not None,
                                                                                  best.confidence):
                out[part.name] = reading
        return {p.name: out[p.name] for p in parts}

    def _read_parts(self, image: np.ndarray, product: Product, pose: Pose, camera: CameraIntrinsics,
                    requests: Sequence[tuple[Part, dict[str, str], ProjectedPart | None]]) -> list[PartState]:
        """One reading per (part, place of its carrier, the part projected at rest or None) request."""
        out: list[PartState | None] = []
        batch: list[tuple[int, np.ndarray, tuple[float, float]]] = []
        for part, place, rest in requests:
            p = visible_in_some_state(product, part, pose, camera, place, rest, READ_ANGLE_DEG)
            if min(p.size_px) < READ_MIN_PX or not p.visible:  # too small or turned away: say nothing, not a guess
                out.append(PartState(None, 0.0, False, p.uv))
            elif self.net is not None and self.net.handles(product.id, part.name):
                patch = face_patch(image, product, part, pose, camera, place)
                out.append(PartState(None, 0.0, False, p.uv) if patch is None else None)
                if patch is not None:
                    batch.append((len(out) - 1, patch, p.uv))
            elif part.kind == "led":
                reading = classify_led(image, p.uv, max(p.size_px), part.states)
                out.append(PartState(reading.state, reading.confidence, True, p.uv))
            else:
                out.append(PartState(None, 0.0, True, p.uv))
        if batch:
            assert self.net is not None
            keys = [(product.id, requests[i][0].name) for i, _patch, _uv in batch]
            for (i, _patch, uv), (label, prob) in zip(batch, self.net.predict([b[1] for b in batch], keys),
                                                     strict=True):
                # ``hidden``: the part's place faces the camera but something covers it (paper behind a cover).
                out[i] = PartState(None, 0.0, False, uv) if label == HIDDEN else PartState(label, prob, True, uv)
        return [r if r is not None else PartState(None, 0.0, False) for r in out]
