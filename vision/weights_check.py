"""Whether a set of weights was trained for this catalog: checked once, when the pipeline loads.

Each network records what it was trained on: the detector its class names (product ids, in class order), the
keypoint network its class and keypoint counts, the part-state network its part index (product, part, classes).
A catalog that gained a product, lost one, changed a product's keypoints or a part's states no longer matches,
and running anyway fails far from the cause (a raw ``ValueError`` in the keypoint soft-argmax, or a part read
with another part's classes). :func:`check_weights` compares the three records with the catalog and raises
:class:`WeightsMismatch`, which names every product and part that differs, and the command that retrains the
network concerned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from product_models.catalog import Catalog
from vision.errors import VisionError

# The classes the part-state network may add after a part's own states (vision.part_patches).
EXTRA_PART_CLASSES = frozenset({"hidden", "hand", "covered", "absent"})


@dataclass(frozen=True)
class Mismatch:
    """One way a network disagrees with the catalog."""

    network: str  # "detector", "keypoints", "part-states"
    detail: str  # what differs, naming products and parts
    command: str  # what retrains it


class WeightsMismatch(VisionError):
    """The weights were trained for another catalog; ``mismatches`` says how."""

    def __init__(self, weights_dir: str, catalog_dir: str, mismatches: Sequence[Mismatch]) -> None:
        self.mismatches = tuple(mismatches)
        lines = [f"the weights in {weights_dir} do not match the catalog in {catalog_dir}:"]
        lines += [f"- {m.network}: {m.detail}; retrain with `{m.command}`" for m in self.mismatches]
        super().__init__("\n".join(lines))


def catalog_mismatches(catalog: Catalog, detector_names: Sequence[str], keypoint_classes: int | None,
                       keypoint_count: int | None,
                       part_entries: Sequence[tuple[str, str, tuple[str, ...]]] | None) -> list[Mismatch]:
    """Every disagreement between ``catalog`` and the networks' records. ``keypoint_classes`` and
    ``keypoint_count``: the keypoint network's (None: no keypoint network, or it does not say);
    ``part_entries``: the part-state network's index (None: no part-state network)."""
    out: list[Mismatch] = []
    products = sorted(catalog.products)
    names = list(detector_names)
    new = [p for p in products if p not in names]
    gone = [n for n in names if n not in catalog.products]
    if new or gone:
        what = [f"the catalog has {', '.join(new)}, which the detector was not trained on"] if new else []
        what += [f"the detector knows {', '.join(gone)}, which the catalog lacks"] if gone else []
        out.append(Mismatch("detector", "; ".join(what), "fixlens train detector --data DATASET"))
    if keypoint_classes is not None and keypoint_classes != len(names):
        out.append(Mismatch("keypoints", f"trained for {keypoint_classes} products, the detector has {len(names)} "
                                         f"({', '.join(names)})", "fixlens train keypoints --data DATASET"))
    if keypoint_count is not None:
        wrong = [f"{p} has {len(catalog.get(p).keypoints)}" for p in names
                 if p in catalog.products and len(catalog.get(p).keypoints) != keypoint_count]
        if wrong:
            out.append(Mismatch("keypoints", f"trained for {keypoint_count} keypoints per product, but "
                                             f"{', '.join(wrong)}", "fixlens train keypoints --data DATASET"))
    if part_entries is not None:
        index = {(p, n): classes for p, n, classes in part_entries}
        wrong = []
        for pid in products:
            for part in catalog.get(pid).stateful_parts():
                classes = index.get((pid, part.name))
                if classes is None:
                    if part.kind != "led":  # an LED the network does not know is still read by its colour
                        wrong.append(f"{pid}/{part.name} is not in it")
                elif tuple(c for c in classes if c not in EXTRA_PART_CLASSES) != tuple(part.states):
                    wrong.append(f"{pid}/{part.name} has states {', '.join(part.states)}, the network "
                                 f"{', '.join(c for c in classes if c not in EXTRA_PART_CLASSES)}")
        # Rows for parts the catalog no longer has are never asked for: harmless, so not a mismatch.
        if wrong:
            out.append(Mismatch("part-states", "; ".join(wrong), "fixlens train parts --data DATASET"))
    return out


def check_weights(catalog: Catalog, weights_dir: str, detector_names: Sequence[str], keypoint_classes: int | None,
                  keypoint_count: int | None,
                  part_entries: Sequence[tuple[str, str, tuple[str, ...]]] | None) -> None:
    """Raise :class:`WeightsMismatch` when the networks' records disagree with ``catalog``."""
    found = catalog_mismatches(catalog, detector_names, keypoint_classes, keypoint_count, part_entries)
    if found:
        raise WeightsMismatch(weights_dir, str(catalog.root), found)
