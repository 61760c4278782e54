"""Weights trained for another catalog are refused when the pipeline loads, with every difference named; a
product no network knows yet is listed as untrained, never guessed at."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from product_models.catalog import CATALOG_DIR, Catalog, default_catalog
from vision.detector import WEIGHTS_DIR
from vision.keypoint_layout import KeypointLayout, keypoint_fingerprints
from vision.pipeline import Pipeline
from vision.weights_check import WeightsMismatch, WeightsRecord, catalog_mismatches

SHIPPED_PARTS = (("router_ax1800", "port_wan", ("empty", "plugged")),)


def _copy_catalog(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    shutil.copytree(CATALOG_DIR, root)
    return root


def test_the_shipped_weights_match_the_shipped_catalog() -> None:
    pipeline = Pipeline(WEIGHTS_DIR, backend="onnx")  # raises WeightsMismatch otherwise
    assert pipeline.untrained == []
    assert pipeline.main.keypoints is not None and pipeline.main.keypoints.layout is not None
    assert set(pipeline.main.keypoints.fingerprints) == set(default_catalog().products)  # recorded at export


def _add_router_copy(root: Path, new_id: str) -> None:
    shutil.copytree(root / "router_ax1800", root / new_id)
    text = (root / new_id / "product.yaml").read_text(encoding="utf-8")
    (root / new_id / "product.yaml").write_text(re.sub(r"(?m)^id: .*$", f"id: {new_id}", text), encoding="utf-8")


def test_a_product_the_weights_never_saw_is_untrained_for_the_server_and_named_for_evaluation(tmp_path: Path) -> None:
    """A new product made the keypoint network crash later with a raw ValueError in soft_argmax. The server
    now runs with it listed as untrained; evaluation, which needs every product, names it with the command."""
    root = _copy_catalog(tmp_path)
    _add_router_copy(root, "router_bx9")
    catalog = Catalog.load(root)
    pipeline = Pipeline(WEIGHTS_DIR, backend="onnx", catalog=catalog)
    assert pipeline.untrained == ["router_bx9"]
    main = pipeline.main
    record = WeightsRecord(tuple(main.detector.names), main.keypoints.layout, main.keypoints.fingerprints,
                           main.parts.net.index.entries)
    found = catalog_mismatches(catalog, record, require_all=True)
    assert [(m.network, m.detail, m.command) for m in found] == [
        ("detector", "the catalog has router_bx9, which the detector was not trained on",
         "fixlens train product router_bx9")]


def test_a_product_the_catalog_lost_is_named(tmp_path: Path) -> None:
    root = _copy_catalog(tmp_path)
    shutil.rmtree(root / "printer_lx400")
    with pytest.raises(WeightsMismatch) as err:
        Pipeline(WEIGHTS_DIR, backend="onnx", catalog=Catalog.load(root))
    message = str(err.value)
    assert str(WEIGHTS_DIR) in message and str(root) in message
    assert "the detector knows printer_lx400, which the catalog lacks" in message


def test_moved_keypoints_are_named_with_the_product(tmp_path: Path) -> None:
    root = _copy_catalog(tmp_path)
    yaml_path = root / "router_ax1800" / "product.yaml"
    text = yaml_path.read_text(encoding="utf-8")
    moved = re.sub(r"(position: \[)([-0-9.]+)", lambda m: f"{m.group(1)}{float(m.group(2)) + 0.004:.4f}",
                   text, count=1)
    assert moved != text
    yaml_path.write_text(moved, encoding="utf-8")
    with pytest.raises(WeightsMismatch, match=r"keypoints: router_ax1800's keypoints moved since it was trained; "
                                              r"retrain with `fixlens train product router_ax1800`"):
        Pipeline(WEIGHTS_DIR, backend="onnx", catalog=Catalog.load(root))


def test_changed_keypoints_and_states_are_named() -> None:
    catalog = default_catalog()
    names = ("printer_lx400", "router_ax1800")
    layout = KeypointLayout((("printer_lx400", ("a", "b")),))
    record = WeightsRecord(names, layout, {}, (("router_ax1800", "port_wan", ("empty", "loose")),
                                               ("router_ax1800", "port_usb", ("empty", "plugged"))))
    text = "\n".join(f"{m.network}: {m.detail} ({m.command})" for m in catalog_mismatches(catalog, record))
    assert "it does not know router_ax1800" in text
    assert "printer_lx400 has keypoints " in text and "the network a, b" in text
    assert "router_ax1800/port_wan has states empty, plugged, the network empty, loose" in text
    assert "port_usb" not in text  # a row nobody asks for is harmless
    assert "printer_lx400/tray_paper is not in it" in text  # not an LED: nothing else could read it
    assert "led_status is not in it" not in text  # an LED is still read by its colour
    assert "(fixlens train all)" in text  # two products differ
    good = WeightsRecord(names, KeypointLayout.from_catalog(catalog, names), keypoint_fingerprints(catalog, names))
    assert catalog_mismatches(catalog, good, require_all=True) == []
