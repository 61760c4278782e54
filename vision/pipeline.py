"""Frame bytes -> :class:`~vision.types.Observation`: the stages, in order, each timed (``timing_ms``).

1. ``decode``: guarded JPEG decode (:mod:`vision.decode`); bad data raises :class:`FrameError` before any
   large buffer exists. A header the server already read (``FrameInput.header``) is not parsed again, and
   a frame the caller already decoded (``FrameInput.image``) is not decoded again.
2. ``detect``: the YOLO pose detector gives the product, its box and keypoints (:mod:`vision.detector`),
   skipped for a frame that follows its session's :class:`~vision.types.Track` (:mod:`vision.tracking`).
3. ``keypoints``: the crop keypoint network on the box (:mod:`vision.keypoints`), or the detector's own.
4. ``pose``: PnP on confident keypoints against the catalog keypoints, with the client's intrinsics or the
   default field of view, kept only when it passes geometric verification (:mod:`vision.pose_check`) and,
   for a box the detector has just found, the appearance check (:mod:`vision.appearance`).
5. ``states``: every part read with the pose (:class:`vision.part_reader.PartReader`).

Stages 2-5 belong to a :class:`~vision.model_set.ModelSet`: the weights folder's own, and one per
``products/<ID>/`` folder inside it (a product added with its own networks). A tracked frame goes to the set
that knows its product. An untracked frame goes to the sets' detectors in turn, the set of the session's
``product_hint`` first, then the weights folder's own, then the others by name, and the first set that
verifies a product answers, with one exception: a later set whose appearance check has seen the answered
product (a product's own set is trained on data showing every catalog product) also looks, and takes the
frame when it verifies its own product on the same object and its appearance check finds its product the
likelier there (:meth:`~vision.model_set.ModelSet.claims`). An earlier set never saw the later product, so
it cannot tell a NAS from its printer; the later set has seen both. ``detect_ms`` counts every detector
that ran.

States are per frame and unsmoothed: temporal smoothing is per session (:mod:`vision.smoothing`).
``process_batch`` never lets one bad frame fail the others: its slot holds the :class:`VisionError`, or a
:class:`~vision.errors.FrameFault` when a set's stages 3-5 failed on it in a way they should not have (logged;
a failed claim leaves the earlier answer, a failed recheck the tracked one, and a failed track the detectors
to look). A detector that fails on a batch still fails the batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from product_models.catalog import Catalog, default_catalog
from vision.decode import decode_jpeg
from vision.detector import WEIGHTS_DIR, DetectorConfig
from vision.errors import FrameFault, VisionError
from vision.jpeg_header import DecodeLimits
from vision.model_set import ModelSet
from vision.types import FrameInput, Observation

log = logging.getLogger(__name__)

PRODUCT_SETS = "products"  # inside a weights folder: one model-set folder per product added with its own networks

# A tracked frame cuts its keypoint crop where the last pose put the product; when the camera moved, the crop
# can sit off the product and the keypoints, and so the pose, come out skewed though still plausible (an
# anchored mark then jumps by 10-20 px for one frame). A tracked pose that fits its keypoints worse than 90 %
# of detected poses do (mean inlier residual over the box's longer side: p90 = 0.014 over the 638 rightly
# detected products of `fixlens vision tune-pose-check --seed 8801`, training-side, with the round-8
# networks; 0.0146 on seed 8800; the round-7 networks gave 0.021) also runs the detector, and the
# better-fitting of the two poses is kept.
TRACK_RECHECK_SHARE = 0.014
FAULT_LOG_EVERY = 100  # a stage fault met again is logged once in this many times, with its count


class Pipeline:
    """Load once, then call :meth:`process` or :meth:`process_batch` from a worker thread. ``catalog`` and
    ``limits`` are the server's (its ``--catalog-dir`` and frame limits); the defaults are the shipped
    catalog and :class:`DecodeLimits`."""

    def __init__(self, weights_dir: str | Path = WEIGHTS_DIR, *, backend: str = "auto", device: str = "auto",
                 catalog: Catalog | None = None, limits: DecodeLimits | None = None,
                 detector_config: DetectorConfig | None = None) -> None:
        self.catalog = catalog if catalog is not None else default_catalog()
        self.limits = limits if limits is not None else DecodeLimits()
        self.sets = [ModelSet(folder, self.catalog, backend=backend, device=device, detector_config=detector_config)
                     for folder in model_set_folders(weights_dir)]
        self._owner: dict[str, ModelSet] = {}
        for s in self.sets:
            for pid in s.product_ids:
                if pid in self._owner:  # which set would answer for it is a guess: refuse to guess
                    raise VisionError(f"{pid} is recognised by two model sets, {self._owner[pid].path} and {s.path}; "
                                      "remove one of them")
                self._owner[pid] = s
        self.faults: dict[str, int] = {}  # stage faults met so far, by stage, set and exception type (_fault)
        # Catalog products no set knows are never recognised until `fixlens train product ID` has run.
        self.untrained: list[str] = sorted(p for p in self.catalog.products if p not in self._owner)

    @property
    def main(self) -> ModelSet:
        """The weights folder's own set (the shipped products' networks)."""
        return self.sets[0]

    def set_for(self, product_id: str) -> ModelSet | None:
        """The set that recognises ``product_id``; None for a product no set knows."""
        return self._owner.get(product_id)

    @property
    def backend(self) -> str:
        return f"{self.main.detector.backend}:{self.main.detector.device}"

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
        for f in frames:  # 1. decode, unless the caller did (FrameInput.image)
            if f.image is not None:
                images.append(f.image)
                results.append(None)
                decode_ms.append(f.decode_ms)
                continue
            t = time.perf_counter()
            try:
                images.append(decode_jpeg(f.jpeg, self.limits, header=f.header))
                results.append(None)
            except VisionError as exc:
                images.append(None)
                results.append(exc)
            decode_ms.append((time.perf_counter() - t) * 1000)
        # 2. detect, except for tracked frames; those whose track no longer verifies join the detected ones,
        # and a tracked pose that fits poorly is checked again by its own set's detector.
        queue: dict[int, list[ModelSet]] = {}  # frame -> the sets whose detectors it still goes to, in order
        for i in (i for i, img in enumerate(images) if img is not None):
            track = frames[i].track
            owner = self._owner.get(track.product_id) if track is not None else None
            try:
                obs = owner.follow(frames[i], images[i], decode_ms[i]) if owner else None  # type: ignore[arg-type]
            except VisionError as exc:
                results[i] = exc
                continue
            except Exception as exc:  # a stage's bug met on this frame: the detectors look at it instead
                self._fault(exc, "follow", owner)  # type: ignore[arg-type]
                obs = None
            if obs is None:
                queue[i] = self._order(frames[i].product_hint)
            else:
                results[i] = obs
                if _residual_share(obs) > TRACK_RECHECK_SHARE:  # a poor fit: the detector's box may do better
                    queue[i] = [owner]  # type: ignore[list-item]
        spent = dict.fromkeys(queue, 0.0)  # detector milliseconds per frame, over every set that ran
        pending: dict[int, Observation] = {}  # frame -> an earlier set's answer that a later set may still claim
        while queue:
            model_set = next(iter(queue.values()))[0]
            batch = [i for i, sets in queue.items() if sets[0] is model_set]
            t = time.perf_counter()
            detections = model_set.detector.detect_batch([images[i] for i in batch])  # type: ignore[misc]
            each_ms = (time.perf_counter() - t) * 1000 / len(batch)
            for i, det in zip(batch, detections, strict=True):
                spent[i] += each_ms
                rest = queue.pop(i)[1:]
                try:
                    found = model_set.observe(frames[i], images[i], det, decode_ms[i], spent[i])  # type: ignore[arg-type]
                except Exception as exc:  # bad intrinsics (every set would say the same), or a stage's bug
                    failure = exc if isinstance(exc, VisionError) else self._fault(exc, "observe", model_set, frames[i])
                    earlier = pending.pop(i, None)  # ... but an answer already found stands: an earlier set's,
                    if not isinstance(results[i], Observation):  # or the tracked one this was to recheck
                        results[i] = failure if earlier is None else _with_detect_ms(earlier, spent[i])
                    continue
                tracked = results[i]
                if isinstance(tracked, Observation):  # a track's recheck: keep the better-fitting pose
                    if _better(found, tracked):
                        results[i] = found
                    continue
                earlier = pending.pop(i, None)
                if earlier is not None:
                    t = time.perf_counter()
                    try:
                        claimed = found.product_id is not None and model_set.claims(images[i], found, earlier)  # type: ignore[arg-type]
                    except Exception as exc:  # a bug in the claim: the earlier answer stands
                        self._fault(exc, "claims", model_set)
                        claimed = False
                    # The answer's total also counts the other set's keypoints, pose and states, and the claim.
                    winner, other = (found, earlier) if claimed else (earlier, found)
                    _add_ms(winner, _stages_ms(other) + (time.perf_counter() - t) * 1000)
                    if claimed:
                        results[i] = found
                        continue
                    found = _with_detect_ms(earlier, spent[i])  # the earlier answer stands, so far
                if found.product_id is None and rest:
                    queue[i] = rest  # nothing this set knows: the next set looks
                elif found.product_id is not None and (judges := [s for s in rest if s.judges(found.product_id)]):
                    pending[i], queue[i] = found, judges  # later sets that know this product's look may claim it
                else:
                    results[i] = _with_detect_ms(found, spent[i])
        batch_ms = (time.perf_counter() - t0) * 1000
        for r in results:
            if isinstance(r, Observation):
                r.timing_ms["batch_ms"] = batch_ms
        return results  # type: ignore[return-value]

    def _fault(self, exc: Exception, stage: str, model_set: ModelSet, frame: FrameInput | None = None
               ) -> FrameFault:
        """Log ``exc``, which ``stage`` of ``model_set`` raised where it should not have, and return what the frame's
        slot holds when it is lost (a :class:`FrameFault` caused by ``exc``). The first fault of each kind is logged
        with its traceback, then every ``FAULT_LOG_EVERY``-th with its count, so a fault met on every frame does
        not flood the log."""
        key = f"{stage} of {model_set.path}: {type(exc).__name__}"
        self.faults[key] = count = self.faults.get(key, 0) + 1
        if count == 1:
            log.error("%s (first time; the frame's batch-mates are not affected)", key, exc_info=exc)
        elif count % FAULT_LOG_EVERY == 0:
            log.error("%s, %d times so far: %s", key, count, exc)
        fault = FrameFault(f"frame {'?' if frame is None else frame.seq}: the vision pipeline failed on this frame "
                           f"({type(exc).__name__} in {stage})")
        fault.__cause__ = exc
        return fault

    def _order(self, hint: str | None) -> list[ModelSet]:
        """The sets whose detectors look for a product in an untracked frame: the hinted product's first."""
        first = self._owner.get(hint) if hint is not None else None
        return [first, *(s for s in self.sets if s is not first)] if first is not None else list(self.sets)


