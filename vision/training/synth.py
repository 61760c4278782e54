"""Synthetic training and evaluation data: catalog products rendered with exact labels, as a phone in a home
would film them.

Each sample is a headless render of one product in random part states, from a random handheld-like
viewpoint (horizontal field of view 40-85 degrees; 4:3 and 16:9 frames, landscape or upright; product width
8-95 % of the frame), under random light, over a home background (:func:`product_models.backdrop.home_background`:
plain walls, desks, shelves and wood, often with books, boxes and cups, sometimes another catalog product in
the room; or the older cluttered fields), then put through a phone camera:

- in front of the product: hands of varied skin tones, often with a finger on a part, and everyday objects
  (:mod:`vision.training.occluders`); the parts and keypoints under them are labelled covered, with what
  covers them (``hand`` or ``object``);
- specular glare on the body (parts under its core are labelled covered), lit LEDs saturating and blooming;
- motion blur up to 15 px or defocus, white balance from warm to cool, exposure and gamma down to low light,
  and sensor noise that grows with the gain (:mod:`vision.training.phone`); JPEG quality 40-95.

A share of samples holds no main product (negatives); some of them show another product off to the side,
labelled (``labels`` in the truth record). With ``photos`` (``--photos DIR``), a share of the backgrounds
are crops of real photos (:mod:`vision.training.photos`); the real photos shipped in scikit-image and
matplotlib are reserved for evaluation (false positives) and never used here. Colour augmentation keeps hue fixed: a hue
shift can turn a red LED green; white balance changes channel gains only.

Output (Ultralytics pose format)::

    DIR/data.yaml                  names, kpt_shape, flip_idx, train/val folders
    DIR/images/{train,val}/N.jpg
    DIR/labels/{train,val}/N.txt   class cx cy w h  x1 y1 v1 ... (normalised; v: 0 out of frame,
                                   1 in frame but hidden, 2 visible); a second line labels another
                                   catalog product in the room
    DIR/truth/{train,val}/N.json   exact ground truth: states, part boxes/visibility, pose, camera
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from product_models.backdrop import home_background
from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import Catalog, Part, Product, default_catalog
from vision.training.occluders import draw_hand, draw_object
from vision.training.phone import defocus, exposure, glare, led_bloom, motion_blur, sensor_noise, white_balance
from vision.training.photos import PhotoBackgrounds

WIDTH, HEIGHT = 640, 480
NEGATIVE_SHARE = 0.08
# Frame shapes a phone sends (width, height, share): 4:3 and 16:9, held landscape or upright.
ASPECTS = ((640, 480, 0.5), (640, 360, 0.2), (480, 640, 0.15), (360, 640, 0.15))
HFOV_DEG = (40.0, 85.0)  # from a tele-ish main camera to an ultra-wide one
WIDTH_SHARE = (0.08, 0.95)  # the product's width as a share of the frame's
# Shares of frames that get each effect (independently).
HAND_P = 0.3
OBJECT_P = 0.15
DISTRACTOR_P = 0.25  # another catalog product, rendered in the room beside this one
CAST_P = 0.75
LOW_LIGHT_P = 0.2
GLARE_P = 0.2
BLOOM_P = 0.5  # of frames with a lit LED in view
MOTION_BLUR_P = 0.2
DEFOCUS_P = 0.12
COVERED_SHARE = 0.5  # a part whose centre is under this much of a hand or object is covered
GLARE_COVERS = 0.6  # ... or under this strength of a glare's highlight
TEXTURES = ("brick", "grass", "gravel")  # scikit-image textures: allowed as backgrounds


@dataclass(frozen=True)
class Sample:
    """One rendered, degraded frame with its labels."""

    image: np.ndarray  # (h, w, 3) uint8 RGB, before JPEG
    jpeg_quality: int
    product: Product | None
    label_line: str | None  # Ultralytics pose label lines, None when nothing in the frame is labelled
    truth: dict[str, Any]


def class_names(catalog: Catalog) -> list[str]:
    """Detector class index -> product id (sorted, so the order is stable across runs)."""
    return sorted(catalog.products)


def keypoint_count(catalog: Catalog) -> int:
    """The detector's keypoints per box: the longest product's. Shorter lists are padded as unlabelled
    (:func:`pose_label`); the pipeline reads a product's own keypoints from the crop keypoint network, whose
    rows follow each product's list (:mod:`vision.keypoint_layout`)."""
    return max(len(p.keypoints) for p in catalog)


