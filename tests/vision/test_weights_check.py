"""Weights trained for another catalog are refused when the pipeline loads, with every difference named."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from product_models.catalog import CATALOG_DIR, Catalog, default_catalog
from vision.detector import WEIGHTS_DIR
from vision.pipeline import Pipeline
from vision.weights_check import WeightsMismatch, catalog_mismatches

SHIPPED_PARTS = (("router_ax1800", "port_wan", ("empty", "plugged")),)


def _copy_catalog(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    shutil.copytree(CATALOG_DIR, root)
    return root


def test_the_shipped_weights_match_the_shipped_catalog() -> None:
    Pipeline(WEIGHTS_DIR, backend="onnx")  # raises WeightsMismatch otherwise


def test_a_product_the_weights_never_saw_is_named_with_the_command(tmp_path: Path) -> None:
    """A new product made the keypoint network crash later with a raw ValueError in soft_argmax."""
    root = _copy_catalog(tmp_path)
    shutil.copytree(root / "router_ax1800", root / "router_bx9")
    text = (root / "router_bx9" / "product.yaml").read_text(encoding="utf-8")
    (root / "router_bx9" / "product.yaml").write_text(re.sub(r"(?m)^id: .*$", "id: router_bx9", text),
                                                      encoding="utf-8")
    with pytest.raises(WeightsMismatch) as err:
        Pipeline(WEIGHTS_DIR, backend="onnx", catalog=Catalog.load(root))
    message = str(err.value)
    assert str(WEIGHTS_DIR) in message and str(root) in message
    assert "router_bx9, which the detector was not trained on" in message
    assert "fixlens train detector" in message
    assert "router_bx9/port_wan is not in it" in message and "fixlens train parts" in message


def test_a_product_the_catalog_lost_is_named(tmp_path: Path) -> None:
    root = _copy_catalog(tmp_path)
    shutil.rmtree(root / "printer_lx400")
    with pytest.raises(WeightsMismatch, match="the detector knows printer_lx400, which the catalog lacks"):
        Pipeline(WEIGHTS_DIR, backend="onnx", catalog=Catalog.load(root))


def test_changed_keypoints_and_states_are_named() -> None:
    catalog = default_catalog()
    names = ("printer_lx400", "router_ax1800")
    found = catalog_mismatches(catalog, names, 3, 12, (("router_ax1800", "port_wan", ("empty", "loose")),
                                                       ("router_ax1800", "port_usb", ("empty", "plugged"))))
    text = "\n".join(f"{m.network}: {m.detail} ({m.command})" for m in found)
    assert "keypoints: trained for 3 products, the detector has 2" in text
    assert "trained for 12 keypoints per product, but printer_lx400 has 10, router_ax1800 has 10" in text
    assert "router_ax1800/port_wan has states empty, plugged, the network empty, loose" in text
    assert "port_usb" not in text  # a row nobody asks for is harmless
    assert "printer_lx400/tray_paper is not in it" in text  # not an LED: nothing else could read it
    assert "led_status is not in it" not in text  # an LED is still read by its colour
    assert all(m.command.startswith("fixlens train ") for m in found)
    assert catalog_mismatches(catalog, names, 2, 10, None) == []
