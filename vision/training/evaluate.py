"""Held-out evaluation of the whole pipeline, and its latency benchmark.

``evaluate`` renders its own held-out frames (seed ``EVAL_SEED``, never used for training) with the same
generator as the training data, runs each JPEG through :class:`vision.pipeline.Pipeline`, and compares with
the exact ground truth.

The plain figures, the same definitions as ``fixlens vision robustness`` (:mod:`vision.training.scoring`
has them in full): ``product_recall``; ``part_state_accuracy_4px`` (with ``..._by_kind``) over every truly
visible part whose true box is at least 4 px across, a missed product or an unknown read counted wrong;
``part_state_accuracy_all`` over every truly visible part of any size; ``abstained_share``;
``pose_error_median_px`` / ``pose_error_p90_px`` over all keypoints, a frame without a pose counted as a
failure (``pose_missing``); ``unsafe_reads``; and the 95 % intervals over frames of recall and part states
(``..._ci95``), overall and per product.

The older figures stay beside them, with their own definitions:

- ``product_accuracy``: frames with a product in view and a detection whose top product is right.
- ``detection_recall``: frames with a product in view whose top detection overlaps the true box at IoU
  >= 0.5 (a missed product counts against it).
- ``part_state_accuracy`` (and ``..._by_kind``): over every part the ground truth marks visible in a
  frame with a product in view, and that is at least ``MIN_READABLE_PX`` (4 px) across face-on at its
  depth (the plain figure measures its true box instead); a part the pipeline leaves unknown counts as
  wrong. Parts visible but smaller are counted in ``part_state_too_small_by_kind`` (a 4 mm LED on a router
  filling 15 % of the frame is 1-2 px).
- ``pose_reproj_median_px`` / ``pose_reproj_p90_px``: per frame, the mean distance between the catalog
  keypoints projected with the *estimated* pose and their true projections, over the keypoints whose true
  projection lies inside the frame (an error outside the image is not one a viewer sees, and a product
  filling the frame has its far corners hundreds of pixels outside it); a frame with no pose is left out
  of these (``pose_missing`` counts it). ``pose_reproj_all_keypoints_median_px`` / ``..._p90_px`` are the
  same over all keypoints, extrapolated ones included, still without the frames that have no pose.
- ``real_photo_false_positives``: product detections on the real photos that ship inside scikit-image
  and matplotlib (reserved for evaluation, never used in training).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from product_models.camera import CameraIntrinsics, Pose, project
from product_models.catalog import Product, default_catalog
from vision.model_set import ModelSet
from vision.part_patches import MIN_READABLE_PX
from vision.parts import project_parts
from vision.pose_check import REFUSALS as POSE_REFUSALS
from vision.training.photos import real_photos
from vision.training.scoring import FrameTruth, Tally, iou, verifying_confidence, write_misreads
from vision.types import Detections, FrameInput

EVAL_SEED = 9001  # training data uses other seeds; keep it that way
DEFAULT_FRAMES = 400


def _fit_640x480(img: np.ndarray) -> np.ndarray:
    scale = min(640 / img.shape[1], 480 / img.shape[0])
    resized = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)))
    canvas = np.full((480, 640, 3), 0, np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    return canvas


def evaluate(frames: int = DEFAULT_FRAMES, seed: int = EVAL_SEED, backend: str = "auto",
             progress: bool = False, weights_dir: Path | None = None,
             misreads_path: Path | None = None) -> dict[str, Any]:
    """The plain figures (:class:`Tally`) over ``frames`` held-out renders of ``seed``, the older ones beside
    them, each stage per product, and false detections on the real photos. With ``misreads_path``, a JSON
    list of every truly visible part >= 4 px read wrong (frame, product, truth, read, why) is written there."""
    from tqdm import tqdm

    from vision.pipeline import Pipeline
    from vision.training.synth import Synthesizer
    from vision.types import FrameInput

    catalog = default_catalog()
    pipeline = Pipeline(weights_dir, backend=backend) if weights_dir else Pipeline(backend=backend)
    synth = Synthesizer(seed, catalog, negative_share=0.0)
    n_view = n_detected = n_right = n_recalled = 0
    reproj: list[float] = []
    reproj_all: list[float] = []
    pose_missing = 0
    parts_total: dict[str, int] = {}
    geometric_total: dict[str, int] = {}
    detected_parts = [0, 0]  # [right, total] over frames where the product was recognised
    parts_right: dict[str, int] = {}
    per_product: dict[str, list[int]] = {}
    plain = Tally(verifying_confidence()[0])
    misreads: list[dict[str, Any]] = []
    stages: dict[str, StageTally] = {}
    try:
        for i in tqdm(range(frames), desc="evaluating", unit="frame", disable=not progress):
            s = synth.sample()
            truth = s.truth
            _, buf = cv2.imencode(".jpg", cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, s.jpeg_quality])
            cam = CameraIntrinsics(**truth["camera"])
            obs = pipeline.process(FrameInput(buf.tobytes(), i, 0.0, cam))
            n_view += 1
            stats = per_product.setdefault(truth["product"], [0, 0])
            stats[0] += 1
            if obs.product_id is not None:
                n_detected += 1
                n_right += obs.product_id == truth["product"]
                if obs.product_id == truth["product"] and iou(obs.box, truth["box"]) >= 0.5:
                    n_recalled += 1
                    stats[1] += 1
            product = catalog.get(truth["product"])
            wrong = plain.add(FrameTruth.from_record(product, truth), obs, product, cam)
            misreads += [{"frame": i, **m.to_json()} for m in wrong]
            stage = stages.setdefault(product.id, StageTally(verifying_confidence()[0]))
            stage.add(pipeline, buf.tobytes(), truth, obs, product, cam)
            if obs.pose is not None and obs.product_id == truth["product"]:
                kp = np.array([k.position for k in product.keypoints])
                est, _ = project(kp, obs.pose, cam)
                true_kp = np.array(truth["keypoints"])
                dist = np.linalg.norm(est - true_kp, axis=1)
                in_frame = np.array(truth["keypoint_visibility"]) > 0
                reproj.append(float(dist[in_frame].mean() if in_frame.any() else dist.mean()))
                reproj_all.append(float(dist.mean()))
            else:
                pose_missing += 1
            true_pose = Pose(np.array(truth["pose"]["R"]), np.array(truth["pose"]["t"]))
            sizes = project_parts(product, true_pose, cam, truth["states"])
            for name, info in truth["parts"].items():
                if not info["visible"] or info["state"] is None:
                    continue
                kind = product.part(name).kind
                geometric_total[kind] = geometric_total.get(kind, 0) + 1
                if min(sizes[name].size_px) < MIN_READABLE_PX:
                    continue  # smaller than a person could read either: not counted as visible
                parts_total[kind] = parts_total.get(kind, 0) + 1
                got = obs.parts.get(name) if obs.product_id == truth["product"] else None
                if got is not None and got.state == info["state"]:
                    parts_right[kind] = parts_right.get(kind, 0) + 1
                if obs.product_id == truth["product"]:
                    detected_parts[1] += 1
                    detected_parts[0] += got is not None and got.state == info["state"]
    finally:
        synth.close()
    fp = 0
    photos = real_photos()
    for j, (_, img) in enumerate(photos):
        _ok, buf = cv2.imencode(".jpg", _fit_640x480(img), [cv2.IMWRITE_JPEG_QUALITY, 90])
        fp += pipeline.process(FrameInput(buf.tobytes(), j, 0.0)).product_id is not None
    if misreads_path is not None:
        write_misreads(misreads_path, misreads)
    total_parts = sum(parts_total.values())
    reproj_sorted, reproj_all_sorted = sorted(reproj), sorted(reproj_all)
    return {
        "frames": frames, "seed": seed, "backend": pipeline.backend,
        **plain.summary(),
        # The older figures, with the definitions of the module docstring.
        "product_accuracy": round(n_right / n_detected, 4) if n_detected else 0.0,
        "detection_recall": round(n_recalled / n_view, 4) if n_view else 0.0,
        "detection_recall_by_product": {k: round(v[1] / v[0], 4) for k, v in sorted(per_product.items())},
        "part_state_accuracy": round(sum(parts_right.values()) / total_parts, 4) if total_parts else 0.0,
        "part_state_accuracy_by_kind": {k: round(parts_right.get(k, 0) / n, 4) for k, n in sorted(parts_total.items())},
        "part_state_accuracy_when_recognised": round(detected_parts[0] / detected_parts[1], 4)
        if detected_parts[1] else 0.0,
        "part_state_count_by_kind": dict(sorted(parts_total.items())),
        "part_state_too_small_by_kind": {k: n - parts_total.get(k, 0) for k, n in sorted(geometric_total.items())},
        "pose_reproj_median_px": round(statistics.median(reproj), 3) if reproj else None,
        "pose_reproj_p90_px": round(reproj_sorted[int(0.9 * (len(reproj_sorted) - 1))], 3) if reproj else None,
        "pose_reproj_all_keypoints_median_px": round(statistics.median(reproj_all), 3) if reproj_all else None,
        "pose_reproj_all_keypoints_p90_px": round(reproj_all_sorted[int(0.9 * (len(reproj_all_sorted) - 1))], 3)
        if reproj_all else None,
        "pose_missing": pose_missing,
        "real_photos": len(photos),
        "real_photo_false_positives": int(fp),
        "stages_by_product": {pid: t.summary() for pid, t in sorted(stages.items())},
    }


class StageTally:
    """Each stage of the pipeline on its own, for one product, so a failing stage is named:

    - ``detector_recall``: the detector alone finds this product (its class, IoU >= 0.5 with the true box);
    - ``keypoint_error_median_px`` / ``..._p90_px``: the crop keypoint network given the *true* box, over the
      keypoints truly visible in the frame;
    - ``pose_success``: the whole pipeline names the product and gives a pose;
    - ``part_state_accuracy_4px``: the plain part-state figure (``vision.training.scoring``) for this product;
      it and ``product_recall`` with their 95 % intervals over frames (``..._ci95``);
    - ``refused``: for every frame without ``pose_success``, why (:func:`why_refused`): how many frames each
      stage or pose-check rule cost; ``another_in_view`` splits off ``other`` the frames the pipeline
      answered with another catalog product truly in view there (IoU >= 0.5 with its box): without a session's
      product hint nothing says which of the two the frame is about;
    - ``alone``: the plain ``product_recall`` and ``part_state_accuracy_4px`` over the frames with no other
      catalog product in view (labelled or cut by the frame edge), beside the plain figures over every frame;
    - ``keypoint_confidence_median``: per keypoint, the crop network's median confidence where the keypoint is
      truly visible (on the true box). A keypoint under ``CROP_KEYPOINT_MIN_CONF`` is left out of most
      poses: the network cannot place it (a point half-way along a plain edge, docs/catalog.md).
    """

    def __init__(self, verify_confidence: float) -> None:
        self.frames = self.detected = self.posed = 0
        self.errors: list[float] = []
        self.plain = Tally(verify_confidence)
        self.alone = Tally(verify_confidence)  # frames without another catalog product in view
        self.refused: dict[str, int] = {}
        self.confidence: dict[str, list[float]] = {}  # keypoint name -> confidences, in the catalog's order

    def add(self, pipeline: Any, jpeg: bytes, truth: dict[str, Any], obs: Any, product: Any,
            camera: CameraIntrinsics) -> None:
        from vision.decode import decode_jpeg

        if not self.frames:
            self.confidence = {k.name: [] for k in product.keypoints}
        self.frames += 1
        frame_truth = FrameTruth.from_record(product, truth)
        self.plain.add(frame_truth, obs, product, camera)
        others = truth.get("others", [])
        if not others:
            self.alone.add(frame_truth, obs, product, camera)
        posed = obs.product_id == product.id and obs.pose is not None
        self.posed += posed
        model_set = pipeline.set_for(product.id)  # the networks that recognise this product, if any do
        if model_set is None:
            self.refused["not_learnt"] = self.refused.get("not_learnt", 0) + 1  # never posed: no network knows it
            return
        image = decode_jpeg(jpeg)
        det = model_set.detector.detect_batch([image])[0]
        names = model_set.detector.names
        self.detected += any(names[int(c)] == product.id and iou(tuple(b), truth["box"]) >= 0.5
                             for b, c in zip(det.xyxy, det.class_id, strict=True))
        if model_set.keypoints is not None:
            found = model_set.keypoints.predict(image, np.asarray(truth["box"], np.float32), product.id)
            seen = np.array(truth["keypoint_visibility"]) == 2
            if seen.any():
                gap = np.linalg.norm(np.asarray(found.uv) - np.array(truth["keypoints"]), axis=1)[seen]
                self.errors.append(float(np.median(gap)))
            for k in np.flatnonzero(seen):
                self.confidence[product.keypoints[k].name].append(float(found.confidence[k]))
        if not posed:
            reason = why_refused(model_set, image, det, np.asarray(truth["box"], np.float32), product, camera)
            if reason == "other" and obs.box is not None and any(
                    o["product"] == obs.product_id and iou(obs.box, o["box"]) >= 0.5 for o in others):
                reason = "another_in_view"
            self.refused[reason] = self.refused.get(reason, 0) + 1

    def summary(self) -> dict[str, Any]:
        errors = sorted(self.errors)
        plain, alone = self.plain.summary(), self.alone.summary()
        return {
            "frames": self.frames,
            "detector_recall": round(self.detected / self.frames, 4) if self.frames else None,
            "keypoint_error_median_px": round(statistics.median(errors), 3) if errors else None,
            "keypoint_error_p90_px": round(errors[int(0.9 * (len(errors) - 1))], 3) if errors else None,
            "pose_success": round(self.posed / self.frames, 4) if self.frames else None,
            "product_recall": plain["product_recall"],
            "product_recall_ci95": plain["product_recall_ci95"],
            "part_state_accuracy_4px": plain["part_state_accuracy_4px"],
            "part_state_accuracy_4px_ci95": plain["part_state_accuracy_4px_ci95"],
            "refused": {r: self.refused[r] for r in REFUSALS if r in self.refused},
            "alone": {"frames": alone["frames"], "product_recall": alone["product_recall"],
                      "part_state_accuracy_4px": alone["part_state_accuracy_4px"]},
            "keypoint_confidence_median": {name: round(statistics.median(c), 3) for name, c in self.confidence.items()
                                           if c},
        }


# What ``refused`` counts, in the order a frame meets them (:func:`why_refused`'s; the caller counts
# ``not_learnt`` and splits ``another_in_view`` off ``other``).
REFUSALS = ("not_learnt", "not_detected", *POSE_REFUSALS, "another_in_view", "other")


def why_refused(model_set: ModelSet, image: np.ndarray, det: Detections, box_truth: np.ndarray, product: Product,
                camera: CameraIntrinsics) -> str:
    """Why ``model_set`` alone does not recognise ``product`` in ``image`` (one of :data:`REFUSALS`;
    ``not_learnt``, no set knowing the product, is counted by the caller). ``not_detected``: no detection, or
    the most confident one ``det`` is another product or misses the true box ``box_truth`` (IoU < 0.5). Else
    the set's own verdict on it (:meth:`ModelSet.observe`): the stage or pose-check rule that refused its first
    look (:data:`vision.pose_check.REFUSALS`), or ``other`` when the set recognises it but the pipeline answered
    otherwise (another set named another product first)."""
    if len(det) == 0:
        return "not_detected"
    best = model_set.pick(det, None)  # the detection observe() looks at first
    if (model_set.detector.names[int(det.class_id[best])] != product.id
            or iou(tuple(det.xyxy[best]), tuple(box_truth)) < 0.5):
        return "not_detected"
    obs = model_set.observe(FrameInput(b"", 0, 0.0, camera), image, det, 0.0, 0.0)
    return "other" if obs.product_id is not None else obs.refused or "other"
