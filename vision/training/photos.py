"""Real photos for training, from outside the evaluation: ``--photos DIR`` of ``fixlens data synth``,
``fixlens train appearance``, ``fixlens train keypoints --negatives`` and ``fixlens vision tune-pose-check``.

The drawn rooms of the training data (:mod:`product_models.backdrop`) are not real rooms, and the appearance
check and the pose check's thresholds learnt from them let some real photos through (model card, *Round 13*
and *Round 15*). A folder of real photos, used as backgrounds, gives them real clutter, light and texture.

The real photos shipped in scikit-image and matplotlib are the evaluation's
(:func:`real_photos`) and never train anything: :func:`load_photos` refuses a folder
that holds one of them, or a copy of one resized, recoloured or recompressed, and names the file. Any other
folder of photos will do; docs/model-card.md (*Round 20*) gives the one used for the shipped weights, rebuilt
from two Debian packages.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_SIDE = 1280  # photos are kept at most this large (a frame is 640 px; crops zoom in at most 2.5 times)
MIN_SIDE = 200  # smaller images are icons, not rooms
MAX_PHOTOS = 10_000
DUPLICATE_CORRELATION = 0.95  # of the 32 x 32 grey thumbnails: the same picture resized or recompressed
ZOOM = (1.0, 2.5)  # a crop covers the frame at 1 and shows 1/2.5 of the photo's shorter side at 2.5


def real_photos() -> list[tuple[str, np.ndarray]]:
    """(name, BGR image) of the real photos shipped in scikit-image and matplotlib: the evaluation's (false
    detections, and the robustness condition `real_photo_background`), never training data."""
    out: list[tuple[str, np.ndarray]] = []
    try:
        import skimage.data as data

        folder = Path(data.__file__).parent
        for path in sorted(folder.glob("*")):
            if path.suffix.lower() in (".png", ".jpg") and path.stem not in ("brick", "grass", "gravel"):
                img = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if img is not None and min(img.shape[:2]) >= 64:
                    out.append((f"skimage/{path.name}", img))
    except ImportError:
        pass
    try:
        import matplotlib

        folder = Path(matplotlib.get_data_path()) / "sample_data"
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in (".png", ".jpg"):
                img = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if img is not None and min(img.shape[:2]) >= 64:
                    out.append((f"matplotlib/{path.relative_to(folder)}", img))
    except ImportError:
        pass
    return out


class PhotoError(ValueError):
    """A photo folder that cannot be used; the message names the file."""


def _thumbnail(bgr: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    small -= small.mean()
    return small / (float(np.linalg.norm(small)) or 1.0)


def evaluation_thumbnails() -> list[tuple[str, np.ndarray]]:
    """(name, thumbnail) of every evaluation photo, and of its mirror image."""
    return [(name, _thumbnail(img)) for name, img in real_photos() for img in (img, img[:, ::-1])]


def load_photos(folder: Path, guard: Sequence[tuple[str, np.ndarray]] | None = None) -> list[np.ndarray]:
    """The photos in ``folder`` (not its subfolders), sorted by name, as RGB uint8, at most ``MAX_SIDE`` on
    the longer side. Raises :class:`PhotoError` for a missing or empty folder, an unreadable or too small
    image, and a copy of an evaluation photo (``guard``: :func:`evaluation_thumbnails` by default)."""
    if not folder.is_dir():
        raise PhotoError(f"{folder}: not a folder of photos")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
    if not paths:
        raise PhotoError(f"{folder}: no {'/'.join(SUFFIXES)} files")
    if len(paths) > MAX_PHOTOS:
        raise PhotoError(f"{folder}: {len(paths)} photos, at most {MAX_PHOTOS}")
    guard = evaluation_thumbnails() if guard is None else guard
    out = []
    for path in paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise PhotoError(f"{path}: not a readable image")
        if min(bgr.shape[:2]) < MIN_SIDE:
            raise PhotoError(f"{path}: {bgr.shape[1]} x {bgr.shape[0]} px, the shorter side under {MIN_SIDE}")
        thumb = _thumbnail(bgr)
        for name, other in guard:
            if float(thumb @ other) >= DUPLICATE_CORRELATION:
                raise PhotoError(f"{path}: the evaluation photo {name} (evaluation only, never training)")
        scale = MAX_SIDE / max(bgr.shape[:2])
        if scale < 1.0:
            bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return out


def photo_background(rng: np.random.Generator, photos: Sequence[np.ndarray], width: int,
                     height: int) -> np.ndarray:
    """(height, width, 3) uint8 RGB: a random crop of a random photo, zoomed ``ZOOM`` past covering the frame,
    mirrored half the time. Colour is left to the phone's optics (:func:`vision.training.synth.phone_frame`),
    which cast and expose every frame alike."""
    photo = photos[int(rng.integers(len(photos)))]
    ph, pw = photo.shape[:2]
    scale = max(width / pw, height / ph) * float(rng.uniform(*ZOOM))
    cw, ch = min(pw, round(width / scale)), min(ph, round(height / scale))
    x0, y0 = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
    crop = cv2.resize(photo[y0:y0 + ch, x0:x0 + cw], (width, height), interpolation=cv2.INTER_AREA
                      if cw > width else cv2.INTER_LINEAR)
    return np.ascontiguousarray(crop[:, ::-1]) if rng.random() < 0.5 else crop


class PhotoBackgrounds:
    """Replaces ``share`` of a generator's backgrounds with :func:`photo_background`, drawing from its own
    random stream so that the generator's frames (products, poses, light) stay those of its seed."""

    def __init__(self, photos: Sequence[np.ndarray], share: float, seed: int) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"photo share must be within [0, 1], got {share}")
        if share > 0 and not photos:
            raise ValueError("a photo share above 0 needs photos")
        self.photos, self.share = list(photos), share
        self.rng = np.random.default_rng([seed, 20])

    def maybe(self, background: np.ndarray) -> np.ndarray:
        """``background``, or in ``share`` of the calls a photo crop of its size."""
        if self.share == 0.0 or self.rng.random() >= self.share:
            return background
        return photo_background(self.rng, self.photos, background.shape[1], background.shape[0])
