"""Training the appearance check (:mod:`vision.appearance`): ``fixlens train appearance``.

Every crop is cut by :func:`vision.appearance.box_crop`, exactly as at run time:

- **products**, from ``fixlens data synth`` folders: each labelled product at its true box, the box
  jittered (:data:`vision.training.negatives.JITTER` of its size); and the shipped detector's own boxes on
  it (IoU >= ``MATCH_IOU``, the same product): the framing it will see at run time, hands, blur and colour
  casts included;
- **none**: ``negatives`` frames drawn like the synth negatives (:mod:`vision.training.negatives`: home
  backgrounds, with a hand or an everyday object drawn in, through the phone's optics and a JPEG of random
  quality), with the detector's boxes down to confidence ``vision.training.negatives.MINE_CONF``, the hand's or
  object's box, and random boxes. None are taken from the synth folders: a second product there is labelled
  only when it is wholly in the frame, and a crop of one cut by the frame's edge called ``none`` would teach
  the network that a product is background. With ``--photos``, a share of these frames are real photos
  (:mod:`vision.training.photos`), never the evaluation's.

The detector's boxes on product-free frames are what the pipeline must refuse, so they are mined with the
shipped detector (``--detector-weights``).

Training is torch on the CPU (a few minutes an epoch on two cores); the model is exported to ONNX with its
class names (catalog product ids, then ``none``) as metadata.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision.appearance import CROP, MODEL_NAME, NONE, box_crop
from vision.part_net import to_input
from vision.training.negatives import drawn_negatives, jittered, mining_detector
from vision.training.scoring import iou

REPORT_NAME = "product-appearance.train.json"
MATCH_IOU = 0.5  # a detector box on the product, of its class: a product crop
SOURCE_TRUE, SOURCE_DETECTED = 0, 1  # a product at its true box; the detector's box on it (SOURCE_* of negatives)


class Crops:
    """Crops, labels (class index; the last class is ``none``), the detector's confidence (-1 for boxes it did
    not give) and where each came from (``SOURCE_*``)."""

    def __init__(self) -> None:
        self.x: list[np.ndarray] = []
        self.y: list[int] = []
        self.conf: list[float] = []
        self.source: list[int] = []

    def add(self, image: np.ndarray, box: Sequence[float], label: int, conf: float, source: int) -> None:
        self.x.append(box_crop(image, box))
        self.y.append(label)
        self.conf.append(conf)
        self.source.append(source)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        x = np.stack(self.x) if self.x else np.zeros((0, CROP, CROP, 3), np.uint8)
        return x, np.array(self.y, np.int64), np.array(self.conf, np.float32), np.array(self.source, np.int64)


def mine_folder(folder: Path, split: str, names: Sequence[str], detector: Any, rng: np.random.Generator,
                crops: Crops, log: Callable[[str], None] = print) -> None:
    """Add one synth folder's ``split``'s product crops to ``crops`` (module docstring). ``names``: the classes,
    products first."""
    folder_names = _folder_names(folder)
    files = sorted((folder / "images" / split).glob("*.jpg"))
    for n, path in enumerate(files):
        image = cv2.imread(str(path))
        if image is None:
            raise ValueError(f"{path}: not a readable image")
        h, w = image.shape[:2]
        truths = []
        label_path = folder / "labels" / split / f"{path.stem}.txt"
        for line_no, line in enumerate(label_path.read_text().splitlines(), 1):
            v = line.split()
            if not v:
                continue
            try:
                cls, cx, cy, bw, bh = int(v[0]), *(float(t) for t in v[1:5])
                product = folder_names[cls]
            except (ValueError, IndexError):
                raise ValueError(f"{label_path}:{line_no}: not a label line (class cx cy w h ...)") from None
            if product not in names:
                continue  # a product this model is not trained for: neither product nor none
            truths.append((names.index(product),
                           ((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h)))
        for label, box in truths:
            crops.add(image, jittered(box, rng), label, -1.0, SOURCE_TRUE)
        det = detector.detect_batch([image])[0]
        for k in range(len(det)):
            box = [float(v) for v in det.xyxy[k]]
            product = detector.names[int(det.class_id[k])]
            overlap, label = max(((iou(box, b), lab) for lab, b in truths), default=(0.0, -1))
            if overlap >= MATCH_IOU and product in names and label == names.index(product):
                crops.add(image, box, label, float(det.confidence[k]), SOURCE_DETECTED)
        if n % 1000 == 999:
            log(f"{folder.name}/{split}: {n + 1} of {len(files)} frames, {len(crops.y)} crops")


def _folder_names(folder: Path) -> list[str]:
    """The class names of a synth folder's data.yaml, in class-index order."""
    import yaml

    data = yaml.safe_load((folder / "data.yaml").read_text())
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        return [names[k] for k in sorted(names)]
    if isinstance(names, list):
        return list(names)
    raise ValueError(f"{folder / 'data.yaml'}: no names")