def model_set_folders(weights_dir: str | Path) -> list[Path]:
    """``weights_dir`` and every model-set folder in its ``products/`` folder, by name."""
    root = Path(weights_dir)
    extra = root / PRODUCT_SETS
    return [root, *sorted(p for p in extra.iterdir() if p.is_dir())] if extra.is_dir() else [root]


def _residual_share(obs: Observation) -> float:
    """The pose's mean inlier residual over the box's longer side (0 without a pose or a box)."""
    if obs.pose is None or obs.reprojection_error_px is None or obs.box is None:
        return 0.0
    side = max(obs.box[2] - obs.box[0], obs.box[3] - obs.box[1], 1.0)
    return obs.reprojection_error_px / side


def _stages_ms(obs: Observation) -> float:
    """What ``obs``'s set spent on its frame after the detectors (keypoints, pose, states)."""
    t = obs.timing_ms
    return t.get("total_ms", 0.0) - t.get("decode_ms", 0.0) - t.get("detect_ms", 0.0)


def _add_ms(obs: Observation, ms: float) -> None:
    if obs.timing_ms:
        obs.timing_ms["total_ms"] = obs.timing_ms.get("total_ms", 0.0) + ms


def _with_detect_ms(obs: Observation, detect_ms: float) -> Observation:
    """``obs`` with ``detect_ms`` (every detector that looked at its frame) in its timing, and its total."""
    if obs.timing_ms:
        obs.timing_ms["total_ms"] = obs.timing_ms.get("total_ms", 0.0) + detect_ms - obs.timing_ms.get("detect_ms", 0.0)
        obs.timing_ms["detect_ms"] = detect_ms
    return obs


def _better(found: Observation | VisionError, tracked: Observation) -> bool:
    """Whether the re-detected observation should replace the tracked one: it posed the same product with a
    tighter fit."""
    return (isinstance(found, Observation) and found.pose is not None and found.product_id == tracked.product_id
            and _residual_share(found) < _residual_share(tracked))
