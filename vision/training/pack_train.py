"""Train the detector or the keypoint network from training packs (:mod:`vision.training.pack`), typically
on a GPU machine that has torch and Ultralytics but no renderer. ONNX export happens afterwards, where the
catalog is (``python -m vision.training.pack_train export``).

    python -m vision.training.pack_train detector  --packs P1 P2 --out W --device 0 --epochs 60 --time 0.08
    python -m vision.training.pack_train keypoints --packs P1 P2 --out W --device cuda --epochs 40
    python -m vision.training.pack_train parts --packs Q --out W --device cuda --epochs 60 [--states-only]
    python -m vision.training.pack_train export --weights W        # here: W/*.onnx from W's .pt files

torch is imported here only; this module must not run in a process that renders with EGL.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def merged_data_yaml(packs: list[Path], out: Path) -> Path:
    """One Ultralytics data.yaml over every pack's ``det/`` frames; the packs must share class names and
    keypoint shape."""
    import yaml

    metas = [json.loads((p / "pack.json").read_text()) for p in packs]
    for pack, meta in zip(packs, metas, strict=True):
        if (meta["names"], meta["kpt_shape"]) != (metas[0]["names"], metas[0]["kpt_shape"]):
            raise ValueError(f"{pack}: classes {meta['names']} or keypoints {meta['kpt_shape']} differ from "
                             f"{packs[0]}'s; pack every folder with one catalog")
    data = {"train": [str((p / "det" / "images" / "train").resolve()) for p in packs],
            "val": [str((p / "det" / "images" / "val").resolve()) for p in packs],
            "names": dict(enumerate(metas[0]["names"])), "kpt_shape": metas[0]["kpt_shape"]}
    out.mkdir(parents=True, exist_ok=True)
    path = out / "packs.data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def train_detector(args: argparse.Namespace) -> dict:
    from vision.training.train import TrainConfig, train

    data = merged_data_yaml(args.packs, args.out)
    cfg = TrainConfig(data=data, epochs=args.epochs, imgsz=320, batch=args.batch, seed=args.seed,
                      time_hours=args.time, device=args.device, workers=args.workers, init=args.init,
                      project=args.out / "runs", out_dir=args.out, export=False,
                      # Ultralytics picks the optimizer and its learning rate itself (optimizer=auto), unless
                      # --lr asks for AdamW at that peak: a gentle fine-tune of converged weights.
                      extra=(("deterministic", False), ("cache", "ram"), ("warmup_epochs", 1.0), ("cos_lr", True),
                             *((("optimizer", "AdamW"), ("lr0", args.lr), ("warmup_epochs", 0.0))
                               if args.lr is not None else ())))
    return train(cfg)


def _read_packs(packs: list[Path], stem: str, key: str, reader) -> tuple[str, dict[str, tuple[np.ndarray, ...]]]:
    """The first pack's ``key`` entry (the layout or part index every pack must share) and each split's
    arrays over all packs, concatenated; ``reader(pack, split, shared)`` reads one pack's split."""
    started = time.time()
    shared = str(np.load(packs[0] / f"{stem}-train.npz")[key])
    splits = {}
    for split in ("train", "val"):
        parts = [reader(p, split, shared) for p in packs]
        splits[split] = tuple(np.concatenate(arrays) for arrays in zip(*parts, strict=True))
    print(f"{stem}: train {len(splits['train'][0])}, val {len(splits['val'][0])} ({time.time() - started:.0f} s)",
          flush=True)
    return shared, splits


def train_keypoints(args: argparse.Namespace) -> dict:
    from vision.keypoint_layout import KeypointLayout
    from vision.training.keypoints_train import fit_keypoints
    from vision.training.pack import read_crops, read_negatives

    layout_json, splits = _read_packs(args.packs, "keypoints", "layout", read_crops)
    negatives: dict[str, tuple[np.ndarray, ...]] = {}
    if args.negative_packs:
        negatives = _read_packs(args.negative_packs, "negatives", "layout",
                                lambda pack, split, _shared: read_negatives(pack, split, layout_json))[1]
    return fit_keypoints(splits["train"], splits["val"], KeypointLayout.from_json(layout_json), args.out,
                         args.epochs, args.batch, args.seed, args.lr, args.init,
                         lambda m: print(m, flush=True), args.device, args.deadline, args.warp,
                         negatives=negatives.get("train"), val_negatives=negatives.get("val"))


FINGERED_KINDS = ("port", "tray", "cover", "paper", "cable", "removable")  # what a fingertip can pass for healthy


