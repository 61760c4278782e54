"""Part states that need a trained model: ports, trays, covers and paper, read from pose-rectified patches.

With the product's pose known, each part's face (a rectangle around its anchor, in the plane the catalog
gives it) maps to the image by a homography. Warping that region to a fixed ``PATCH`` x ``PATCH`` patch
removes perspective, scale and roll, so a small linear model on HOG and colour features separates
"plugged" from "empty" or "open" from "closed" reliably and in well under a millisecond.

Each (product, part) has its own softmax regression over the part's states plus ``hidden``: the part's
place faces the camera but something covers it (jammed paper behind a closed cover). Models are trained on
synthetic renders (``fixlens train parts``) with pose noise like the detector's, and stored in one ``.npz``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import FACING_NORMALS, Part, Product
from vision.errors import ModelUnavailable, VisionError
from vision.types import PartState

PATCH = 32  # pixels, side of the rectified patch
MARGIN = 1.8  # the patch covers the part's size times this, so context (a cable below a plug) is in view
MIN_SIDE_M = 0.028  # ... and at least this much, so a small socket's plug body fits in the patch
HIDDEN = "hidden"
CLASSIFIED_KINDS = frozenset({"led", "port", "tray", "cover", "paper", "cable", "switch"})
LED_SIDE_M = 0.022  # an LED's patch: the lens, its glow and room for pose error, not the label beside it
MIN_READABLE_PX = 4.0  # a part smaller than this in the image cannot be read by anyone: it is "not visible"
# Kinds that sit inside the device, so another part's state (a closed cover, a closed tray) can hide
# them while their place still faces the camera. Only these learn the ``hidden`` class.
HIDEABLE_KINDS = frozenset({"paper"})
CELL = 8  # pixels per HOG cell
BINS = 9  # unsigned orientation bins of 20 degrees
_CELLS = PATCH // CELL
_rows, _cols = np.mgrid[0:PATCH, 0:PATCH]
_CELL_INDEX = ((_rows // CELL) * _CELLS + (_cols // CELL)).ravel() * BINS  # (PATCH*PATCH,) cell offset


def hog(grey: np.ndarray) -> np.ndarray:
    """Dalal-Triggs HOG of a (PATCH, PATCH) grey patch: 8 px cells, 9 unsigned bins, 2 x 2-cell blocks
    with L2-Hys normalisation. (OpenCV 5 moved its HOGDescriptor out of the main package.)"""
    g = grey.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=1)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=1)
    mag, ang = cv2.cartToPolar(gx, gy, angleInDegrees=True)
    bins = ((ang.ravel() % 180.0) // (180.0 / BINS)).astype(np.int64) % BINS
    cells = np.bincount(_CELL_INDEX + bins, weights=mag.ravel(), minlength=_CELLS * _CELLS * BINS)
    cells = cells.reshape(_CELLS, _CELLS, BINS)
    blocks = []
    for y in range(_CELLS - 1):
        for x in range(_CELLS - 1):
            v = cells[y:y + 2, x:x + 2].ravel()
            v = np.minimum(v / (np.linalg.norm(v) + 1e-6), 0.2)
            blocks.append(v / (np.linalg.norm(v) + 1e-6))
    return np.concatenate(blocks)


def face_axes(part: Part) -> tuple[np.ndarray, np.ndarray]:
    """(right, up) unit vectors spanning the part's face, product frame, as seen from outside."""
    normal = np.asarray(FACING_NORMALS[part.facing], dtype=float)
    up = np.array([0.0, 0.0, 1.0]) if abs(normal[2]) < 0.5 else np.array([0.0, 1.0, 0.0])
    right = np.cross(up, normal)
    if abs(normal[2]) >= 0.5 and normal[2] < 0:
        right = -right
    return right / np.linalg.norm(right), up


def face_corners(product: Product, part: Part, states: Mapping[str, str]) -> np.ndarray:
    """(4, 3) metres: the patch rectangle of ``part`` (moved by its state), product frame, in the order
    top-left, top-right, bottom-right, bottom-left as seen from outside."""
    right, up = face_axes(part)
    if part.kind == "led":
        hw = hh = LED_SIDE_M / 2.0
    elif part.kind == "port":
        # Narrow, so a neighbour's plug stays out; tall, so the plug's cable run below is in.
        hw = part.size_mm[0] / 1000.0 * 1.35 / 2.0
        hh = max(part.size_mm[1] / 1000.0 * MARGIN, MIN_SIDE_M) / 2.0
    else:
        hw = max(part.size_mm[0] / 1000.0 * MARGIN, MIN_SIDE_M) / 2.0
        hh = max(part.size_mm[1] / 1000.0 * MARGIN, MIN_SIDE_M) / 2.0
    a = np.asarray(part.anchor, dtype=float)
    local = np.array([a - right * hw + up * hh, a + right * hw + up * hh, a + right * hw - up * hh,
                      a - right * hw - up * hh])
    m = product.part_transform(part.name, dict(states))
    return local @ m[:3, :3].T + m[:3, 3]


