"""Compact training packs: ``fixlens data synth`` folders shrunk to what the GPU training needs.

A rented GPU machine often has no renderer and a small upload limit, while synthetic frames are ~37 KB
each. A pack keeps, per synth folder:

- ``det/``: every frame at ``DET_SIDE`` pixels on its longer side (the detector trains at 320) with its
  YOLO labels unchanged (they are normalised, so a uniform resize keeps them exact);
- ``keypoints-{split}.npz``: the keypoint network's training crops, cut from the full-resolution frames
  exactly as :func:`vision.training.keypoints_train.load_samples` cuts them, stored as JPEG bytes.

A part pack (:func:`write_part_pack`) holds the part-state network's patches from a ``fixlens train parts
--cache`` file (cutting them needs the catalog and, for estimated poses, the pipeline), as JPEG without
chroma subsampling: an LED a few pixels wide keeps its colour.

:mod:`vision.training.pack_train` trains from one or more packs. The pack is built here, where the frames
were rendered; only numpy and OpenCV are needed to build it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from product_models.catalog import Catalog, default_catalog
from vision.keypoint_layout import KeypointLayout
from vision.part_net import PartIndex
from vision.training.synth import class_names

DET_SIDE = 320  # pixels on the longer side: the detector's training size
DET_QUALITY = 75  # JPEG quality of the detector frames (the frames already carry JPEG and noise artefacts)
CROP_QUALITY = 88  # JPEG quality of the keypoint crops: sub-pixel targets need a little more
PATCH_QUALITY = 95  # JPEG quality of the part patches, 4:4:4


@dataclass(frozen=True)
class PackSummary:
    folder: str
    frames: dict[str, int]
    crops: dict[str, int]
    bytes: int


def write_pack(folder: Path, out: Path, jitter: int = 2, seed: int = 0, det_share: float = 1.0,
               catalog: Catalog | None = None) -> PackSummary:
    """Pack one synth ``folder`` into ``out`` (created; must not exist). ``det_share``: the share of each
    split's frames kept for the detector (a rehearsal set needs fewer); crops come from every frame."""
    from vision.training.keypoints_train import load_samples  # imports no torch

    if not (folder / "images").is_dir() or not (folder / "truth").is_dir():
        raise ValueError(f"{folder}: not a `fixlens data synth` folder (no images/ or truth/)")
    if out.exists():
        raise ValueError(f"{out}: already exists; packs are written once")
    catalog = catalog or default_catalog()
    layout = KeypointLayout.from_catalog(catalog, class_names(catalog))
    rng = np.random.default_rng(seed)
    frames: dict[str, int] = {}
    crops: dict[str, int] = {}
    for split in ("train", "val"):
        images = sorted((folder / "images" / split).glob("*.jpg"))
        keep = images if det_share >= 1.0 else [p for p in images if rng.random() < det_share]
        (out / "det" / "images" / split).mkdir(parents=True)
        (out / "det" / "labels" / split).mkdir(parents=True)
        for path in keep:
            image = cv2.imread(str(path))
            if image is None:
                raise ValueError(f"{path}: not a readable image")
            h, w = image.shape[:2]
            scale = DET_SIDE / max(h, w)
            small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(out / "det" / "images" / split / path.name), small, [cv2.IMWRITE_JPEG_QUALITY, DET_QUALITY])
            label = folder / "labels" / split / f"{path.stem}.txt"
            if label.is_file():
                shutil.copyfile(label, out / "det" / "labels" / split / label.name)
        frames[split] = len(keep)
        x, y, wt, c = load_samples([folder], split, jitter if split == "train" else 1, seed, layout)
        jpeg, offsets = _encode(x, [cv2.IMWRITE_JPEG_QUALITY, CROP_QUALITY])
        np.savez(out / f"keypoints-{split}.npz", jpeg=jpeg, offsets=offsets, targets=y, weights=wt, classes=c,
                 layout=np.array(layout.to_json()))
        crops[split] = len(x)
    names = class_names(catalog)
    (out / "pack.json").write_text(json.dumps({
        "source": str(folder), "names": names, "kpt_shape": [layout.max_keypoints, 3],
        "frames": frames, "crops": crops, "jitter": jitter, "seed": seed, "det_side": DET_SIDE}, indent=1) + "\n")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return PackSummary(str(folder), frames, crops, size)


def read_crops(pack: Path, split: str, layout_json: str | None = None) -> tuple[np.ndarray, ...]:
    """The keypoint crops of one pack split, decoded: (crops, targets, weights, classes). ``layout_json``:
    the layout every pack of one run must share; a pack with another layout raises ValueError."""
    data = np.load(pack / f"keypoints-{split}.npz")
    if layout_json is not None and str(data["layout"]) != layout_json:
        raise ValueError(f"{pack}: its keypoint layout differs from the first pack's; pack them with one catalog")
    return _decode(data["jpeg"], data["offsets"], (128, 128, 3)), data["targets"], data["weights"], data["classes"]


