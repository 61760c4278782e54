"""The ``removable`` part kind (a drive in a bay, an ink cartridge, a battery), end to end on a small product
built with the public modelling kit: validation, the twin's insert/remove, rendering and ground truth,
``fixlens products check``, scene validation, the AR ghost and the weights check."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ar_server.protocol import Animate
from client_panda3d.overlays import OverlayBuilder
from product_models import Catalog, CatalogError, load_product
from product_models.camera import CameraIntrinsics, Pose
from product_models.check import check_catalog
from product_models.modeling import Material, Node, box, disc, on_face, slab, write_glb
from product_models.render import Renderer
from product_models.render_engine import engine as render_engine
from product_models.twin import Twin
from scenes.loader import check_text
from vision.weights_check import WeightsRecord, catalog_mismatches

DOCS = Path(__file__).resolve().parents[2] / "docs" / "catalog.md"
PRODUCT_ID = "nas_two_bay"
YAML = """\
id: nas_two_bay
name: {en: Two-bay storage box, de: Speicherbox mit zwei Schächten}
size_mm: [100, 80, 60]
parts:
  - {name: led_status, kind: led, facing: top, anchor: [0.030, -0.025, 0.060], size_mm: [4, 4],
     states: [off, green, red], healthy: green}
  - name: drive_bay1
    kind: removable
    facing: front
    anchor: [-0.022, -0.043, 0.030]
    size_mm: [36, 40]
    states: [present, absent]
    healthy: present
    actions: [insert, remove]
    label: {en: Drive 1, de: Laufwerk 1, es: Unidad 1}
keypoints:
  - {name: top_front_left, position: [-0.050, -0.040, 0.060]}
  - {name: top_front_right, position: [0.050, -0.040, 0.060]}
  - {name: top_back_right, position: [0.050, 0.040, 0.060]}
  - {name: top_back_left, position: [-0.050, 0.040, 0.060]}
faults:
  drive_missing:
    description: {en: Drive 1 is not in its bay.}
    states: {drive_bay1: absent, led_status: red}
twin:
  rules:
    - name: insert_drive_rebuilds
      on: {action: insert, part: drive_bay1}
      if: {drive_bay1: absent}
      then:
        - set: {drive_bay1: present}
        - {after: 2, set: {led_status: green}}
"""
DRIVE_DEPTH_M = 0.003  # the drive's face stands this far proud of the housing, so it is seen from the side too


def build_product(folder: Path, yaml_text: str = YAML, sink: float = 0.0, with_drive: bool = True) -> None:
    """``product.yaml`` and a ``model.glb`` made with the modelling kit, as docs/catalog.md shows it. ``sink``
    (metres) pushes the drive into the housing."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "product.yaml").write_text(yaml_text, encoding="utf-8")
    product = load_product(folder / "product.yaml")
    w, d, h = product.size_m
    root = Node(product.id)
    root.child("body").add("housing", box((-w / 2, -d / 2, 0.0), (w / 2, d / 2, h), bevel=0.002))
    led = product.part("led_status")
    root.child(led.name).add("lens", disc(on_face(led, out=0.0002), led.normal, led.size_mm[0] / 2000))
    if with_drive:
        drive = product.part("drive_bay1")
        front = (drive.anchor[0], -d / 2 + sink, drive.anchor[2])  # on the housing's front face
        root.child(drive.name).add("drive", slab(front, drive.facing, drive.size_mm[0] / 1000,
                                                 drive.size_mm[1] / 1000, DRIVE_DEPTH_M))
    materials = [Material("housing", (0.6, 0.61, 0.62, 1.0), roughness=0.6),
                 Material("lens", (0.05, 0.05, 0.05, 1.0), roughness=0.2),
                 Material("drive", (0.75, 0.25, 0.02, 1.0), roughness=0.5)]  # orange against the grey
    (folder / "model.glb").write_bytes(write_glb(root, materials))


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    root = tmp_path_factory.mktemp("catalog")
    build_product(root / PRODUCT_ID)
    return Catalog.load(root)


@pytest.fixture(scope="module")
def renderer() -> Iterator[Renderer]:
    with Renderer(160, 120) as r:
        yield r


# ------------------------------------------------------------------------------------------------------------
# Validation


def test_a_removable_part_loads_with_its_states_and_actions(catalog: Catalog) -> None:
    drive = catalog.get(PRODUCT_ID).part("drive_bay1")
    assert (drive.kind, drive.states, drive.healthy, drive.actions) == (
        "removable", ("present", "absent"), "present", ("insert", "remove"))
    assert drive.is_removed("absent") and not drive.is_removed("present")


