"""``fixlens products check``: every product of the catalog in use passes ($FIXLENS_CATALOG_DIR, else the shipped
one); broken copies of the shipped products give findings naming the node or field."""

from __future__ import annotations

import json
import re
import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from fixlens.cli import main
from product_models import CATALOG_DIR, default_catalog, load_product
from product_models.check import Finding, check_catalog, check_product
from product_models.glb_geometry import distance_to_triangles
from product_models.render import Renderer

pytestmark = pytest.mark.catalog

DOCS = Path(__file__).resolve().parents[2] / "docs" / "catalog.md"


@pytest.fixture(scope="module")
def renderer() -> Iterator[Renderer]:
    with Renderer(160, 120) as r:
        yield r


def _copy(tmp_path: Path, product_id: str) -> Path:
    folder = tmp_path / "catalog" / product_id
    shutil.copytree(CATALOG_DIR / product_id, folder)
    return folder


def _edit_yaml(folder: Path, old: str, new: str) -> None:
    path = folder / "product.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _edit_glb(folder: Path, edit: Callable[[dict, bytearray], None]) -> None:
    """Rewrite ``model.glb`` after ``edit`` changes its JSON and BIN chunks in place."""
    path = folder / "model.glb"
    data = path.read_bytes()
    json_len = struct.unpack_from("<I", data, 12)[0]
    doc = json.loads(data[20:20 + json_len])
    bin_len = struct.unpack_from("<I", data, 20 + json_len)[0]
    binary = bytearray(data[28 + json_len:28 + json_len + bin_len])
    edit(doc, binary)
    js = json.dumps(doc).encode()
    js += b" " * (-len(js) % 4)
    path.write_bytes(struct.pack("<4sII", b"glTF", 2, 28 + len(js) + len(binary))
                     + struct.pack("<II", len(js), 0x4E4F534A) + js
                     + struct.pack("<II", len(binary), 0x004E4942) + bytes(binary))


def _node(doc: dict, name: str) -> dict:
    return next(n for n in doc["nodes"] if n["name"] == name)


def _rename(old: str, new: str) -> Callable[[dict, bytearray], None]:
    """Rename node ``old`` and its mesh (the glTF loader names the mesh's Panda3D node after the mesh)."""
    def edit(doc: dict, _: bytearray) -> None:
        node = _node(doc, old)
        node["name"] = new
        if "mesh" in node:
            doc["meshes"][node["mesh"]]["name"] = new
    return edit


def _nan_vertex(doc: dict, binary: bytearray) -> None:
    mesh = doc["meshes"][_node(doc, "button_wifi")["mesh"]]
    view = doc["bufferViews"][doc["accessors"][mesh["primitives"][0]["attributes"]["POSITION"]]["bufferView"]]
    struct.pack_into("<f", binary, view["byteOffset"], float("nan"))


def _missing_material(doc: dict, _: bytearray) -> None:
    doc["meshes"][_node(doc, "led_wifi")["mesh"]]["primitives"][0]["material"] = 99


def _lift_node(doc: dict, _: bytearray) -> None:
    _node(doc, "led_power")["translation"] = [0.0, 0.010, 0.0]  # glTF +y is product +z: 10 mm up


def _nest_media_in_tray(doc: dict, _: bytearray) -> None:
    index = next(i for i, n in enumerate(doc["nodes"]) if n["name"] == "tray_media")
    doc["nodes"][0]["children"].remove(index)
    _node(doc, "tray_paper").setdefault("children", []).append(index)


def _codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings}


def test_catalog_products_pass_every_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["products", "check"]) == 0
    out = capsys.readouterr().out
    for product in default_catalog():
        assert f"{product.id}: ok" in out


def _yaml(old: str, new: str) -> tuple[str, str]:
    return (old, new)


