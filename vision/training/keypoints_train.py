"""Train the crop keypoint network (:mod:`vision.keypoints`) on synthetic data, and export it to ONNX.

Samples come from ``fixlens data synth`` folders: each frame with a product gives ``jitter`` crops around
its true box, moved and scaled like a detector's box would be (some loose, as over a busy room), with
brightness and contrast changes (hue stays fixed). The loss is the L1 distance between the soft-argmax of
each heatmap and the keypoint, in crop pixels, over keypoints inside the frame (hidden ones included: their
place is still implied).

With ``negatives`` (``fixlens train keypoints --negatives N``), N product-free frames are drawn as the appearance
check's are (:mod:`vision.training.negatives`: the detector's phantom boxes on them, a hand's or an object's box,
random boxes), and ``NEGATIVE_SHARE`` of each batch is such a crop, asked for the keypoints of the product the
detector named (a random one for a box it did not give). There is no keypoint in it, so its heatmaps are
pulled towards flat: the loss adds ``NEGATIVE_WEIGHT`` times each heatmap's divergence from uniform
(KL(p || U), in nats). Without it the network is only ever shown products, and every fine-tune makes its
heatmaps sharper everywhere: on a phantom box too, where the pose check reads sharp heatmaps (their peak mass,
:func:`vision.keypoints.peak_mass`) as a sure keypoint network.

The network has one heatmap row per (product, keypoint) (:class:`vision.keypoint_layout.KeypointLayout`), so
products may have different keypoint counts. ``init`` may come from a network that knows only some of the
catalog's products: the shared body and the rows of every product and keypoint it knows are kept, and rows
for new ones start fresh (:func:`grown_state`), which is how ``fixlens train product`` adds a product.

torch is imported here only; this module must not run in a process that renders with EGL.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from product_models.catalog import Catalog, default_catalog
from vision.keypoint_layout import KeypointLayout, keypoint_fingerprints
from vision.keypoints import INPUT, MODEL_NAME, PAD_VALUE, crop_square, peak_mass, soft_argmax, to_input
from vision.training.state_files import copy_array
from vision.training.synth import class_names

STATE_NAME = "keypoints.state.pt"
LOOSE_BOX_SHARE = 0.3  # of training crops, cut from a loose box (below)
LOOSE_BOX_GROWTH = 0.45  # each side grows by up to this share of the box's size
NEGATIVE_SHARE = 0.25  # of each batch, with --negatives: a product-free crop (module docstring)
NEGATIVE_WEIGHT = 1.0  # its flatness loss (nats) beside the keypoints' L1 loss (crop pixels, ~2-5 once trained)
NEGATIVE_VAL_SHARE = 0.1  # of the drawn negatives, kept out of training to measure the heatmaps' peak mass on


def loose_box(box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``box`` grown on each side by up to ``LOOSE_BOX_GROWTH`` of its size, unevenly: over a busy room the
    detector's box often takes in a neighbouring object or shadow on one side (seen up to 1.9x too wide)."""
    w, h = box[2] - box[0], box[3] - box[1]
    grow = rng.uniform(0.0, LOOSE_BOX_GROWTH, 4) * [w, h, w, h]
    return box + grow * [-1, -1, 1, 1]


def load_samples(folders: list[Path], split: str, jitter: int, seed: int,
                 layout: KeypointLayout, only: str | None = None) -> tuple[np.ndarray, ...]:
    """Crops (n, INPUT, INPUT, 3) uint8 BGR, targets (n, K, 2) crop pixels, weights (n, K), products (n,) as
    indices into ``layout.products``; K is the longest keypoint list, shorter ones are padded with weight 0.
    Frames of products outside ``layout`` are skipped, and with ``only``, those of any other product."""
    rng = np.random.default_rng(seed)
    names = list(layout.products)
    kmax = layout.max_keypoints
    crops, targets, weights, classes = [], [], [], []
    for folder in folders:
        for tf in sorted((folder / "truth" / split).glob("*.json")):
            rec = json.loads(tf.read_text())
            if not rec.get("product") or rec["product"] not in names or only not in (None, rec["product"]):
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
                pad = kmax - len(uv)
                crops.append(crop)
                targets.append(np.pad(uv.astype(np.float32), ((0, pad), (0, 0))))
                weights.append(np.pad((vis & inside).astype(np.float32), (0, pad)))
                classes.append(names.index(rec["product"]))
    if not crops:
        return (np.zeros((0, INPUT, INPUT, 3), np.uint8), np.zeros((0, kmax, 2), np.float32),
                np.zeros((0, kmax), np.float32), np.zeros(0, np.int64))
    return np.stack(crops), np.stack(targets), np.stack(weights), np.array(classes, dtype=np.int64)