def test_either_state_may_be_the_healthy_one(tmp_path: Path) -> None:
    """A battery bay that ships empty: ``absent`` is healthy and ``present`` a fault."""
    text = YAML.replace("    healthy: present\n", "    healthy: absent\n").replace(
        "states: {drive_bay1: absent, led_status: red}", "states: {drive_bay1: present, led_status: red}")
    build_product(tmp_path / PRODUCT_ID, text)
    assert Catalog.load(tmp_path).get(PRODUCT_ID).part("drive_bay1").healthy == "absent"
    assert check_catalog(tmp_path) == {PRODUCT_ID: []}  # present still differs from the healthy absent


DRIVE = "    states: [present, absent]\n    healthy: present\n    actions: [insert, remove]\n"


@pytest.mark.parametrize(("new", "field", "key", "message"), [
    ("    states: [present, missing]\n    healthy: present\n    actions: [insert, remove]\n",
     "parts[1].states", "states:", "a 'removable' part has exactly the states present, absent; got present, missing"),
    ("    states: [present, absent, broken]\n    healthy: present\n    actions: [insert, remove]\n",
     "parts[1].states", "states:", "exactly the states present, absent; got present, absent, broken"),
    ("    actions: [insert, remove]\n",
     "parts[1]", "- name: drive_bay1", "part 'drive_bay1' of kind 'removable' needs states: [present, absent]"),
    ("    states: [present, absent]\n    healthy: gone\n    actions: [insert, remove]\n",
     "parts[1].healthy", "healthy:", "healthy state 'gone' is not one of ['present', 'absent']"),
    ("    states: [present, absent]\n    healthy: present\n    actions: [insert, press]\n",
     "parts[1].actions[1]", "actions:", "a 'removable' part accepts only the actions insert, remove; got 'press'"),
    ("    states: [present, absent]\n    healthy: present\n    actions: [insert, yank]\n",
     "parts[1].actions[1]", "actions:", "unknown action 'yank'"),
    (DRIVE + "    moves:\n      absent: {translate: [0.0, -0.05, 0.0]}\n",
     "parts[1].moves", "absent:", "a 'removable' part has no moves"),
])
def test_bad_states_and_actions_name_file_line_and_field(tmp_path: Path, new: str, field: str, key: str,
                                                         message: str) -> None:
    assert DRIVE in YAML
    folder = tmp_path / PRODUCT_ID
    folder.mkdir()
    (folder / "product.yaml").write_text(YAML.replace(DRIVE, new), encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        Catalog.load(tmp_path)
    err = caught.value
    assert (err.file, err.path) == (str(folder / "product.yaml"), field), str(err)
    lines = (folder / "product.yaml").read_text().splitlines()
    assert err.line is not None and lines[err.line - 1].strip().startswith(key), (lines[err.line - 1], str(err))
    assert message in str(err) and str(err).startswith(f"{folder / 'product.yaml'}:{err.line}:")


# ------------------------------------------------------------------------------------------------------------
# Twin


def test_the_twin_removes_and_inserts(catalog: Catalog) -> None:
    twin = Twin.healthy(catalog.get(PRODUCT_ID))
    removed = twin.act("remove", "drive_bay1", now=1.0)
    assert removed.rule == "drive_bay1:remove" and removed.happened  # the kind's own effect: no rule written
    assert twin.states(1.0)["drive_bay1"] == "absent" and not twin.is_healthy(1.0)
    again = twin.act("remove", "drive_bay1", now=1.5)
    assert again.rule is None and again.changes == ()  # nothing left to take out
    inserted = twin.act("insert", "drive_bay1", now=2.0)
    assert inserted.rule == "insert_drive_rebuilds"  # the product's rule is tried before the kind's
    assert twin.states(2.0)["drive_bay1"] == "present" and twin.is_healthy(2.0)
    with pytest.raises(CatalogError, match="does not accept action 'press'; it accepts: insert, remove"):
        twin.act("press", "drive_bay1", now=3.0)


def test_a_fault_is_repaired_by_inserting(catalog: Catalog) -> None:
    twin = Twin(catalog.get(PRODUCT_ID), "drive_missing", now=0.0)
    assert twin.states(0.0) == {"led_status": "red", "drive_bay1": "absent"}
    twin.act("insert", "drive_bay1", now=1.0)
    twin.act("remove", "drive_bay1", now=2.0)  # pulled out again: the pending "green in 2 s" is cancelled
    assert twin.states(3.5) == {"led_status": "red", "drive_bay1": "absent"}
    twin.act("insert", "drive_bay1", now=4.0)
    assert twin.states(5.9)["led_status"] == "red" and twin.is_healthy(6.0)


def test_twin_rules_are_checked_against_the_kind(tmp_path: Path) -> None:
    text = YAML.replace("- set: {drive_bay1: present}", "- set: {drive_bay1: seated}")
    build_product(tmp_path / PRODUCT_ID, text)
    twin_error = r"product\.yaml:\d+:\d+: part 'drive_bay1' has no state 'seated'; expected one of: present, absent"
    with pytest.raises(CatalogError, match=twin_error):
        Twin.healthy(Catalog.load(tmp_path).get(PRODUCT_ID))


# ------------------------------------------------------------------------------------------------------------
# Rendering and ground truth


def _front_view() -> tuple[Pose, CameraIntrinsics]:
    return Pose.orbit(10.0, 15.0, 0.3, target=(0.0, 0.0, 0.03)), CameraIntrinsics.from_fov(160, 120, 45.0)


def test_absent_is_not_drawn_and_its_empty_bay_is_seen(catalog: Catalog, renderer: Renderer) -> None:
    product = catalog.get(PRODUCT_ID)
    pose, camera = _front_view()
    present = renderer.render(product, {"drive_bay1": "present"}, pose, camera)
    absent = renderer.render(product, {"drive_bay1": "absent"}, pose, camera)
    seen, gone = present.truth.parts["drive_bay1"], absent.truth.parts["drive_bay1"]
    assert seen.visible and seen.visible_fraction == 1.0 and seen.state == "present"
    # Seeing the empty bay is how a person checks that the drive is out: the part is observed where it sits.
    assert gone.visible and gone.visible_fraction == 1.0 and gone.state == "absent"
    behind = Pose.orbit(190.0, 15.0, 0.3, target=(0.0, 0.0, 0.03))
    for state in ("present", "absent"):  # the bay faces front: from behind, neither state is in view
        assert not renderer.render(product, {"drive_bay1": state}, behind, camera).truth.parts["drive_bay1"].visible
    assert seen.box is not None
    x0, y0, x1, y1 = (round(float(v)) for v in seen.box)
    region = (slice(y0, y1), slice(x0, x1))
    diff = np.abs(present.image[region].astype(int) - absent.image[region].astype(int)).max(axis=2)
    assert (diff > 40).mean() > 0.5, "the drive's orange should give way to the grey housing"
    orange = present.image[region].reshape(-1, 3).mean(axis=0)
    assert orange[0] > orange[2] + 40  # red over blue: the drive itself, not the housing
    assert absent.truth.parts["led_status"].visible  # nothing else changes


# ------------------------------------------------------------------------------------------------------------
# fixlens products check


def test_products_check_passes_the_product(catalog: Catalog) -> None:
    results = check_catalog(catalog.root)
    assert results == {PRODUCT_ID: []}


def test_products_check_finds_a_missing_or_invisible_drive(tmp_path: Path) -> None:
    build_product(tmp_path / "missing" / PRODUCT_ID, with_drive=False)
    (finding,) = check_catalog(tmp_path / "missing", render=False)[PRODUCT_ID]
    assert (finding.code, finding.field, finding.node) == ("node-missing", "parts[1].name", "drive_bay1")
    # Sunk 1 mm into the housing: the drive exists but present and absent look the same from outside.
    sunk = YAML.replace("anchor: [-0.022, -0.043, 0.030]", "anchor: [-0.022, -0.040, 0.030]")
    build_product(tmp_path / "sunk" / PRODUCT_ID, sunk, sink=0.001 + DRIVE_DEPTH_M)
    findings = check_catalog(tmp_path / "sunk")[PRODUCT_ID]
    unchanged = [f for f in findings if f.code == "state-unchanged"]
    assert unchanged and unchanged[0].node == "drive_bay1", findings
    assert "'present' and 'absent'" in unchanged[0].message


def test_the_documented_drive_bay_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/catalog.md's example product with its documented drive bay added as the text says."""
    section = DOCS.read_text(encoding="utf-8").split("## Building a model without Blender", 1)[1]
    example, part, lines = (re.search(rf"```{lang}\n(.*?)```", text, re.S) for lang, text in (
        ("python", section), ("yaml", section.split("A removable part", 1)[1]),
        ("python", section.split("A removable part", 1)[1])))
    assert example and part and lines, "docs/catalog.md lost its removable part example"
    code = example.group(1).replace("keypoints:\n", part.group(1) + "keypoints:\n", 1)
    head, last = code.rstrip().rsplit("\n", 1)
    code = f"from product_models.modeling import slab\n{head}\n{lines.group(1)}{last}\n"
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOCS), "exec"), {"__name__": "docs_example"})
    catalog = Catalog.load(tmp_path / "my_catalog")
    assert catalog.get("demo_box").part("drive_bay1").kind == "removable"
    assert check_catalog(tmp_path / "my_catalog") == {"demo_box": []}