# (product, a product.yaml edit (old, new) or a model.glb edit, finding code, node, YAML field, text on that line)
CASES = [
    ("router_ax1800", _rename("led_wifi", "led_wlan"), "node-missing", "led_wifi", "parts[2].name", "led_wifi"),
    ("router_ax1800", _yaml("anchor: [-0.033, -0.056, 0.038]", "anchor: [-0.033, -0.020, 0.038]"),
     "anchor-outside", "led_internet", "parts[1].anchor", "anchor: [-0.033, -0.020"),
    ("router_ax1800", _lift_node, "anchor-outside", "led_power", "parts[0].anchor", "anchor:"),
    ("router_ax1800", _yaml("size_mm: [230, 150, 38]", "size_mm: [250, 150, 38]"), "size-mismatch", None,
     "size_mm", "size_mm: [250"),
    ("router_ax1800", _yaml("{name: top_front_left, position: [-0.115, -0.075, 0.038]}",
                            "{name: top_front_left, position: [-0.115, -0.075, 0.090]}"),
     "keypoint-off-model", None, "keypoints[0].position", "top_front_left"),
    ("router_ax1800", _nan_vertex, "bad-vertices", "button_wifi", None, None),
    ("router_ax1800", _missing_material, "material-missing", "led_wifi", None, None),
    ("printer_lx400", _yaml("hinge: [0.0, -0.185, 0.110]", "hinge: [0.0, -0.185, 0.250]"), "hinge-off-part",
     "cover_front", "parts[4].moves.open.hinge", "hinge: [0.0, -0.185, 0.250]"),
    ("printer_lx400", _yaml("translate: [0.0, -0.170, 0.0]", "translate: [0.0, 0.0, 0.0]"), "motion-none",
     "tray_paper", "parts[6].moves.open", "open:"),
    ("printer_lx400", _nest_media_in_tray, "node-nested", "tray_media", "parts[7].name", "tray_media"),
]


@pytest.mark.parametrize(("product_id", "edit", "code", "node", "field", "line_text"), CASES,
                         ids=[f"{c[0]}-{c[2]}-{c[3] or c[4]}" for c in CASES])
def test_a_broken_copy_names_the_node_or_field(tmp_path: Path, product_id: str, edit: object, code: str,
                                              node: str | None, field: str | None, line_text: str | None) -> None:
    folder = _copy(tmp_path, product_id)
    if isinstance(edit, tuple):
        _edit_yaml(folder, *edit)
    else:
        _edit_glb(folder, edit)
    findings = check_product(load_product(folder / "product.yaml"), render=False)
    hits = [f for f in findings if f.code == code]
    assert hits, findings
    assert _codes(findings) <= {code, "motion-none"}, findings  # one fault, one kind of finding
    finding = hits[0]
    assert finding.node == node and finding.field == field and finding.product == product_id
    assert finding.expected and finding.got
    if field is not None:
        assert line_text in (folder / "product.yaml").read_text().splitlines()[finding.line - 1]
        assert str(finding).startswith(f"{folder / 'product.yaml'}:{finding.line} {field}")
    else:
        assert str(finding).startswith(f"{folder / 'model.glb'} node {node!r}")


def test_renamed_node_finding_suggests_the_new_name(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "router_ax1800")
    _edit_glb(folder, _rename("led_wifi", "led_wlan"))
    (finding,) = check_product(load_product(folder / "product.yaml"), render=False)
    assert "led_wlan" in finding.got


