"""The types at vision's seam: what goes in (:class:`FrameInput`, :class:`Track`), what the stages hand on
(:class:`Detections`, :class:`Keypoints`) and what comes out (:class:`Observation`, :class:`PartState`,
:class:`Hand`, :class:`ImageQuality`).

Results are validated dataclasses of parallel numpy arrays; arrays carry their shape and unit where
declared. Validation failures raise :class:`VisionError` with "expected X, got Y". Library objects
(ONNX Runtime outputs, Ultralytics ``Results``) enter only through the ``from_<source>`` adapters and never
leave ``vision``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from product_models.camera import CameraIntrinsics, Pose
from vision.errors import VisionError
from vision.jpeg_header import JpegHeader


def _check_array(name: str, value: object, shape: tuple[int | None, ...], dtype: type | None) -> np.ndarray:
    """Coerce ``value`` to ``dtype`` (None: keep a floating dtype as it is) and check its shape (``None`` =
    any length)."""
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise VisionError(f"{name}: expected an array of {np.dtype(dtype).name}, got {type(value).__name__}"
                          f" ({exc})") from None
    if dtype is None and not np.issubdtype(arr.dtype, np.floating):
        raise VisionError(f"{name}: expected an array of floats, got {arr.dtype.name}")
    dims = ["n" if d is None else str(d) for d in shape]
    want = f"({dims[0]},)" if len(dims) == 1 else "(" + ", ".join(dims) + ")"
    if arr.ndim != len(shape) or any(d is not None and d != s for d, s in zip(shape, arr.shape, strict=False)):
        raise VisionError(f"{name}: expected shape {want}, got {arr.shape}")
    return arr


@dataclass
class Detections:
    """Detector output for one frame; all arrays share their first dimension ``n``."""

    xyxy: np.ndarray  # (n, 4) float32, pixels: x1, y1, x2, y2
    confidence: np.ndarray  # (n,) float32 in [0, 1]
    class_id: np.ndarray  # (n,) int64, index into the detector's class names
    keypoints: np.ndarray | None = None  # (n, k, 2) float32, pixels
    keypoint_conf: np.ndarray | None = None  # (n, k) float32 in [0, 1]

    def __post_init__(self) -> None:
        self.xyxy = _check_array("xyxy", self.xyxy, (None, 4), np.float32)
        n = len(self.xyxy)
        self.confidence = _check_array("confidence", self.confidence, (n,), np.float32)
        self.class_id = _check_array("class_id", self.class_id, (n,), np.int64)
        if not np.all(np.isfinite(self.xyxy)):
            raise VisionError("xyxy: expected finite pixel coordinates, got NaN or infinity")
        if n and np.any(self.xyxy[:, 2:] < self.xyxy[:, :2]):
            raise VisionError("xyxy: expected x2 >= x1 and y2 >= y1, got an inverted box")
        if n and (np.any(self.confidence < 0) or np.any(self.confidence > 1)):
            raise VisionError(f"confidence: expected values in [0, 1], got {self.confidence.min():g}.."
                              f"{self.confidence.max():g}")
        if (self.keypoints is None) != (self.keypoint_conf is None):
            raise VisionError("keypoints and keypoint_conf: expected both or neither, got only one")
        if self.keypoints is not None:
            self.keypoints = _check_array("keypoints", self.keypoints, (n, None, 2), np.float32)
            k = self.keypoints.shape[1]
            self.keypoint_conf = _check_array("keypoint_conf", self.keypoint_conf, (n, k), np.float32)

    @classmethod
    def empty(cls, num_keypoints: int | None = None) -> Detections:
        """No detections (with ``num_keypoints`` keypoint slots when the detector has keypoints)."""
        kp = None if num_keypoints is None else np.zeros((0, num_keypoints, 2), np.float32)
        kc = None if num_keypoints is None else np.zeros((0, num_keypoints), np.float32)
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), kp, kc)

    @classmethod
    def from_onnx(cls, output: np.ndarray, *, num_classes: int, num_keypoints: int, scale: float,
                  pad: tuple[float, float], frame_size: tuple[int, int], conf: float, iou: float,
                  max_det: int) -> Detections:
        """One frame's raw output of the exported YOLO pose graph, ``(4 + classes + 3k, anchors)`` (centre
        x, y, width, height, class scores, then x, y, confidence per keypoint, in letterbox pixels), as
        detections in frame pixels: anchors under ``conf`` dropped, overlaps over ``iou`` suppressed, at most
        ``max_det`` kept. ``scale`` and ``pad`` (x, y pixels) undo the letterbox; boxes are clipped to the
        ``frame_size`` (width, height) frame."""
        import cv2  # heavy; only the ONNX detector calls this

        nc, k = num_classes, num_keypoints
        scores = output[4:4 + nc]
        cls_ = scores.argmax(axis=0)
        confidence = scores[cls_, np.arange(scores.shape[1])]
        keep = np.flatnonzero(confidence >= conf)
        if keep.size == 0:
            return cls.empty(k)
        keep = keep[np.argsort(-confidence[keep])][:100]
        cx, cy, w, h = output[0, keep], output[1, keep], output[2, keep], output[3, keep]
        boxes = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
        chosen = cv2.dnn.NMSBoxes(boxes.tolist(), confidence[keep].tolist(), conf, iou)
        idx = keep[np.asarray(chosen, dtype=int).ravel()[:max_det]]
        px, py = pad
        xyxy = np.stack([output[0, idx] - output[2, idx] / 2, output[1, idx] - output[3, idx] / 2,
                         output[0, idx] + output[2, idx] / 2, output[1, idx] + output[3, idx] / 2], axis=1)
        xyxy = (xyxy - [px, py, px, py]) / scale
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, frame_size[0] - 1)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, frame_size[1] - 1)
        kp = output[4 + nc:, idx].T.reshape(len(idx), k, 3)
        uv = (kp[:, :, :2] - [px, py]) / scale
        return cls(xyxy.astype(np.float32), confidence[idx].astype(np.float32), cls_[idx].astype(np.int64),
                   uv.astype(np.float32), kp[:, :, 2].astype(np.float32))

    @classmethod
    def from_ultralytics(cls, result: Any, num_keypoints: int) -> Detections:
        """One frame's Ultralytics ``Results`` of a pose model (boxes and keypoints in frame pixels)."""
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return cls.empty(num_keypoints)
        kps = result.keypoints
        return cls(boxes.xyxy.cpu().numpy().astype(np.float32), boxes.conf.cpu().numpy().astype(np.float32),
                   boxes.cls.cpu().numpy().astype(np.int64), kps.xy.cpu().numpy().astype(np.float32),
                   kps.conf.cpu().numpy().astype(np.float32))

    def __len__(self) -> int:
        return len(self.xyxy)