def load_negatives(count: int, seed: int, layout: KeypointLayout, detector: Any, photos: Sequence[np.ndarray] = (),
                   photo_share: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Crops (n, INPUT, INPUT, 3) uint8 BGR of ``count`` drawn product-free frames' boxes (``photo_share`` of
    the frames over ``photos``), cut as the pipeline cuts a detection, and the product (index into
    ``layout.products``) each is asked about: the detector's class for its own box, a random product otherwise."""
    from vision.training.negatives import drawn_negatives

    rng = np.random.default_rng(seed)
    names = list(layout.products)
    crops, classes = [], []
    for boxes in drawn_negatives(count, seed, detector, photos, photo_share):
        for b in boxes:
            product = detector.names[b.class_id] if b.class_id is not None else None
            crops.append(crop_square(b.image, b.box)[0])
            classes.append(names.index(product) if product in names else int(rng.integers(len(names))))
    if not crops:
        return np.zeros((0, INPUT, INPUT, 3), np.uint8), np.zeros(0, np.int64)
    return np.stack(crops), np.array(classes, dtype=np.int64)


def negative_splits(frames: int, seed: int, layout: KeypointLayout, detector_weights: Path | None = None,
                    photos: Sequence[np.ndarray] = (), photo_share: float = 0.0
                    ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The training and held-out product-free crops of ``frames`` drawn frames (``NEGATIVE_VAL_SHARE`` held
    out, at least one), mined with the detector in ``detector_weights`` (default the shipped one)."""
    from vision.training.negatives import mining_detector

    if frames < 2:
        raise ValueError(f"negatives: expected at least 2 frames (one held out), got {frames}")
    detector = mining_detector(detector_weights)
    held = max(1, round(frames * NEGATIVE_VAL_SHARE))
    return (load_negatives(frames - held, 2000 + seed, layout, detector, photos, photo_share),
            load_negatives(held, 3000 + seed, layout, detector, photos, photo_share))


def build_net(num_rows: int) -> Any:
    import torch
    from torch import nn
    from torch.nn import functional as F

    def block(cin: int, cout: int, stride: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class Net(nn.Module):
        """A small U-Net: 128 px in, one heatmap per layout row at 64 px out."""

        def __init__(self) -> None:
            super().__init__()
            c = (16, 32, 48, 64, 96)
            self.e0, self.e1 = block(3, c[0], 2), block(c[0], c[1], 2)  # 64, 32
            self.e2, self.e3 = block(c[1], c[2], 2), block(c[2], c[3], 2)  # 16, 8
            self.e4 = block(c[3], c[4], 2)  # 4: sees the whole product, so it can tell front from back
            self.u3, self.u2 = block(c[4] + c[3], c[3], 1), block(c[3] + c[2], c[2], 1)
            self.u1, self.u0 = block(c[2] + c[1], c[1], 1), block(c[1] + c[0], c[1], 1)
            self.head = nn.Conv2d(c[1], num_rows, 1)

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
                    jitter: int = 2, lr: float = 2e-3, init: Path | None = None, log=print,
                    catalog: Catalog | None = None, device: str = "cpu", negatives: int = 0,
                    detector_weights: Path | None = None, only: str | None = None,
                    photos: Sequence[np.ndarray] = (), photo_share: float = 0.0) -> dict[str, Any]:
    """``negatives``: drawn product-free frames whose boxes (mined with the detector in ``detector_weights``,
    default the shipped one) teach flat heatmaps (module docstring); 0 for none; ``photo_share`` of them over
    ``photos`` (:mod:`vision.training.photos`). ``only``: train on that
    product's crops alone (a network for its own model set: the other products' rows stay as ``init`` had
    them, and every epoch goes to the one product)."""
    catalog = catalog or default_catalog()
    layout = KeypointLayout.from_catalog(catalog, class_names(catalog))
    if init is not None:  # checked before the slow sample loading
        grown_state(load_state(init), layout, build_net(layout.num_rows).state_dict())
    started = time.time()
    if only is not None and only not in layout.products:
        raise ValueError(f"--only {only}: not in the catalog ({', '.join(layout.products)})")
    train = load_samples(folders, "train", jitter, seed, layout, only)
    val = load_samples(folders, "val", 1, seed + 1, layout, only)
    if not len(train[0]):
        wanted = only or ", ".join(layout.products)
        raise ValueError(f"no training frame of {wanted} in {', '.join(map(str, folders))}")
    log(f"samples: train {len(train[0])}, val {len(val[0])} ({time.time() - started:.0f} s)")
    neg = neg_val = None
    if negatives > 0:
        neg, neg_val = negative_splits(negatives, seed, layout, detector_weights, photos, photo_share)
        log(f"negatives: train {len(neg[0])} crops, val {len(neg_val[0])} ({time.time() - started:.0f} s)")
    summary = fit_keypoints(train, val, layout, out_dir, epochs, batch, seed, lr, init, log, device,
                            negatives=neg, val_negatives=neg_val)
    path = out_dir / MODEL_NAME
    export_state(out_dir / STATE_NAME, path, catalog)
    return {**summary, "onnx": str(path)}


def fit_keypoints(train: tuple[np.ndarray, ...], val: tuple[np.ndarray, ...], layout: KeypointLayout,
                  out_dir: Path, epochs: int, batch: int = 64, seed: int = 0, lr: float = 2e-3,
                  init: Path | None = None, log=print, device: str = "cpu",
                  deadline_s: float | None = None, warp: float = 0.0,
                  negatives: tuple[np.ndarray, np.ndarray] | None = None,
                  val_negatives: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """Train on loaded samples (:func:`load_samples`) and write ``out_dir / STATE_NAME`` and the training
    record; :func:`export_state` makes the ONNX file from it (a GPU machine need not have the catalog).
    ``deadline_s``: stop after the epoch that passes this many seconds (a rented machine's time is fixed);
    the record says how many epochs ran. ``warp``: also zoom each training crop by up to this share and
    shift it by up to this share of its side (targets move with it), so fixed crops (a pack's) are not
    seen identically every epoch. ``negatives`` / ``val_negatives``: product-free crops and the product each is
    asked about (:func:`load_negatives`), ``NEGATIVE_SHARE`` of each batch; the record then gives the mean peak
    mass of the heatmaps on the held-out ones beside that on the validation products."""
    import torch
    from torch.nn import functional as F

    torch.manual_seed(seed)
    started = time.time()
    dev = torch.device(device)
    net = build_net(layout.num_rows)
    if init is not None:  # fine-tune from an earlier run's state
        state, kept = grown_state(load_state(init), layout, net.state_dict())
        net.load_state_dict(state)
        log(f"initialised from {init}: kept {kept} of {layout.num_rows} keypoint rows")
    net.to(dev)
    x_tr, y_tr, w_tr, c_tr = train
    x_va, y_va, w_va, c_va = val
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
        return torch.from_numpy(x).to(dev)

    # (products, K) output row of each product's k-th keypoint; padding points at row 0 and has weight 0.
    row_table = torch.zeros(len(layout.products), layout.max_keypoints, dtype=torch.int64)
    for i, pid in enumerate(layout.products):
        rows = layout.rows(pid)
        row_table[i, :rows.stop - rows.start] = torch.arange(rows.start, rows.stop)
    row_table = row_table.to(dev)
    row_valid = torch.tensor([[k < layout.rows(pid).stop - layout.rows(pid).start for k in range(layout.max_keypoints)]
                              for pid in layout.products], dtype=torch.float32, device=dev)

    def heatmaps(x: torch.Tensor, cls: np.ndarray) -> torch.Tensor:
        """(n, K, h, w) logits of each crop's product's rows."""
        heat = net(x)
        return heat[torch.arange(heat.shape[0], device=dev)[:, None], row_table[torch.from_numpy(cls).to(dev)]]

    def predict(x: torch.Tensor, cls: np.ndarray) -> torch.Tensor:
        return soft_argmax(heatmaps(x, cls))[0]

    def flatness(heat: torch.Tensor, cls: np.ndarray) -> torch.Tensor:
        """Mean KL(p || U) of (n, K, h, w) heatmap logits of the products ``cls`` (log of the cell count less
        the entropy): 0 when flat. This direction weighs the cells where p is large, so it lowers the peaks
        themselves, which is what the pose check reads (KL(U || p) would mostly lift the near-empty cells)."""
        logp = F.log_softmax(heat.flatten(2), dim=-1)
        kl = (logp.exp() * logp).sum(-1) + math.log(logp.shape[-1])  # (n, K)
        valid = row_valid[torch.from_numpy(cls).to(dev)]
        return (kl * valid).sum() / valid.sum().clamp(min=1.0)

    def warped(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Zoom by s and shift by (tx, ty) crop pixels about the centre; outside the crop pads grey, as
        :func:`vision.keypoints.crop_square` pads; keypoints pushed out of the crop lose their weight."""
        n = len(x)
        s = torch.empty(n, device=dev).uniform_(1 - warp, 1 + warp)
        t = torch.empty(n, 2, device=dev).uniform_(-warp, warp) * INPUT
        # y_out = c + s (y_in - c) + t; grid_sample asks, per output pixel, for its input point.
        theta = torch.zeros(n, 2, 3, device=dev)
        theta[:, 0, 0] = theta[:, 1, 1] = 1 / s
        theta[:, :, 2] = -t / s[:, None] * (2 / INPUT)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        pad = PAD_VALUE / 255.0
        out = F.grid_sample(x - pad, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + pad
        c = INPUT / 2
        y2 = c + s[:, None, None] * (y - c) + t[:, None, :]
        inside = ((y2 >= -INPUT * 0.1) & (y2 <= INPUT * 1.1)).all(-1)
        return out, y2, w * inside

    history = []
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(len(x_tr))
        total = torch.zeros((), device=dev)
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            x = to_tensor(x_tr[idx], True)
            y = torch.from_numpy(y_tr[idx]).to(dev)
            w = torch.from_numpy(w_tr[idx]).to(dev)
            if warp:
                x, y, w = warped(x, y, w)
            cls = c_tr[idx]
            if negatives is not None and len(negatives[0]):
                # One batch of products and phantoms together, so the batch norms see them mixed.
                pick = rng.integers(0, len(negatives[0]), max(1, round(NEGATIVE_SHARE * len(idx))))
                x = torch.cat([x, to_tensor(negatives[0][pick], True)])
                cls = np.concatenate([cls, negatives[1][pick]])
            heat = heatmaps(x, cls)
            uv = soft_argmax(heat[:len(idx)])[0]
            err = (uv - y).abs().sum(-1)
            loss = (err * w).sum() / w.sum().clamp(min=1.0)
            if len(cls) > len(idx):
                loss = loss + NEGATIVE_WEIGHT * flatness(heat[len(idx):], cls[len(idx):])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach() * len(idx)
        val_err = evaluate_crops(net, predict, to_tensor, x_va, y_va, w_va, c_va)
        if val_negatives is not None and len(val_negatives[0]):
            val_err["val_peak_mass"] = mean_peak_mass(net, heatmaps, to_tensor, x_va, c_va, w_va > 0)
            val_err["val_negative_peak_mass"] = mean_peak_mass(
                net, heatmaps, to_tensor, *val_negatives, row_valid.cpu().numpy()[val_negatives[1]] > 0)
        history.append({"epoch": epoch + 1, "train_l1_px": round(float(total) / len(order), 3), **val_err,
                        "seconds": round(time.time() - started)})
        log(json.dumps(history[-1]))
        if deadline_s is not None and time.time() - started > deadline_s and epoch + 1 < epochs:
            log(f"stopping after epoch {epoch + 1} of {epochs}: past the {deadline_s:.0f} s deadline")
            break
    out_dir.mkdir(parents=True, exist_ok=True)
    # Not needed at run time; lets a later run fine-tune, or grow the network for a larger catalog.
    torch.save({"layout": layout.to_json(), "net": {k: v.cpu() for k, v in net.state_dict().items()}},
               out_dir / STATE_NAME)
    summary = {"epochs": len(history), "epochs_planned": epochs, "train_samples": len(x_tr),
               "val_samples": len(x_va), "device": device,
               "train_seconds": round(time.time() - started, 1), "final": history[-1]}
    (out_dir / "keypoints.train.json").write_text(json.dumps({**summary, "history": history}, indent=1) + "\n")
    return summary


def export_state(state_path: Path, onnx_path: Path, catalog: Catalog | None = None) -> None:
    """Export a ``STATE_NAME`` file to ONNX, with its layout and the fingerprints of ``catalog``'s products."""
    layout, state = load_state(state_path)
    net = build_net(layout.num_rows)
    net.load_state_dict(state)
    export(net, onnx_path, layout, keypoint_fingerprints(catalog or default_catalog(), layout.products))


def evaluate_crops(net, predict, to_tensor, x, y, w, c) -> dict[str, float]:
    import torch

    net.eval()
    errs = []
    with torch.no_grad():
        for i in range(0, len(x), 128):
            uv = predict(to_tensor(x[i:i + 128], False), c[i:i + 128]).cpu().numpy()
            d = np.linalg.norm(uv - y[i:i + 128], axis=-1)
            m = w[i:i + 128] > 0
            errs.extend((d * m).sum(1) / np.maximum(m.sum(1), 1))
    if not errs:
        return {"val_median_crop_px": None, "val_p90_crop_px": None}
    errs = np.array(errs)
    return {"val_median_crop_px": round(float(np.median(errs)), 3),
            "val_p90_crop_px": round(float(np.percentile(errs, 90)), 3)}


def mean_peak_mass(net, heatmaps, to_tensor, x: np.ndarray, c: np.ndarray, rows: np.ndarray | None = None) -> float:
    """The mean over crops of the mean peak mass (the run time's keypoint confidence) over the product's
    keypoints; ``rows`` (n, K) bool: only these (the product's own rows; for a validation product, those in
    view)."""
    import torch

    net.eval()
    means = []
    with torch.no_grad():
        for i in range(0, len(x), 128):
            heat = heatmaps(to_tensor(x[i:i + 128], False), c[i:i + 128]).cpu().numpy()
            for j, h in enumerate(heat):
                prob = np.exp(h.reshape(len(h), -1) - h.reshape(len(h), -1).max(-1, keepdims=True))
                mass = peak_mass((prob / prob.sum(-1, keepdims=True)).reshape(h.shape))
                keep = np.ones(len(h), bool) if rows is None else rows[i + j]
                means.append(float(mass[keep].mean()) if keep.any() else float(mass.mean()))
    return round(float(np.mean(means)), 4)


def load_state(path: Path) -> tuple[KeypointLayout, dict[str, Any]]:
    """The layout and weights in a ``STATE_NAME`` file. A file written before layouts were recorded holds the
    bare weights of the two shipped products, ten keypoints each, in class order."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, KeyError... for a wrong file
        raise ValueError(f"--init: {path}: not a {STATE_NAME} ({type(exc).__name__}: {str(exc)[:200]})") from None
    if isinstance(state, dict) and "layout" in state and "net" in state:
        try:
            return KeypointLayout.from_json(state["layout"]), state["net"]
        except ValueError as exc:
            raise ValueError(f"--init: {path}: {exc}") from None
    if isinstance(state, dict) and "head.weight" in state and state["head.weight"].shape[0] == len(LEGACY_LAYOUT) * 10:
        names = tuple(f"#{i}" for i in range(10))  # matched by position below, as that file was trained
        return KeypointLayout(tuple((pid, names) for pid in LEGACY_LAYOUT)), state
    raise ValueError(f"--init: {path}: not a {STATE_NAME} (no layout, and not the two-product original)")


LEGACY_LAYOUT = ("printer_lx400", "router_ax1800")  # the products of state files without a layout


def grown_state(source: tuple[KeypointLayout, dict[str, Any]], layout: KeypointLayout,
                fresh: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """``fresh`` (a new network's state for ``layout``) with the body and every known row copied from
    ``source``; returns it and the number of rows kept. Rows match by product and keypoint name (by
    position for a state file that predates names)."""
    old_layout, old = source
    out = dict(fresh)
    for key, value in old.items():
        if not key.startswith("head.") and key in out:
            if out[key].shape != value.shape:
                raise ValueError(f"--init: the network body differs ({key}: {tuple(value.shape)} against "
                                 f"{tuple(out[key].shape)}); train without --init")
            out[key] = value
    kept = 0
    weight, bias = copy_array(out["head.weight"]), copy_array(out["head.bias"])
    for pid, names in layout.entries:
        if pid not in old_layout.products:
            continue
        positional = old_layout.keypoints(pid)[0].startswith("#")
        for j, name in enumerate(names):
            src = (old_layout.rows(pid).start + j if j < len(old_layout.keypoints(pid)) else None) if positional \
                else old_layout.row_of(pid, name)
            if src is not None:
                dst = layout.rows(pid).start + j
                weight[dst], bias[dst] = old["head.weight"][src], old["head.bias"][src]
                kept += 1
    out["head.weight"], out["head.bias"] = weight, bias
    return out, kept


def write_metadata(path: Path, layout: KeypointLayout, fingerprints: dict[str, str]) -> None:
    """Record the layout and fingerprints in the ONNX file (and the older counts, for older readers)."""
    import onnx

    model = onnx.load(str(path))
    values = {"keypoint_layout": layout.to_json(), "keypoint_fingerprints": json.dumps(fingerprints),
              "num_keypoints": str(layout.max_keypoints), "num_classes": str(len(layout.products))}
    kept = [e for e in model.metadata_props if e.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in values.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def export(net, path: Path, layout: KeypointLayout, fingerprints: dict[str, str]) -> None:
    import torch

    net.eval()
    dummy = torch.zeros(1, 3, INPUT, INPUT)
    torch.onnx.export(net, dummy, str(path), input_names=["image"], output_names=["heatmaps"], opset_version=17,
                      dynamo=False)
    write_metadata(path, layout, fingerprints)

