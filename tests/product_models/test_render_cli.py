"""``fixlens products render|sheet|build`` and ``fixlens bench render`` end to end, on the catalog in use
($FIXLENS_CATALOG_DIR, else the shipped one); the cases about one product's parts use the shipped router's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pytest

from fixlens.cli import main
from product_models import CATALOG_DIR, default_catalog
from product_models.modeling import BUILDERS

pytestmark = pytest.mark.catalog


def test_list_prints_ids_names_parts_and_faults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["products", "list", "--locale", "de-AT"]) == 0
    out = capsys.readouterr().out
    for product in default_catalog():
        assert f"{product.id}: {product.name['de']}" in out
        for part in product.parts:
            assert f"    {part.name:<16} {part.kind}" in out
        for fault in product.faults.values():
            assert f"    {fault.name:<16} {fault.description['de']}" in out
    if "router_ax1800" in default_catalog():
        assert "    led_internet     led      [off, green, amber, red]" in out
        assert "    port_wan         port     [empty, plugged] actions: plug, unplug" in out
    if "printer_lx400" in default_catalog():
        assert "  twin: 18 rules, hidden vars: power\n" in out


def test_list_validates_the_twin_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(CATALOG_DIR, tmp_path / "catalog")
    target = tmp_path / "catalog" / "router_ax1800" / "product.yaml"
    text = target.read_text(encoding="utf-8")
    target.write_text(text.replace("set_var: {radio: off}", "set_var: {radioo: off}"), encoding="utf-8")
    assert main(["products", "list", "--catalog", str(tmp_path / "catalog")]) == 2
    err = capsys.readouterr().err
    assert f"{target}:" in err and "unknown var 'radioo'" in err and "Traceback" not in err


def test_render_writes_png_and_truth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, truth = tmp_path / "r.png", tmp_path / "t.json"
    code = main(["products", "render", "router_ax1800", "--state", "led_internet=red", "--fault", "wan_unplugged",
                 "--yaw", "160", "--width", "200", "--height", "150", "-o", str(out), "--truth", str(truth)])
    assert code == 0
    img = cv2.imread(str(out))
    assert img.shape == (150, 200, 3)
    data = json.loads(truth.read_text())
    assert data["states"]["port_wan"] == "empty" and data["states"]["led_internet"] == "red"
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("product_id", [p.id for p in default_catalog()])
def test_render_every_product_with_its_keypoints(tmp_path: Path, product_id: str) -> None:
    """Every product renders, with one truth keypoint per catalog keypoint (products may differ in count)."""
    product = default_catalog().get(product_id)
    fault = next(iter(product.faults), None)
    out, truth = tmp_path / "r.png", tmp_path / "t.json"
    argv = ["products", "render", product_id, "--width", "160", "--height", "120", "-o", str(out),
            "--truth", str(truth), *(["--fault", fault] if fault else [])]
    assert main(argv) == 0
    assert cv2.imread(str(out)).shape == (120, 160, 3)
    data = json.loads(truth.read_text())
    assert len(data["keypoints"]) == len(product.keypoints)
    expected = product.fault_states(fault) if fault else product.healthy_states()
    assert {k: data["states"][k] for k in expected} == expected


@pytest.mark.parametrize(("background", "corner_rgb"), [
    (None, (204, 207, 212)),  # the renderer's default light grey, as before the option existed
    ("grey", (204, 207, 212)),
    ("white", (255, 255, 255)),
    (" 10, 20,30", (10, 20, 30)),
])
def test_render_over_a_plain_background(tmp_path: Path, background: str | None,
                                        corner_rgb: tuple[int, int, int]) -> None:
    out = tmp_path / "r.png"
    extra = [] if background is None else ["--background", background]
    assert main(["products", "render", "router_ax1800", "--width", "160", "--height", "120", *extra,
                 "-o", str(out)]) == 0
    img = cv2.imread(str(out))[:, :, ::-1]
    assert tuple(int(c) for c in img[0, 0]) == corner_rgb and tuple(int(c) for c in img[-1, -1]) == corner_rgb


@pytest.mark.parametrize(("argv", "message"), [
    (["products", "render", "toaster"], "unknown product 'toaster'"),
    (["products", "render", "router_ax1800", "--background", "blue"],
     "--background: expected grey, white or R,G,B (three integers 0..255, e.g. 236,234,228), got 'blue'"),
    (["products", "render", "router_ax1800", "--background", "255,255,256"], "got '255,255,256'"),
    (["products", "render", "router_ax1800", "--background", "1,2"], "got '1,2'"),
    (["products", "render", "router_ax1800", "--background=-1,2,3"], "got '-1,2,3'"),
    (["products", "render", "router_ax1800", "--background", ""], "got ''"),
    (["products", "render", "router_ax1800", "--state", "led_x=red"], "no part 'led_x'"),
    (["products", "render", "router_ax1800", "--state", "led_internet=blue"], "no state 'blue'"),
    (["products", "render", "router_ax1800", "--state", "led_internet"], "expected PART=STATE"),
    (["products", "render", "router_ax1800", "--fault", "gremlins"], "no fault 'gremlins'"),
    (["products", "render", "router_ax1800", "--width", "5"], "--width/--height"),
    (["products", "sheet", "toaster"], "unknown product 'toaster'"),
])
def test_bad_input_exits_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                          message: str) -> None:
    assert main([*argv, "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_sheet_has_a_tile_per_state(tmp_path: Path) -> None:
    out = tmp_path / "sheet.png"
    assert main(["products", "sheet", "printer_lx400", "--tile-width", "96", "--tile-height", "72",
                 "--columns", "4", "-o", str(out)]) == 0
    product = default_catalog().get("printer_lx400")
    tiles = sum(len(p.states) or 1 for p in product.parts)
    rows = -(-tiles // 4)
    assert cv2.imread(str(out)).shape[0] == rows * (72 + 22) + 4


def test_build_out_dir_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["products", "build", "--out", str(tmp_path)]) == 0
    procedural = sorted(set(BUILDERS) & set(default_catalog().products))
    assert sorted(p.name for p in tmp_path.iterdir()) == procedural
    for product_id in procedural:
        assert (tmp_path / product_id / "model.glb").stat().st_size > 1000
    assert main(["products", "build", "--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_bench_render_json_reports_640x480_frames_per_second(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "render", "--json", "--frames", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["bench"], report["width"], report["height"], report["frames"]) == ("render", 640, 480, 2)
    assert set(report["products"]) == set(default_catalog().products)
    for figures in report["products"].values():
        assert figures["fps_median"] > 0 and figures["ms_median"] <= figures["ms_max"]


@pytest.mark.parametrize("argv", [["products", "render"], ["products", "sheet"], ["products", "build"],
                                  ["bench", "render"]])
def test_every_subcommand_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out
