"""Plain scores of the pipeline against exact ground truth, shared by ``vision eval`` and ``vision robustness``.

Every figure is over *every* frame or part it names; nothing is left out for being hard, and a miss counts:

- ``product_recall``: frames with the product in view where the pipeline's product is the right one and its
  box overlaps the true box at IoU >= 0.5.
- ``part_state_accuracy_4px`` (and ``..._by_kind``): over every truly visible part at least
  ``MIN_READABLE_PX`` (4 px) across; *truly visible* means the renderer's truth (faces the camera within
  ``EDGE_ON_DEG``, inside the frame, not hidden by the product's own body) and not under something drawn over
  the frame (a hand, a glare core). *Across* is the larger side of the part's true box in the image. A read
  is right only when the pipeline found the right product and returned the true state: a missed or wrong
  product, or an unknown read (state None), is wrong.
- ``part_state_accuracy_all`` (and ``..._by_kind``): the same over every truly visible part, of any size.
- ``part_state_accuracy_4px_by_size`` (and ``part_state_count_4px_by_size``): the parts of
  ``part_state_accuracy_4px`` split by how many pixels across they are (:data:`SIZE_BINS`). A narrower view
  beside the plain figure, never instead of it: a 4 px LED under a 6 px defocus is a smear a person could not
  read either, and this shows how much of a shortfall is such parts.
- ``product_recall_ci95`` and ``part_state_accuracy_4px_ci95``: 95 % intervals of the two figures, Wilson
  score intervals over the effective number of independent draws the frames hold (:func:`frame_interval`):
  the parts of one frame share its pose and its product, so a missed product takes all of them at once and
  they count as fewer draws than parts. Beside the figures, never instead of them: they say which shortfalls
  are more than the noise of the frames drawn.
- ``abstained_share`` (and ``..._by_kind``; all truly visible parts) and ``abstained_share_4px``: the share
  of those sightings for which the pipeline returned no state (state None, or nothing because it missed the
  product).
- ``pose_error_median_px`` / ``pose_error_p90_px``: per frame, the mean distance between *all* catalog
  keypoints projected with the estimated pose and with the true pose (out-of-frame ones included). A frame
  without a pose of the right product is a failure with infinite error; percentiles are nearest-rank, and
  one that lands on a failure is None (more than that share of frames failed). ``pose_missing`` counts them.
- ``unsafe_reads``: truly visible sightings whose true state is not the part's healthy state but which the
  pipeline read as the healthy state with confidence >= the verifying confidence; ``unsafe_read_rate``
  divides by every truly visible sighting. ``unsafe_reads_not_visible`` counts the same on parts that are
  not truly visible (a port under a hand read as plugged).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from product_models.camera import CameraIntrinsics, project
from product_models.catalog import Product
from product_models.render_truth import GroundTruth
from vision.part_patches import MIN_READABLE_PX
from vision.types import Observation

RECALL_IOU = 0.5
# The confidence at which a healthy read would verify a step, when vision.verification does not say.
VERIFY_CONFIDENCE = 0.8
# A part counts as covered by something drawn over the frame when the cover hides its anchor pixel or at
# least this share of its box: half a lens or half a socket cannot be read by anyone either.
COVERED_BOX_SHARE = 0.5


def verifying_confidence() -> tuple[float, str]:
    """The confidence a healthy read needs to count toward verifying a step, and where the figure came from."""
    try:
        from vision.verification import VerificationConfig
    except ImportError:
        return VERIFY_CONFIDENCE, "vision.training.scoring.VERIFY_CONFIDENCE"
    value = getattr(VerificationConfig(), "min_confidence", None)  # rule 1b: the least a read of evidence has
    if isinstance(value, int | float):
        return float(value), "vision.verification.VerificationConfig.min_confidence"
    return VERIFY_CONFIDENCE, "vision.training.scoring.VERIFY_CONFIDENCE"


def iou(a: np.ndarray | tuple[float, ...], b: np.ndarray | tuple[float, ...]) -> float:
    """Intersection over union of two xyxy boxes (pixels)."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def nearest_rank(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of ``values``; infinity stays infinity."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(frozen=True)
class PartSighting:
    """One stateful part of one frame, as the ground truth has it."""

    name: str
    kind: str
    state: str
    healthy: str | None
    visible: bool  # truly visible: see the module docstring
    size_px: float  # larger side of the part's true box in the image; 0 when out of view


