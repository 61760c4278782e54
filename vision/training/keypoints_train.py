"""Train the crop keypoint network (:mod:`vision.keypoints`) on synthetic data, and export it to ONNX.

Samples come from ``fixlens data synth`` folders: each frame with a product gives ``jitter`` crops around
its true box, moved and scaled like a detector's box would be (some loose, as over a busy room), with
brightness and contrast changes (hue stays fixed). The loss is the L1 distance between the soft-argmax of
each heatmap and the keypoint, in crop pixels, over keypoints inside the frame (hidden ones included: their
place is still implied).

torch is imported here only; this module must not run in a process that renders with EGL.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from product_models.catalog import default_catalog
from vision.keypoints import INPUT, MODEL_NAME, crop_square, soft_argmax, to_input
from vision.training.synth import class_names, keypoint_count

STATE_NAME = "keypoints.state.pt"
LOOSE_BOX_SHARE = 0.3  # of training crops, cut from a loose box (below)
LOOSE_BOX_GROWTH = 0.45  # each side grows by up to this share of the box's size


def loose_box(box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``box`` grown on each side by up to ``LOOSE_BOX_GROWTH`` of its size, unevenly: over a busy room the
    detector's box often takes in a neighbouring object or shadow on one side (seen up to 1.9x too wide)."""
    w, h = box[2] - box[0], box[3] - box[1]
    grow = rng.uniform(0.0, LOOSE_BOX_GROWTH, 4) * [w, h, w, h]
    return box + grow * [-1, -1, 1, 1]


def load_samples(folders: list[Path], split: str, jitter: int, seed: int) -> tuple[np.ndarray, ...]:
    """Crops (n, INPUT, INPUT, 3) uint8 BGR, targets (n, k, 2) crop pixels, weights (n, k), classes (n,)."""
    rng = np.random.default_rng(seed)
    names = class_names(default_catalog())
    crops, targets, weights, classes = [], [], [], []
    for folder in folders:
        for tf in sorted((folder / "truth" / split).glob("*.json")):
            rec = json.loads(tf.read_text())
            if not rec.get("product"):
                continue
            image = cv2.imread(str(folder / "images" / split / f"{tf.stem}.jpg"))
            if image is None:
                continue
            box = np.array(rec["box"], dtype=float)
            kp = np.array(rec["keypoints"], dtype=float)
            vis = np.array(rec["keypoint_visibility"]) > 0
            w, h = box[2] - box[0], box[3] - box[1]
            for j in range(jitter):
                b = box.copy()
                if j > 0 or split == "train":  # like a detector's box: a little off and a little loose
                    b += rng.normal(0, 0.04, 4) * [w, h, w, h]
                    if split == "train" and rng.random() < LOOSE_BOX_SHARE:
                        b = loose_box(b, rng)
                    if b[2] - b[0] < 8 or b[3] - b[1] < 8:
                        b = box.copy()
                crop, t = crop_square(image, b)
                uv = (kp - [t.x0, t.y0]) / t.scale
                inside = (uv >= -INPUT * 0.1).all(axis=1) & (uv <= INPUT * 1.1).all(axis=1)
                crops.append(crop)
                targets.append(uv.astype(np.float32))
                weights.append((vis & inside).astype(np.float32))
                classes.append(names.index(rec["product"]))
    return np.stack(crops), np.stack(targets), np.stack(weights), np.array(classes, dtype=np.int64)