@dataclass(frozen=True)
class Keypoints:
    """A product's keypoints in one frame, in its catalog keypoint order: what the keypoint stage gives
    the pose stage."""

    uv: np.ndarray  # (k, 2) float, pixels of the frame
    confidence: np.ndarray  # (k,) float, the keypoint network's (or the detector's) confidence
    min_confidence: float  # a keypoint less sure than this is left out of the pose

    def __post_init__(self) -> None:
        uv = _check_array("uv", self.uv, (None, 2), None)
        object.__setattr__(self, "uv", uv)
        object.__setattr__(self, "confidence", _check_array("confidence", self.confidence, (len(uv),), None))

    @property
    def mean_confidence(self) -> float:
        """How sure the network was of the whole product (0 without keypoints)."""
        return float(np.mean(self.confidence)) if len(self.confidence) else 0.0

    @classmethod
    def from_detections(cls, det: Detections, index: int, min_confidence: float) -> Keypoints:
        """The detector's own keypoints of detection ``index``."""
        if det.keypoints is None or det.keypoint_conf is None:
            raise VisionError("detections: expected keypoints from a pose detector, got none")
        return cls(det.keypoints[index], det.keypoint_conf[index], min_confidence)


# Why a part was not read. The pipeline never guesses: a part it cannot read is unknown, with one of these.
UNREADABLE_REASONS = (
    "out_of_frame",  # its place projects outside the image
    "facing_away",  # turned more than READ_ANGLE_DEG from the camera
    "behind_product",  # the product's own body is between the camera and the part
    "too_small",  # smaller than READ_MIN_PX in the image: move closer
    "hand",  # a hand covers it
    "covered",  # something else covers it (an object, glare, another part)
    "ambiguous_pose",  # the pose could be off by one part along a row of look-alike parts: hold steady
    "unsure",  # read, but below the confidence the pipeline reports
    "not_learnt",  # no installed network reads this part (one trained before its kind was classified)
)