def detector_flip_index(catalog: Catalog) -> list[int]:
    """``flip_idx`` for the data.yaml: the products' shared mirror map, or no swap when they differ (the
    detector trains with ``fliplr=0`` anyway; Ultralytics only requires a map of the right length)."""
    maps = {tuple(flip_index(p) + list(range(len(p.keypoints), keypoint_count(catalog)))) for p in catalog}
    return list(maps.pop()) if len(maps) == 1 else list(range(keypoint_count(catalog)))


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
                 negative_share: float = NEGATIVE_SHARE,
                 aspects: tuple[tuple[int, int, float], ...] | None = ASPECTS,
                 focus: tuple[str, float] | None = None, photos: Sequence[np.ndarray] = (),
                 photo_share: float = 0.0) -> None:
        """``focus``: (product id, share): that share of the product frames show that product, the rest the
        others evenly (a new product's data with a rehearsal share of the known ones). Default: all evenly.
        ``photos``: real photos (:func:`vision.training.photos.load_photos`), the background of
        ``photo_share`` of the frames; the rest of each frame is what the seed draws without them."""
        from product_models.render import Renderer

        self.catalog = catalog or default_catalog()
        self.names = class_names(self.catalog)
        self._product_p: np.ndarray | None = None
        if focus is not None:
            pid, share = focus
            if pid not in self.names:
                raise ValueError(f"focus: unknown product {pid!r}; the catalog has {', '.join(self.names)}")
            if not 0.0 < share <= 1.0 or (share < 1.0 and len(self.names) == 1):
                raise ValueError(f"focus share must be within (0, 1] (1 with a one-product catalog), got {share}")
            rest = (1.0 - share) / max(1, len(self.names) - 1)
            self._product_p = np.array([share if n == pid else rest for n in self.names])
        self.keypoint_count = keypoint_count(self.catalog)
        self.width, self.height = width, height
        self.aspects = aspects  # None: every frame is width x height
        self.negative_share = negative_share
        self.rng = np.random.default_rng(seed)
        self.renderer = Renderer(width, height)
        self._textures = _load_textures()
        self._photos = PhotoBackgrounds(photos, photo_share, seed)

    def close(self) -> None:
        self.renderer.close()

    def sample(self) -> Sample:
        from product_models.render import Lighting

        rng = self.rng
        width, height = self._frame_size()
        # The home background is drawn even when a photo replaces it: its draws keep the seed's stream.
        background = self._photos.maybe(home_background(rng, width, height, self._textures))
        quality = int(rng.integers(40, 96))
        camera = random_camera(rng, width, height)
        if rng.random() < self.negative_share:
            # No product at the centre of attention; now and then one off to the side, labelled like any
            # other (an unlabelled one would teach the detector that a product is background).
            image, labels, _ = (self._distractor(background, camera, None) if rng.random() < 0.3
                                else (background, [], None))
            return Sample(phone_frame(image.astype(np.float32), rng, []), quality, None,
                          "\n".join(labels) or None, {"product": None, "jpeg_quality": quality, "labels": labels})
        # Even draws keep the random stream, and so every earlier dataset, as it was.
        pick = int(rng.integers(len(self.names))) if self._product_p is None \
            else int(rng.choice(len(self.names), p=self._product_p))
        product = self.catalog.get(self.names[pick])
        states = random_states(product, rng)
        pose = random_pose(product, camera, rng)
        extra_labels: list[str] = []
        others: list[dict[str, Any]] = []
        if rng.random() < DISTRACTOR_P:
            background, extra, shown = self._distractor(background, camera, product)
            extra_labels += extra
            others += [shown] if shown is not None else []
        result = self.renderer.render(product, states, pose, camera, lighting=Lighting.random(rng),
                                      background=background)
        truth = result.truth
        if truth.product_box is None:  # the random view missed the product: draw again
            return self.sample()
        img = result.image.astype(np.float32)
        # In front of the product: a hand (often with a finger on a part) or an everyday object.
        covered = np.zeros((height, width), np.float32)
        cover_kind = np.full((height, width), "", dtype=object)
        if rng.random() < HAND_P:
            tip = None
            seen = [pt.center_uv for pt in truth.parts.values() if pt.visible]
            if seen and rng.random() < 0.6:
                tip = tuple(float(v) for v in seen[int(rng.integers(len(seen)))])
            mask = draw_hand(img, rng, truth.product_box, tip)
            cover_kind[mask >= COVERED_SHARE] = "hand"
            covered = np.maximum(covered, mask)
        if rng.random() < OBJECT_P:
            mask = draw_object(img, rng, truth.product_box)
            cover_kind[mask >= COVERED_SHARE] = "object"
            covered = np.maximum(covered, mask)
        if rng.random() < GLARE_P:
            strength = glare(img, rng, truth.product_box)
            cover_kind[(strength >= GLARE_COVERS) & (cover_kind == "")] = "object"
        leds = [(tuple(pt.center_uv), _size_px(product.part(name), pose, camera), pt.state)
                for name, pt in truth.parts.items()
                if product.part(name).kind == "led" and pt.visible and pt.state not in (None, "off")
                and cover_kind[_pixel(pt.center_uv, width, height)] == ""]
        image = phone_frame(img, rng, leds if rng.random() < BLOOM_P else [])
        kp_vis = np.where(truth.keypoint_visible, 2, 1)
        in_frame = ((truth.keypoints[:, 0] >= 0) & (truth.keypoints[:, 0] <= width - 1)
                    & (truth.keypoints[:, 1] >= 0) & (truth.keypoints[:, 1] <= height - 1))
        kp_vis = np.where(in_frame, kp_vis, 0)
        for i, uv in enumerate(truth.keypoints):
            if kp_vis[i] == 2 and covered[_pixel(uv, width, height)] >= COVERED_SHARE:
                kp_vis[i] = 1
        parts = {}
        for name, pt in truth.parts.items():
            inside = 0 <= pt.center_uv[0] < width and 0 <= pt.center_uv[1] < height
            by = cover_kind[_pixel(pt.center_uv, width, height)] if inside and pt.visible else ""
            parts[name] = {"state": pt.state, "visible": bool(pt.visible and not by), "covered_by": by or None,
                           "uv": [float(v) for v in pt.center_uv],
                           "box": None if pt.box is None else [float(v) for v in pt.box]}
        label = pose_label(self.names.index(product.id), truth.product_box, truth.keypoints, kp_vis, width, height,
                           self.keypoint_count)
        record = {
            "product": product.id, "jpeg_quality": quality, "states": states,
            "box": [float(v) for v in truth.product_box], "keypoints": truth.keypoints.tolist(),
            "keypoint_visibility": kp_vis.tolist(), "parts": parts,
            "pose": {"R": pose.R.tolist(), "t": pose.t.tolist()},
            "camera": {"fx": camera.fx, "fy": camera.fy, "cx": camera.cx, "cy": camera.cy,
                       "width": camera.width, "height": camera.height},
            "labels": extra_labels,
            # Every other catalog product drawn into the frame, labelled or not: {"product", "box"} (its box may
            # lie behind this product, which is drawn over it).
            "others": others,
        }
        return Sample(image, quality, product, "\n".join([label, *extra_labels]), record)

    def _frame_size(self) -> tuple[int, int]:
        if self.aspects is None:
            return self.width, self.height
        shares = np.array([a[2] for a in self.aspects])
        w, h, _ = self.aspects[int(self.rng.choice(len(self.aspects), p=shares / shares.sum()))]
        return w, h

    def _distractor(self, background: np.ndarray, camera: CameraIntrinsics,
                    main: Product | None) -> tuple[np.ndarray, list[str], dict[str, Any] | None]:
        """``background`` with another catalog product rendered into the room (away from the frame centre,
        where the main product usually is), its detector label when it is fully in the frame, and which
        product it is and its box in the frame when any of it is in view."""
        from product_models.render import Lighting

        rng = self.rng
        others = [n for n in self.names if main is None or n != main.id]
        if not others:
            return background, [], None
        other = self.catalog.get(others[int(rng.integers(len(others)))])
        pose = random_pose(other, camera, rng, width_share=(0.08, 0.35), off_centre=0.9)
        result = self.renderer.render(other, random_states(other, rng), pose, camera,
                                      lighting=Lighting.random(rng), background=background)
        truth = result.truth
        if truth.product_box is None or truth.product_box_unclipped is None:
            return background, [], None
        shown = {"product": other.id, "box": [float(v) for v in truth.product_box]}
        if not np.allclose(truth.product_box, truth.product_box_unclipped):
            return result.image, [], shown  # cut by the frame edge: shown, but too partial to label fairly
        kp_vis = np.where(truth.keypoint_visible, 2, 1)
        return result.image, [pose_label(self.names.index(other.id), truth.product_box, truth.keypoints, kp_vis,
                                         camera.width, camera.height, self.keypoint_count)], shown

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
    """Phone-like intrinsics: horizontal FOV of the frame's longer side within ``HFOV_DEG`` (so an upright
    frame has the same lens as a landscape one), principal point near the centre."""
    fov = float(rng.uniform(*HFOV_DEG))
    long_side = max(width, height)
    fx = long_side / 2.0 / math.tan(math.radians(fov) / 2.0)
    return CameraIntrinsics(fx, fx * float(rng.uniform(0.995, 1.005)), width / 2.0 + float(rng.normal(0, 4)),
                            height / 2.0 + float(rng.normal(0, 4)), width, height)


