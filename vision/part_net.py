"""Part states from a small convolutional network on pose-rectified patches (ONNX Runtime, no torch).

Every part that has states (LEDs, ports, trays, covers, paper) is cut from the frame with the product's
pose into a ``PATCH`` x ``PATCH`` patch of its face (:func:`vision.part_patches.face_patch`), and one
network reads them all: the patch and the part's row in a :class:`PartIndex` go in, logits over every
part's classes come out, and the part's own slice is the answer. Pooling makes the network tolerant of a
part that sits off the patch centre: the pose of a product filling the frame rests on few keypoints and
can put a 4 mm LED's patch several millimetres off, where a linear model on fixed cells misreads it.

Training (``fixlens train parts``) lives in :mod:`vision.training.parts_train`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vision.errors import ModelUnavailable, VisionError

MODEL_NAME = "part-states.onnx"


@dataclass(frozen=True)
class PartIndex:
    """The network's output layout: one row per (product, part) with its classes, laid end to end."""

    entries: tuple[tuple[str, str, tuple[str, ...]], ...]  # (product id, part name, classes)

    def __post_init__(self) -> None:
        offsets, at = [], 0
        for _product, _part, classes in self.entries:
            offsets.append(at)
            at += len(classes)
        object.__setattr__(self, "_offsets", tuple(offsets))
        object.__setattr__(self, "_rows", {(p, n): i for i, (p, n, _c) in enumerate(self.entries)})

    @property
    def num_classes(self) -> int:
        return sum(len(c) for _p, _n, c in self.entries)

    def row(self, product_id: str, part: str) -> int | None:
        return self._rows.get((product_id, part))  # type: ignore[attr-defined]

    def classes(self, row: int) -> tuple[str, ...]:
        return self.entries[row][2]

    def class_ids(self, row: int) -> np.ndarray:
        start = self._offsets[row]  # type: ignore[attr-defined]
        return np.arange(start, start + len(self.entries[row][2]))

    def class_id(self, row: int, label: str) -> int:
        return int(self._offsets[row]) + self.entries[row][2].index(label)  # type: ignore[attr-defined]

    def logit_mask(self) -> np.ndarray:
        """(rows, num_classes) float32: 0 on each row's own classes, -inf elsewhere."""
        mask = np.full((len(self.entries), self.num_classes), -np.inf, np.float32)
        for row in range(len(self.entries)):
            mask[row, self.class_ids(row)] = 0.0
        return mask

    def to_json(self) -> str:
        return json.dumps([[p, n, list(c)] for p, n, c in self.entries])

    @classmethod
    def from_json(cls, text: str) -> PartIndex:
        rows = json.loads(text)
        if not isinstance(rows, list) or not all(
                isinstance(r, list) and len(r) == 3 and isinstance(r[0], str) and isinstance(r[1], str)
                and isinstance(r[2], list) and r[2] and all(isinstance(c, str) for c in r[2]) for r in rows):
            raise ValueError("part_index must be a list of [product, part, [classes...]]")
        return cls(tuple((p, n, tuple(c)) for p, n, c in rows))


class PartNet:
    """Loads ``part-states.onnx``; :meth:`predict` reads a batch of patches."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        p = Path(path)
        if not p.is_file():
            raise ModelUnavailable(f"{p}: part-state model not found; train it with `fixlens train parts`")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
            meta = self.session.get_modelmeta().custom_metadata_map
            self.index = PartIndex.from_json(meta["part_index"])
        except KeyError:
            raise VisionError(f"{p}: part-state model lacks its part_index metadata") from None
        except Exception as exc:  # onnxruntime raises its own exception types for a broken file
            raise VisionError(f"{p}: not a part-state model ({type(exc).__name__}: {str(exc)[:200]})") from None
        self._mask = self.index.logit_mask()

    def handles(self, product_id: str, part: str) -> bool:
        return self.index.row(product_id, part) is not None

    def predict(self, patches: Sequence[np.ndarray], keys: Sequence[tuple[str, str]]) -> list[tuple[str, float]]:
        """(label, probability) for each (PATCH, PATCH, 3) uint8 BGR patch of part ``keys[i]``."""
        if not patches:
            return []
        rows = np.array([self.index.row(*k) for k in keys], np.int64)
        x = np.ascontiguousarray(np.stack(patches)[:, :, :, ::-1].transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
        logits = self.session.run(None, {"patch": x, "part": rows})[0] + self._mask[rows]
        logits -= logits.max(axis=1, keepdims=True)
        prob = np.exp(logits)
        prob /= prob.sum(axis=1, keepdims=True)
        out = []
        for i, row in enumerate(rows):
            ids = self.index.class_ids(int(row))
            j = int(np.argmax(prob[i, ids]))
            out.append((self.index.classes(int(row))[j], float(prob[i, ids[j]])))
        return out