@dataclass(frozen=True)
class FrameTruth:
    """What a frame holds: the product, its box and keypoints, and its stateful parts."""

    product: str
    box: np.ndarray  # (4,) float64 xyxy pixels, clipped to the frame
    keypoints: np.ndarray  # (k, 2) float64 pixels: the catalog keypoints projected with the true pose
    parts: tuple[PartSighting, ...]

    @classmethod
    def from_render(cls, product: Product, truth: GroundTruth, covered: np.ndarray | None = None) -> FrameTruth:
        """From a render's ground truth; ``covered``: (h, w) bool, pixels hidden by something drawn over the
        frame (see ``COVERED_BOX_SHARE``)."""
        if truth.product_box is None:
            raise ValueError("the product is not in view: a FrameTruth needs its box")
        parts = []
        for part in product.stateful_parts():
            pt = truth.parts[part.name]
            if pt.state is None:
                continue
            visible = pt.visible and not (covered is not None and _is_covered(covered, pt.center_uv, pt.box))
            parts.append(PartSighting(part.name, part.kind, pt.state, part.healthy, visible, _size(pt.box)))
        return cls(product.id, np.asarray(truth.product_box, float), np.asarray(truth.keypoints, float),
                   tuple(parts))

    @classmethod
    def from_record(cls, product: Product, record: Mapping[str, Any]) -> FrameTruth:
        """From a ``fixlens data synth`` truth record (its ``parts[name].visible`` already excludes occluders)."""
        parts = []
        for part in product.stateful_parts():
            info = record["parts"].get(part.name)
            if info is None or info["state"] is None:
                continue
            box = None if info["box"] is None else np.asarray(info["box"], float)
            parts.append(PartSighting(part.name, part.kind, info["state"], part.healthy, bool(info["visible"]),
                                      _size(box)))
        return cls(product.id, np.asarray(record["box"], float), np.asarray(record["keypoints"], float),
                   tuple(parts))


def _size(box: np.ndarray | None) -> float:
    return 0.0 if box is None else float(max(box[2] - box[0], box[3] - box[1]))


def _is_covered(covered: np.ndarray, uv: np.ndarray, box: np.ndarray | None) -> bool:
    h, w = covered.shape
    u, v = round(float(uv[0])), round(float(uv[1]))
    if 0 <= u < w and 0 <= v < h and covered[v, u]:
        return True
    if box is None:
        return False
    x1, y1 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    x2, y2 = min(w, math.ceil(box[2]) + 1), min(h, math.ceil(box[3]) + 1)
    if x2 <= x1 or y2 <= y1:
        return False
    return float(covered[y1:y2, x1:x2].mean()) >= COVERED_BOX_SHARE


@dataclass(frozen=True)
class Misread:
    """A truly visible part at least ``MIN_READABLE_PX`` across that was read wrong: what it was, what came
    back, and how far off the frame's pose was. Most misreads of a found product come from a pose that passed
    verification yet is tens of pixels off (docs/model-card.md, *Round 14*); this says which."""

    product: str  # the true product
    part: str
    kind: str
    truth: str
    read: str | None  # None: unknown, or the product was missed
    confidence: float
    reason: str | None  # why the read is unknown (``vision.types.UNREADABLE_REASONS``), or "missed_product"
    size_px: float
    pose_error_px: float | None  # the frame's pose error (module docstring); None without a pose

    def to_json(self) -> dict[str, Any]:
        return {"product": self.product, "part": self.part, "kind": self.kind, "truth": self.truth,
                "read": self.read, "confidence": round(self.confidence, 3), "reason": self.reason,
                "size_px": round(self.size_px, 1),
                "pose_error_px": None if self.pose_error_px is None else round(self.pose_error_px, 2)}


