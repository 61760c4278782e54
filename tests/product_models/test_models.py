"""The procedural glTF models: reproducible bytes, catalog part names, geometry where the catalog says."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from product_models import default_catalog
from product_models.errors import CatalogError
from product_models.modeling import BUILDERS, MODEL_FILE, build_all, build_model
from product_models.modeling.gltf import read_glb_json, write_glb
from product_models.modeling.mesh import box, cylinder

PRODUCTS = sorted(BUILDERS)


def test_build_is_byte_identical_and_matches_committed_files(tmp_path: Path) -> None:
    first = {p.parent.name: p.read_bytes() for p in build_all(tmp_path / "a")}
    second = {p.parent.name: p.read_bytes() for p in build_all(tmp_path / "b")}
    assert set(first) == set(PRODUCTS)
    assert first == second
    for pid, data in first.items():
        committed = default_catalog().get(pid).folder / MODEL_FILE
        assert committed.read_bytes() == data, (f"{committed} is stale: run `fixlens products build` (or OpenCV "
                                                f"{cv2.__version__} is not the 5.0 the catalog is built with)")


@pytest.mark.parametrize("product_id", PRODUCTS)
def test_glb_is_valid_small_and_names_every_part(product_id: str) -> None:
    product = default_catalog().get(product_id)
    data = (product.folder / MODEL_FILE).read_bytes()
    assert len(data) < 2 * 1024 * 1024
    magic, version, length = struct.unpack_from("<4sII", data)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    doc = read_glb_json(data, "model.glb")
    names = {n["name"] for n in doc["nodes"]}
    assert {p.name for p in product.parts} <= names
    for port in (p for p in product.parts if p.kind == "port"):
        assert f"cable_{port.name}" in names
    for mat in doc["materials"]:
        assert len(mat["pbrMetallicRoughness"]["baseColorFactor"]) == 4
    assert any("baseColorTexture" in m["pbrMetallicRoughness"] for m in doc["materials"])  # printed labels
    assert doc["images"][0]["mimeType"] == "image/png"


def _node_bounds(product_id: str, node_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Product-frame bounds of one node's own mesh, read back from the glb (glTF y-up -> product z-up)."""
    product = default_catalog().get(product_id)
    data = (product.folder / MODEL_FILE).read_bytes()
    doc = read_glb_json(data, "model.glb")
    json_len = struct.unpack_from("<I", data, 12)[0]
    node = next(n for n in doc["nodes"] if n["name"] == node_name)
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for prim in doc["meshes"][node["mesh"]]["primitives"]:
        acc = doc["accessors"][prim["attributes"]["POSITION"]]
        view = doc["bufferViews"][acc["bufferView"]]
        start = 20 + json_len + 8 + view["byteOffset"]
        pos = np.frombuffer(data[start:start + view["byteLength"]], np.float32).reshape(-1, 3)
        prod = np.stack([pos[:, 0], -pos[:, 2], pos[:, 1]], axis=1)
        lo, hi = np.minimum(lo, prod.min(0)), np.maximum(hi, prod.max(0))
    return lo, hi


@pytest.mark.parametrize(("product_id", "part"), [
    ("router_ax1800", "led_internet"), ("router_ax1800", "port_wan"), ("router_ax1800", "pinhole_reset"),
    ("printer_lx400", "led_status"), ("printer_lx400", "cover_front"), ("printer_lx400", "tray_paper"),
])
def test_part_geometry_sits_on_its_catalog_anchor(product_id: str, part: str) -> None:
    anchor = np.asarray(default_catalog().get(product_id).part(part).anchor)
    lo, hi = _node_bounds(product_id, part)
    assert np.all(lo - 0.002 <= anchor) and np.all(anchor <= hi + 0.002), (lo, anchor, hi)


def test_router_body_matches_catalog_size() -> None:
    lo, hi = _node_bounds("router_ax1800", "body")
    # Printed labels and vents sit a fraction of a millimetre proud of the housing.
    np.testing.assert_allclose(hi - lo, [0.230, 0.150, 0.038], atol=7e-4)


def test_writer_rejects_unknown_material() -> None:
    from product_models.modeling.gltf import Material, Node

    root = Node("x")
    root.add("nope", box((0, 0, 0), (1, 1, 1)))
    with pytest.raises(ValueError, match="unknown material 'nope'"):
        write_glb(root, [Material("body", (1, 1, 1, 1))])


def test_product_without_builder_raises(tmp_path: Path) -> None:
    import dataclasses

    product = dataclasses.replace(default_catalog().get("router_ax1800"), id="toaster_t1")
    with pytest.raises(CatalogError, match=r"toaster_t1.*no procedural model builder"):
        build_model(product)


@pytest.mark.parametrize(("data", "message"), [
    (b"PK\x03\x04 definitely a zip", "not a glTF binary"),
    (struct.pack("<4sII", b"glTF", 1, 20) + b"\0" * 8, "version 1"),
    (struct.pack("<4sII", b"glTF", 2, 999) + b"\0" * 8, "truncated"),
    (struct.pack("<4sII", b"glTF", 2, 24) + struct.pack("<II", 4, 0x4E4F534A) + b"{{{{", "does not parse"),
])
def test_read_glb_json_names_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_glb_json(data, "bad.glb")


def test_mesh_faces_point_outward() -> None:
    for mesh in (box((0, 0, 0), (1, 2, 3), bevel=0.2), cylinder((0, 0, 0), (0, 0, 1), 0.5, 2.0)):
        pos = np.asarray(mesh.positions)
        centre = pos.mean(0)
        tri = pos[np.asarray(mesh.indices).reshape(-1, 3)]
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        outward = np.einsum("nk,nk->n", normal, tri.mean(1) - centre)
        assert (outward > 0).all()


def test_glb_json_is_deterministic_text() -> None:
    data = (default_catalog().get("router_ax1800").folder / MODEL_FILE).read_bytes()
    json_len = struct.unpack_from("<I", data, 12)[0]
    text = data[20:20 + json_len].decode().rstrip()
    assert json.dumps(json.loads(text), sort_keys=True, separators=(",", ":")) == text