def mine_negatives(count: int, seed: int, detector: Any, crops: Crops, none: int, log: Callable[[str], None] = print,
                   photos: Sequence[np.ndarray] = (), photo_share: float = 0.0) -> None:
    """Add ``count`` drawn product-free frames' crops (:func:`vision.training.negatives.drawn_negatives`;
    ``photo_share`` of them over ``photos``)."""
    for i, boxes in enumerate(drawn_negatives(count, seed, detector, photos, photo_share)):
        for b in boxes:
            crops.add(b.image, b.box, none, b.confidence, b.source)
        if i % 1000 == 999:
            log(f"drawn negatives: {i + 1} of {count} frames, {len(crops.y)} crops")


def build_net(classes: int) -> Any:
    """Four stride-2 stages (64 -> 4 px), then mean and max pooling: about 0.2 M weights, under a
    millisecond a crop on one core."""
    import torch
    from torch import nn

    def stage(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                             nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(stage(3, 16), stage(16, 32), stage(32, 64), stage(64, 96))
            self.head = nn.Linear(192, classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            f = self.features(x - 0.5)
            return self.head(torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1))

    return Net()


def _augment(x: np.ndarray, rng: np.random.Generator) -> Any:
    """Per-crop channel gains (hue kept: gains only) and exposure, sensor-like noise, and a small shift and
    scale of the framing (the detector's boxes wander). NCHW float in [0, 1] in and out."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    t = torch.from_numpy(x)
    gains = np.exp(rng.uniform(-0.25, 0.25, (n, 3, 1, 1)) + rng.uniform(-0.4, 0.3, (n, 1, 1, 1)))
    t = t * torch.from_numpy(gains.astype(np.float32))
    sigma = torch.from_numpy(rng.uniform(0, 0.025, (n, 1, 1, 1)).astype(np.float32))
    t = t + sigma * torch.randn(n, 1, CROP, CROP)
    theta = np.zeros((n, 2, 3), np.float32)
    scale = np.exp(rng.uniform(-0.1, 0.1, n))
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = rng.uniform(-0.08, 0.08, (n, 2))
    grid = F.affine_grid(torch.from_numpy(theta), list(t.shape), align_corners=False)
    return F.grid_sample(t, grid, padding_mode="border", align_corners=False).clamp(0.0, 1.0)


def fit(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], classes: Sequence[str],
        out_dir: Path, epochs: int, batch: int = 256, lr: float = 2e-3, seed: int = 0,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train on (crops, labels), class-balanced; export ``out_dir / MODEL_NAME``. Returns the report."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_tr, y_tr = train
    counts = np.bincount(y_tr, minlength=len(classes))
    if (counts == 0).any():
        missing = [c for c, k in zip(classes, counts, strict=True) if k == 0]
        raise ValueError(f"no training crops of {', '.join(missing)}")
    net = build_net(len(classes))
    weight = torch.tensor(len(y_tr) / (len(classes) * counts), dtype=torch.float32)
    opt = torch.optim.AdamW(net.parameters(), lr, weight_decay=1e-4)
    steps_per_epoch = max(1, len(y_tr) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * steps_per_epoch)
    history = []
    started = time.time()
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(len(y_tr))
        total = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * batch:(step + 1) * batch]
            loss = F.cross_entropy(net(_augment(to_input(x_tr[idx]), rng)), torch.from_numpy(y_tr[idx]), weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        figures = evaluate(net, val, classes)
        history.append({"epoch": epoch + 1, "train_loss": round(total / steps_per_epoch, 4),
                        "seconds": round(time.time() - started), **figures})
        log(json.dumps(history[-1]))
    out_dir.mkdir(parents=True, exist_ok=True)
    export(net, out_dir / MODEL_NAME, classes)
    return {"epochs": epochs, "train_crops": {c: int(k) for c, k in zip(classes, counts, strict=True)},
            "val_crops": len(val[1]), "train_seconds": round(time.time() - started, 1),
            "history": history, "onnx": str(out_dir / MODEL_NAME)}


def predict(net: Any, x: np.ndarray) -> np.ndarray:
    import torch

    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), 1024):
            out.append(torch.softmax(net(torch.from_numpy(to_input(x[i:i + 1024]))), 1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def evaluate(net: Any, val: tuple[np.ndarray, np.ndarray], classes: Sequence[str]) -> dict[str, Any]:
    """Validation accuracy, and each product's crops given under half their own class's probability."""
    x, y = val
    if len(y) == 0:
        return {}
    prob = predict(net, x)
    out: dict[str, Any] = {"val_accuracy": round(float((prob.argmax(1) == y).mean()), 4)}
    none = len(classes) - 1
    products = y < none
    if products.any():
        own = prob[np.flatnonzero(products), y[products]]
        out["val_products_under_half"] = round(float((own < 0.5).mean()), 4)
    if (~products).any():
        out["val_none_over_half"] = round(float((prob[~products, :none].max(1) >= 0.5).mean()), 4)
    return out


def export(net: Any, path: Path, classes: Sequence[str]) -> None:
    import onnx
    import torch

    net.eval()
    torch.onnx.export(net, torch.zeros(2, 3, CROP, CROP), str(path), input_names=["crop"], output_names=["logits"],
                      opset_version=17, dynamo=False, dynamic_axes={"crop": {0: "n"}, "logits": {0: "n"}})
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = "classes", json.dumps(list(classes))
    onnx.save(model, str(path))


def _with_crops(classes: list[str], splits: dict[str, tuple[np.ndarray, ...]], log: Callable[[str], None]
                ) -> tuple[list[str], dict[str, tuple[np.ndarray, ...]]]:
    """Leave out the products without a training crop (a small run may show none of one): a class the
    network never saw would score its product near 0 and refuse every sighting of it, while a product the
    network does not know is not checked at all."""
    counts = np.bincount(splits["train"][1], minlength=len(classes))
    kept = [i for i in range(len(classes) - 1) if counts[i] > 0]
    if not kept:
        raise ValueError("no product crops at all: the data folders hold no labelled product")
    if len(kept) < len(classes) - 1:
        log(f"no training crops of {', '.join(c for i, c in enumerate(classes[:-1]) if i not in kept)}: left out, "
            "not checked")
    kept.append(len(classes) - 1)
    remap = np.full(len(classes), -1)
    remap[kept] = np.arange(len(kept))
    out = {}
    for split, arrays in splits.items():
        y = remap[arrays[1]]
        keep = y >= 0
        out[split] = (arrays[0][keep], y[keep], *(a[keep] for a in arrays[2:]))
    return [classes[i] for i in kept], out


def train_appearance(folders: Sequence[Path], out_dir: Path, *, negatives: int = 6000, epochs: int = 8,
                     seed: int = 0, detector_weights: Path | None = None, cache: Path | None = None,
                     photos: Sequence[np.ndarray] = (), photo_share: float = 0.0,
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    """Mine the crops (or load them from ``cache``), train, export, and write the report next to the model."""
    from product_models.catalog import default_catalog
    from vision.training.synth import class_names

    started = time.time()
    classes = [*class_names(default_catalog()), NONE]
    splits: dict[str, tuple[np.ndarray, ...]] = {}
    if cache is not None and cache.is_file():
        data = np.load(cache)
        stored = json.loads(str(data["classes"]))
        if stored != classes:
            raise ValueError(f"{cache}: crops of classes {stored}, the catalog now has {classes}")
        mined = json.loads(str(data["photos"])) if "photos" in data else [0, 0.0]
        if mined != [len(photos), photo_share]:
            raise ValueError(f"{cache}: crops mined with {mined[0]} photos at share {mined[1]}, asked for "
                             f"{len(photos)} at {photo_share}; give another --cache")
        splits = {s: tuple(data[f"{k}_{s}"] for k in ("x", "y", "conf", "source")) for s in ("train", "val")}
    else:
        detector = mining_detector(detector_weights)
        for split, split_seed, count in (("train", seed, negatives), ("val", seed + 1, max(1, negatives // 6))):
            crops = Crops()
            rng = np.random.default_rng(split_seed)
            for folder in folders:
                mine_folder(folder, split, classes, detector, rng, crops, log)
            mine_negatives(count, 1000 + split_seed, detector, crops, len(classes) - 1, log, photos, photo_share)
            splits[split] = crops.arrays()
        if cache is not None:
            np.savez(cache, classes=json.dumps(classes), photos=json.dumps([len(photos), photo_share]),
                     **{f"{k}_{s}": a for s, arrays in splits.items()
                        for k, a in zip(("x", "y", "conf", "source"), arrays, strict=True)})
    classes, splits = _with_crops(classes, splits, log)
    log(f"crops: train {len(splits['train'][1])}, val {len(splits['val'][1])} ({time.time() - started:.0f} s)")
    report = fit(splits["train"][:2], splits["val"][:2], classes, out_dir, epochs, seed=seed, log=log)
    report.update(classes=classes, folders=[str(f) for f in folders], negatives=negatives, seed=seed,
                  photos=len(photos), photo_share=photo_share,
                  total_seconds=round(time.time() - started, 1))
    (out_dir / REPORT_NAME).write_text(json.dumps(report, indent=1))
    return report