def write_negative_pack(out: Path, frames: int, seed: int = 0, detector_weights: Path | None = None,
                        catalog: Catalog | None = None, photos: Sequence[np.ndarray] = (),
                        photo_share: float = 0.0) -> dict[str, int]:
    """Pack the product-free crops of ``fixlens train keypoints --negatives`` for a machine without the
    renderer's drawing code or the detector: ``frames`` drawn frames' boxes
    (:func:`vision.training.keypoints_train.load_negatives`, the same seeds and held-out share as that command;
    ``photo_share`` of the frames over ``photos``, as its ``--photos``), as JPEG crops with the product each is
    asked about. ``out`` is created and must not exist. Returns the
    crop count per split. ``pack_train keypoints --negative-packs`` reads it."""
    from vision.training.keypoints_train import negative_splits

    if out.exists():
        raise ValueError(f"{out}: already exists; packs are written once")
    catalog = catalog or default_catalog()
    layout = KeypointLayout.from_catalog(catalog, class_names(catalog))
    splits = dict(zip(("train", "val"), negative_splits(frames, seed, layout, detector_weights, photos, photo_share),
                      strict=True))
    out.mkdir(parents=True)
    counts = {}
    for split, (x, c) in splits.items():
        jpeg, offsets = _encode(x, [cv2.IMWRITE_JPEG_QUALITY, CROP_QUALITY])
        np.savez(out / f"negatives-{split}.npz", jpeg=jpeg, offsets=offsets, classes=c,
                 layout=np.array(layout.to_json()))
        counts[split] = len(x)
    return counts


def read_negatives(pack: Path, split: str, layout_json: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One negatives pack split, decoded: (crops, classes); ``layout_json`` as for :func:`read_crops`."""
    data = np.load(pack / f"negatives-{split}.npz")
    if layout_json is not None and str(data["layout"]) != layout_json:
        raise ValueError(f"{pack}: its keypoint layout differs from the keypoint packs'; pack them with one catalog")
    return _decode(data["jpeg"], data["offsets"], (128, 128, 3)), data["classes"]


def _encode(images: np.ndarray, params: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """JPEG bytes of every image end to end, and the (n + 1) offsets that cut them apart."""
    encoded = [cv2.imencode(".jpg", image, params)[1].ravel() for image in images]
    offsets = np.cumsum([0] + [len(e) for e in encoded]).astype(np.int64)
    return (np.concatenate(encoded) if encoded else np.zeros(0, np.uint8)), offsets


def _decode(jpeg: np.ndarray, offsets: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    images = [cv2.imdecode(jpeg[offsets[i]:offsets[i + 1]], cv2.IMREAD_COLOR) for i in range(len(offsets) - 1)]
    return np.stack(images) if images else np.zeros((0, *shape), np.uint8)


def write_part_pack(cache: Path, out: Path, catalog: Catalog | None = None, shards: int = 1) -> int:
    """Pack a ``fixlens train parts --cache`` file into ``out/parts-{train,val}.npz`` with the catalog's part
    index (the one its labels are numbered in); returns the bytes written. ``shards`` > 1 writes that many
    packs instead, ``out/shard-1`` ..., each with an equal slice of both splits, to fit an upload limit."""
    from vision.training.parts_train import part_index

    if not cache.is_file():
        raise ValueError(f"{cache}: no such patch cache (write one with `fixlens train parts --cache`)")
    data = np.load(cache)
    missing = [k for k in ("x_tr", "r_tr", "y_tr", "x_va", "r_va", "y_va") if k not in data]
    if missing:
        raise ValueError(f"{cache}: not a patch cache (no {', '.join(missing)})")
    index = part_index(catalog)
    kept = PartIndex.from_json(str(data["index"])) if "index" in data else None
    # A cache from before caches kept their index was cut when removable parts had no rows: with them in the
    # catalog, its class ids are another layout's.
    removable = any(p.kind == "removable" for product in (catalog or default_catalog()) for p in product.parts)
    if (kept is not None and kept != index) or (kept is None and removable):
        raise ValueError(f"{cache}: its patches were cut for another part index than this catalog's; cut them "
                         "again with this catalog (`fixlens train parts --cache`)")
    if len(data["y_tr"]) and int(data["y_tr"].max()) >= index.num_classes:
        raise ValueError(f"{cache}: class ids up to {int(data['y_tr'].max())}, but the catalog's part index has "
                         f"{index.num_classes} classes; cut the patches with this catalog")
    if not 1 <= shards <= len(data["y_tr"]):
        raise ValueError(f"shards must be within 1..{len(data['y_tr'])} (the training patches), got {shards}")
    params = [cv2.IMWRITE_JPEG_QUALITY, PATCH_QUALITY, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
              cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    size = 0
    for k in range(shards):
        folder = out if shards == 1 else out / f"shard-{k + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        for split, suffix in (("train", "tr"), ("val", "va")):
            n = len(data[f"y_{suffix}"])
            part = slice(k * n // shards, (k + 1) * n // shards)
            jpeg, offsets = _encode(data[f"x_{suffix}"][part], params)
            path = folder / f"parts-{split}.npz"
            np.savez(path, jpeg=jpeg, offsets=offsets, rows=data[f"r_{suffix}"][part],
                     labels=data[f"y_{suffix}"][part], shape=np.array(data[f"x_{suffix}"].shape[1:]),
                     index=np.array(index.to_json()))
            size += path.stat().st_size
    return size


def read_part_patches(pack: Path, split: str, index_json: str | None = None) -> tuple[np.ndarray, ...]:
    """One part pack split, decoded: (patches, rows, labels). ``index_json``: the part index every pack of
    one run must share; a pack numbered by another raises ValueError."""
    data = np.load(pack / f"parts-{split}.npz")
    if index_json is not None and PartIndex.from_json(str(data["index"])) != PartIndex.from_json(index_json):
        raise ValueError(f"{pack}: its part index differs from the first pack's; pack them with one catalog")
    return _decode(data["jpeg"], data["offsets"], tuple(data["shape"])), data["rows"], data["labels"]