@dataclass(frozen=True)
class PartState:
    """What the camera says about one part in one frame (or, after smoothing, over recent frames)."""

    state: str | None  # one of the part's catalog states; None = unknown / not recognised
    confidence: float  # [0, 1]; 0 when ``state`` is None
    visible: bool  # faces the camera and projects inside the frame
    uv: tuple[float, float] | None = None  # pixels, the projected anchor; None without a pose
    blinking: bool = False  # an LED alternating between ``state`` and off (set by smoothing)
    reason: str | None = None  # why ``state`` is None: one of ``UNREADABLE_REASONS`` (None when read)
    size_px: float = 0.0  # the part's larger side in the image as the pose projects it (0 without a pose)


@dataclass(frozen=True)
class Hand:
    """One detected hand. ``landmarks``: (21, 2) float32 pixels in MediaPipe's landmark order."""

    handedness: str  # "Left" or "Right" as MediaPipe reports it (mirrored for selfie views)
    score: float  # [0, 1]
    landmarks: np.ndarray
    fingertips: dict[str, tuple[float, float]]  # thumb/index/middle/ring/pinky -> pixels
    nearest_part: str | None = None  # the projected part closest to the index fingertip
    nearest_part_px: float | None = None  # its distance in pixels


@dataclass(frozen=True)
class ImageQuality:
    """Cheap whole-frame cues, so a session can say "more light" or "hold steady" instead of nothing."""

    luma: float  # mean brightness, 0..255, of a small grey copy of the frame
    sharpness: float  # variance of the Laplacian of that copy: low for a blurred or defocused frame


@dataclass(frozen=True)
class Observation:
    """Everything vision says about one frame. ``seq``/``ts`` echo the frame's, so overlays line up."""

    seq: int
    ts: float  # the client's capture timestamp, echoed unchanged
    product_id: str | None = None
    product_confidence: float = 0.0
    box: tuple[float, float, float, float] | None = None  # x1, y1, x2, y2 pixels
    pose: Pose | None = None
    reprojection_error_px: float | None = None
    parts: dict[str, PartState] = field(default_factory=dict)
    hands: tuple[Hand, ...] = ()
    timing_ms: dict[str, float] = field(default_factory=dict)  # stage -> milliseconds
    tracked: bool = False  # the product was followed from the previous pose, without running the detector
    quality: ImageQuality | None = None  # how well lit and how sharp the frame is (None for a bad frame)
    # Without a product: why the last model set that looked gave none, "not_detected" (its detector found
    # nothing) or one of vision.pose_check.REFUSALS for the first look at the detection it picked.
    refused: str | None = None


@dataclass(frozen=True)
class Track:
    """Where a session last saw its product: the detector is skipped and the keypoint network looks at
    this box (the previous pose's projected keypoints). Verification still runs; if it fails, the frame
    goes through the detector after all. :class:`vision.tracking.Tracker` says when to send one."""

    product_id: str
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 pixels
    confidence: float  # the detector's confidence when it last saw the product


@dataclass(frozen=True)
class FrameInput:
    """One frame for :class:`vision.pipeline.Pipeline`: the JPEG as the client sent it, and what the caller
    knows about it."""

    jpeg: bytes
    seq: int
    ts: float  # the client's capture time, echoed unchanged
    camera: CameraIntrinsics | None = None  # None: the default field of view
    product_hint: str | None = None  # a product id the client expects; only breaks near-ties
    track: Track | None = None  # follow the product from here instead of detecting it
    # The header of these very bytes, as the server's probe read it (vision.jpeg_header): the decoder then
    # does not parse it again. None: the decoder reads it.
    header: JpegHeader | None = None
    # These very bytes already decoded ((h, w, 3) uint8 BGR) by the caller, and what that cost in ms: the
    # server decodes per session, off the shared inference worker, so one costly frame delays only its own
    # session. None: the pipeline decodes.
    image: np.ndarray | None = field(default=None, repr=False, compare=False)
    decode_ms: float = 0.0