def write_misreads(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """``--misreads``: the misreads (``Misread.to_json`` with where each was seen) as one JSON list at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(rows), indent=0) + "\n")


@dataclass
class _Counts:
    seen: int = 0
    right: int = 0
    abstained: int = 0

    def add(self, right: bool, abstained: bool) -> None:
        self.seen += 1
        self.right += right
        self.abstained += abstained


# Size bins of the by-size view (pixels across, lower bound included): from the 4 px floor, where a 4 mm LED
# seen from arm's length falls, to 8 px and more.
SIZE_BINS = ((4.0, "4-6px"), (6.0, "6-8px"), (8.0, ">=8px"))


Z95 = 1.959964  # the standard normal's 97.5th percentile: two-sided 95 % intervals


def frame_interval(right: Sequence[int], seen: Sequence[int]) -> list[float] | None:
    """The 95 % interval of ``sum(right) / sum(seen)`` (``right[i]`` of ``seen[i]`` in frame i); None when
    nothing was seen.

    A Wilson score interval over an effective number of draws. The parts of one frame share its pose and its
    product (a missed product takes all of them at once), so they are not independent: the variance of the
    ratio is estimated from whole frames (the linearised ratio estimator, ``sum((r_i - p n_i)^2) /
    (sum n)^2``) and turned into the number of independent draws that would give it, ``p (1 - p) / var``,
    at most the number of parts. With one part per frame that is exactly the frames, and the interval is
    the binomial Wilson interval. Where every part was right (or every one wrong) the frames carry no
    spread to measure, and each frame counts as one draw: 150 frames without a miss give [0.975, 1.0].
    Wilson's interval, unlike a percentile bootstrap, stays honest with one or two misses (*Round 23* of
    docs/model-card.md)."""
    r, n = np.asarray(right, np.float64), np.asarray(seen, np.float64)
    total = float(n.sum()) if len(n) else 0.0
    if not total:
        return None
    p = float(r.sum()) / total
    frames = int((n > 0).sum())
    var = float(((r - p * n) ** 2).sum()) / total ** 2
    draws = min(total, p * (1.0 - p) / var) if var > 0 else (total if 0.0 < p < 1.0 else float(frames))
    return [round(x, 4) for x in wilson(p, draws)]


def wilson(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a share ``p`` over ``n`` (possibly fractional) independent draws."""
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def size_bin(size_px: float) -> str:
    """The :data:`SIZE_BINS` name of a part ``size_px`` across (at least ``MIN_READABLE_PX``)."""
    return [name for low, name in SIZE_BINS if size_px >= low][-1]


