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
from functools import cached_property
from pathlib import Path

import numpy as np

from vision.errors import ModelUnavailable, VisionError
from vision.ort_session import cpu_session
from vision.part_patches import HAND, OFF_PART

MODEL_NAME = "part-states.onnx"
INDEX_FORMAT = 2  # PartIndex.to_json's; 1 was a bare list of rows
LEGACY_OFF_PART = {"absent": OFF_PART}  # format 1's name for the class of a patch off its part
OCCLUSION_MODEL_NAME = "part-occlusion.onnx"  # optional: per part visible / hand / covered (vision.part_reader)


@dataclass(frozen=True)
class PartIndex:
    """The network's output layout: one row per (product, part) with its classes, laid end to end."""

    entries: tuple[tuple[str, str, tuple[str, ...]], ...]  # (product id, part name, classes)

    @cached_property
    def _offsets(self) -> tuple[int, ...]:
        """Where each row's classes start in the output vector."""
        sizes = [len(c) for _p, _n, c in self.entries]
        return tuple(sum(sizes[:i]) for i in range(len(sizes)))

    @cached_property
    def _rows(self) -> dict[tuple[str, str], int]:
        return {(p, n): i for i, (p, n, _c) in enumerate(self.entries)}

    @property
    def num_classes(self) -> int:
        return sum(len(c) for _p, _n, c in self.entries)

    def row(self, product_id: str, part: str) -> int | None:
        return self._rows.get((product_id, part))

    def classes(self, row: int) -> tuple[str, ...]:
        return self.entries[row][2]

    def class_ids(self, row: int) -> np.ndarray:
        start = self._offsets[row]
        return np.arange(start, start + len(self.entries[row][2]))

    def class_id(self, row: int, label: str) -> int:
        return self._offsets[row] + self.entries[row][2].index(label)

    def logit_mask(self) -> np.ndarray:
        """(rows, num_classes) float32: 0 on each row's own classes, -inf elsewhere."""
        mask = np.full((len(self.entries), self.num_classes), -np.inf, np.float32)
        for row in range(len(self.entries)):
            mask[row, self.class_ids(row)] = 0.0
        return mask

    def to_json(self) -> str:
        return json.dumps({"format": INDEX_FORMAT, "rows": [[p, n, list(c)] for p, n, c in self.entries]})

    @classmethod
    def from_json(cls, text: str) -> PartIndex:
        """The index a network was saved with. A bare list is the first format, whose class for a patch off
        its part was named "absent" (no classified part had a state of that name then): renamed here."""
        doc = json.loads(text)
        legacy = isinstance(doc, list)
        rows = doc if legacy else doc.get("rows") if isinstance(doc, dict) and doc.get("format") == INDEX_FORMAT \
            else None
        if not isinstance(rows, list) or not all(
                isinstance(r, list) and len(r) == 3 and isinstance(r[0], str) and isinstance(r[1], str)
                and isinstance(r[2], list) and r[2] and all(isinstance(c, str) for c in r[2]) for r in rows):
            raise ValueError(f"part_index must be {{\"format\": {INDEX_FORMAT}, \"rows\": [[product, part, "
                             "[classes...]], ...]} (or, from older networks, the bare list of rows)")
        return cls(tuple((p, n, _renamed(tuple(classes)) if legacy else tuple(classes)) for p, n, classes in rows))


def _renamed(classes: tuple[str, ...]) -> tuple[str, ...]:
    """A first-format row's classes with the off-part class's new name. The extra classes follow the part's
    states (``hand`` first), so an "absent" before ``hand`` is a state of that name (paper or a cable) and
    keeps it."""
    first_extra = classes.index(HAND) if HAND in classes else len(classes)
    return tuple(LEGACY_OFF_PART.get(c, c) if i > first_extra else c for i, c in enumerate(classes))


def to_input(patches: np.ndarray) -> np.ndarray:
    """(n, PATCH, PATCH, 3) uint8 BGR -> (n, 3, PATCH, PATCH) float32 RGB in [0, 1]: what the network takes,
    in training and at run time alike."""
    return np.ascontiguousarray(patches[:, :, :, ::-1].transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


class PartNet:
    """Loads ``part-states.onnx``; :meth:`predict` reads a batch of patches."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        p = Path(path)
        if not p.is_file():
            raise ModelUnavailable(f"{p}: part-state model not found; train it with `fixlens train parts`")
        self.session = cpu_session(p, "part-state model", threads or min(2, os.cpu_count() or 1))
        meta = self.session.get_modelmeta().custom_metadata_map
        if "part_index" not in meta:
            raise VisionError(f"{p}: part-state model lacks its part_index metadata")
        try:
            self.index = PartIndex.from_json(meta["part_index"])
        except ValueError as exc:  # json.JSONDecodeError is a ValueError too
            raise VisionError(f"{p}: part-state model has a bad part_index ({exc})") from None
        self._mask = self.index.logit_mask()

    def handles(self, product_id: str, part: str) -> bool:
        return self.index.row(product_id, part) is not None

    def predict(self, patches: Sequence[np.ndarray], keys: Sequence[tuple[str, str]]) -> list[tuple[str, float]]:
        """(label, probability) for each (PATCH, PATCH, 3) uint8 BGR patch of part ``keys[i]``."""
        return [max(p.items(), key=lambda kv: kv[1]) for p in self.probabilities(patches, keys)]

    def probabilities(self, patches: Sequence[np.ndarray], keys: Sequence[tuple[str, str]]) -> list[dict[str, float]]:
        """Each class's probability, for each (PATCH, PATCH, 3) uint8 BGR patch of part ``keys[i]``."""
        if not patches:
            return []
        rows = np.array([self.index.row(*k) for k in keys], np.int64)
        logits = self.session.run(None, {"patch": to_input(np.stack(patches)), "part": rows})[0] + self._mask[rows]
        logits -= logits.max(axis=1, keepdims=True)
        prob = np.exp(logits)
        prob /= prob.sum(axis=1, keepdims=True)
        return [dict(zip(self.index.classes(int(row)), prob[i, self.index.class_ids(int(row))].tolist(), strict=True))
                for i, row in enumerate(rows)]