# ------------------------------------------------------------------------------------------------------------
# Scenes, the AR ghost, the weights check

SCENE = """\
id: nas_reseat
product: nas_two_bay
default_locale: en
title: {en: Reseat the drive}
start: insert
steps:
  insert:
    text: {en: Push drive 1 into its bay until it clicks.}
    overlays:
      - {kind: animate, part: drive_bay1, action: ACTION}
    when:
      - {part: drive_bay1, is: present, goto: done}
  done:
    text: {en: Done.}
    outcome: resolved
"""


def test_scenes_animate_insert_on_a_removable_part(catalog: Catalog) -> None:
    scene, issues = check_text(SCENE.replace("ACTION", "insert"), "nas.yaml", catalog)
    assert scene is not None and [i for i in issues if i.severity == "error"] == []
    _, issues = check_text(SCENE.replace("ACTION", "press"), "nas.yaml", catalog)
    assert any("part 'drive_bay1' does not accept action 'press'; it accepts: insert, remove" in i.message
               for i in issues), issues


def test_the_ar_ghost_of_a_removable_part_is_a_block(catalog: Catalog) -> None:
    builder = OverlayBuilder(catalog.get(PRODUCT_ID))
    pose, camera = _front_view()

    def names(action: str) -> list[str]:
        root, _ = builder.build((Animate("drive_bay1", action, "#26d959"),), {}, 0.5, 1.0, pose, camera)  # type: ignore[arg-type]
        found = [node.getName() for node in root.findAllMatches("**/ghost-*")]
        root.removeNode()
        return found

    assert render_engine().call(lambda: names("remove")) == ["ghost-block"]
    assert render_engine().call(lambda: names("insert")) == ["ghost-block"]