def test_states_that_cannot_show_are_found_by_rendering(tmp_path: Path, renderer: Renderer) -> None:
    """An LED colour the renderer has no material for, and a port whose plug-and-cable node is gone."""
    folder = _copy(tmp_path, "router_ax1800")
    _edit_yaml(folder, "states: [off, green, amber, red]\n    healthy: green\n    label: {en: Internet",
               "states: [off, green, amber, red, purple]\n    healthy: green\n    label: {en: Internet")
    _edit_glb(folder, _rename("cable_port_wan", "spare_port_wan"))
    findings = check_product(load_product(folder / "product.yaml"), renderer=renderer)
    by_code = {f.code: f for f in findings}
    assert set(by_code) == {"state-no-colour", "state-no-cable", "state-unchanged"}, findings
    no_colour = by_code["state-no-colour"]
    assert (no_colour.node, no_colour.field, no_colour.got) == ("led_internet", "parts[1].states[4]", "'purple'")
    assert by_code["state-no-cable"].node == "cable_port_wan"
    unchanged = by_code["state-unchanged"]
    assert (unchanged.node, unchanged.severity) == ("port_wan", "error")
    assert "'empty' and 'plugged'" in unchanged.message and int(unchanged.got) < 12


def test_unreadable_missing_and_invalid_files(tmp_path: Path) -> None:
    broken = _copy(tmp_path, "router_ax1800")
    (broken / "model.glb").write_bytes(b"PK\x03\x04 not a model")
    gone = _copy(tmp_path, "printer_lx400")
    (gone / "model.glb").unlink()
    results = check_catalog(tmp_path / "catalog", render=False)
    assert [f.code for f in results["router_ax1800"]] == ["glb-unreadable"]
    assert "not a glTF binary" in results["router_ax1800"][0].message
    assert [f.code for f in results["printer_lx400"]] == ["glb-missing"]
    _edit_yaml(gone, "kind: led\n", "kind: lamp\n")
    (finding,) = check_catalog(tmp_path / "catalog", ["printer_lx400"], render=False)["printer_lx400"]
    assert (finding.code, finding.field) == ("yaml-invalid", "parts[1].kind") and "lamp" in finding.message


def test_cli_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _copy(tmp_path, "router_ax1800")
    _edit_yaml(folder, "size_mm: [230, 150, 38]", "size_mm: [230, 150, 45]")
    catalog = str(tmp_path / "catalog")
    assert main(["products", "check", "--catalog", catalog, "--no-render"]) == 1
    out = capsys.readouterr().out
    assert re.search(rf"{re.escape(str(folder / 'product.yaml'))}:\d+ size_mm: error \[size-mismatch\]", out)
    assert "router_ax1800: 1 error(s), 0 warning(s)" in out
    assert main(["products", "check", "router_ax1800", "--catalog", catalog, "--json", "--no-render"]) == 1
    report = json.loads(capsys.readouterr().out)
    (finding,) = report["products"]["router_ax1800"]
    assert report["errors"] == 1 and finding["field"] == "size_mm" and finding["file"].endswith("product.yaml")
    assert finding["expected"].startswith("[230.0, 150.0, 45.0] mm")
    assert re.fullmatch(r"\[230\.\d, 150\.\d, 38\.\d\] mm", finding["got"])  # the model is still 38 mm tall
    assert main(["products", "check", "toaster", "--catalog", catalog]) == 2
    assert "unknown product(s) 'toaster'" in capsys.readouterr().err


def test_the_documented_example_builds_a_product_that_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    section = DOCS.read_text(encoding="utf-8").split("## Building a model without Blender", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "docs/catalog.md lost its modelling example"
    monkeypatch.chdir(tmp_path)
    exec(compile(code.group(1), str(DOCS), "exec"), {"__name__": "docs_example"})
    assert main(["products", "check", "demo_box", "--catalog", "my_catalog"]) == 0
    assert "demo_box: ok" in capsys.readouterr().out


def test_distance_to_triangles() -> None:
    tri = np.array([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    assert distance_to_triangles(np.array([0.25, 0.25, 0.5]), tri) == pytest.approx(0.5)  # above the face
    assert distance_to_triangles(np.array([0.5, -0.3, 0.4]), tri) == pytest.approx(0.5)  # beside an edge
    assert distance_to_triangles(np.array([-0.3, -0.4, 0.0]), tri) == pytest.approx(0.5)  # past a corner
    assert distance_to_triangles(np.zeros(3), np.zeros((0, 3, 3))) == float("inf")