def train_parts(args: argparse.Namespace) -> dict:
    from product_models.catalog import PART_KINDS
    from vision.part_net import PartIndex
    from vision.training.pack import read_part_patches
    from vision.training.parts_train import (
        fit_parts,
        occlusion_only,
        states_only,
        with_fingers_beside,
        with_fingertips,
    )

    index_json, splits = _read_packs(args.packs, "parts", "index", read_part_patches)
    index = PartIndex.from_json(index_json)
    if args.states_only:
        index, (splits["train"], splits["val"]) = states_only(index, splits["train"], splits["val"])
        # A finger beside any part, LEDs included, leaves it readable in its state.
        splits["train"] = with_fingers_beside(index, splits["train"], PART_KINDS, np.random.default_rng(args.seed))
        print(f"states only: train {len(splits['train'][0])}, val {len(splits['val'][0])}", flush=True)
    elif args.occlusion:
        index, (splits["train"], splits["val"]) = occlusion_only(index, splits["train"], splits["val"])
        splits["train"] = with_fingertips(index, splits["train"], FINGERED_KINDS, np.random.default_rng(args.seed))
        print(f"occlusion: train {len(splits['train'][0])}, val {len(splits['val'][0])}", flush=True)
    return fit_parts(splits["train"], splits["val"], index, args.out, args.epochs,
                     args.batch, args.seed, args.lr, lambda m: print(m, flush=True), args.init, args.resume,
                     args.device, args.deadline, keep_known=args.keep_known)


def export(args: argparse.Namespace) -> dict:
    from vision.keypoints import MODEL_NAME
    from vision.training import parts_train
    from vision.training.keypoints_train import STATE_NAME, export_state
    from vision.training.train import WEIGHTS_NAME, export_onnx

    done = {}
    pt = args.weights / f"{WEIGHTS_NAME}.pt"
    if pt.is_file():
        done["detector"] = str(export_onnx(pt, 320))
    state = args.weights / STATE_NAME
    if state.is_file():
        export_state(state, args.weights / MODEL_NAME)
        done["keypoints"] = str(args.weights / MODEL_NAME)
    part_state = args.weights / parts_train.STATE_NAME
    if part_state.is_file():
        parts_train.export_state(part_state, args.weights / parts_train.MODEL_NAME)
        done["parts"] = str(args.weights / parts_train.MODEL_NAME)
    if not done:
        raise ValueError(f"{args.weights}: none of {WEIGHTS_NAME}.pt, {STATE_NAME} or {parts_train.STATE_NAME} "
                         "is there")
    return done


def _positive(kind: type) -> Callable[[str], Any]:
    """An argparse type: a number of ``kind`` above zero (a zero or negative learning rate, epoch count or
    batch would fail deep inside torch or Ultralytics, or train nothing)."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text} must be above 0")
        return value
    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vision.training.pack_train", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    for name, batch in (("detector", 64), ("keypoints", 128), ("parts", 256)):
        p = sub.add_parser(name)
        p.add_argument("--packs", type=Path, nargs="+", required=True)
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--device", default="cpu")
        p.add_argument("--epochs", type=_positive(int), default=40)
        p.add_argument("--batch", type=_positive(int), default=batch)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--init", type=Path, default=None)
        if name != "detector":
            p.add_argument("--lr", type=_positive(float), default=3e-3, help="peak of the one-cycle schedule (3e-3)")
            p.add_argument("--deadline", type=float, default=None, help="stop after the epoch past this many s")
        if name == "keypoints":
            p.add_argument("--warp", type=float, default=0.08, help="zoom/shift augmentation share (0.08)")
            p.add_argument("--negative-packs", type=Path, nargs="+", default=[],
                           help="packs of product-free crops (vision.training.pack.write_negative_pack): "
                                "their heatmaps are pulled flat, as `fixlens train keypoints --negatives` does")
        if name == "parts":
            p.add_argument("--resume", action="store_true", help="continue from the run's checkpoint in --out")
            p.add_argument("--keep-known", action="store_true",
                           help="with --init: the parts it knows keep exactly its readings; only new parts learn")
            mode = p.add_mutually_exclusive_group()
            mode.add_argument("--occlusion", action="store_true",
                              help="train the occlusion network instead: each part visible, under a hand, covered, "
                                   "hidden inside the device, or (row parts) off its patch (off_part)")
            mode.add_argument("--states-only", action="store_true",
                              help="learn only the parts' states: drop the samples of hand, covered, hidden and "
                                   "off_part")
        if name == "detector":
            p.add_argument("--time", type=_positive(float), default=None, help="wall-clock budget in hours")
            p.add_argument("--lr", type=_positive(float), default=None,
                           help="AdamW at this learning rate, no warm-up (default: Ultralytics' optimizer=auto)")
            p.add_argument("--workers", type=int, default=8)
    p = sub.add_parser("export")
    p.add_argument("--weights", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        result = {"detector": train_detector, "keypoints": train_keypoints, "parts": train_parts,
                  "export": export}[args.what](args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
