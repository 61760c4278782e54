"""How the whole pipeline holds up under one degradation at a time: ``fixlens vision robustness``.

For each condition (:data:`vision.training.conditions.CONDITIONS`) it renders its own held-out frames with
:class:`product_models.render.Renderer` (exact ground truth) from seeds no training run uses (base seed
``ROBUSTNESS_SEED``), applies that condition's one degradation, and runs every frame as a JPEG through the
real :class:`vision.pipeline.Pipeline` with the true camera intrinsics. Three kinds of input:

- **frames**: single frames with a device in view, scored by :class:`vision.training.scoring.Tally`
  (recall, part states over every truly visible part, pose error over all keypoints, unsafe reads);
- **clips**: ``CLIP_FRAMES`` frames at ``CLIP_FPS`` of a device with one part in a fault state, filmed by a
  slowly moving handheld camera, through the session loop of ``ar_server/session/live.py`` (detect, then
  track under :class:`vision.tracking.TrackPolicy`), :class:`vision.smoothing.TemporalSmoother`
  and the step verifier (:class:`vision.verification.StepVerifier`). A clip is a *false verification* when
  the verifier ever reports the unfixed part in its healthy state; ``fault_confirmed`` counts clips where it
  reported the true fault state at least once;
- **product-free frames**: the real photos of scikit-image and matplotlib and drawn walls and desks (plain
  surfaces under ``plain_surface``), degraded the same way; any product reported is a *false detection*.
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from product_models.catalog import Catalog, Product, default_catalog
from vision.pipeline import Pipeline
from vision.smoothing import TemporalSmoother
from vision.tracking import Tracker
from vision.training import conditions as cn
from vision.training.degradations import Degraded, InView
from vision.training.scoring import FrameTruth, Tally, verifying_confidence, write_misreads
from vision.types import FrameInput, Observation, PartState

if TYPE_CHECKING:
    from product_models.render import Renderer

# Seeds: training data uses 1000-6999 and 8000-8999, and `fixlens vision eval` 9001; robustness frames come
# from 7xxx.
ROBUSTNESS_SEED = 7301
TRAINING_SEEDS = (range(1000, 7000), range(8000, 9000))


def training_seed(seed: int) -> bool:
    return any(seed in r for r in TRAINING_SEEDS)


def training_seeds_text() -> str:
    return " and ".join(f"{r.start}-{r.stop - 1}" for r in TRAINING_SEEDS)
DEFAULT_FRAMES = 150
DEFAULT_CLIPS = 14
DEFAULT_BACKGROUNDS = 24  # drawn product-free frames per condition, beside the real photos
CLIP_FRAMES = 20
CLIP_FPS = 8.0
# Per-condition targets (the model card): recall >= 0.95 (>= 0.90 for a device at 10 % width, >= 0.99 as rendered)
# and part states >= 4 px >= 0.95 (>= 0.98 as rendered).
TARGETS = {"product_recall": 0.95, "part_state_accuracy_4px": 0.95}
DEBUG_FRAMES = 3  # sample frames per condition written by --debug-dir
DEBUG_FALSE_DETECTIONS = 3  # ... and at most this many of its false detections
# One unfixed part per clip (a fault state, never the healthy one); clips cycle through these. The shipped
# products' lists were chosen by hand (their reported figures use them); any other product's come from its
# catalog entry (:func:`clip_faults`), and so does a catalog's own product that reuses a shipped id with other
# parts or states.
CLIP_FAULTS: dict[str, tuple[tuple[str, str], ...]] = {
    "router_ax1800": (("port_wan", "empty"), ("led_internet", "red"), ("port_lan1", "empty"),
                      ("led_power", "amber"), ("led_wifi", "off")),
    "printer_lx400": (("cover_front", "open"), ("tray_paper", "open"), ("led_status", "red"),
                      ("led_status", "amber"), ("led_jam", "amber")),
}


def clip_fault(product: Product, n: int, key: int) -> tuple[str, str]:
    """The (part, fault state) of ``product``'s ``n``-th clip in the condition whose name's CRC-32 is ``key``.
    A product's list can be longer than its share of a condition's clips, so each condition starts at its own
    place in it and every fault is filmed over the conditions (a shipped product's list starts at 0)."""
    faults = clip_faults(product)
    start = 0 if _hand_picked(product) is not None else key % len(faults)
    return faults[(n + start) % len(faults)]


def clip_faults(product: Product) -> tuple[tuple[str, str], ...]:
    """The (part, fault state) pairs ``product``'s clips cycle through: :data:`CLIP_FAULTS`' list for a shipped
    product, else every state other than the healthy one of every part that has a healthy state, in catalog
    order (every such part is one a step can verify). Empty for a product with no such part."""
    picked = _hand_picked(product)
    if picked is not None:
        return picked
    return tuple((part.name, state) for part in product.stateful_parts() if part.healthy is not None
                 for state in part.states if state != part.healthy)


def _hand_picked(product: Product) -> tuple[tuple[str, str], ...] | None:
    """:data:`CLIP_FAULTS`' list for ``product`` when its every entry is a fault ``product`` really has (a
    catalog may bring its own product under a shipped id), else None."""
    picked = CLIP_FAULTS.get(product.id)
    if picked is None or not all(product.has_part(name) and state in product.part(name).states
                                 and state != product.part(name).healthy for name, state in picked):
        return None
    return picked


class Verifier(Protocol):
    """What :class:`vision.verification.StepVerifier` offers: one frame's raw observation (and the same frame's
    smoothed states) in, every known part's verified state (or state None) out."""

    def reset(self) -> None: ...

    def update(self, now_ms: float, obs: Observation,
               smoothed: Mapping[str, PartState] | None = None) -> Mapping[str, PartState]: ...


def default_verifier() -> Callable[[], Verifier] | None:
    """``vision.verification.StepVerifier`` when that module is installed, else None."""
    try:
        from vision.verification import StepVerifier
    except ImportError:
        return None
    return StepVerifier


@dataclasses.dataclass
class DebugFrame:
    """A frame kept for the debug contact sheet."""

    label: str
    image: np.ndarray  # (h, w, 3) uint8 RGB, as the pipeline decoded it
    box: np.ndarray | None  # (4,) true product box, pixels
    covered: np.ndarray | None  # (h, w) bool


def render_in_view(renderer: Any, draw: Any, what: str) -> tuple[Any, Any]:
    """(scene, render result) of the first of ``draw(attempt)``'s scenes whose render shows the device; a
    random view can miss it (a close-up aimed past the product), so up to 20 draws are tried."""
    for attempt in range(20):
        scene = draw(attempt)
        result = renderer.render(scene.product, scene.states, scene.pose, scene.camera, scene.lighting,
                                 scene.background)
        if result.truth.product_box is not None:
            return scene, result
    raise RuntimeError(f"{what}: no view in 20 draws showed the device")


def encode(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def _decoded(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]


class RobustnessRun:
    """Loads the pipeline and the renderer once; :meth:`condition` scores one condition."""

    def __init__(self, *, frames: int, clips: int, backgrounds: int, seed: int = ROBUSTNESS_SEED,
                 weights_dir: Path | None = None, verifier: Callable[[], Verifier] | None = None,
                 debug: bool = False, progress: bool = False, misreads: bool = False,
                 catalog: Catalog | None = None) -> None:
        from product_models.render import Renderer
        from vision.training.photos import real_photos

        self.frames, self.clips, self.backgrounds, self.seed = frames, clips, backgrounds, seed
        self.catalog = catalog if catalog is not None else default_catalog()
        self.products: list[Product] = [self.catalog.get(pid) for pid in sorted(self.catalog.products)]
        self.filmed = [p for p in self.products if clip_faults(p)]  # the products a clip can show unfixed
        self.pipeline = (Pipeline(weights_dir, backend="onnx", catalog=self.catalog) if weights_dir
                         else Pipeline(backend="onnx", catalog=self.catalog))
        self.renderer = Renderer(640, 480)
        photos = real_photos()
        self.photos = [np.ascontiguousarray(img[:, :, ::-1]) for _, img in photos]  # RGB
        self.photo_names = [name for name, _ in photos]
        self.verifier = verifier
        self.confidence, self.confidence_from = verifying_confidence()
        self.debug, self.progress = debug, progress
        self.samples: dict[str, list[DebugFrame]] = {}
        self.by_product: dict[str, Tally] = {}  # each product's frames, pooled over the conditions run so far
        # With ``misreads``: every truly visible part >= 4 px read wrong, with its condition and frame.
        self.misreads: list[dict[str, Any]] | None = [] if misreads else None

    def close(self) -> None:
        self.renderer.close()

    def condition(self, cond: cn.Condition) -> tuple[dict[str, Any], Tally]:
        """One condition's figures (see the module docstring) and its tally, for pooling."""
        from tqdm import tqdm

        t0 = time.perf_counter()
        key = zlib.crc32(cond.name.encode())
        negatives = len(self.photos) + self.backgrounds
        self.samples[cond.name] = []
        bar = tqdm(total=self.frames + self.clips * CLIP_FRAMES + negatives, desc=cond.name, unit="frame",
                   disable=not self.progress, leave=False)
        products: dict[str, Tally] = {}  # each product's frames; the condition's tally pools them
        for i in range(self.frames):
            self._frame(cond, key, i, products)
            bar.update()
        tally = Tally(self.confidence)
        for t in products.values():
            tally.merge(t)
        clip_runs = ([self._clip(cond, key, j, bar) for j in range(self.clips)] if self.verifier and self.filmed
                     else [])
        false_detections = photo_detections = 0
        for k in range(negatives):
            found = self._negative(cond, key, k)
            false_detections += found
            photo_detections += found and k < len(self.photos)
            bar.update()
        bar.close()
        clips = len(clip_runs)
        false_verifications = sum(run[0] for run in clip_runs)
        out: dict[str, Any] = {"description": cond.description, "phone": cond.phone, **tally.summary(),
                               "clips": clips if self.verifier else None,
                               "false_verifications": false_verifications if self.verifier else None,
                               "false_verification_rate": round(false_verifications / clips, 4) if clips else None,
                               "fault_confirmed": sum(run[1] for run in clip_runs) if self.verifier else None,
                               "negatives": negatives, "false_detections": false_detections,
                               "false_detection_rate": round(false_detections / negatives, 4) if negatives else None,
                               "false_detections_real_photos": photo_detections,
                               "by_product": product_figures(products),
                               "seconds": round(time.perf_counter() - t0, 1)}
        for pid, t in products.items():
            self.by_product.setdefault(pid, Tally(self.confidence)).merge(t)
        return out, tally

    # ---- frames --------------------------------------------------------------------------------------

    def _frame(self, cond: cn.Condition, key: int, i: int, products: dict[str, Tally]) -> None:
        scene, result = render_in_view(
            self.renderer, lambda attempt: cn.frame_scene(cond, self.products, self.seed, i, attempt, self.photos),
            f"frame {i} of {cond.name}")
        out = self._degrade(cond, result.image, InView(scene.product, result.truth), cn.stream(self.seed, 6, key, i),
                            cn.stream(self.seed, 7, key, i))
        truth = FrameTruth.from_render(scene.product, result.truth, out.covered)
        jpeg = encode(out.image, cond.jpeg_quality)
        obs = self.pipeline.process(FrameInput(jpeg, i, 0.0, scene.camera))
        tally = products.setdefault(scene.product.id, Tally(self.confidence))
        wrong = tally.add(truth, obs, scene.product, scene.camera)
        if self.misreads is not None:
            self.misreads += [{"condition": cond.name, "frame": i, **m.to_json()} for m in wrong]
        if self.debug and i < DEBUG_FRAMES:
            label = f"{cond.name} #{i}: {'found' if obs.product_id == scene.product.id else 'missed'}"
            self.samples[cond.name].append(DebugFrame(label, _decoded(jpeg), truth.box, out.covered))

    @staticmethod
    def _degrade(cond: cn.Condition, image: np.ndarray, view: InView | None, look: np.random.Generator,
                 noise: np.random.Generator) -> Degraded:
        return cond.degrade(image, view, look, noise) if cond.degrade is not None else Degraded(image)

    # ---- clips ---------------------------------------------------------------------------------------

    def _clip(self, cond: cn.Condition, key: int, j: int, bar: Any) -> tuple[bool, bool]:
        """(false verification, fault confirmed) for clip ``j``: the session loop of live.py, offline."""
        assert self.verifier is not None
        product = self.filmed[j % len(self.filmed)]
        part, fault = clip_fault(product, j // len(self.filmed), key)
        healthy = product.part(part).healthy
        clip = cn.clip_scene(cond, product, part, fault, self.seed, j, CLIP_FRAMES, CLIP_FPS, self.photos)
        smoother, verifier = TemporalSmoother(), self.verifier()
        tracker, smoothed_product = Tracker(), None
        false_verification = confirmed = False
        for frame in clip_frames(self.renderer, cond, clip, self.seed, j, CLIP_FPS):
            f, ts, jpeg = frame.index, frame.ts, frame.jpeg
            obs = self.pipeline.process(FrameInput(jpeg, f, ts, clip.camera, track=tracker.track_for(ts)))
            tracker.follow(obs, ts)
            if obs.product_id is not None and obs.product_id != smoothed_product:
                smoother.reset()
                verifier.reset()
                smoothed_product = obs.product_id
            now_ms = ts * 1000.0
            smoothed = smoother.update(now_ms, obs.parts if obs.product_id is not None else {})
            # As live.py: the verifier rules on raw reads (their size and reason); the smoothed states only
            # tell it which LEDs blink.
            verified = verifier.update(now_ms, obs, smoothed)
            got = verified.get(part)
            if smoothed_product == product.id and got is not None:
                false_verification |= got.state == healthy
                confirmed |= got.state == fault
            if self.debug and j == 0 and f in (0, CLIP_FRAMES - 1):
                self.samples[cond.name].append(DebugFrame(f"clip {part}={fault} f{f}", _decoded(jpeg), frame.box,
                                                      frame.covered))
            bar.update()
        return false_verification, confirmed

    # ---- product-free frames -------------------------------------------------------------------------

    def _negative(self, cond: cn.Condition, key: int, k: int) -> bool:
        """Whether the pipeline reports a product on product-free frame ``k`` (photos first, then drawn)."""
        w, h = cond.width, cond.height
        rng = cn.stream(self.seed, 10, k)
        if k < len(self.photos):
            image = cn.cover_crop(self.photos[k], w, h, rng)
        elif cond.background == "plain":
            image = cn.plain_surface(rng, w, h)
        else:
            image = (cn.wall if k % 2 == 0 else cn.desk)(rng, w, h)
        out = self._degrade(cond, image, None, cn.stream(self.seed, 11, key, k), cn.stream(self.seed, 12, key, k))
        jpeg = encode(out.image, cond.jpeg_quality)
        found = self.pipeline.process(FrameInput(jpeg, k, 0.0, cond.camera)).product_id is not None
        shown = sum(1 for d in self.samples[cond.name] if d.label.startswith("FOUND"))
        if self.debug and (k == len(self.photos) or (found and shown < DEBUG_FALSE_DETECTIONS)):
            name = self.photo_names[k] if k < len(self.photos) else ("plain" if cond.background == "plain"
                                                                      else ("wall", "desk")[k % 2])
            self.samples[cond.name].append(DebugFrame(f"{'FOUND' if found else 'none'}: {name}", _decoded(jpeg),
                                                  None, out.covered))
        return found


def product_figures(tallies: Mapping[str, Tally]) -> dict[str, dict[str, Any]]:
    """Each product's plain figures over its own frames (a condition's, or every condition's pooled): the
    frame figures of :meth:`Tally.summary` a product is judged by, beside the figures over all products."""
    keep = ("frames", "product_recall", "product_recall_ci95", "part_state_accuracy_4px",
            "part_state_accuracy_4px_ci95", "part_state_count_4px", "part_state_accuracy_all", "abstained_share",
            "pose_error_median_px", "pose_missing", "unsafe_reads")
    return {pid: {k: v for k, v in t.summary().items() if k in keep} for pid, t in sorted(tallies.items())}


# ---- clip frames --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ClipFrame:
    """One frame of a clip, as a phone would send it."""

    index: int
    ts: float  # seconds since the clip's first frame
    jpeg: bytes
    box: np.ndarray | None  # (4,) true product box, pixels; None when the device is out of view
    covered: np.ndarray | None  # (h, w) bool: pixels the degradation hid (a hand, glare), if it hides any


def clip_frames(renderer: Renderer, cond: cn.Condition, clip: cn.Clip, seed: int, index: int,
                fps: float) -> Iterator[ClipFrame]:
    """The frames of ``clip`` (:func:`vision.training.conditions.clip_scene` with ``seed`` and ``index``), rendered,
    degraded by ``cond`` and JPEG-encoded as the robustness clips are: the degradation's streams are keyed by
    ``seed``, the condition's name, ``index`` and (for the noise) the frame."""
    key = zlib.crc32(cond.name.encode())
    for f, pose in enumerate(clip.poses):
        result = renderer.render(clip.product, clip.states, pose, clip.camera, clip.lighting, clip.background)
        view = InView(clip.product, result.truth) if result.truth.product_box is not None else None
        out = RobustnessRun._degrade(cond, result.image, view, cn.stream(seed, 8, key, index),
                                     cn.stream(seed, 9, key, index, f))
        yield ClipFrame(f, f / fps, encode(out.image, cond.jpeg_quality),
                        None if view is None else result.truth.product_box, out.covered)


def run_robustness(conditions: Sequence[str], *, frames: int = DEFAULT_FRAMES, clips: int = DEFAULT_CLIPS,
                   backgrounds: int = DEFAULT_BACKGROUNDS, seed: int = ROBUSTNESS_SEED,
                   weights_dir: Path | None = None, verifier: Callable[[], Verifier] | None = None,
                   debug_dir: Path | None = None, progress: bool = False,
                   misreads_path: Path | None = None) -> dict[str, Any]:
    """Score every condition named in ``conditions``; ``verifier`` builds one step verifier per clip (clips
    are skipped, and their figures None, without one). With ``debug_dir``, sample frames of each condition
    and a contact sheet of them all are written there; with ``misreads_path``, a JSON list of every part
    >= 4 px read wrong (:class:`vision.training.scoring.Misread`, with its condition and frame index)."""
    unknown = [name for name in conditions if name not in cn.CONDITIONS]
    if unknown:
        raise ValueError(f"unknown condition {unknown[0]!r}: expected one of {', '.join(cn.CONDITIONS)}")
    t0 = time.perf_counter()
    run = RobustnessRun(frames=frames, clips=clips, backgrounds=backgrounds, seed=seed, weights_dir=weights_dir,
                        verifier=verifier, debug=debug_dir is not None, progress=progress,
                        misreads=misreads_path is not None)
    per_condition: dict[str, dict[str, Any]] = {}
    pooled = Tally(run.confidence)
    try:
        for name in conditions:
            per_condition[name], tally = run.condition(cn.CONDITIONS[name])
            pooled.merge(tally)
    finally:
        run.close()
    overall: dict[str, Any] = pooled.summary()
    for count in ("clips", "false_verifications", "fault_confirmed", "negatives", "false_detections",
                  "false_detections_real_photos"):
        values = [c[count] for c in per_condition.values()]
        overall[count] = None if any(v is None for v in values) else sum(values)
    overall["by_product"] = product_figures(run.by_product)
    overall["false_verification_rate"] = (round(overall["false_verifications"] / overall["clips"], 4)
                                          if overall["clips"] else None)
    overall["false_detection_rate"] = (round(overall["false_detections"] / overall["negatives"], 4)
                                       if overall["negatives"] else None)
    report = {
        "seed": seed, "frames_per_condition": frames, "clips_per_condition": clips, "clip_frames": CLIP_FRAMES,
        "clip_fps": CLIP_FPS, "backgrounds_per_condition": backgrounds, "real_photos": len(run.photos),
        "backend": run.pipeline.backend, "verify_confidence": run.confidence,
        "verify_confidence_from": run.confidence_from,
        "verifier": None if verifier is None else f"{verifier.__module__}.{getattr(verifier, '__qualname__', '?')}",
        "targets": TARGETS, "conditions": per_condition, "overall": overall,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if debug_dir is not None:
        from vision.training.robustness_report import write_debug

        write_debug(debug_dir, run.samples)
    if misreads_path is not None:
        write_misreads(misreads_path, run.misreads or [])
    return report
