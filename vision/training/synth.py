"""Synthetic training and evaluation data: catalog products rendered with exact labels.

Each sample is a headless render of one product in random part states, from a random handheld-like
viewpoint (product width 15-80 % of the frame), under random light, over a random background, then
degraded like a phone frame: partial occlusion, motion blur, sensor noise and JPEG quality 50-95.
A share of samples holds no product (negatives).

Backgrounds are procedural or scikit-image's *texture* images (brick, grass, gravel). The real photos
shipped in scikit-image and matplotlib are reserved for evaluation (false positives) and never used
here. Colour augmentation keeps hue fixed: a hue shift can turn a red LED green.

Output (Ultralytics pose format)::

    DIR/data.yaml                  names, kpt_shape, flip_idx, train/val folders
    DIR/images/{train,val}/N.jpg
    DIR/labels/{train,val}/N.txt   class cx cy w h  x1 y1 v1 ... (normalised; v: 0 out of frame,
                                   1 in frame but hidden, 2 visible)
    DIR/truth/{train,val}/N.json   exact ground truth: states, part boxes/visibility, pose, camera
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from product_models.backdrop import random_background
from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import Catalog, Product, default_catalog

WIDTH, HEIGHT = 640, 480
NEGATIVE_SHARE = 0.08
OCCLUSION_P = 0.35
BLUR_P = 0.3
TEXTURES = ("brick", "grass", "gravel")  # scikit-image textures: allowed as backgrounds


@dataclass(frozen=True)
class Sample:
    """One rendered, degraded frame with its labels."""

    image: np.ndarray  # (h, w, 3) uint8 RGB, before JPEG
    jpeg_quality: int
    product: Product | None
    label_line: str | None  # Ultralytics pose label, None for a negative
    truth: dict[str, Any]


def class_names(catalog: Catalog) -> list[str]:
    """Detector class index -> product id (sorted, so the order is stable across runs)."""
    return sorted(catalog.products)


def keypoint_count(catalog: Catalog) -> int:
    counts = {len(p.keypoints) for p in catalog}
    if len(counts) != 1:
        raise ValueError(f"every product needs the same number of keypoints for one pose model, got {counts}")
    return counts.pop()


def flip_index(product: Product) -> list[int]:
    """Keypoint index after a left-right mirror: names swap ``left``/``right``."""
    names = [k.name for k in product.keypoints]
    out = []
    for name in names:
        swapped = name.replace("left", "\0").replace("right", "left").replace("\0", "right")
        out.append(names.index(swapped) if swapped in names else names.index(name))
    return out


class Synthesizer:
    """Renders samples deterministically for a seed. Reuses one renderer."""

    def __init__(self, seed: int, catalog: Catalog | None = None, width: int = WIDTH, height: int = HEIGHT,
                 negative_share: float = NEGATIVE_SHARE) -> None:
        from product_models.render import Renderer

        self.catalog = catalog or default_catalog()
        self.names = class_names(self.catalog)
        self.width, self.height = width, height
        self.negative_share = negative_share
        self.rng = np.random.default_rng(seed)
        self.renderer = Renderer(width, height)
        self._textures = _load_textures()

    def close(self) -> None:
        self.renderer.close()

    def sample(self) -> Sample:
        from product_models.render import Lighting

        rng = self.rng
        background = random_background(rng, self.width, self.height, self._textures)
        quality = int(rng.integers(50, 96))
        if rng.random() < self.negative_share:
            image = degrade(background, rng, occluder_box=None)[0]
            return Sample(image, quality, None, None, {"product": None, "jpeg_quality": quality})
        product = self.catalog.get(self.names[int(rng.integers(len(self.names)))])
        states = random_states(product, rng)
        camera = random_camera(rng, self.width, self.height)
        pose = random_pose(product, camera, rng)
        result = self.renderer.render(product, states, pose, camera, lighting=Lighting.random(rng),
                                      background=background)
        truth = result.truth
        if truth.product_box is None:  # the random view missed the product: draw again
            return self.sample()
        image, occluder = degrade(result.image, rng, occluder_box=truth.product_box)
        kp_vis = np.where(truth.keypoint_visible, 2, 1)
        in_frame = ((truth.keypoints[:, 0] >= 0) & (truth.keypoints[:, 0] <= self.width - 1)
                    & (truth.keypoints[:, 1] >= 0) & (truth.keypoints[:, 1] <= self.height - 1))
        kp_vis = np.where(in_frame, kp_vis, 0)
        parts = {}
        for name, pt in truth.parts.items():
            visible = pt.visible and not _inside(occluder, pt.center_uv)
            parts[name] = {"state": pt.state, "visible": bool(visible), "uv": [float(v) for v in pt.center_uv],
                           "box": None if pt.box is None else [float(v) for v in pt.box]}
        if occluder is not None:
            for i, uv in enumerate(truth.keypoints):
                if kp_vis[i] == 2 and _inside(occluder, uv):
                    kp_vis[i] = 1
        label = pose_label(self.names.index(product.id), truth.product_box, truth.keypoints, kp_vis,
                           self.width, self.height)
        record = {
            "product": product.id, "jpeg_quality": quality, "states": states,
            "box": [float(v) for v in truth.product_box], "keypoints": truth.keypoints.tolist(),
            "keypoint_visibility": kp_vis.tolist(), "parts": parts,
            "pose": {"R": pose.R.tolist(), "t": pose.t.tolist()},
            "camera": {"fx": camera.fx, "fy": camera.fy, "cx": camera.cx, "cy": camera.cy,
                       "width": camera.width, "height": camera.height},
            "occluder": None if occluder is None else [float(v) for v in occluder],
        }
        return Sample(image, quality, product, label, record)

    def __iter__(self) -> Iterator[Sample]:
        while True:
            yield self.sample()


def random_states(product: Product, rng: np.random.Generator) -> dict[str, str]:
    """Every stateful part in a random state; half the time a part keeps its healthy state, so
    realistic combinations are common but every state is well represented."""
    out = {}
    for part in product.stateful_parts():
        if rng.random() < 0.4 and part.healthy is not None:
            out[part.name] = part.healthy
        else:
            out[part.name] = part.states[int(rng.integers(len(part.states)))]
    return out


def random_camera(rng: np.random.Generator, width: int, height: int) -> CameraIntrinsics:
    """Phone-like intrinsics: horizontal FOV 55-72 degrees, principal point near the centre."""
    cam = CameraIntrinsics.from_fov(width, height, float(rng.uniform(55.0, 72.0)))
    return CameraIntrinsics(cam.fx, cam.fx * float(rng.uniform(0.995, 1.005)),
                            cam.cx + float(rng.normal(0, 4)), cam.cy + float(rng.normal(0, 4)), width, height)


def random_pose(product: Product, camera: CameraIntrinsics, rng: np.random.Generator) -> Pose:
    """A handheld view: any yaw, looking down 5-75 degrees, slight roll, product width 15-80 % of the
    frame, off-centre as far as its size allows."""
    w, d, h = product.size_m
    extent = math.hypot(w, d)  # the widest the footprint can look, seen along a diagonal
    fraction = float(rng.uniform(0.15, 0.80))
    distance = camera.fx * extent / (fraction * camera.width)
    yaw = float(rng.uniform(-180.0, 180.0))
    pitch = float(rng.uniform(5.0, 75.0))
    roll = float(rng.normal(0.0, 7.0))
    centre = np.array([0.0, 0.0, h / 2.0])
    base = Pose.orbit(yaw, pitch, distance, target=tuple(centre), roll_deg=roll)
    # Shift the product off-centre by turning the camera a little: move the look-at point sideways.
    room = 0.42 * (1.0 - fraction)  # a large product has little room to move before it leaves the frame
    du, dv = rng.uniform(-room, room) * camera.width, rng.uniform(-room, room) * camera.height
    shift_cam = np.array([-du / camera.fx, -dv / camera.fy, 0.0]) * distance
    eye = base.camera_position
    target = centre + base.R.T @ shift_cam
    return Pose.look_at(eye, target, roll_deg=roll)


def degrade(image: np.ndarray, rng: np.random.Generator,
            occluder_box: np.ndarray | None) -> tuple[np.ndarray, tuple[float, float, float, float] | None]:
    """Phone-frame artefacts: a partial occluder over the product, motion blur, gain and noise.
    Returns the image and the occluder's box (x1, y1, x2, y2) or None."""
    img = image.astype(np.float32)
    occluder = None
    if occluder_box is not None and rng.random() < OCCLUSION_P:
        x1, y1, x2, y2 = (float(v) for v in occluder_box)
        bw, bh = max(x2 - x1, 4.0), max(y2 - y1, 4.0)
        ow, oh = bw * rng.uniform(0.15, 0.45), bh * rng.uniform(0.15, 0.45)
        # Enter from a side, like a hand or a cable in front of the device.
        ox = float(np.clip(rng.uniform(x1 - ow * 0.5, x2 - ow * 0.5), 0, image.shape[1] - 2))
        oy = float(np.clip(rng.uniform(y1 - oh * 0.5, y2 - oh * 0.5), 0, image.shape[0] - 2))
        occluder = (ox, oy, min(ox + ow, image.shape[1] - 1.0), min(oy + oh, image.shape[0] - 1.0))
        colour = rng.choice([[200, 150, 120], [170, 120, 90], [90, 60, 40], [60, 60, 70], [220, 220, 225]])
        colour = np.asarray(colour, np.float32) * rng.uniform(0.7, 1.2)
        centre = (int((occluder[0] + occluder[2]) / 2), int((occluder[1] + occluder[3]) / 2))
        axes = (max(int(ow / 2), 2), max(int(oh / 2), 2))
        cv2.ellipse(img, centre, axes, 0.0, 0, 360, tuple(float(c) for c in colour), -1, cv2.LINE_AA)
    if rng.random() < BLUR_P:
        length = int(rng.integers(3, 10))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        kernel /= max(kernel.sum(), 1e-6)
        img = cv2.filter2D(img, -1, kernel)
    gain = float(rng.uniform(0.8, 1.2))
    img = img * gain + rng.normal(0, float(rng.uniform(0, 6)), size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), occluder


