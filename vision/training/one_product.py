"""A ``fixlens data synth`` folder seen as data for a detector of one product alone.

A product added with a model set of its own (:mod:`vision.model_set`) gets a one-class detector: trained on
the same frames as its other networks, with only its own boxes labelled. The other products' frames stay in
as backgrounds, so the detector learns not to fire on them. The view is written beside the data
(``only-<ID>/``): a ``data.yaml`` naming the one class, the label files with the product's lines renumbered to
class 0 and every other line dropped, and the images hard-linked (copied where the file system cannot link).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml

SPLITS = ("train", "val")
DONE = ".complete"  # written last: a view without it was cut short and is written again


class DataError(ValueError):
    """The data folder cannot give this view; the message names the file and what is wrong."""


def one_product_view(data_yaml: Path, product_id: str) -> Path:
    """The data.yaml of ``data_yaml``'s frames with only ``product_id`` labelled, written once and reused."""
    try:
        spec = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"{data_yaml}: cannot read it ({exc})") from None
    names = spec.get("names") if isinstance(spec, dict) else None
    if not isinstance(names, dict):
        raise DataError(f"{data_yaml}: no `names` mapping; is it from `fixlens data synth`?")
    classes = [i for i, n in names.items() if n == product_id]
    if not classes:
        raise DataError(f"{data_yaml}: the data has no {product_id} (it has {', '.join(map(str, names.values()))})")
    cls = str(classes[0])
    root = Path(spec.get("path") or data_yaml.parent)
    view = data_yaml.parent / f"only-{product_id}"
    out_yaml = view / "data.yaml"
    if (view / DONE).is_file():
        return out_yaml
    shutil.rmtree(view, ignore_errors=True)
    kept = 0
    for split in SPLITS:
        images, labels = root / "images" / split, root / "labels" / split
        if not images.is_dir():
            raise DataError(f"{images}: no such folder")
        (view / "images" / split).mkdir(parents=True)
        (view / "labels" / split).mkdir(parents=True)
        for image in sorted(images.iterdir()):
            _link(image, view / "images" / split / image.name)
            label = labels / f"{image.stem}.txt"
            lines = label.read_text(encoding="utf-8").splitlines() if label.is_file() else []
            own = ["0" + line[len(cls):] for line in lines if line.split(" ", 1)[0] == cls]
            kept += len(own)
            (view / "labels" / split / label.name).write_text("".join(f"{line}\n" for line in own))
    if kept == 0:
        raise DataError(f"{root}: no frame shows {product_id}; render data with `--focus {product_id}`")
    out_yaml.write_text(yaml.safe_dump({**spec, "path": str(view.resolve()), "names": {0: product_id}},
                                       sort_keys=False))
    (view / DONE).write_text(f"{kept} boxes of {product_id}\n")
    return out_yaml


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(src, dst)
