"""The product detector: boxes, product class and keypoints from a YOLO pose model.

Two backends behind one interface, :meth:`Detector.detect_batch` (BGR frames in, :class:`Detections` out):

- ``onnx``: ONNX Runtime on the CPU (the CPU default). Our own letterbox, and decoding by
  :meth:`Detections.from_onnx`, no Ultralytics at run time, so each frame costs one ``session.run`` plus a
  few array operations.
- ``torch``: Ultralytics + PyTorch; on CUDA it runs fp16 and batches frames across sessions.

Ultralytics ``Results`` become arrays at once (:meth:`Detections.from_ultralytics`) and never leave
``vision``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision.errors import ModelUnavailable, VisionError
from vision.ort_session import cpu_session
from vision.types import Detections
from vision.yolo import load_yolo

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS_STEM = "fixlens-pose"
PAD_VALUE = 114  # Ultralytics' letterbox grey
KEYPOINT_MIN_CONF = 0.5  # the detector's own keypoints (used when no crop keypoint model is installed)


@dataclass(frozen=True)
class DetectorConfig:
    conf: float = 0.3  # minimum product confidence; the pipeline then verifies each detection geometrically
    iou: float = 0.5  # non-maximum suppression overlap
    max_det: int = 4


def _letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float]:
    """Resize keeping aspect ratio and pad to ``size`` x ``size``. Returns the image, scale, pad x, pad y."""
    h, w = image.shape[:2]
    scale = min(size / w, size / h)
    nw, nh = round(w * scale), round(h * scale)
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    px, py = (size - nw) / 2.0, (size - nh) / 2.0
    top, left = round(py - 0.1), round(px - 0.1)
    out = cv2.copyMakeBorder(resized, top, size - nh - top, left, size - nw - left, cv2.BORDER_CONSTANT,
                             value=(PAD_VALUE, PAD_VALUE, PAD_VALUE))
    return out, scale, float(left), float(top)


class Detector:
    """Load with :meth:`from_weights`; ``names`` maps class index -> product id."""

    names: tuple[str, ...]
    num_keypoints: int
    backend: str
    device: str

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        raise NotImplementedError

    @staticmethod
    def from_weights(weights_dir: str | Path = WEIGHTS_DIR, backend: str = "auto", device: str = "auto",
                     config: DetectorConfig | None = None) -> Detector:
        """``backend``: auto (torch on CUDA when available, else onnx), onnx or torch."""
        folder = Path(weights_dir)
        config = config or DetectorConfig()
        if backend not in ("auto", "onnx", "torch"):
            raise VisionError(f"detector backend must be auto, onnx or torch, got {backend!r}")
        if backend == "auto":
            backend = "torch" if _cuda_available() and device != "cpu" else "onnx"
        if backend == "onnx":
            return OnnxDetector(folder / f"{WEIGHTS_STEM}.onnx", config)
        return TorchDetector(folder / f"{WEIGHTS_STEM}.pt", config, device)


def _cuda_available() -> bool:
    # Importing torch just to learn there is no GPU costs a second at start-up, and its idle OpenMP pool
    # slows ONNX Runtime on a 2-core CPU by a third (11 -> 16 ms per detection). No NVIDIA driver, no CUDA.
    if not (Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()
            or os.environ.get("CUDA_VISIBLE_DEVICES")):
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


class OnnxDetector(Detector):
    def __init__(self, path: Path, config: DetectorConfig, threads: int | None = None) -> None:
        if not path.is_file():
            raise ModelUnavailable(f"{path}: detector weights not found; train with `fixlens train`")
        self.session = cpu_session(path, "usable ONNX model", threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.names = _names_from_meta(meta.get("names", ""), path)
        kpt = meta.get("kpt_shape", "[0, 3]").strip("[]").split(",")
        self.num_keypoints = int(kpt[0])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.imgsz = int(inp.shape[2])
        self.config = config
        self.backend, self.device = "onnx", "cpu"

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for image in images:  # the exported graph has batch 1; on CPU, batching buys nothing anyway
            lb, scale, px, py = _letterbox(image, self.imgsz)
            blob = cv2.dnn.blobFromImage(lb, 1.0 / 255.0, swapRB=True)
            pred = self.session.run(None, {self.input_name: blob})[0][0]  # (4 + nc + 3k, anchors)
            out.append(Detections.from_onnx(pred, num_classes=len(self.names), num_keypoints=self.num_keypoints,
                                            scale=scale, pad=(px, py), frame_size=(image.shape[1], image.shape[0]),
                                            conf=self.config.conf, iou=self.config.iou,
                                            max_det=self.config.max_det))
        return out


def _names_from_meta(text: str, path: Path) -> tuple[str, ...]:
    import ast

    try:
        names = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise VisionError(f"{path}: ONNX model carries no class names metadata") from None
    return tuple(names[i] for i in sorted(names))


class TorchDetector(Detector):
    def __init__(self, path: Path, config: DetectorConfig, device: str = "auto") -> None:
        if not path.is_file():
            raise ModelUnavailable(f"{path}: detector weights not found; train with `fixlens train`")
        self.model = load_yolo()(str(path))
        self.device = ("cuda:0" if _cuda_available() else "cpu") if device == "auto" else device
        self.half = self.device.startswith("cuda")
        names = self.model.names
        self.names = tuple(names[i] for i in sorted(names))
        self.num_keypoints = int(self.model.model.kpt_shape[0])
        self.imgsz = int(self.model.overrides.get("imgsz", 320) or 320)
        self.config = config
        self.backend = "torch"

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        if not images:
            return []
        results = self.model.predict(list(images), imgsz=self.imgsz, conf=self.config.conf, iou=self.config.iou,
                                     max_det=self.config.max_det, device=self.device, half=self.half,
                                     verbose=False)
        return [Detections.from_ultralytics(r, self.num_keypoints) for r in results]
