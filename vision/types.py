"""Result types of the vision pipeline: validated dataclasses of parallel numpy arrays.

Arrays carry their shape and unit where declared. Validation failures raise :class:`VisionError` with
"expected X, got Y". ``Observation.to_dict()`` gives plain Python types only (for msgpack), so library
objects never leave ``vision``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from product_models.camera import Pose
from vision.errors import VisionError


def _check_array(name: str, value: object, shape: tuple[int | None, ...], dtype: type) -> np.ndarray:
    """Coerce ``value`` to ``dtype`` and check its shape (``None`` = any length)."""
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise VisionError(f"{name}: expected an array of {np.dtype(dtype).name}, got {type(value).__name__}"
                          f" ({exc})") from None
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

    def __len__(self) -> int:
        return len(self.xyxy)

    def select(self, index: np.ndarray | slice | int) -> Detections:
        """A subset by boolean mask, index array, slice or single index (kept as a length-1 result)."""
        if isinstance(index, int | np.integer):
            index = slice(int(index), int(index) + 1 if int(index) != -1 else None)
        return Detections(self.xyxy[index], self.confidence[index], self.class_id[index],
                          None if self.keypoints is None else self.keypoints[index],
                          None if self.keypoint_conf is None else self.keypoint_conf[index])


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

    def to_dict(self) -> dict[str, object]:
        return {"state": self.state, "confidence": float(self.confidence), "visible": bool(self.visible),
                "uv": None if self.uv is None else [float(self.uv[0]), float(self.uv[1])],
                "blinking": bool(self.blinking), "reason": self.reason}


@dataclass(frozen=True)
class Hand:
    """One detected hand. ``landmarks``: (21, 2) float32 pixels in MediaPipe's landmark order."""

    handedness: str  # "Left" or "Right" as MediaPipe reports it (mirrored for selfie views)
    score: float  # [0, 1]
    landmarks: np.ndarray
    fingertips: dict[str, tuple[float, float]]  # thumb/index/middle/ring/pinky -> pixels
    nearest_part: str | None = None  # the projected part closest to the index fingertip
    nearest_part_px: float | None = None  # its distance in pixels

    def to_dict(self) -> dict[str, object]:
        return {"handedness": self.handedness, "score": float(self.score),
                "fingertips": {k: [float(u), float(v)] for k, (u, v) in self.fingertips.items()},
                "nearest_part": self.nearest_part,
                "nearest_part_px": None if self.nearest_part_px is None else float(self.nearest_part_px)}


@dataclass(frozen=True)
class ImageQuality:
    """Cheap whole-frame cues, so a session can say "more light" or "hold steady" instead of nothing."""

    luma: float  # mean brightness, 0..255, of a small grey copy of the frame
    sharpness: float  # variance of the Laplacian of that copy: low for a blurred or defocused frame

    def to_dict(self) -> dict[str, float]:
        return {"luma": float(self.luma), "sharpness": float(self.sharpness)}


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

    def to_dict(self) -> dict[str, object]:
        """Plain Python types only: ``pose`` as ``{"R": 3x3 nested lists, "t": [x, y, z] metres}``."""
        pose = None if self.pose is None else {
            "R": [[float(v) for v in row] for row in np.asarray(self.pose.R)],
            "t": [float(v) for v in np.asarray(self.pose.t)]}
        return {
            "seq": int(self.seq), "ts": float(self.ts),
            "product": self.product_id, "product_confidence": float(self.product_confidence),
            "box": None if self.box is None else [float(v) for v in self.box],
            "pose": pose,
            "reprojection_error_px": None if self.reprojection_error_px is None
            else float(self.reprojection_error_px),
            "parts": {name: ps.to_dict() for name, ps in self.parts.items()},
            "hands": [h.to_dict() for h in self.hands],
            "timing_ms": {k: float(v) for k, v in self.timing_ms.items()},
            "quality": None if self.quality is None else self.quality.to_dict(),
        }