@dataclass
class Tally:
    """Accumulates frames; :meth:`summary` gives the plain figures of the module docstring."""

    verify_confidence: float = VERIFY_CONFIDENCE  # a healthy read at least this sure would verify a step
    frames: int = 0
    pose_errors: list[float] = field(default_factory=list)  # pixels per frame; inf for a frame without a pose
    by_kind_4px: dict[str, _Counts] = field(default_factory=dict)
    by_kind_all: dict[str, _Counts] = field(default_factory=dict)
    by_size_4px: dict[str, _Counts] = field(default_factory=dict)
    unsafe_reads: int = 0
    unsafe_reads_not_visible: int = 0
    recalled_by_frame: list[int] = field(default_factory=list)  # 1 where the frame's product was recalled
    parts_4px_by_frame: list[tuple[int, int]] = field(default_factory=list)  # (right, seen) per frame

    @property
    def recalled(self) -> int:
        """Frames whose product was recalled."""
        return sum(self.recalled_by_frame)

    def add(self, truth: FrameTruth, obs: Observation, product: Product, camera: CameraIntrinsics) -> list[Misread]:
        """Score one frame with the product in view; returns its misreads (truly visible parts >= 4 px)."""
        self.frames += 1
        right_product = obs.product_id == truth.product
        recalled = right_product and obs.box is not None and iou(obs.box, truth.box) >= RECALL_IOU
        self.recalled_by_frame.append(int(recalled))
        frame_parts = [0, 0]
        error = math.inf
        if right_product and obs.pose is not None:
            uv, depth = project(np.array([k.position for k in product.keypoints]), obs.pose, camera)
            mean = float(np.linalg.norm(uv - truth.keypoints, axis=1).mean())
            error = mean if math.isfinite(mean) and bool((depth > 0).all()) else math.inf
        self.pose_errors.append(error)
        misreads = []
        for part in truth.parts:
            got = obs.parts.get(part.name) if right_product else None
            state = None if got is None else got.state
            unsafe = (part.healthy is not None and part.state != part.healthy and state == part.healthy
                      and got is not None and got.confidence >= self.verify_confidence)
            if not part.visible:
                self.unsafe_reads_not_visible += unsafe
                continue
            self.unsafe_reads += unsafe
            self.by_kind_all.setdefault(part.kind, _Counts()).add(state == part.state, state is None)
            if part.size_px >= MIN_READABLE_PX:
                self.by_kind_4px.setdefault(part.kind, _Counts()).add(state == part.state, state is None)
                self.by_size_4px.setdefault(size_bin(part.size_px), _Counts()).add(state == part.state, state is None)
                frame_parts[0] += state == part.state
                frame_parts[1] += 1
                if state != part.state:
                    misreads.append(Misread(
                        truth.product, part.name, part.kind, part.state, state,
                        0.0 if got is None else got.confidence,
                        "missed_product" if got is None else got.reason, part.size_px,
                        error if math.isfinite(error) else None))
        self.parts_4px_by_frame.append((frame_parts[0], frame_parts[1]))
        return misreads

    def merge(self, other: Tally) -> None:
        """Fold ``other``'s frames into this one (to pool conditions)."""
        self.frames += other.frames
        self.pose_errors += other.pose_errors
        for mine, theirs in ((self.by_kind_4px, other.by_kind_4px), (self.by_kind_all, other.by_kind_all),
                             (self.by_size_4px, other.by_size_4px)):
            for kind, c in theirs.items():
                m = mine.setdefault(kind, _Counts())
                m.seen, m.right, m.abstained = m.seen + c.seen, m.right + c.right, m.abstained + c.abstained
        self.unsafe_reads += other.unsafe_reads
        self.unsafe_reads_not_visible += other.unsafe_reads_not_visible
        self.recalled_by_frame += other.recalled_by_frame
        self.parts_4px_by_frame += other.parts_4px_by_frame

    def summary(self) -> dict[str, Any]:
        four, every = _total(self.by_kind_4px), _total(self.by_kind_all)
        missing = sum(1 for e in self.pose_errors if not math.isfinite(e))
        return {
            "frames": self.frames,
            "product_recall": _share(self.recalled, self.frames),
            "product_recall_ci95": frame_interval(self.recalled_by_frame, [1] * len(self.recalled_by_frame)),
            "part_state_accuracy_4px": _share(four.right, four.seen),
            "part_state_accuracy_4px_ci95": frame_interval([r for r, _ in self.parts_4px_by_frame],
                                                           [n for _, n in self.parts_4px_by_frame]),
            "part_state_accuracy_4px_by_kind": _by_kind(self.by_kind_4px, "right"),
            "part_state_count_4px": four.seen,
            # The bins' names sort in their own order ("4-6px" < "6-8px" < ">=8px"), as _by_kind lists them.
            "part_state_accuracy_4px_by_size": _by_kind(self.by_size_4px, "right"),
            "part_state_count_4px_by_size": {name: c.seen for name, c in sorted(self.by_size_4px.items())},
            "part_state_accuracy_all": _share(every.right, every.seen),
            "part_state_accuracy_all_by_kind": _by_kind(self.by_kind_all, "right"),
            "part_state_count_all": every.seen,
            "abstained_share": _share(every.abstained, every.seen),
            "abstained_share_by_kind": _by_kind(self.by_kind_all, "abstained"),
            "abstained_share_4px": _share(four.abstained, four.seen),
            "pose_error_median_px": _quantile(self.pose_errors, 0.5),
            "pose_error_p90_px": _quantile(self.pose_errors, 0.9),
            "pose_missing": missing,
            "unsafe_reads": self.unsafe_reads,
            "unsafe_read_rate": _share(self.unsafe_reads, every.seen, digits=5),
            "unsafe_reads_not_visible": self.unsafe_reads_not_visible,
        }


def _total(by_kind: dict[str, _Counts]) -> _Counts:
    out = _Counts()
    for c in by_kind.values():
        out.seen, out.right, out.abstained = out.seen + c.seen, out.right + c.right, out.abstained + c.abstained
    return out


def _by_kind(counts: dict[str, _Counts], field_name: str) -> dict[str, float | None]:
    return {kind: _share(getattr(c, field_name), c.seen) for kind, c in sorted(counts.items())}


def _share(part: int, whole: int, digits: int = 4) -> float | None:
    return round(part / whole, digits) if whole else None


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    value = nearest_rank(values, q)
    return round(value, 3) if math.isfinite(value) else None
