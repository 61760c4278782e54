"""Which output rows of the keypoint network belong to which product, and what each network was trained on.

The crop keypoint network ends in one heatmap row per (product, keypoint), laid end to end product by
product. :class:`KeypointLayout` records that order with the keypoint names, so products may have different
numbers of keypoints, a product is found by its id rather than by a class number, and a network can grow:
fine-tuning for a larger catalog keeps the rows of the products it already knows and adds rows for the new
ones (:mod:`vision.training.keypoints_train`).

:func:`keypoint_fingerprint` condenses what the network learnt of a product's geometry (its keypoints'
names and places) into a short hash, stored in the network for each product it was trained on: a product
whose model moved a keypoint since training is named by the weights check (:mod:`vision.weights_check`)
instead of giving poses that are quietly wrong. (The part-state network records its parts and states in
full, :class:`vision.part_net.PartIndex`.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from product_models.catalog import Catalog, Product


def keypoint_fingerprint(product: Product) -> str:
    """12 hex digits over the product's keypoints: names, and positions to 0.1 mm."""
    doc = [[k.name, [round(float(v) * 1e4) for v in k.position]] for k in product.keypoints]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:12]


def keypoint_fingerprints(catalog: Catalog, product_ids: Iterable[str]) -> dict[str, str]:
    """``{product id: keypoint fingerprint}`` for ``product_ids``."""
    return {pid: keypoint_fingerprint(catalog.get(pid)) for pid in product_ids}


@dataclass(frozen=True)
class KeypointLayout:
    """The keypoint network's output rows: each product's keypoints, in this order, end to end."""

    entries: tuple[tuple[str, tuple[str, ...]], ...]  # (product id, keypoint names)

    @classmethod
    def from_catalog(cls, catalog: Catalog, product_ids: Sequence[str]) -> KeypointLayout:
        return cls(tuple((pid, tuple(k.name for k in catalog.get(pid).keypoints)) for pid in product_ids))

    @cached_property
    def _slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for pid, names in self.entries:
            out[pid] = slice(start, start + len(names))
            start += len(names)
        return out

    @property
    def products(self) -> tuple[str, ...]:
        return tuple(pid for pid, _names in self.entries)

    @property
    def num_rows(self) -> int:
        return sum(len(names) for _pid, names in self.entries)

    @property
    def max_keypoints(self) -> int:
        return max(len(names) for _pid, names in self.entries)

    def rows(self, product_id: str) -> slice:
        """The heatmap rows of ``product_id``; KeyError for a product the network does not know."""
        return self._slices[product_id]

    def keypoints(self, product_id: str) -> tuple[str, ...]:
        return self.entries[self.products.index(product_id)][1]

    def row_of(self, product_id: str, keypoint: str) -> int | None:
        """The output row of one named keypoint, or None when the network does not know it."""
        if product_id not in self._slices:
            return None
        names = self.keypoints(product_id)
        return self._slices[product_id].start + names.index(keypoint) if keypoint in names else None

    def to_json(self) -> str:
        return json.dumps([[pid, list(names)] for pid, names in self.entries])

    @classmethod
    def from_json(cls, text: str) -> KeypointLayout:
        rows = json.loads(text)
        if not isinstance(rows, list) or not rows or not all(
                isinstance(r, list) and len(r) == 2 and isinstance(r[0], str) and isinstance(r[1], list)
                and r[1] and all(isinstance(n, str) for n in r[1]) for r in rows):
            raise ValueError("keypoint_layout must be a non-empty list of [product, [keypoint names...]]")
        return cls(tuple((pid, tuple(names)) for pid, names in rows))