def face_patch(image: np.ndarray, product: Product, part: Part, pose: Pose, camera: CameraIntrinsics,
               states: Mapping[str, str], size: int = PATCH, extent: float = 1.0) -> np.ndarray | None:
    """(size, size, 3) uint8 BGR rectified patch of the part's face, or None when the face is behind
    the camera or degenerate in the image. ``extent`` > 1 widens the face rectangle about its centre
    (training cuts a wider patch, then crops it at random offsets)."""
    corners = face_corners(product, part, states)
    if extent != 1.0:
        centre = corners.mean(axis=0)
        corners = centre + (corners - centre) * extent
    pc = pose.transform(corners)
    if (pc[:, 2] <= 1e-3).any():
        return None
    uv = np.stack([camera.fx * pc[:, 0] / pc[:, 2] + camera.cx, camera.fy * pc[:, 1] / pc[:, 2] + camera.cy], 1)
    if cv2.contourArea(uv.astype(np.float32)) < 9.0:
        return None
    dst = np.array([[0, 0], [size - 1, 0], [size - 1, size - 1], [0, size - 1]], np.float32)
    h = cv2.getPerspectiveTransform(uv.astype(np.float32), dst)
    return cv2.warpPerspective(image, h, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def patch_features(patch: np.ndarray) -> np.ndarray:
    """(d,) float32: HOG of the grey patch, a coarse colour layout (4 x 4 cells of mean Lab), and the
    colour of the brightest and of the most colourful pixels (what tells a lit LED's colour, whose
    centre may be overexposed white while its rim carries the hue)."""
    grey = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY)
    hog_features = hog(grey)
    lab = cv2.cvtColor(patch, cv2.COLOR_BGR2LAB).astype(np.float32) / 255.0
    cells = cv2.resize(lab, (4, 4), interpolation=cv2.INTER_AREA).ravel()
    centre = lab[PATCH // 4: 3 * PATCH // 4, PATCH // 4: 3 * PATCH // 4].reshape(-1, 3)
    px = patch[PATCH // 4: 3 * PATCH // 4, PATCH // 4: 3 * PATCH // 4].reshape(-1, 3).astype(np.float32) / 255.0
    value, chroma = px.max(axis=1), px.max(axis=1) - px.min(axis=1)
    k = max(4, len(px) // 16)
    bright = px[np.argsort(value)[-k:]].mean(axis=0)
    colourful = px[np.argsort(chroma)[-k:]].mean(axis=0)
    stats = [*bright, *colourful, *centre.mean(axis=0), float(value.max()), float(chroma.max()),
             float(np.median(value)), grey.std() / 64.0]
    return np.concatenate([hog_features, cells, stats]).astype(np.float32)


@dataclass
class LinearModel:
    """Softmax regression: ``classes[argmax(x_norm @ w + b)]``."""

    classes: tuple[str, ...]
    mean: np.ndarray  # (d,)
    scale: np.ndarray  # (d,)
    w: np.ndarray  # (d, c)
    b: np.ndarray  # (c,)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        z = ((np.atleast_2d(x) - self.mean) / self.scale) @ self.w + self.b
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def fit_softmax(x: np.ndarray, y: np.ndarray, classes: tuple[str, ...], *, l2: float = 1e-3,
                steps: int = 400, lr: float = 0.1, seed: int = 0) -> LinearModel:
    """Full-batch gradient descent with Adam on standardised features; deterministic for a seed."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    xn = (x - mean) / scale
    n, d = xn.shape
    c = len(classes)
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.01, size=(d, c))
    b = np.zeros(c)
    onehot = np.eye(c)[y]
    # Balance classes: rare states (a jammed sheet) matter as much as common ones.
    counts = np.bincount(y, minlength=c).astype(float)
    sample_w = (n / (c * np.maximum(counts, 1.0)))[y][:, None]
    m_w, v_w, m_b, v_b = np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)
    for t in range(1, steps + 1):
        z = xn @ w + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) * sample_w / n
        gw = xn.T @ g + l2 * w
        gb = g.sum(axis=0)
        for param, grad, m, v in ((w, gw, m_w, v_w), (b, gb, m_b, v_b)):
            m *= 0.9
            m += 0.1 * grad
            v *= 0.999
            v += 0.001 * grad * grad
            param -= lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    return LinearModel(classes, mean.astype(np.float32), scale.astype(np.float32), w.astype(np.float32),
                       b.astype(np.float32))


class PatchClassifier:
    """Reads ports, trays, covers and paper from rectified patches, one linear model per (product, part)."""

    def __init__(self, models: Mapping[tuple[str, str], LinearModel]) -> None:
        self.models = dict(models)

    @classmethod
    def load(cls, path: str | Path) -> PatchClassifier:
        p = Path(path)
        if not p.is_file():
            raise ModelUnavailable(f"{p}: part-state model not found; train it with `fixlens train parts`")
        try:
            data = np.load(p, allow_pickle=False)
            index = json.loads(str(data["index"]))
            models = {}
            for key, classes in index.items():
                product_id, part = key.split("/", 1)
                models[(product_id, part)] = LinearModel(
                    tuple(classes), data[f"{key}/mean"], data[f"{key}/scale"], data[f"{key}/w"], data[f"{key}/b"])
        except (OSError, KeyError, ValueError) as exc:
            raise VisionError(f"{p}: not a part-state model file ({exc})") from None
        return cls(models)

    def save(self, path: str | Path) -> None:
        arrays: dict[str, np.ndarray] = {}
        index = {}
        for (product_id, part), m in sorted(self.models.items()):
            key = f"{product_id}/{part}"
            index[key] = list(m.classes)
            arrays.update({f"{key}/mean": m.mean, f"{key}/scale": m.scale, f"{key}/w": m.w, f"{key}/b": m.b})
        np.savez_compressed(path, index=np.array(json.dumps(index)), **arrays)

    def handles(self, product_id: str, part: str) -> bool:
        return (product_id, part) in self.models

    def classify(self, image: np.ndarray, product: Product, part: Part, pose: Pose, camera: CameraIntrinsics,
                 states: Mapping[str, str], uv: tuple[float, float] | None) -> PartState:
        model = self.models.get((product.id, part.name))
        if model is None:
            return PartState(None, 0.0, True, uv)
        patch = face_patch(image, product, part, pose, camera, states)
        if patch is None:
            return PartState(None, 0.0, False, uv)
        probs = model.probabilities(patch_features(patch))[0]
        best = int(np.argmax(probs))
        label = model.classes[best]
        if label == HIDDEN:
            return PartState(None, 0.0, False, uv)
        return PartState(label, float(probs[best]), True, uv)


WIDE_ROT_DEG = 1.5  # a close-up's PnP error (the product filling the frame, half its keypoints outside)
WIDE_TRANS_FRAC = 0.02


def perturb_pose(pose: Pose, rng: np.random.Generator, rot_deg: float = 0.6, trans_frac: float = 0.008) -> Pose:
    """A pose off by about what keypoint-based PnP gets wrong, so training patches look like live ones."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = math.radians(rng.normal(0, rot_deg))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    r = np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)
    t = pose.t * (1 + rng.normal(0, trans_frac)) + rng.normal(0, trans_frac * 0.3, 3) * np.linalg.norm(pose.t)
    return Pose(r @ pose.R, t)


def train_patch_classifier(datasets: Path | Iterable[Path], seed: int = 0, jitter: int = 2,
                           pose_source=None) -> tuple[PatchClassifier, dict]:
    """Fit one model per (product, part) on ``<dataset>/truth/train``; report accuracy on ``.../val``.

    Patches are cut with ``jitter`` noisy copies of the true pose and, when ``pose_source(image, record) ->
    Pose | None`` is given, also with the pose it returns (the live pipeline's own estimate, so training
    patches carry its real errors)."""
    folders = [datasets] if isinstance(datasets, Path) else list(datasets)
    from product_models.catalog import default_catalog

    catalog = default_catalog()
    rng = np.random.default_rng(seed)

    def gather(split: str) -> dict[tuple[str, str], tuple[list[np.ndarray], list[str]]]:
        rows: dict[tuple[str, str], tuple[list[np.ndarray], list[str]]] = {}
        files = sorted(f for d in folders for f in (d / "truth" / split).glob("*.json"))
        for key, feats, label in training_rows(files, catalog.get, rng, jitter, pose_source):
            xs, ys = rows.setdefault(key, ([], []))
            xs.append(feats)
            ys.append(label)
        return rows

    train_rows, val_rows = gather("train"), gather("val")
    models: dict[tuple[str, str], LinearModel] = {}
    report: dict[str, dict] = {}
    for key, (xs, ys) in sorted(train_rows.items()):
        product = catalog.get(key[0])
        part = product.part(key[1])
        classes = (*part.states, HIDDEN) if part.kind in HIDEABLE_KINDS else part.states
        y = np.array([classes.index(v) for v in ys])
        model = fit_softmax(np.stack(xs), y, classes, seed=seed)
        models[key] = model
        entry = {"train_rows": len(ys), "train_accuracy": _accuracy(model, np.stack(xs), y)}
        if key in val_rows:
            vx, vy = val_rows[key]
            keep = [i for i, v in enumerate(vy) if v in classes]
            vx, vyi = [vx[i] for i in keep], np.array([classes.index(vy[i]) for i in keep])
            entry.update(val_rows=len(vy), val_accuracy=_accuracy(model, np.stack(vx), vyi))
        report[f"{key[0]}/{key[1]}"] = entry
    return PatchClassifier(models), report


def _accuracy(model: LinearModel, x: np.ndarray, y: np.ndarray) -> float:
    return round(float((model.probabilities(x).argmax(axis=1) == y).mean()), 4)


def training_rows(truth_files: Iterable[Path], product_lookup, rng: np.random.Generator, jitter: int = 2,
                  pose_source=None):
    """Yield ((product_id, part), features, label) from synthetic ground truth (``vision.training.synth``)."""
    for key, patch, label in training_patches(truth_files, product_lookup, rng, jitter, pose_source):
        yield key, patch_features(patch), label


def training_patches(truth_files: Iterable[Path], product_lookup, rng: np.random.Generator, jitter: int = 2,
                     pose_source=None, size: int = PATCH, extent: float = 1.0, wide_jitter: int = 0):
    """Yield ((product_id, part), patch, label) from synthetic ground truth: one patch per pose used (the
    live estimate when ``pose_source`` gives one, ``jitter`` slightly noisy true poses, ``wide_jitter``
    true poses off by about a close-up's PnP error). ``size`` and ``extent`` as in :func:`face_patch`."""
    for tf in truth_files:
        rec = json.loads(tf.read_text())
        if not rec.get("product"):
            continue
        product: Product = product_lookup(rec["product"])
        image = cv2.imread(str(tf.parent.parent.parent / "images" / tf.parent.name / (tf.stem + ".jpg")))
        if image is None:
            continue
        cam = CameraIntrinsics(**rec["camera"])
        pose = Pose(np.array(rec["pose"]["R"]), np.array(rec["pose"]["t"]))
        states = rec["states"]
        estimated = pose_source(image, rec) if pose_source is not None else None
        for part in product.stateful_parts():
            if part.kind not in CLASSIFIED_KINDS:
                continue
            info = rec["parts"][part.name]
            u, v = info["uv"]
            if not (0 <= u < cam.width and 0 <= v < cam.height):
                continue
            if info["visible"]:
                label = info["state"]
            elif part.kind in HIDEABLE_KINDS:
                label = HIDDEN
            else:
                continue  # covered by a hand or an object: no label to learn from
            # Place the patch with the states a live pipeline would assume (trays and covers at rest
            # unless they are the part itself), exactly like PatchClassifier.classify is called.
            place = {k: s for k, s in states.items() if k == part.attached_to}
            from vision.parts import visible_in_some_state

            projected = visible_in_some_state(product, part, pose, cam, place)
            if not projected.visible or min(projected.size_px) < MIN_READABLE_PX:
                continue  # the live pipeline does not ask about parts facing away, out of frame or tiny
            # The live pipeline's own estimate (when given) carries its real errors; noisy true poses
            # keep every labelled frame in, including those the live pipeline missed.
            poses = ([estimated] if estimated is not None else []) + [perturb_pose(pose, rng) for _ in range(jitter)]
            poses += [perturb_pose(pose, rng, WIDE_ROT_DEG, WIDE_TRANS_FRAC) for _ in range(wide_jitter)]
            for use in poses:
                patch = face_patch(image, product, part, use, cam, place, size, extent)
                if patch is not None:
                    yield (product.id, part.name), patch, label