def random_pose(product: Product, camera: CameraIntrinsics, rng: np.random.Generator,
                width_share: tuple[float, float] = WIDTH_SHARE, off_centre: float = 0.42) -> Pose:
    """A handheld view: any yaw, looking down 5-75 degrees, slight roll, product width ``width_share`` of
    the frame (log-uniform, so close-ups and far views are both common), off-centre as far as its size
    allows (``off_centre``: the share of the free room used)."""
    w, d, h = product.size_m
    extent = math.hypot(w, d)  # the widest the footprint can look, seen along a diagonal
    fraction = float(math.exp(rng.uniform(math.log(width_share[0]), math.log(width_share[1]))))
    distance = camera.fx * extent / (fraction * camera.width)
    yaw = float(rng.uniform(-180.0, 180.0))
    pitch = float(rng.uniform(5.0, 75.0))
    roll = float(rng.normal(0.0, 7.0))
    centre = np.array([0.0, 0.0, h / 2.0])
    base = Pose.orbit(yaw, pitch, distance, target=tuple(centre), roll_deg=roll)
    # Shift the product off-centre by turning the camera a little: move the look-at point sideways.
    room = off_centre * max(1.0 - fraction, 0.0)  # a large product has little room before it leaves the frame
    du, dv = rng.uniform(-room, room) * camera.width, rng.uniform(-room, room) * camera.height
    shift_cam = np.array([-du / camera.fx, -dv / camera.fy, 0.0]) * distance
    eye = base.camera_position
    target = centre + base.R.T @ shift_cam
    return Pose.look_at(eye, target, roll_deg=roll)


