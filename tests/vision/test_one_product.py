"""``train detector --only ID``'s view of a data folder: only the product's boxes, renumbered, same images."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from vision.training.one_product import DataError, one_product_view


def _data(root: Path, labels: dict[str, str]) -> Path:
    spec = {"path": str(root), "train": "images/train", "val": "images/val",
            "names": {0: "nas_d2", 1: "printer_lx400", 2: "router_ax1800"}, "kpt_shape": [12, 3]}
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
    for stem, text in labels.items():
        split = "val" if stem.startswith("v") else "train"
        (root / "images" / split / f"{stem}.jpg").write_bytes(b"jpeg " + stem.encode())
        (root / "labels" / split / f"{stem}.txt").write_text(text)
    (root / "data.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return root / "data.yaml"


def test_the_view_keeps_only_the_products_boxes_as_class_0(tmp_path: Path) -> None:
    data = _data(tmp_path, {"a": "0 0.5 0.5 0.2 0.2 0.1 0.1 2\n2 0.1 0.1 0.05 0.05 0 0 0\n",
                            "b": "1 0.5 0.5 0.3 0.3 0 0 0\n", "c": "", "v1": "2 0.4 0.4 0.1 0.1 0 0 0\n0 0.7 0.7 0.1 "
                            "0.1 0 0 0\n"})
    view = one_product_view(data, "nas_d2")
    spec = yaml.safe_load(view.read_text())
    assert spec["names"] == {0: "nas_d2"} and spec["kpt_shape"] == [12, 3]
    root = Path(spec["path"])
    assert (root / "labels/train/a.txt").read_text() == "0 0.5 0.5 0.2 0.2 0.1 0.1 2\n"
    assert (root / "labels/train/b.txt").read_text() == ""  # the printer's frame: a background now
    assert (root / "labels/val/v1.txt").read_text() == "0 0.7 0.7 0.1 0.1 0 0 0\n"
    assert (root / "images/train/b.jpg").read_bytes() == b"jpeg b"
    assert (root / "images/train/b.jpg").stat().st_ino == (tmp_path / "images/train/b.jpg").stat().st_ino
    # Written once: a second call reuses it.
    (root / "labels/train/a.txt").write_text("kept")
    assert one_product_view(data, "nas_d2") == view and (root / "labels/train/a.txt").read_text() == "kept"


def test_the_router_view_renumbers_class_2(tmp_path: Path) -> None:
    data = _data(tmp_path, {"a": "2 0.5 0.5 0.2 0.2 0 0 0\n", "v": ""})
    view = one_product_view(data, "router_ax1800")
    assert (view.parent / "labels/train/a.txt").read_text() == "0 0.5 0.5 0.2 0.2 0 0 0\n"


def test_bad_data_is_named(tmp_path: Path) -> None:
    data = _data(tmp_path / "d", {"a": "1 0.5 0.5 0.2 0.2 0 0 0\n", "v": ""})
    with pytest.raises(DataError, match=re.escape("has no toaster_t1 (it has nas_d2, printer_lx400, router_ax1800)")):
        one_product_view(data, "toaster_t1")
    with pytest.raises(DataError, match="no frame shows nas_d2; render data with `--focus nas_d2`"):
        one_product_view(data, "nas_d2")
    assert not (data.parent / "only-nas_d2" / ".complete").exists()
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "data.yaml").write_text("just text")
    with pytest.raises(DataError, match="no `names` mapping"):
        one_product_view(tmp_path / "e" / "data.yaml", "nas_d2")
    with pytest.raises(DataError, match="cannot read it"):
        one_product_view(tmp_path / "missing.yaml", "nas_d2")
