"""How the pipeline opens its ONNX Runtime models (detector, keypoints, part states) on the CPU."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vision.errors import VisionError


def cpu_session(path: Path, what: str, threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` for ``path``; a file ONNX Runtime cannot load raises
    :class:`VisionError` saying it is not a ``what`` ("usable ONNX model", "part-state model")."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
    # The sessions take turns on the same cores. Within a run, the pool's threads spin between operators
    # instead of sleeping (the detector alone: 9.4 -> 7.3 ms on 2 cores); at the end of a run they stop, since
    # a pool that goes on spinning steals the CPU from the next session's run (detection 7 -> 11 ms).
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise VisionError(f"{path}: not a {what} ({type(exc).__name__}: {str(exc)[:200]})") from None
