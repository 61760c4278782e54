"""Train the product detector (a YOLO pose model whose keypoints are the catalog's keypoints), offline.

No pretrained weights exist here: the network is built from Ultralytics' model YAML and trained from
scratch on synthetic renders (``vision.training.synth``). Settings that matter:

- ``hsv_h=0``: hue augmentation would turn a red LED green.
- ``fliplr=0``: a mirrored router is not a router anyone owns (its ports would be in mirror order).
- ``plots=False``: plotting fetches a font from the internet. ``amp=False`` and ``workers=0`` on CPU.
- ``time``: a wall-clock budget in hours; Ultralytics fits the epoch count to it after the first epoch.

Training reads images from disk and never renders: torch crashes (SIGSEGV in
``torch.use_deterministic_algorithms``) in a process that has Mesa's EGL renderer loaded. Processes that
need both render with ``FIXLENS_RENDER_DISPLAY=p3tinydisplay`` (see ``vision.training.evaluate``).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vision.yolo import load_yolo

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
WEIGHTS_NAME = "fixlens-pose"


@dataclass(frozen=True)
class TrainConfig:
    data: Path  # data.yaml written by `fixlens data synth`
    model: str = "yolo11n-pose.yaml"
    epochs: int = 40
    imgsz: int = 320
    batch: int = 16
    seed: int = 0
    time_hours: float | None = None
    device: str = "cpu"
    workers: int = 0
    init: Path | None = None  # start from these weights (fine-tuning) instead of the untrained YAML
    project: Path = Path("runs/train")
    name: str = "fixlens-pose"
    out_dir: Path = WEIGHTS_DIR
    export: bool = True  # ONNX beside the weights (a GPU machine without onnxslim exports later, elsewhere)
    resume: bool = False  # continue the interrupted run in project/name (its last.pt) instead of starting over
    extra: tuple[tuple[str, Any], ...] = ()  # further Ultralytics train arguments, e.g. (("lr0", 0.005),)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train, copy the best weights to ``cfg.out_dir`` and export ONNX beside them. Returns a summary."""
    YOLO = load_yolo()
    if not cfg.data.is_file():
        raise FileNotFoundError(f"{cfg.data}: no such data.yaml; run `fixlens data synth` first")
    started = time.time()
    last = resume_point(cfg) if cfg.resume else None
    if last is not None:  # the checkpoint holds the run's own arguments; only where the data lives may change
        model = YOLO(str(last))
        _read_results_without_polars()
        model.train(resume=str(last), data=str(cfg.data), workers=cfg.workers)
        return _finish(cfg, model, started)
    model = YOLO(str(cfg.init) if cfg.init else cfg.model)
    args: dict[str, Any] = dict(
        data=str(cfg.data), epochs=cfg.epochs, imgsz=cfg.imgsz, batch=cfg.batch, seed=cfg.seed,
        deterministic=True, device=cfg.device, workers=cfg.workers, project=str(cfg.project.resolve()),
        name=cfg.name, exist_ok=True, plots=False, amp=False, cache="ram", verbose=False,
        hsv_h=0.0, hsv_s=0.4, hsv_v=0.35, fliplr=0.0, degrees=0.0, translate=0.1, scale=0.5, mosaic=1.0,
        close_mosaic=max(1, cfg.epochs // 5), patience=1000, pretrained=cfg.init is not None, val=True,
    )
    if cfg.init:  # fine-tuning: a gentle learning rate, no warm-up
        args.update(lr0=0.002, warmup_epochs=0.0, cache=False)
    if cfg.time_hours:
        args["time"] = cfg.time_hours
    args.update(cfg.extra)
    _read_results_without_polars()
    model.train(**args)
    return _finish(cfg, model, started)


def resume_point(cfg: TrainConfig) -> Path | None:
    """The last.pt of an interrupted run in ``cfg.project``/``cfg.name``: one that saved at least one epoch and
    has epochs left; None when there is none (a finished run's checkpoint has its epoch cleared)."""
    import torch

    last = cfg.project.resolve() / cfg.name / "weights" / "last.pt"
    if not last.is_file():
        return None
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    epoch, epochs = int(ckpt.get("epoch", -1)), int((ckpt.get("train_args") or {}).get("epochs", 0))
    return last if 0 <= epoch < epochs - 1 else None


def _finish(cfg: TrainConfig, model: Any, started: float) -> dict[str, Any]:
    """Copy the run's best weights to ``cfg.out_dir``, export ONNX beside them, write the summary."""
    run_dir = Path(model.trainer.save_dir)
    best = run_dir / "weights" / "best.pt"
    if not best.is_file():
        best = run_dir / "weights" / "last.pt"
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    pt_path = cfg.out_dir / f"{WEIGHTS_NAME}.pt"
    shutil.copyfile(best, pt_path)
    onnx_path = export_onnx(pt_path, cfg.imgsz) if cfg.export else None
    metrics = {k: float(v) for k, v in (model.trainer.metrics or {}).items()}
    summary = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "epochs_run": int(model.trainer.epoch) + 1, "train_seconds": round(time.time() - started, 1),
        "metrics": metrics, "weights": str(pt_path), "onnx": onnx_path and str(onnx_path), "run_dir": str(run_dir),
    }
    (cfg.out_dir / f"{WEIGHTS_NAME}.train.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _read_results_without_polars() -> None:
    """Ultralytics reads its results.csv back with polars when it saves a checkpoint; polars (40 MB) is
    not otherwise needed, and a GPU machine may lack it. Where it is missing, read the CSV with the
    standard library, into the same column -> values dictionary."""
    try:
        import polars  # noqa: F401
        return
    except ImportError:
        pass
    import csv

    from ultralytics.engine.trainer import BaseTrainer

    def read_results_csv(self) -> dict[str, list[float]]:
        with open(self.csv, newline="") as f:
            rows = list(csv.DictReader(f))
        return {k.strip(): [float(r[k]) for r in rows] for k in (rows[0] if rows else {})}

    BaseTrainer.read_results_csv = read_results_csv


def export_onnx(pt_path: Path, imgsz: int) -> Path:
    """Export ``pt_path`` to ONNX (static shape, batch 1, opset from Ultralytics) beside it."""
    out = load_yolo()(str(pt_path)).export(format="onnx", imgsz=imgsz, simplify=True, dynamic=False, device="cpu")
    return Path(out)
