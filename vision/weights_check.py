"""Whether a set of weights was trained for this catalog: checked once, when the pipeline loads.

Each network records what it was trained on: the detector its class names (product ids, in class order), the
keypoint network its layout (each product's keypoint names, :class:`vision.keypoint_layout.KeypointLayout`)
and each product's keypoint fingerprint, the part-state network its part index (product, part, classes).
Running weights for another catalog fails far from the cause (a raw ``ValueError`` in the keypoint
soft-argmax, a pose on moved keypoints, a part read with another part's classes), so :func:`check_weights`
compares the records with the catalog and raises :class:`WeightsMismatch`, which names every product and
part that differs and the command that retrains the network concerned.

A catalog product that no network knows is not a mismatch for the server: a support organisation adds its
product, and until ``fixlens train product ID`` has run the pipeline simply never recognises it (the server
logs it as untrained). Evaluation and training ask for every product (``require_all``) and name it instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from product_models.catalog import Catalog
from vision.errors import VisionError
from vision.keypoint_layout import KeypointLayout, keypoint_fingerprint
from vision.part_patches import CLASSIFIED_KINDS

# The classes the part-state network may add after a part's own states (vision.part_patches).
EXTRA_PART_CLASSES = frozenset({"hidden", "hand", "covered", "off_part"})


@dataclass(frozen=True)
class Mismatch:
    """One way a network disagrees with the catalog."""

    network: str  # "detector", "keypoints", "part-states"
    detail: str  # what differs, naming products and parts
    command: str  # what retrains it


@dataclass(frozen=True)
class WeightsRecord:
    """What a set of weights says it was trained on (None: that network is absent)."""

    detector_names: tuple[str, ...]
    keypoint_layout: KeypointLayout | None = None
    keypoint_fingerprints: Mapping[str, str] = field(default_factory=dict)  # empty: predates fingerprints
    part_entries: tuple[tuple[str, str, tuple[str, ...]], ...] | None = None


class WeightsMismatch(VisionError):
    """The weights were trained for another catalog; ``mismatches`` says how."""

    def __init__(self, weights_dir: str, catalog_dir: str, mismatches: Sequence[Mismatch]) -> None:
        self.mismatches = tuple(mismatches)
        lines = [f"the weights in {weights_dir} do not match the catalog in {catalog_dir}:"]
        lines += [f"- {m.network}: {m.detail}; retrain with `{m.command}`" for m in self.mismatches]
        super().__init__("\n".join(lines))


def untrained_products(catalog: Catalog, record: WeightsRecord) -> list[str]:
    """Catalog products the detector was not trained on, sorted."""
    return sorted(p for p in catalog.products if p not in record.detector_names)


def catalog_mismatches(catalog: Catalog, record: WeightsRecord, require_all: bool = False) -> list[Mismatch]:
    """Every disagreement between ``catalog`` and the networks' records. With ``require_all`` a catalog
    product the detector does not know is one too."""
    out: list[Mismatch] = []
    names = list(record.detector_names)
    new = untrained_products(catalog, record)
    gone = [n for n in names if n not in catalog.products]
    if (new and require_all) or gone:
        what = [f"the catalog has {', '.join(new)}, which the detector was not trained on"] if require_all and new \
            else []
        what += [f"the detector knows {', '.join(gone)}, which the catalog lacks"] if gone else []
        command = f"fixlens train product {new[0]}" if new and not gone else "fixlens train all"
        out.append(Mismatch("detector", "; ".join(what), command))
    trained = [p for p in names if p in catalog.products]
    layout = record.keypoint_layout
    if layout is not None:
        wrong = []
        for pid in trained:
            names_now = tuple(k.name for k in catalog.get(pid).keypoints)
            if pid not in layout.products:
                wrong.append(f"it does not know {pid}")
            elif layout.keypoints(pid) != names_now:
                wrong.append(f"{pid} has keypoints {', '.join(names_now)} in the catalog, the network "
                             f"{', '.join(layout.keypoints(pid))}")
            elif pid in record.keypoint_fingerprints \
                    and record.keypoint_fingerprints[pid] != keypoint_fingerprint(catalog.get(pid)):
                wrong.append(f"{pid}'s keypoints moved since it was trained")
        if wrong:
            out.append(Mismatch("keypoints", "; ".join(wrong), _product_command(wrong, trained)))
    if record.part_entries is not None:
        index = {(p, n): classes for p, n, classes in record.part_entries}
        wrong = []
        for pid in trained:
            for part in catalog.get(pid).stateful_parts():
                classes = index.get((pid, part.name))
                if classes is None:
                    # An LED is still read by its colour; a removable part left out (networks trained before
                    # they were classified) is read as unknown, never guessed.
                    if part.kind in CLASSIFIED_KINDS and part.kind not in ("led", "removable"):
                        wrong.append(f"{pid}/{part.name} is not in it")
                elif _own_classes(classes, part.states) != tuple(part.states):
                    wrong.append(f"{pid}/{part.name} has states {', '.join(part.states)}, the network "
                                 f"{', '.join(_own_classes(classes, part.states))}")
        # Rows for parts the catalog no longer has are never asked for: harmless, so not a mismatch.
        if wrong:
            out.append(Mismatch("part-states", "; ".join(wrong), _product_command(wrong, trained)))
    return out


def _own_classes(classes: Sequence[str], states: Sequence[str]) -> tuple[str, ...]:
    """The network's classes for a part without the extra ones; a state that shares an extra class's name is
    the part's own."""
    return tuple(c for c in classes if c in states or c not in EXTRA_PART_CLASSES)


def _product_command(details: Sequence[str], products: Sequence[str]) -> str:
    """``fixlens train product ID`` for the one product ``details`` name, else ``fixlens train all``."""
    named = [p for p in products if any(p in d for d in details)]
    return f"fixlens train product {named[0]}" if len(named) == 1 else "fixlens train all"


def check_weights(catalog: Catalog, weights_dir: str, record: WeightsRecord, require_all: bool = False) -> list[str]:
    """Raise :class:`WeightsMismatch` when the networks' records disagree with ``catalog``; return the catalog
    products no network was trained on (see the module docstring)."""
    found = catalog_mismatches(catalog, record, require_all)
    if found:
        raise WeightsMismatch(weights_dir, str(catalog.root), found)
    return untrained_products(catalog, record)
