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
from vision.part_patches import ABSENT, COVERED, HAND, HIDDEN, MIN_READABLE_PX, ROW_KINDS, face_patch, row_spacing
from vision.parts import ProjectedPart, behind_body, project_parts, visible_in_some_state
from vision.pose import estimate_pose, resolve_camera
from vision.types import Detections, ImageQuality, Observation, PartState

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
# Four points fit some pose of a box almost wherever they fall, so four agreeing keypoints prove nothing:
# at least five must agree. (On the home-style validation frames this drops 4 of 495 recognised products.)
MIN_INLIERS = 5
MIN_UPRIGHT = -0.2  # the product's +z axis must not point down in the image (a product upside down)
# A part is read when the estimated pose shows it facing the camera within READ_ANGLE_DEG and its image box
# at least READ_MIN_PX on its larger side (ProjectedPart.extent_px, the ground truth's own measure): a little
# past the readability rule (EDGE_ON_DEG, MIN_READABLE_PX), because the pose is
# itself a few degrees and a few percent off, and a part on the edge is better read than dropped.
READ_ANGLE_DEG = EDGE_ON_DEG + 5.0
READ_MIN_PX = 0.9 * MIN_READABLE_PX
# A reading the part-state network gives less than this probability is a guess (with two to four states, a
# coin flip is 0.25-0.5): the part is reported unknown ("unsure") instead.
READ_MIN_CONF = 0.5
QUALITY_SIZE = (160, 120)  # the small grey copy that ImageQuality is measured on


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
            return Observation(frame.seq, frame.ts, timing_ms=timing, quality=image_quality(image))
        best = self._pick(det, frame.product_hint)
        head = (det.keypoints[best], det.keypoint_conf[best])
        obs = self._from_box(frame, image, camera, int(det.class_id[best]), det.xyxy[best],
                             float(det.confidence[best]), timing, time.perf_counter(), head)
        if obs is None:  # no rigid product explains what the detector saw: report nothing, not a phantom
            timing.update(states_ms=0.0, total_ms=sum(timing.values()))
            return Observation(frame.seq, frame.ts, timing_ms=timing, quality=image_quality(image))
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
                           timing_ms=timing, tracked=tracked, quality=image_quality(image))

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
        if inliers < MIN_INLIERS or (inliers < SURE_INLIERS and sureness < THIN_POSE_MIN_CONF):
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
        """One reading per (part, place of its carrier, the part projected at rest or None) request. A part
        that cannot be read is unknown with the reason (:data:`vision.types.UNREADABLE_REASONS`)."""
        out: list[PartState] = []
        batch: list[int] = []  # indices into ``out`` read by the network
        patches: list[np.ndarray] = []
        for part, place, rest in requests:
            p = visible_in_some_state(product, part, pose, camera, place, rest, READ_ANGLE_DEG)
            size = float(max(p.size_px))
            reason = self._unreadable(product, part, p, pose, camera, place)
            if reason is not None:  # say why, never guess
                out.append(PartState(None, 0.0, False, p.uv, reason=reason, size_px=size))
            elif self.net is not None and self.net.handles(product.id, part.name):
                patch = face_patch(image, product, part, pose, camera, place)
                out.append(PartState(None, 0.0, False, p.uv, reason="out_of_frame", size_px=size))
                if patch is not None:
                    batch.append(len(out) - 1)
                    patches.append(patch)
            elif part.kind == "led":
                reading = classify_led(image, p.uv, size, part.states)
                out.append(self._reading(reading.state, reading.confidence, p.uv, size))
            else:
                out.append(PartState(None, 0.0, True, p.uv, reason="unsure", size_px=size))
        if not batch:
            return out
        assert self.net is not None
        labels = self.net.predict(patches, [(product.id, requests[i][0].name) for i in batch])
        for i, (label, prob) in zip(batch, labels, strict=True):
            out[i] = self._reading(label, prob, out[i].uv, out[i].size_px)
        self._check_rows(image, product, pose, camera, requests, batch, labels, out)
        return out

    @staticmethod
    def _reading(label: str | None, prob: float, uv: tuple[float, float] | None, size: float) -> PartState:
        """The network's (or the colour reader's) answer as a PartState: a state, or unknown with why."""
        if label == HIDDEN:  # the part's place faces the camera but another part covers it (paper behind a cover)
            return PartState(None, 0.0, False, uv, reason="covered", size_px=size)
        if label == HAND:
            return PartState(None, 0.0, False, uv, reason="hand", size_px=size)
        if label == COVERED:
            return PartState(None, 0.0, False, uv, reason="covered", size_px=size)
        if label == ABSENT:  # resolved for the whole row by _check_rows
            return PartState(None, 0.0, True, uv, reason="ambiguous_pose", size_px=size)
        if label is None or prob < READ_MIN_CONF:
            return PartState(None, 0.0, True, uv, reason="unsure", size_px=size)
        return PartState(label, prob, True, uv, size_px=size)

    @staticmethod
    def _unreadable(product: Product, part: Part, p: ProjectedPart, pose: Pose, camera: CameraIntrinsics,
                    place: dict[str, str]) -> str | None:
        """Why ``part`` cannot be read from this view, or None when it can be tried."""
        u, v = p.uv
        if p.depth <= 0 or not (-0.5 <= u <= camera.width - 0.5 and -0.5 <= v <= camera.height - 0.5):
            return "out_of_frame"
        if not p.visible:
            return "facing_away"
        # Hidden by the product's own body in every place the part can be (an open cover seen from behind).
        cam = pose.camera_position
        places = [place, *({**place, part.name: s} for s in part.moves)] if part.moves else [place]
        if all(behind_body(product, product.anchor_at(part.name, pl), cam) for pl in places):
            return "behind_product"
        if p.extent_px < READ_MIN_PX:
            return "too_small"
        return None

    def _check_rows(self, image: np.ndarray, product: Product, pose: Pose, camera: CameraIntrinsics,
                    requests: Sequence[tuple[Part, dict[str, str], ProjectedPart | None]], batch: list[int],
                    labels: list[tuple[str, float]], out: list[PartState]) -> None:
        """Resolve a pose that is off by one part along a row of look-alikes (LEDs, ports). Such a pose fits
        the keypoints well, and every patch of the row then shows its neighbour: only the row's end gives it
        away, where a patch shows bare body (``absent``). Where a part of a row reads ``absent``, the row is
        read again one spacing either way; a single shift under which every part is present is taken, and
        otherwise every part of the row is unknown (``ambiguous_pose``). In place on ``out``."""
        assert self.net is not None
        rows: dict[tuple[str, str], list[int]] = {}
        for i in batch:
            part = requests[i][0]
            if part.kind in ROW_KINDS:
                rows.setdefault((part.kind, part.facing), []).append(i)
        label_of = {i: label for i, (label, _prob) in zip(batch, labels, strict=True)}
        for members in rows.values():
            if not any(label_of[i] == ABSENT for i in members):
                continue
            spacing = row_spacing(product, requests[members[0]][0])
            fixed: list[list[PartState]] = []
            if spacing is not None:
                for sign in (-1.0, 1.0):
                    shift = sign * spacing[1] * spacing[0]
                    cut = [face_patch(image, product, requests[i][0], pose, camera, requests[i][1], offset_m=shift)
                           for i in members]
                    if any(c is None for c in cut):
                        continue
                    read = self.net.predict(cut, [(product.id, requests[i][0].name) for i in members])  # type: ignore[misc]
                    if all(label != ABSENT for label, _prob in read):
                        fixed.append([self._reading(label, prob, out[i].uv, out[i].size_px)
                                      for i, (label, prob) in zip(members, read, strict=True)])
            for k, i in enumerate(members):
                out[i] = fixed[0][k] if len(fixed) == 1 else PartState(
                    None, 0.0, True, out[i].uv, reason="ambiguous_pose", size_px=out[i].size_px)


def image_quality(image: np.ndarray) -> ImageQuality:
    """Mean brightness and sharpness of a small grey copy of ``image`` (BGR): about 0.3 ms a frame."""
    import cv2

    small = cv2.cvtColor(cv2.resize(image, QUALITY_SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    return ImageQuality(float(small.mean()), float(cv2.Laplacian(small, cv2.CV_32F).var()))
