"""Train the part-state network (:mod:`vision.part_net`) on synthetic data, and export it to ONNX.

Samples are pose-rectified patches (:func:`vision.part_patches.training_patches`) cut with the poses a
live pipeline would use: its own estimate for the frame, slightly noisy true poses, and true poses off by
about a close-up's PnP error. Patches are cut ``EXTENT`` times wider than the part's face at ``CUT`` pixels
and cropped back to ``PATCH`` at a random offset while training (the centre at run time), so the network
also learns to find a part that sits a little off the patch centre. Brightness, contrast, white balance,
blur, sensor noise and JPEG compression are augmented; hue never is (it would turn a red LED green).

torch is imported here only; this module must not run in a process that renders with EGL.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from product_models.catalog import Catalog, default_catalog
from vision.part_net import MODEL_NAME, PartIndex, to_input
from vision.part_patches import (
    HIDDEN,
    HIDEABLE_KINDS,
    OFF_PART,
    PATCH,
    ROW_KINDS,
    UNREADABLE_CLASSES,
    training_patches,
)
from vision.training.state_files import copy_array

STATE_NAME = "part-states.state.pt"  # the trained weights, for fine-tuning (--init)
CHECKPOINT_NAME = "part-states.ckpt.pt"  # the run so far, rewritten after every epoch (--resume)
BLUR_SHARE = 0.5  # of each batch, blurred as defocus or a shaky hand blurs a part (sigma in patch pixels)
BLUR_SIGMA = (0.6, 6.0)  # a 6 px part under a 6 px defocus is blurred by ~20 px at the patch's scale
MOTION_SHARE = 0.2  # of each batch (after the defocused half), smeared along a line as a moving phone smears it
MOTION_PX = (3, 17)  # line length in patch pixels: a 15 px smear over a 30 px part is 16 px at PATCH = 32
GLARE_SHARE = 0.1  # of each batch, with a specular spot beside the part's centre (the label stays: it is still
GLARE_RADIUS = (2.0, 10.0)  # readable there); spot radius in patch pixels
NOISE_MAX = 0.05  # per-pixel sensor noise, standard deviation up to this (0..1 scale)
JPEG_SHARE = 0.3  # of each batch, JPEG-compressed again: a phone streams at quality 30-50 when its link is poor,
JPEG_QUALITY = (20, 70)  # and the coarse chroma shifts a small LED's hue (green towards amber) ...
JPEG_MIN_PX = 10  # ... the more, the fewer pixels the part has in the frame (patches are shrunk to 10-32 px)
EXTENT = 1.5  # training patches cover this many face widths ...
CUT = round(PATCH * EXTENT)  # ... at this many pixels, so a PATCH crop from anywhere inside is a shifted face


def part_index(catalog: Catalog | None = None) -> PartIndex:
    """Every classified (product, part) of the catalog, with its classes: its states, then ``hand`` and
    ``covered``; paper also learns ``hidden`` and parts in rows (LEDs, ports) ``off_part``."""
    from vision.part_patches import CLASSIFIED_KINDS

    entries = []
    for product in catalog or default_catalog():
        for part in product.stateful_parts():
            if part.kind in CLASSIFIED_KINDS:
                classes = (*part.states, *UNREADABLE_CLASSES)
                classes += (HIDDEN,) if part.kind in HIDEABLE_KINDS else ()
                classes += (OFF_PART,) if part.kind in ROW_KINDS else ()
                entries.append((product.id, part.name, classes))
    return PartIndex(tuple(entries))


def load_patches(folders: Sequence[Path], split: str, index: PartIndex, seed: int, jitter: int, wide_jitter: int,
                 pose_source=None, log: Callable[[str], None] = print,
                 required: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patches (n, CUT, CUT, 3) uint8 BGR, part rows (n,) and global class ids (n,) for one split; a split
    without any raises ValueError when ``required``, else comes back empty."""
    catalog = default_catalog()  # the products of the data; ``index`` says which of their parts are learnt
    rng = np.random.default_rng(seed)
    files = sorted(f for d in folders for f in (Path(d) / "truth" / split).glob("*.json"))
    patches, rows, labels = [], [], []
    started = time.time()
    for n, (key, patch, label) in enumerate(training_patches(files, catalog.get, rng, jitter, pose_source,
                                                               CUT, EXTENT, wide_jitter)):
        row = index.row(*key)
        if row is None or label not in index.classes(row):
            continue
        patches.append(patch)
        rows.append(row)
        labels.append(index.class_id(row, label))
        if n % 20000 == 0 and n:
            log(f"{split}: {n} patches ({time.time() - started:.0f} s)")
    if not patches:
        if required:
            raise ValueError(f"no labelled part patches in {', '.join(str(f) for f in folders)} ({split})")
        return np.zeros((0, CUT, CUT, 3), np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.stack(patches), np.array(rows, np.int64), np.array(labels, np.int64)


_PATCH_ARRAYS = ("x_tr", "r_tr", "y_tr", "x_va", "r_va", "y_va")


def cut_patches(folders: Sequence[Path], index: PartIndex, seed: int, jitter: int, wide_jitter: int,
                pose_source=None, log: Callable[[str], None] = print,
                cache: Path | None = None) -> tuple[np.ndarray, ...]:
    """The train and validation patches of :func:`load_patches` (patches, rows, class ids each), read from
    ``cache`` when it holds patches cut for ``index``, else cut and written there (when given)."""
    if cache is not None and cache.is_file():
        with np.load(cache) as data:
            # The labels are class ids in the index the patches were cut with: another index (a part added
            # to the catalog, a kind newly classified) would shift them, so such a cache is cut again.
            if "index" in data and PartIndex.from_json(str(data["index"])) == index:
                return tuple(data[k] for k in _PATCH_ARRAYS)
        log(f"{cache}: cut for another part index (or before caches kept theirs); cutting the patches again")
    train = load_patches(folders, "train", index, seed, jitter, wide_jitter, pose_source, log)
    # Validation patches are cut with the live pipeline's poses when it is given (the errors that matter),
    # else with one slightly noisy true pose.
    val = load_patches(folders, "val", index, seed + 1, 0 if pose_source else 1, 0, pose_source, log,
                       required=False)
    arrays = (*train, *val)
    if cache is not None:
        np.savez(cache, **dict(zip(_PATCH_ARRAYS, arrays, strict=True)), index=np.array(index.to_json()))
    return arrays


def build_net(num_rows: int, num_classes: int) -> Any:
    import torch
    from torch import nn

    def conv(cin: int, cout: int, stride: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True))

    class Net(nn.Module):
        """32 x 32 patch and the part's row -> logits over every part's classes (the caller keeps the
        part's own slice). Pooled features (a coarse 2 x 2 layout plus a global max, which keeps a small lit
        LED wherever it sits) meet a learned embedding of the part, so one body serves every part."""

        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(conv(3, 24, 1), conv(24, 32, 2), conv(32, 32, 1), conv(32, 48, 2),
                                      conv(48, 64, 1))
            self.embed = nn.Embedding(num_rows, 16)
            self.head = nn.Sequential(nn.Linear(64 * 4 + 64 + 16, 128), nn.ReLU(inplace=True), nn.Dropout(0.1),
                                      nn.Linear(128, num_classes))

        def forward(self, x: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
            f = self.body(x)
            # Fixed-size pooling written as reshape + mean: exports to plain ONNX ops.
            n, c, h, w = f.shape
            layout = f.reshape(n, c, 2, h // 2, 2, w // 2).mean(dim=(3, 5)).reshape(n, c * 4)
            peak = f.amax(dim=(2, 3))
            return self.head(torch.cat([layout, peak, self.embed(row)], dim=1))

    return Net()


def train_parts(folders: Sequence[Path], out_dir: Path, epochs: int = 16, batch: int = 256, seed: int = 0,
                jitter: int = 2, wide_jitter: int = 2, lr: float = 3e-3, pose_source=None,
                log: Callable[[str], None] = print, cache: Path | None = None, init: Path | None = None,
                resume: bool = False, catalog: Catalog | None = None, keep_known: bool = False) -> dict[str, Any]:
    """Train, report validation accuracy per part, export ``out_dir / MODEL_NAME`` and its weights
    (``STATE_NAME``, for a later ``init``). ``cache``: an .npz to keep the cut patches in (reused when present,
    so a rerun skips the slow cutting). ``init``: start from a ``STATE_NAME`` file; one trained on part of
    the catalog keeps what it learnt of those parts (:func:`grown_state`), new parts and classes start fresh.
    After every epoch the run is checkpointed to ``out_dir / CHECKPOINT_NAME``; ``resume`` continues a run
    from there (same data and arguments), so a run longer than one sitting survives being killed."""
    started = time.time()
    index = part_index(catalog)
    x_tr, r_tr, y_tr, x_va, r_va, y_va = cut_patches(folders, index, seed, jitter, wide_jitter, pose_source, log,
                                                     cache)
    log(f"patches: train {len(x_tr)}, val {len(x_va)} ({time.time() - started:.0f} s)")
    summary = fit_parts((x_tr, r_tr, y_tr), (x_va, r_va, y_va), index, out_dir, epochs, batch, seed, lr, log, init,
                        resume, spent=time.time() - started, keep_known=keep_known)
    path = out_dir / MODEL_NAME
    export_state(out_dir / STATE_NAME, path)
    return {**summary, "onnx": str(path)}


def fit_parts(train: tuple[np.ndarray, ...], val: tuple[np.ndarray, ...], index: PartIndex, out_dir: Path,
              epochs: int, batch: int = 256, seed: int = 0, lr: float = 3e-3, log: Callable[[str], None] = print,
              init: Path | None = None, resume: bool = False, device: str = "cpu",
              deadline_s: float | None = None, spent: float = 0.0, keep_known: bool = False) -> dict[str, Any]:
    """Train on cut patches (:func:`load_patches`: (CUT, CUT) patches, part rows, global class ids), checkpoint
    every epoch, and write ``out_dir / STATE_NAME`` and the training record; :func:`export_state` makes the
    ONNX file from it. ``deadline_s``: stop after the epoch that passes this many seconds (the record says
    how many ran). ``spent``: seconds already spent (cutting patches), counted in the record's time.

    ``keep_known`` (with ``init``): the parts ``init`` knows keep exactly the readings they had. The body and
    the shared head layer are frozen (batch norms included), and so are the known parts' embeddings and
    output rows, which keep ``init``'s classes (:func:`known_as_before`); only the new parts' embeddings and
    outputs learn, from the new parts' patches only. Adding a product then cannot cost the products already
    shipped a single reading."""
    import torch
    from torch.nn import functional as F

    torch.manual_seed(seed)
    started = time.time() - spent
    dev = torch.device(device)
    source = None
    if init is not None:
        source = state_from_onnx(init, train[0][:512, :PATCH, :PATCH]) if init.suffix == ".onnx" else load_state(init)
    elif keep_known:
        raise ValueError("keeping the known parts needs --init (the network that knows them)")
    if keep_known:
        assert source is not None
        kept_index = known_as_before(index, source[0])
        train, val = narrowed(index, kept_index, (train, val))
        index = kept_index
        # A known part's patches cannot teach anything (nothing they reach may change), so only the new parts'
        # are trained on; validation keeps them all, to show the known parts read as before.
        known = np.array([source[0].row(p, n) is not None for p, n, _c in index.entries])
        train = tuple(a[~known[train[1]]] for a in train)
        if not len(train[0]):
            raise ValueError(f"no training patches of a part that {init} does not know (in the data every new "
                             "part is out of view or under 4 px): with --keep-known there is nothing to learn; "
                             "render more frames")
        log(f"keeping the {int(known.sum())} known parts as they are: train {len(train[0])} patches of the "
            f"{int((~known).sum())} new ones, val {len(val[0])}")
    x_tr, r_tr, y_tr = train
    x_va, r_va, y_va = val
    mask = torch.from_numpy(index.logit_mask())  # (rows, classes): 0 on a part's own classes, -inf elsewhere
    weight_t = torch.from_numpy(class_weights(y_tr, index))
    net = build_net(len(index.entries), index.num_classes)
    if source is not None:
        state, kept = grown_state(source, index, net.state_dict())
        net.load_state_dict(state)
        log(f"initialised from {init}: kept {kept} of {len(index.entries)} parts")
    net.to(dev)
    mask, weight_t = mask.to(dev), weight_t.to(dev)
    frozen = _freeze_known(net, index, source[0]) if keep_known and source is not None else None
    opt = torch.optim.AdamW([q for q in net.parameters() if q.requires_grad], lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(x_tr) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    rng = np.random.default_rng(seed)
    margin = CUT - PATCH
    history: list[dict[str, Any]] = []
    first_epoch = 0
    checkpoint = out_dir / CHECKPOINT_NAME
    if resume and checkpoint.is_file():
        ck = torch.load(checkpoint, weights_only=False, map_location=dev)
        if (ck["epochs"] != epochs or ck["train_patches"] != len(x_tr)
                or PartIndex.from_json(ck["index"]) != index):
            raise ValueError(f"{checkpoint}: written by a run with other epochs, data or catalog; "
                             "delete it or rerun with the same arguments")
        net.load_state_dict(ck["net"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        rng.bit_generator.state = ck["rng"]
        first_epoch, history = ck["epoch"], ck["history"]
        started = time.time() - ck["seconds"]
        log(f"resumed from {checkpoint} after epoch {first_epoch}")

    def augment(idx: np.ndarray) -> torch.Tensor:
        ox, oy = rng.integers(0, margin + 1, 2)  # one offset per batch keeps the crop a cheap slice
        crops = x_tr[idx, oy:oy + PATCH, ox:ox + PATCH]
        n_jpeg = round(JPEG_SHARE * len(crops))
        if n_jpeg:
            crops = crops.copy()
            crops[-n_jpeg:] = jpeg_patches(crops[-n_jpeg:], rng.integers(*JPEG_QUALITY, n_jpeg),
                                           rng.integers(JPEG_MIN_PX, PATCH + 1, n_jpeg))
        x = to_input(crops)
        gain = rng.uniform(0.75, 1.25, (len(x), 1, 1, 1)).astype(np.float32)
        bias = rng.uniform(-0.08, 0.08, (len(x), 1, 1, 1)).astype(np.float32)
        # White balance: red and blue gains move against each other, as a colour temperature does; hue stays.
        temp = rng.uniform(-0.25, 0.25, (len(x), 1, 1, 1)).astype(np.float32)
        balance = np.concatenate([1 + temp, np.ones_like(temp), 1 - temp], axis=1)
        x = x * gain * balance + bias
        # Blur and sensor noise keep their labels: a blurred LED is still lit, and a network that learns
        # "blurred means covered" abstains on every shaky frame.
        n_blur = round(BLUR_SHARE * len(x))
        if n_blur:
            x[:n_blur] = blur_patches(x[:n_blur], float(rng.uniform(*BLUR_SIGMA)))
        n_motion = round(MOTION_SHARE * len(x))
        if n_motion:
            smear = slice(n_blur, n_blur + n_motion)
            x[smear] = motion_blur_patches(x[smear], int(rng.integers(*MOTION_PX)), float(rng.uniform(0, math.pi)))
        n_glare = round(GLARE_SHARE * len(x))
        if n_glare:
            x[:n_glare] = glare_patches(x[:n_glare], rng)
        x = x + rng.normal(0.0, 1.0, x.shape).astype(np.float32) * rng.uniform(0, NOISE_MAX, (len(x), 1, 1, 1)
                                                                               ).astype(np.float32)
        return torch.from_numpy(np.clip(x, 0.0, 1.0)).to(dev)

    val: dict[str, Any] = {"accuracy": None, "by_part": {}}
    out_dir.mkdir(parents=True, exist_ok=True)
    for epoch in range(first_epoch, epochs):
        net.train()
        if frozen is not None:
            net.body.eval()  # frozen batch norms keep their statistics
        order = rng.permutation(len(x_tr))
        total = 0.0
        for i in range(0, len(order), batch):
            idx = np.sort(order[i:i + batch])
            rows = torch.from_numpy(r_tr[idx]).to(dev)
            logits = net(augment(idx), rows) + mask[rows]
            loss = F.cross_entropy(logits, torch.from_numpy(y_tr[idx]).to(dev), weight=weight_t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if frozen is not None:
                frozen.restore()
            total += float(loss.detach()) * len(idx)
        val = evaluate(net, mask, x_va, r_va, y_va, index)
        history.append({"epoch": epoch + 1, "train_loss": round(total / len(order), 4),
                        "val_accuracy": val["accuracy"], "seconds": round(time.time() - started)})
        log(json.dumps(history[-1]))
        tmp = checkpoint.with_suffix(".tmp")
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "rng": rng.bit_generator.state, "epoch": epoch + 1, "history": history,
                    "seconds": time.time() - started, "epochs": epochs, "train_patches": len(x_tr),
                    "index": index.to_json()}, tmp)
        tmp.replace(checkpoint)  # atomic: a kill mid-write leaves the previous checkpoint whole
        if deadline_s is not None and time.time() - started > deadline_s and epoch + 1 < epochs:
            log(f"stopping after epoch {epoch + 1} of {epochs}: past the {deadline_s:.0f} s deadline")
            break
    if first_epoch >= epochs:  # resumed a finished run: only export
        val = evaluate(net, mask, x_va, r_va, y_va, index)
    torch.save({"net": {k: v.cpu() for k, v in net.state_dict().items()}, "index": index.to_json()},
               out_dir / STATE_NAME)
    summary = {"epochs": len(history), "epochs_planned": epochs, "train_patches": len(x_tr),
               "val_patches": len(x_va), "device": device, "train_seconds": round(time.time() - started, 1),
               "val_accuracy": history[-1]["val_accuracy"], "val_accuracy_by_part": val["by_part"]}
    (out_dir / "part-states.train.json").write_text(json.dumps({**summary, "history": history}, indent=1) + "\n")
    return summary


class _Frozen:
    """The known parts' rows of the embedding and the output layer, put back after every optimizer step (their
    gradients are zeroed too, but AdamW's weight decay would still move them)."""

    def __init__(self, net: Any, rows: list[int], classes: list[int]) -> None:
        import torch

        self.tensors = [(net.embed.weight, rows), (net.head[3].weight, classes), (net.head[3].bias, classes)]
        self.saved = [t.detach()[idx].clone() for t, idx in self.tensors]
        for t, idx in self.tensors:
            where = torch.tensor(idx, dtype=torch.long, device=t.device)
            t.register_hook(lambda grad, where=where: grad.index_fill(0, where, 0))

    def restore(self) -> None:
        import torch

        with torch.no_grad():
            for (t, idx), value in zip(self.tensors, self.saved, strict=True):
                t[idx] = value


def _freeze_known(net: Any, index: PartIndex, old: PartIndex) -> _Frozen:
    """Freeze the body and the shared head layer; the known parts' rows are kept by the returned object."""
    for module in (net.body, net.head[0]):
        for q in module.parameters():
            q.requires_grad_(False)
    rows = [row for row, (p, n, _c) in enumerate(index.entries) if old.row(p, n) is not None]
    classes = [int(c) for row in rows for c in index.class_ids(row)]
    return _Frozen(net, rows, classes)


def class_weights(labels: np.ndarray, index: PartIndex) -> np.ndarray:
    """Cross-entropy weight per global class id. A part's states are balanced against each other (a jammed
    sheet matters as much as the common clear tray), up to 10x. The classes that are not states (``hand``,
    ``covered``, ``hidden``, ``off_part``) are rare, and balancing would weigh them up to 30 times a lit LED:
    the network then answered "covered" for any patch it was unsure of, and abstained on blurred and bloomed
    parts (round 8: 11 % of readable parts). So they never weigh more than the part's lightest state."""
    counts = np.bincount(labels, minlength=index.num_classes).astype(np.float64)
    weight = np.zeros(index.num_classes)
    for row in range(len(index.entries)):
        ids = np.asarray(index.class_ids(row))
        present = counts[ids] > 0
        if not present.any():
            continue
        balanced = np.clip(np.where(present, counts[ids].sum() / (present.sum() * np.maximum(counts[ids], 1)), 0),
                           0.0, 10.0)
        states = np.array([name not in EXTRA_CLASSES for name in index.classes(row)])
        lightest = balanced[states & present].min() if (states & present).any() else 1.0
        weight[ids] = np.where(states, balanced, np.minimum(balanced, lightest))
    return weight.astype(np.float32)


EXTRA_CLASSES = frozenset((*UNREADABLE_CLASSES, HIDDEN, OFF_PART))  # what a part can be besides its states


def states_only(index: PartIndex, *splits: tuple[np.ndarray, ...]) -> tuple[PartIndex, list[tuple[np.ndarray, ...]]]:
    """``index`` without :data:`EXTRA_CLASSES`, and each (patches, rows, labels) split without the samples of
    those classes, its labels renumbered in the new index. A network trained so reads every readable part as
    one of its states; the pipeline's geometry (facing away, behind the body, too small) still abstains."""
    kept = PartIndex(tuple((p, n, tuple(c for c in classes if c not in EXTRA_CLASSES))
                           for p, n, classes in index.entries))
    return kept, narrowed(index, kept, splits)


VISIBLE = "visible"  # the occlusion network's class for a part it can see (any of its states)


def occlusion_only(index: PartIndex, *splits: tuple[np.ndarray, ...]) -> tuple[PartIndex, list[tuple[np.ndarray, ...]]]:
    """The occlusion network's index (every part: ``visible``, ``hand``, ``covered``; a part of a row of
    look-alikes also ``off_part``, a part that sits inside the device also ``hidden``) and each split relabelled
    in it: a part's states become ``visible``. The state network learns only states, so whether the part is
    there to be read at all is the occlusion network's to say: under a hand, covered by an object, hidden by
    another part of the device (paper behind a closed cover, which would otherwise pass for a hand), or not
    under its patch (``off_part``: the pose is one part off along its row)."""
    occ = PartIndex(tuple((p, n, (VISIBLE, *UNREADABLE_CLASSES, *(k for k in (HIDDEN, OFF_PART) if k in c)))
                          for p, n, c in index.entries))
    remap = np.full(index.num_classes, -1, np.int64)
    for row, (_p, _n, classes) in enumerate(index.entries):
        for label in classes:  # every class besides the states is the occlusion network's own
            remap[index.class_id(row, label)] = occ.class_id(row, label if label in EXTRA_CLASSES else VISIBLE)
    return occ, [_relabel(remap, split) for split in splits]


FINGER_SHARE = 0.15  # of the visible non-LED patches, copied with a fingertip drawn over the part (``hand``)


def with_fingertips(index: PartIndex, split: tuple[np.ndarray, ...], kinds: Sequence[str], rng: np.random.Generator,
                    share: float = FINGER_SHARE) -> tuple[np.ndarray, ...]:
    """An occlusion split plus copies of ``share`` of its ``visible`` patches of the ``kinds`` rows, each with a
    fingertip drawn over the part's centre, labelled ``hand``. The rendered training frames put a hand's
    fingertip on a part, but its centre is then mostly under the palm or a finger's middle: a light fingertip
    whose rounded end lies on a port, the case that reads "plugged", is rare in them."""
    x, r, y = split
    rows = _rows_of_kinds(index, kinds)
    visible = [i for i in range(len(y)) if r[i] in rows and index.classes(r[i])[y[i] - index.class_ids(r[i])[0]]
               == VISIBLE]
    pick, extra = _finger_copies(x, np.array(visible, np.int64), share, rng, None)
    labels = np.array([index.class_id(int(r[i]), UNREADABLE_CLASSES[0]) for i in pick], np.int64)
    return (np.concatenate([x, extra]), np.concatenate([r, r[pick]]), np.concatenate([y, labels]))


BESIDE_SHARE = 0.1  # of the state patches of fingered kinds, copied with a fingertip beside the centre
BESIDE_GAP = (0.1, 0.4)  # how far the finger's edge stays from the part's centre, in face widths


def with_fingers_beside(index: PartIndex, split: tuple[np.ndarray, ...], kinds: Sequence[str],
                        rng: np.random.Generator, share: float = BESIDE_SHARE) -> tuple[np.ndarray, ...]:
    """A states-only split plus copies of ``share`` of its patches of the ``kinds`` rows, each with a fingertip
    drawn *beside* the part's centre, over its edge, keeping the label. A finger resting next to an empty
    port, covering its edge, read "plugged" (the tip filled the opening's outline); the part is still
    readable and still empty. A finger *on* the centre is the occlusion network's to report
    (:func:`with_fingertips`)."""
    x, r, y = split
    rows = _rows_of_kinds(index, kinds)
    pick, extra = _finger_copies(x, np.flatnonzero(np.isin(r, list(rows))), share, rng, BESIDE_GAP)
    return (np.concatenate([x, extra]), np.concatenate([r, r[pick]]), np.concatenate([y, y[pick]]))


def _finger_copies(x: np.ndarray, candidates: np.ndarray, share: float, rng: np.random.Generator,
                   gap: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray]:
    """``share`` of the ``candidates`` (indices into ``x``), picked at random, and copies of their patches with a
    fingertip drawn on each: over the centre (``gap`` None) or beside it (a gap drawn from the range)."""
    from vision.training.occluders import SKIN_TONES

    pick = rng.choice(candidates, size=round(share * len(candidates)), replace=False) if len(candidates) else candidates
    extra = x[pick].copy()
    for patch in extra:
        _draw_fingertip(patch, rng, SKIN_TONES, gap=None if gap is None else float(rng.uniform(*gap)))
    return pick, extra


def _rows_of_kinds(index: PartIndex, kinds: Sequence[str]) -> set[int]:
    """The rows of ``index`` whose part is of one of ``kinds`` (by the catalog; a product it lacks has none)."""
    catalog = default_catalog()
    return {row for row, (p, n, _c) in enumerate(index.entries)
            if p in catalog.products and catalog.get(p).part(n).kind in kinds}


def _draw_fingertip(patch: np.ndarray, rng: np.random.Generator, tones: np.ndarray, gap: float | None = None
                    ) -> None:
    """A shaded finger coming in from a random side, in place on a (CUT, CUT, 3) uint8 BGR patch (the part's face
    is the middle 1 / EXTENT of it). Its rounded tip lies within a few pixels of the centre, or, with ``gap``
    (face widths), on the side the finger comes from with its edge that far from the centre: the finger then
    covers the part's edge and never its centre."""
    import cv2

    size = patch.shape[0]
    face = size / EXTENT
    width = face * rng.uniform(0.6, 1.2)
    angle = rng.uniform(0, 2 * math.pi)
    toward = np.array([math.cos(angle), math.sin(angle)])
    centre = np.array([size / 2, size / 2])
    if gap is None:
        tip = centre + rng.normal(0, face * 0.12, 2)
    else:
        tip = centre + (width / 2 + 1 + gap * face) * toward  # +1: the anti-aliased edge
    base = tip + 2 * size * toward
    mask = np.zeros(patch.shape[:2], np.float32)
    cv2.line(mask, tuple(int(v) for v in tip), tuple(int(v) for v in base), 1.0, max(2, round(width)), cv2.LINE_AA)
    cv2.circle(mask, tuple(int(v) for v in tip), max(1, round(width / 2)), 1.0, -1, cv2.LINE_AA)
    colour = tones[rng.integers(len(tones))][::-1] * rng.uniform(0.55, 1.15)  # RGB -> BGR, lit
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    across = ((xx - tip[0]) * -math.sin(angle) + (yy - tip[1]) * math.cos(angle)) / max(width, 1.0)
    light = 1.0 + rng.uniform(0.1, 0.35) * np.clip(across, -0.6, 0.6)  # a round finger is lit on one side
    fill = np.clip(colour[None, None, :] * light[:, :, None], 0, 255)
    soft = cv2.GaussianBlur(mask, (0, 0), 0.7)[:, :, None]
    patch[:] = np.clip(patch * (1 - soft) + fill * soft, 0, 255).astype(np.uint8)


def _relabel(remap: np.ndarray, split: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    x, r, y = split
    keep = remap[y] >= 0
    return x[keep], r[keep], remap[y[keep]]


def known_as_before(index: PartIndex, old: PartIndex) -> PartIndex:
    """``index`` with every part that ``old`` knows reduced to the classes ``old`` gives it (a fine-tune that
    keeps the known parts as they were learns no new class for them); new parts keep all their classes."""
    entries = []
    for p, n, classes in index.entries:
        row = old.row(p, n)
        entries.append((p, n, classes if row is None else tuple(c for c in classes if c in old.classes(row))))
    return PartIndex(tuple(entries))


def narrowed(index: PartIndex, kept: PartIndex, splits: Sequence[tuple[np.ndarray, ...]]
             ) -> list[tuple[np.ndarray, ...]]:
    """Each (patches, rows, labels) split numbered in ``index``, renumbered in ``kept`` (the same rows with
    fewer classes); samples of a class ``kept`` lacks are dropped."""
    remap = np.full(index.num_classes, -1, np.int64)
    for row, (_p, _n, classes) in enumerate(index.entries):
        for label in classes:
            if label in kept.classes(row):
                remap[index.class_id(row, label)] = kept.class_id(row, label)
    return [_relabel(remap, split) for split in splits]


def jpeg_patches(patches: np.ndarray, qualities: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """(n, h, w, 3) uint8 BGR patches, each shrunk to ``sizes[i]`` pixels square (the part's size in the frame,
    where the camera's JPEG works), through a JPEG encode and decode at ``qualities[i]``, and scaled back."""
    import cv2

    out = np.empty_like(patches)
    for i, (p, q, size) in enumerate(zip(patches, qualities, sizes, strict=True)):
        small = cv2.resize(p, (int(size), int(size)), interpolation=cv2.INTER_AREA)
        small = cv2.imdecode(cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, int(q)])[1], cv2.IMREAD_COLOR)
        out[i] = cv2.resize(small, (p.shape[1], p.shape[0]), interpolation=cv2.INTER_LINEAR)
    return out


def motion_blur_patches(x: np.ndarray, length: int, angle: float) -> np.ndarray:
    """(n, c, h, w) float32 patches smeared along a ``length``-pixel line at ``angle`` radians (edges replicated)."""
    import cv2

    k = np.zeros((length, length), np.float32)
    c, half = (length - 1) / 2.0, (length - 1) / 2.0
    d = np.array([math.cos(angle), math.sin(angle)]) * half
    cv2.line(k, (round(c - d[0]), round(c - d[1])), (round(c + d[0]), round(c + d[1])), 1.0, 1, cv2.LINE_AA)
    k /= k.sum()
    out = np.empty_like(x)
    for i, patch in enumerate(x):
        out[i] = cv2.filter2D(patch.transpose(1, 2, 0), -1, k, borderType=cv2.BORDER_REPLICATE
                              ).reshape(patch.shape[1], patch.shape[2], -1).transpose(2, 0, 1)
    return out


def glare_patches(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, c, h, w) float32 patches (0..1), each with a white specular spot whose centre lies at least a quarter
    face from the part's centre: glare washes out the body around a part, rarely the part's own centre."""
    n, _c, h, w = x.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    face = h  # a training crop is one face wide (module docstring)
    angle = rng.uniform(0, 2 * math.pi, n)
    dist = rng.uniform(0.25, 0.75, n) * face
    cx, cy = w / 2 + dist * np.cos(angle), h / 2 + dist * np.sin(angle)
    radius = rng.uniform(*GLARE_RADIUS, n)
    strength = rng.uniform(0.4, 1.0, n)
    spot = strength[:, None, None] * np.exp(-((xx - cx[:, None, None]) ** 2 + (yy - cy[:, None, None]) ** 2)
                                            / (2 * radius[:, None, None] ** 2))
    return (x + spot[:, None, :, :] * (1.0 - x)).astype(np.float32)


def blur_patches(x: np.ndarray, sigma: float) -> np.ndarray:
    """(n, c, h, w) float32 patches blurred with one Gaussian of ``sigma`` pixels (edges replicated)."""
    import torch
    from torch.nn import functional as F

    radius = max(1, math.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k = torch.from_numpy((k / k.sum()).astype(np.float32))
    n, c, h, w = x.shape
    t = torch.from_numpy(np.ascontiguousarray(x)).reshape(n * c, 1, h, w)
    t = F.conv2d(F.pad(t, (radius, radius, 0, 0), mode="replicate"), k.reshape(1, 1, 1, -1))
    t = F.conv2d(F.pad(t, (0, 0, radius, radius), mode="replicate"), k.reshape(1, 1, -1, 1))
    return t.reshape(n, c, h, w).numpy()


def load_state(path: Path) -> tuple[PartIndex, dict[str, Any]]:
    """The part index and network weights in a ``STATE_NAME`` file."""
    import torch

    try:
        state = torch.load(path, weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise ValueError(f"{path}: not a part-state weights file ({exc})") from exc
    if not isinstance(state, dict) or "net" not in state or "index" not in state:
        raise ValueError(f"{path}: not a part-state weights file (no 'net' and 'index' entries)")
    return PartIndex.from_json(state["index"]), state["net"]


def state_from_onnx(path: Path, patches: np.ndarray) -> tuple[PartIndex, dict[str, Any]]:
    """The part index and a trainable state recovered from an exported ``part-states.onnx`` (weights shipped
    without their ``STATE_NAME``). The export folded each batch norm into its convolution; the folded
    convolution comes back with a batch norm whose statistics are measured on ``patches`` (n, PATCH, PATCH, 3)
    and whose scale and shift undo them, so the network computes exactly what the ONNX file does and its
    batch statistics in training start where they were."""
    import onnx
    import torch
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
        meta = {e.key: e.value for e in model.metadata_props}
        index = PartIndex.from_json(meta["part_index"])
    except Exception as exc:  # onnx raises DecodeError, KeyError... for a wrong file
        raise ValueError(f"--init: {path}: not a part-state model ({type(exc).__name__}: {exc})") from None
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    net = build_net(len(index.entries), index.num_classes)
    state = net.state_dict()
    if len(convs) != sum(1 for k in state if k.startswith("body.") and k.endswith(".0.weight")):
        raise ValueError(f"--init: {path}: its network has {len(convs)} convolutions, this one another number")
    for i, node in enumerate(convs):
        state[f"body.{i}.0.weight"] = torch.from_numpy(weights[node.input[1]].copy())
        bn = f"body.{i}.1."
        state[bn + "weight"], state[bn + "running_mean"] = torch.ones_like(state[bn + "weight"]), 0 * state[bn + "bias"]
        state[bn + "running_var"] = torch.ones_like(state[bn + "running_var"])
        state[bn + "bias"] = torch.from_numpy(weights[node.input[2]].copy())
    for key in ("embed.weight", "head.0.weight", "head.0.bias", "head.3.weight", "head.3.bias"):
        state[key] = torch.from_numpy(weights[key].copy())
    net.load_state_dict(state)
    net.eval()
    stats: dict[int, torch.Tensor] = {}
    hooks = [net.body[i][0].register_forward_hook(lambda _m, _x, y, i=i: stats.__setitem__(i, y))
             for i in range(len(convs))]
    with torch.no_grad():
        net(torch.from_numpy(to_input(patches)), torch.zeros(len(patches), dtype=torch.int64))
    for h in hooks:
        h.remove()
    eps = net.body[0][1].eps
    for i in range(len(convs)):
        mean, var = stats[i].mean(dim=(0, 2, 3)), stats[i].var(dim=(0, 2, 3), unbiased=False)
        bn = f"body.{i}.1."
        shift = state[bn + "bias"]
        state[bn + "running_mean"], state[bn + "running_var"] = mean, var
        state[bn + "weight"], state[bn + "bias"] = torch.sqrt(var + eps), mean + shift
    return index, state


def grown_state(source: tuple[PartIndex, dict[str, Any]], index: PartIndex,
                fresh: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """``fresh`` (a new network's state for ``index``) with the body copied from ``source`` and, for every
    part it knows, the part's embedding and its classes' output weights (matched by product, part and class
    name). Returns the state and the number of parts kept."""
    old_index, old = source
    out = dict(fresh)
    per_row = ("embed.weight",)
    per_class = ("head.3.weight", "head.3.bias")
    for key, value in old.items():
        if key in per_row or key in per_class or key not in out:
            continue
        if out[key].shape != value.shape:
            raise ValueError(f"--init: the network body differs ({key}: {tuple(value.shape)} against "
                             f"{tuple(out[key].shape)}); train without --init")
        out[key] = value
    tensors = {k: copy_array(out[k]) for k in (*per_row, *per_class)}
    kept = 0
    for row, (pid, part, classes) in enumerate(index.entries):
        src = old_index.row(pid, part)
        if src is None:
            continue
        kept += 1
        tensors["embed.weight"][row] = old["embed.weight"][src]
        for label in classes:
            if label in old_index.classes(src):
                dst, was = index.class_id(row, label), old_index.class_id(src, label)
                for key in per_class:
                    tensors[key][dst] = old[key][was]
    out.update(tensors)
    return out, kept


def evaluate(net, mask, x: np.ndarray, r: np.ndarray, y: np.ndarray, index: PartIndex) -> dict[str, Any]:
    import torch

    net.eval()
    lo = (CUT - PATCH) // 2
    pred = []
    dev = mask.device
    with torch.no_grad():
        for i in range(0, len(x), 512):
            rows = torch.from_numpy(r[i:i + 512]).to(dev)
            patches = torch.from_numpy(to_input(x[i:i + 512, lo:lo + PATCH, lo:lo + PATCH])).to(dev)
            pred.append((net(patches, rows) + mask[rows]).argmax(1).cpu().numpy())
    if not len(x):
        return {"accuracy": None, "by_part": {}}
    right = np.concatenate(pred) == y
    by_part = {}
    for row, (product_id, part, _classes) in enumerate(index.entries):
        m = r == row
        if m.any():
            by_part[f"{product_id}/{part}"] = round(float(right[m].mean()), 4)
    return {"accuracy": round(float(right.mean()), 4), "by_part": by_part}


def export_state(state_path: Path, onnx_path: Path) -> None:
    """Export a ``STATE_NAME`` file to ONNX with its part index (a GPU machine's run, exported here)."""
    index, state = load_state(state_path)
    net = build_net(len(index.entries), index.num_classes)
    net.load_state_dict(state)
    export(net, onnx_path, index)


def export(net, path: Path, index: PartIndex) -> None:
    import onnx
    import torch

    net.eval()
    dummy = (torch.zeros(2, 3, PATCH, PATCH), torch.zeros(2, dtype=torch.int64))
    torch.onnx.export(net, dummy, str(path), input_names=["patch", "part"], output_names=["logits"],
                      opset_version=17, dynamo=False,
                      dynamic_axes={"patch": {0: "n"}, "part": {0: "n"}, "logits": {0: "n"}})
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = "part_index", index.to_json()
    onnx.save(model, str(path))