def build_net(num_classes: int, num_keypoints: int) -> Any:
    import torch
    from torch import nn
    from torch.nn import functional as F

    def block(cin: int, cout: int, stride: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class Net(nn.Module):
        """A small U-Net: 128 px in, (classes * k) heatmaps at 64 px out."""

        def __init__(self) -> None:
            super().__init__()
            c = (16, 32, 48, 64, 96)
            self.e0, self.e1 = block(3, c[0], 2), block(c[0], c[1], 2)  # 64, 32
            self.e2, self.e3 = block(c[1], c[2], 2), block(c[2], c[3], 2)  # 16, 8
            self.e4 = block(c[3], c[4], 2)  # 4: sees the whole product, so it can tell front from back
            self.u3, self.u2 = block(c[4] + c[3], c[3], 1), block(c[3] + c[2], c[2], 1)
            self.u1, self.u0 = block(c[2] + c[1], c[1], 1), block(c[1] + c[0], c[1], 1)
            self.head = nn.Conv2d(c[1], num_classes * num_keypoints, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s0 = self.e0(x)
            s1 = self.e1(s0)
            s2 = self.e2(s1)
            s3 = self.e3(s2)
            y = self.e4(s3)
            for up, skip in ((self.u3, s3), (self.u2, s2), (self.u1, s1), (self.u0, s0)):
                y = up(torch.cat([F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False),
                                  skip], dim=1))
            return self.head(y)

    return Net()


def train_keypoints(folders: list[Path], out_dir: Path, epochs: int = 30, batch: int = 64, seed: int = 0,
                    jitter: int = 2, lr: float = 2e-3, init: Path | None = None, log=print) -> dict[str, Any]:
    import torch

    torch.manual_seed(seed)
    catalog = default_catalog()
    names = class_names(catalog)
    k = keypoint_count(catalog)
    started = time.time()
    net = build_net(len(names), k)
    if init is not None:  # fine-tune from an earlier run's state dict; checked before the slow sample loading
        try:
            net.load_state_dict(torch.load(init, map_location="cpu", weights_only=True))
        except Exception as exc:  # torch raises RuntimeError, UnpicklingError, KeyError... for a wrong file
            raise ValueError(f"--init: {init}: not a keypoints.state.pt for this catalog "
                             f"({type(exc).__name__}: {str(exc)[:200]})") from None
    x_tr, y_tr, w_tr, c_tr = load_samples(folders, "train", jitter, seed)
    x_va, y_va, w_va, c_va = load_samples(folders, "val", 1, seed + 1)
    log(f"samples: train {len(x_tr)}, val {len(x_va)} ({time.time() - started:.0f} s)")
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(x_tr) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    rng = np.random.default_rng(seed)

    def to_tensor(crops: np.ndarray, augment: bool) -> torch.Tensor:
        x = to_input(crops)  # the run time's own preprocessing
        if augment:  # brightness and contrast only: hue carries LED colours
            gain = rng.uniform(0.75, 1.25, (len(x), 1, 1, 1)).astype(np.float32)
            bias = rng.uniform(-0.08, 0.08, (len(x), 1, 1, 1)).astype(np.float32)
            x = np.clip(x * gain + bias, 0.0, 1.0)
        return torch.from_numpy(x)

    def predict(x: torch.Tensor, cls: np.ndarray) -> torch.Tensor:
        heat = net(x)
        n = heat.shape[0]
        heat = heat.reshape(n, len(names), k, *heat.shape[-2:])[torch.arange(n), torch.from_numpy(cls)]
        return soft_argmax(heat)[0]

    history = []
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(len(x_tr))
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            uv = predict(to_tensor(x_tr[idx], True), c_tr[idx])
            w = torch.from_numpy(w_tr[idx])
            err = (uv - torch.from_numpy(y_tr[idx])).abs().sum(-1)
            loss = (err * w).sum() / w.sum().clamp(min=1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        val = evaluate_crops(net, predict, to_tensor, x_va, y_va, w_va, c_va)
        history.append({"epoch": epoch + 1, "train_l1_px": round(total / len(order), 3), **val})
        log(json.dumps(history[-1]))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MODEL_NAME
    export(net, path, len(names), k)
    torch.save(net.state_dict(), out_dir / STATE_NAME)  # not needed at run time; lets a later run fine-tune
    summary = {"epochs": epochs, "train_samples": len(x_tr), "val_samples": len(x_va),
               "train_seconds": round(time.time() - started, 1), "final": history[-1], "onnx": str(path)}
    (out_dir / "keypoints.train.json").write_text(json.dumps({**summary, "history": history}, indent=1) + "\n")
    return summary


def evaluate_crops(net, predict, to_tensor, x, y, w, c) -> dict[str, float]:
    import torch

    net.eval()
    errs = []
    with torch.no_grad():
        for i in range(0, len(x), 128):
            uv = predict(to_tensor(x[i:i + 128], False), c[i:i + 128]).numpy()
            d = np.linalg.norm(uv - y[i:i + 128], axis=-1)
            m = w[i:i + 128] > 0
            errs.extend((d * m).sum(1) / np.maximum(m.sum(1), 1))
    errs = np.array(errs)
    return {"val_median_crop_px": round(float(np.median(errs)), 3),
            "val_p90_crop_px": round(float(np.percentile(errs, 90)), 3)}


def export(net, path: Path, num_classes: int, num_keypoints: int) -> None:
    import onnx
    import torch

    net.eval()
    dummy = torch.zeros(1, 3, INPUT, INPUT)
    torch.onnx.export(net, dummy, str(path), input_names=["image"], output_names=["heatmaps"], opset_version=17,
                      dynamo=False)
    model = onnx.load(str(path))
    for key, value in (("num_keypoints", str(num_keypoints)), ("num_classes", str(num_classes))):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