def pose_label(class_id: int, box: np.ndarray, keypoints: np.ndarray, visibility: np.ndarray,
               width: int, height: int) -> str:
    """One Ultralytics pose label line (normalised coordinates)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    fields = [str(class_id), f"{(x1 + x2) / 2 / width:.6f}", f"{(y1 + y2) / 2 / height:.6f}",
              f"{(x2 - x1) / width:.6f}", f"{(y2 - y1) / height:.6f}"]
    for (u, v), vis in zip(keypoints, visibility, strict=True):
        if vis == 0:
            fields += ["0", "0", "0"]
        else:
            fields += [f"{float(u) / width:.6f}", f"{float(v) / height:.6f}", str(int(vis))]
    return " ".join(fields)


def _inside(box: tuple[float, float, float, float] | None, uv: np.ndarray) -> bool:
    return box is not None and box[0] <= uv[0] <= box[2] and box[1] <= uv[1] <= box[3]


def _load_textures() -> list[np.ndarray]:
    try:
        import skimage.data as data
    except ImportError:  # textures are optional; procedural backgrounds remain
        return []
    out = []
    for name in TEXTURES:
        gray = getattr(data, name)()
        out.append(np.repeat(gray[:, :, None], 3, axis=2) if gray.ndim == 2 else gray[:, :, :3])
    return out


def write_dataset(out: Path, images: int, seed: int, val_share: float = 0.1, progress: bool = True,
                  catalog: Catalog | None = None) -> dict[str, Any]:
    """Render ``images`` samples into ``out`` (see the module docstring). Returns a summary."""
    from tqdm import tqdm

    catalog = catalog or default_catalog()
    names = class_names(catalog)
    first = catalog.get(names[0])
    n_val = max(1, round(images * val_share)) if images > 1 else 0
    for split in ("train", "val"):
        for sub in ("images", "labels", "truth"):
            (out / sub / split).mkdir(parents=True, exist_ok=True)
    synth = Synthesizer(seed, catalog)
    counts = {"train": 0, "val": 0, "negatives": 0}
    try:
        for i in tqdm(range(images), desc="rendering", unit="img", disable=not progress):
            split = "val" if i >= images - n_val else "train"
            s = synth.sample()
            stem = f"{seed}_{i:06d}"
            bgr = cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(out / "images" / split / f"{stem}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, s.jpeg_quality])
            (out / "labels" / split / f"{stem}.txt").write_text((s.label_line + "\n") if s.label_line else "")
            (out / "truth" / split / f"{stem}.json").write_text(json.dumps(s.truth))
            counts[split] += 1
            counts["negatives"] += s.product is None
    finally:
        synth.close()
    data = {
        "path": str(out.resolve()), "train": "images/train", "val": "images/val",
        "names": dict(enumerate(names)), "kpt_shape": [keypoint_count(catalog), 3],
        "flip_idx": flip_index(first),
    }
    import yaml

    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return {"out": str(out), "seed": seed, **counts}
