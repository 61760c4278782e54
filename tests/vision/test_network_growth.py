"""Networks grow with the catalog: fine-tuning for a larger catalog keeps what was learnt of the known
products, and products may have different keypoint counts.

The growth logic runs on numpy arrays here: this test process renders with EGL, which torch must not share
a process with, so the real training runs through the CLI in a child process."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from product_models.catalog import CATALOG_DIR, Catalog, default_catalog
from vision.keypoint_layout import KeypointLayout
from vision.keypoints import KeypointModel
from vision.part_net import PartIndex
from vision.training import keypoints_train, parts_train
from vision.training.synth import keypoint_count, pose_label, write_dataset

SHIPPED = KeypointLayout.from_catalog(default_catalog(), sorted(default_catalog().products))


def _state(rows: int, seed: int) -> dict[str, np.ndarray]:
    """A keypoint network's state as numpy arrays: a body layer and the head."""
    rng = np.random.default_rng(seed)
    return {"e0.0.weight": rng.normal(size=(16, 3, 3, 3)), "head.weight": rng.normal(size=(rows, 32, 1, 1)),
            "head.bias": rng.normal(size=rows)}


def _part_state(rows: int, classes: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"body.0.0.weight": rng.normal(size=(24, 3, 3, 3)), "embed.weight": rng.normal(size=(rows, 16)),
            "head.3.weight": rng.normal(size=(classes, 128)), "head.3.bias": rng.normal(size=classes)}


def _catalog_with_short_router(tmp_path: Path, new_id: str = "router_bx9", keep: int = 8) -> Catalog:
    """The shipped catalog plus a copy of the router with its last keypoints dropped (``keep`` left)."""
    root = tmp_path / "catalog"
    shutil.copytree(CATALOG_DIR, root)
    shutil.copytree(root / "router_ax1800", root / new_id)
    path = root / new_id / "product.yaml"
    lines = re.sub(r"(?m)^id: .*$", f"id: {new_id}", path.read_text(encoding="utf-8")).splitlines()
    keypoints = [i for i, line in enumerate(lines) if line.lstrip().startswith("- {name:") and "position:" in line]
    assert len(keypoints) == 10
    path.write_text("\n".join(line for i, line in enumerate(lines) if i not in keypoints[keep:]) + "\n",
                    encoding="utf-8")
    return Catalog.load(root)


def test_keypoint_rows_of_known_products_are_kept_and_new_ones_start_fresh(tmp_path: Path) -> None:
    old = _state(SHIPPED.num_rows, 0)
    catalog = _catalog_with_short_router(tmp_path)
    layout = KeypointLayout.from_catalog(catalog, sorted(catalog.products))
    assert layout.products == ("printer_lx400", "router_ax1800", "router_bx9")
    assert layout.num_rows == 28 and layout.max_keypoints == 10 and layout.rows("router_bx9") == slice(20, 28)
    fresh = _state(layout.num_rows, 1)
    grown, kept = keypoints_train.grown_state((SHIPPED, old), layout, fresh)
    assert kept == 20
    assert np.array_equal(grown["head.weight"][:20], old["head.weight"])
    assert np.array_equal(grown["head.weight"][20:], fresh["head.weight"][20:])
    assert np.array_equal(grown["e0.0.weight"], old["e0.0.weight"])  # the shared body
    assert not np.array_equal(fresh["head.weight"][:20], old["head.weight"])  # fresh was not changed in place


def test_keypoint_rows_follow_names_not_positions() -> None:
    old = _state(SHIPPED.num_rows, 0)
    names = SHIPPED.keypoints("router_ax1800")
    swapped = KeypointLayout((("router_ax1800", (names[1], names[0], *names[2:], "extra")),))
    grown, kept = keypoints_train.grown_state((SHIPPED, old), swapped, _state(11, 1))
    start = SHIPPED.rows("router_ax1800").start
    assert kept == 10
    assert np.array_equal(grown["head.weight"][0], old["head.weight"][start + 1])
    assert np.array_equal(grown["head.weight"][1], old["head.weight"][start])


def test_a_different_body_is_refused() -> None:
    old = _state(SHIPPED.num_rows, 0)
    old["e0.0.weight"] = np.zeros((8, 3, 3, 3))
    with pytest.raises(ValueError, match=r"network body differs \(e0\.0\.weight"):
        keypoints_train.grown_state((SHIPPED, old), SHIPPED, _state(SHIPPED.num_rows, 1))


def test_part_rows_and_classes_are_kept_by_name() -> None:
    old_index = PartIndex((("p", "led", ("off", "green", "hand")), ("p", "port", ("empty", "plugged"))))
    index = PartIndex((("q", "tray", ("present", "absent")), ("p", "port", ("plugged", "empty", "loose")),
                       ("p", "led", ("off", "green", "hand"))))
    old, fresh = _part_state(2, 5, 0), _part_state(3, 8, 1)
    grown, kept = parts_train.grown_state((old_index, old), index, fresh)
    assert kept == 2
    assert np.array_equal(grown["embed.weight"][2], old["embed.weight"][0])
    assert np.array_equal(grown["embed.weight"][0], fresh["embed.weight"][0])  # the new product's part
    # "plugged" is class 4 in the old layout and class 2 in the new; "loose" is new.
    assert np.array_equal(grown["head.3.weight"][2], old["head.3.weight"][4])
    assert np.array_equal(grown["head.3.weight"][4], fresh["head.3.weight"][4])
    assert np.array_equal(grown["body.0.0.weight"], old["body.0.0.weight"])


def test_detector_labels_pad_shorter_keypoint_lists(tmp_path: Path) -> None:
    catalog = _catalog_with_short_router(tmp_path)
    assert keypoint_count(catalog) == 10
    line = pose_label(2, np.array([10, 10, 50, 40]), np.full((8, 2), 20.0), np.full(8, 2), 100, 100, 10)
    assert len(line.split()) == 5 + 3 * 10 and line.endswith(" 0 0 0 0 0 0")


def _fixlens(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "fixlens.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.mark.slow
def test_fine_tuning_grows_a_trained_network_for_a_product_with_fewer_keypoints(tmp_path: Path) -> None:
    """A real (tiny) training on rendered frames, then a fine-tune from it, through the CLI, for a catalog
    with one product more; the export is read back by the run-time model."""
    data = tmp_path / "data"
    write_dataset(data, 8, seed=4343, val_share=0.25, progress=False)
    _fixlens("train", "keypoints", "--data", str(data), "--epochs", "1", "--jitter", "1", "--out", str(tmp_path / "w1"))
    catalog = _catalog_with_short_router(tmp_path)
    done = _fixlens("train", "keypoints", "--data", str(data), "--epochs", "1", "--jitter", "1",
                    "--out", str(tmp_path / "w2"), "--init", str(tmp_path / "w1" / keypoints_train.STATE_NAME),
                    "--catalog", str(catalog.root))
    assert "kept 20 of 28 keypoint rows" in done.stdout
    model = KeypointModel(tmp_path / "w2" / "keypoints.onnx")
    assert model.layout is not None and model.layout.products == ("printer_lx400", "router_ax1800", "router_bx9")
    assert set(model.fingerprints) == set(catalog.products)
    image = np.full((240, 320, 3), 128, np.uint8)
    assert model.predict(image, (40, 40, 200, 160), "router_bx9").uv.shape == (8, 2)
    assert model.predict(image, (40, 40, 200, 160), "router_ax1800").uv.shape == (10, 2)