def test_weights_check_and_a_removable_part(catalog: Catalog) -> None:
    """A part-state network trained before removable parts were classified lacks them: no mismatch, and the
    reader leaves the part unknown; one that has learnt it is checked like any other part."""
    untrained = WeightsRecord(detector_names=(PRODUCT_ID,), part_entries=(("other_product", "port_x", ("a", "b")),))
    assert catalog_mismatches(catalog, untrained) == []
    trained = WeightsRecord(detector_names=(PRODUCT_ID,),
                            part_entries=((PRODUCT_ID, "led_status", ("off", "green", "red")),))
    assert catalog_mismatches(catalog, trained) == []
    # Its "absent" is one of its states (the reader's class for a patch off its part is "off_part").
    learnt = WeightsRecord(detector_names=(PRODUCT_ID,),
                           part_entries=((PRODUCT_ID, "drive_bay1", ("present", "absent", "hand", "covered")),))
    assert catalog_mismatches(catalog, learnt) == []
    wrong = WeightsRecord(detector_names=(PRODUCT_ID,),
                          part_entries=((PRODUCT_ID, "drive_bay1", ("present", "hand", "covered")),))
    (mismatch,) = catalog_mismatches(catalog, wrong)
    assert "has states present, absent, the network present" in mismatch.detail


@pytest.mark.parametrize("state", ["present", "absent"])
def test_the_part_reader_answers_both_states_of_a_removable_part(catalog: Catalog, renderer: Renderer, state: str,
                                                                 tmp_path: Path) -> None:
    """A part-state network that classifies the removable part is read like any part: its ``absent`` is the
    part's own state, never the reader's class for a patch off its part (which sends a row to be re-read)."""
    from tests.vision.synthetic import constant_network
    from vision.part_net import MODEL_NAME, PartIndex
    from vision.part_reader import PartReader

    classes = ("present", "absent", "hand", "covered")
    index = PartIndex(((PRODUCT_ID, "drive_bay1", classes),))
    constant_network(tmp_path / MODEL_NAME, ("patch", 32), [8.0 if c == state else 0.0 for c in classes],
                     {"part_index": index.to_json()}, extra_inputs=("part",))
    product = catalog.get(PRODUCT_ID)
    pose, camera = _front_view()
    frame = renderer.render(product, {"drive_bay1": state}, pose, camera).image[:, :, ::-1].copy()
    read = PartReader.from_weights(tmp_path).read(frame, product, pose, camera)["drive_bay1"]
    assert (read.state, read.visible, read.reason) == (state, True, None), read
    assert read.confidence > 0.9
