"""The catalog format and loader. Tests about a named product read the shipped catalog; the others hold for every
product of the catalog in use ($FIXLENS_CATALOG_DIR, else the shipped one)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from product_models import CATALOG_DIR, Catalog, CatalogError, default_catalog, load_product, localized
from product_models.catalog import FACING_NORMALS, face_frame

pytestmark = pytest.mark.catalog

ROUTER = CATALOG_DIR / "router_ax1800" / "product.yaml"
SHIPPED = Catalog.load(CATALOG_DIR)


def test_shipped_catalog_loads() -> None:
    catalog = SHIPPED
    assert {"router_ax1800", "printer_lx400"} <= set(catalog.products)
    router = catalog.get("router_ax1800")
    assert router.part("led_internet").states == ("off", "green", "amber", "red")
    assert router.part("port_wan").states == ("empty", "plugged")
    assert router.fault_states("wan_unplugged")["port_wan"] == "empty"
    assert len(router.keypoints) >= 4
    # Every product offers the parts the issue names.
    for name in ("led_power", "led_internet", "led_wifi", "led_lan1", "port_power", "port_wan", "port_lan1",
                 "port_lan2", "button_power", "button_wifi", "pinhole_reset", "antenna_left"):
        assert router.has_part(name)
    printer = catalog.get("printer_lx400")
    for name in ("led_status", "tray_paper", "cover_front", "led_jam"):
        assert printer.has_part(name)


def test_shipped_keypoint_counts_match() -> None:
    """The shipped keypoint network was trained on one layout of keypoints for every shipped product."""
    counts = {len(p.keypoints) for p in SHIPPED}
    assert len(counts) == 1


@pytest.mark.parametrize("product_id", [p.id for p in default_catalog()])
def test_every_fault_is_told_apart_from_a_healthy_device(product_id: str) -> None:
    """A fault must change some visible state or, through its twin, a hidden var: else no scene can notice it."""
    product = default_catalog().get(product_id)
    healthy = product.healthy_states()
    hidden = (product.twin_section or {}).get("faults", {})
    for fault in product.faults:
        states = product.fault_states(fault)
        for part, state in states.items():
            product.check_state(part, state)
        assert any(healthy[p] != s for p, s in states.items()) or fault in hidden, fault


def test_unknown_names_raise_catalog_error() -> None:
    catalog = SHIPPED
    with pytest.raises(CatalogError, match="unknown product 'toaster'"):
        catalog.get("toaster")
    router = catalog.get("router_ax1800")
    with pytest.raises(CatalogError, match="no part 'led_disco'"):
        router.part("led_disco")
    with pytest.raises(CatalogError, match="no state 'purple'"):
        router.check_state("led_internet", "purple")
    with pytest.raises(CatalogError, match="no fault 'gremlins'"):
        router.fault_states("gremlins")


def test_moving_parts_follow_their_state() -> None:
    printer = SHIPPED.get("printer_lx400")
    closed = printer.anchor_at("tray_media", {"tray_paper": "closed"})
    opened = printer.anchor_at("tray_media", {"tray_paper": "open"})
    np.testing.assert_allclose(opened - closed, [0.0, -0.170, 0.0], atol=1e-9)
    # The cover folds toward the viewer (-y) and down around its bottom hinge.
    top_closed = np.array([0.0, -0.185, 0.230])
    m = printer.part_transform("cover_front", {"cover_front": "open"})
    top_open = (m @ np.array([*top_closed, 1.0]))[:3]
    assert top_open[1] < -0.28 and top_open[2] < 0.14


def test_localized_fallback() -> None:
    text = {"en": "Power", "de": "Betrieb"}
    assert localized(text, "de-AT") == "Betrieb"
    assert localized(text, "fr") == "Power"


def _broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "router_ax1800"
    folder.mkdir()
    text = ROUTER.read_text()
    assert old in text
    (folder / "product.yaml").write_text(text.replace(old, new, 1))
    return folder / "product.yaml"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("kind: led\n", "kind: lamp\n", "unknown part kind 'lamp'"),
        ("healthy: green\n", "healthy: blue\n", "healthy state 'blue' is not one of"),
        ("anchor: [-0.066, -0.056, 0.038]", "anchor: [-0.066, -0.056]", "expected a list of 3 numbers"),
        ("anchor: [-0.066, -0.056, 0.038]", "anchor: [-0.066, -0.056, .nan]", "expected a number"),
        ("size_mm: [230, 150, 38]", "size_mm: [230, 150, -38]", "out of range"),
        ("states: {port_wan: empty, led_internet: red}", "states: {port_wan: loose}",
         "part 'port_wan' has no state 'loose'"),
        ("states: {port_wan: empty, led_internet: red}", "states: {port_wann: empty}", "unknown part 'port_wann'"),
        ("actions: [press, hold]", "actions: [press, twist]", "unknown action 'twist'; expected one of: press"),
        ("  - name: led_internet\n", "  - name: led_power\n", "duplicate part name 'led_power'"),
        ("id: router_ax1800", "id: router_ax1800\nid: again", "duplicate key 'id'"),
        ("id: router_ax1800", "id: other_router", "must equal its folder name"),
        ("size_mm: [230, 150, 38]", "size_mm: [230, 150, 38]\ncolour: red", "unknown field 'colour'"),
        ("name:\n  en: AX1800", "name:\n  en: [AX1800", "malformed YAML"),
    ],
)
def test_bad_product_files_name_file_line_and_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = _broken_copy(tmp_path, old, new)
    with pytest.raises(CatalogError) as info:
        load_product(path)
    text = str(info.value)
    assert message in text
    assert text.startswith(f"{path}:")  # file:line:col first
    assert info.value.line is not None and info.value.line >= 1


def test_error_points_at_the_offending_line(tmp_path: Path) -> None:
    path = _broken_copy(tmp_path, "kind: led\n", "kind: lamp\n")
    with pytest.raises(CatalogError) as info:
        load_product(path)
    line = path.read_text().splitlines()[info.value.line - 1]
    assert "lamp" in line
    assert info.value.path == "parts[0].kind"


def test_not_a_product_file(tmp_path: Path) -> None:
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "product.yaml").write_text("- just\n- a list\n")
    with pytest.raises(CatalogError, match="expected a map, got a list"):
        load_product(folder / "product.yaml")
    (folder / "product.yaml").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(CatalogError, match="not UTF-8"):
        load_product(folder / "product.yaml")


def test_catalog_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist"):
        Catalog.load(tmp_path / "missing")
    with pytest.raises(CatalogError, match=r"no \*/product\.yaml"):
        Catalog.load(tmp_path)
    shutil.copytree(CATALOG_DIR / "printer_lx400", tmp_path / "printer_lx400")
    assert list(Catalog.load(tmp_path).products) == ["printer_lx400"]


@pytest.mark.parametrize("facing", list(FACING_NORMALS))
def test_every_face_frame_is_right_handed_on_its_outward_normal(facing: str) -> None:
    right, up, normal = face_frame(facing)
    assert np.allclose(normal, FACING_NORMALS[facing])
    assert np.allclose(np.cross(right, up), normal)  # seen from outside, nothing on the face is mirrored
    assert all(np.isclose(np.linalg.norm(v), 1.0) for v in (right, up, normal))


def test_the_bottom_face_has_the_front_at_its_top() -> None:
    """Regression: the part patches took +y as the bottom face's up, a mirror image of the model builder's
    faces; both now use -y."""
    from product_models.modeling.mesh import rect

    right, up, normal = face_frame("bottom")
    assert np.allclose(right, (1, 0, 0)) and np.allclose(up, (0, -1, 0)) and np.allclose(normal, (0, 0, -1))
    # The model builder draws a bottom rectangle facing down, out of the product: the renderer sees it.
    assert np.allclose(rect((0.0, 0.0, 0.0), "bottom", 0.02, 0.01).normals[0], (0, 0, -1))


def test_a_part_face_frame_turns_with_its_state_and_an_antenna_stands_up() -> None:
    printer = SHIPPED.get("printer_lx400")
    cover = printer.part("cover_front")
    closed = printer.face_frame("cover_front", {})
    assert all(np.allclose(a, b) for a, b in zip(closed, face_frame(cover.facing), strict=True))
    opened = printer.face_frame("cover_front", {"cover_front": "open"})
    rot = printer.part_transform("cover_front", {"cover_front": "open"})[:3, :3]
    assert np.allclose(opened.normal, rot @ closed.normal) and not np.allclose(opened.normal, closed.normal)
    antenna = SHIPPED.get("router_ax1800").part("antenna_left")
    assert np.allclose(antenna.face_frame().up, (0, 0, 1)) and np.allclose(antenna.face_frame().normal, (0, -1, 0))