def phone_frame(img: np.ndarray, rng: np.random.Generator,
                leds: list[tuple[tuple[float, float], float, str]]) -> np.ndarray:
    """What the phone's camera makes of the scene (float RGB in): LED bloom, optics (motion blur or
    defocus), white balance, exposure and sensor noise. uint8 RGB out."""
    if leds:
        led_bloom(img, rng, leds)
    if rng.random() < MOTION_BLUR_P:
        img = motion_blur(img, rng, 15)
    elif rng.random() < DEFOCUS_P:
        img = defocus(img, rng, 6.0)
    if rng.random() < CAST_P:
        img = white_balance(img, rng)
    img, gain = exposure(img, rng, low_light=rng.random() < LOW_LIGHT_P)
    img = sensor_noise(img, rng, gain)
    return np.clip(img, 0, 255).astype(np.uint8)


def _pixel(uv: np.ndarray | tuple[float, float], width: int, height: int) -> tuple[int, int]:
    """(row, column) of the pixel under ``uv``, clamped into the frame."""
    return (int(min(max(round(float(uv[1])), 0), height - 1)), int(min(max(round(float(uv[0])), 0), width - 1)))


def _size_px(part: Part, pose: Pose, camera: CameraIntrinsics) -> float:
    """The part's larger side in pixels at its depth (face-on)."""
    depth = float(pose.transform(np.asarray(part.anchor, dtype=float)[None, :])[0, 2])
    return max(part.size_mm) / 1000.0 * camera.fx / max(depth, 1e-3)


def pose_label(class_id: int, box: np.ndarray, keypoints: np.ndarray, visibility: np.ndarray,
               width: int, height: int, count: int | None = None) -> str:
    """One Ultralytics pose label line (normalised coordinates), padded with unlabelled keypoints to
    ``count`` (the detector's :func:`keypoint_count`)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    fields = [str(class_id), f"{(x1 + x2) / 2 / width:.6f}", f"{(y1 + y2) / 2 / height:.6f}",
              f"{(x2 - x1) / width:.6f}", f"{(y2 - y1) / height:.6f}"]
    for (u, v), vis in zip(keypoints, visibility, strict=True):
        if vis == 0:
            fields += ["0", "0", "0"]
        else:
            fields += [f"{float(u) / width:.6f}", f"{float(v) / height:.6f}", str(int(vis))]
    fields += ["0", "0", "0"] * ((count or len(keypoints)) - len(keypoints))
    return " ".join(fields)


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
                  catalog: Catalog | None = None, focus: tuple[str, float] | None = None,
                  photos: Sequence[np.ndarray] = (), photo_share: float = 0.0) -> dict[str, Any]:
    """Render ``images`` samples into ``out`` (see the module docstring). Returns a summary."""
    from tqdm import tqdm

    catalog = catalog or default_catalog()
    names = class_names(catalog)
    n_val = max(1, round(images * val_share)) if images > 1 else 0
    for split in ("train", "val"):
        for sub in ("images", "labels", "truth"):
            (out / sub / split).mkdir(parents=True, exist_ok=True)
    synth = Synthesizer(seed, catalog, focus=focus, photos=photos, photo_share=photo_share)
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
        "flip_idx": detector_flip_index(catalog),
    }
    import yaml

    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return {"out": str(out), "seed": seed, **counts, "photos": len(photos), "photo_share": photo_share}
