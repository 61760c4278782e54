"""A fourth product, generated on the fly, joins a copy of the catalog and passes the catalog tests unchanged.

The subprocess runs every module marked ``catalog`` (``-m "catalog and not slow"``, about 200 tests, 30-60 s on
a busy 2-core machine) with $FIXLENS_CATALOG_DIR and $FIXLENS_SCENE_DIR on the temporary copies: they derive
their cases from the catalog and library in use, so the generated product must show up in their test ids. The
one ``slow`` test of the set builds its own 6,000-step scene and reads nothing of the new product.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fixlens.cli import main
from product_models import PART_KINDS, CatalogError, load_product
from product_models.catalog import CATALOG_DIR, CATALOG_ENV, Catalog
from product_models.generate import generate_product
from product_models.twin import Twin
from scenes import LIBRARY_DIR, SCENE_DIR_ENV, check_paths, scene_files

REPO = Path(__file__).resolve().parents[2]
PRODUCT_ID = "hub_gen4"
# Modules whose parametrised test ids must name the generated product (each enumerates the catalog or library).
ENUMERATING = ("tests/product_models/test_catalog.py", "tests/product_models/test_render_cli.py",
               "tests/product_models/test_twin.py", "tests/scenes/test_cli.py", "tests/scenes/test_scenes_vs_twins.py")
RUN_LIMIT_S = 300  # far above the usual 30-60 s, so only a hung run fails on time


@pytest.fixture
def catalog_copy(tmp_path: Path) -> tuple[Path, Path]:
    """(catalog, scene library): copies of the shipped ones with the generated product and its scenes added."""
    catalog, library = tmp_path / "catalog", tmp_path / "scenes"
    shutil.copytree(CATALOG_DIR, catalog)
    shutil.copytree(LIBRARY_DIR, library)
    generate_product(catalog, PRODUCT_ID, seed=4, scene_dir=library)
    return catalog, library


def test_the_product_has_every_part_kind_other_keypoints_and_a_scene_per_fault(
        catalog_copy: tuple[Path, Path]) -> None:
    catalog_dir, library = catalog_copy
    catalog = Catalog.load(catalog_dir)
    product = catalog.get(PRODUCT_ID)
    assert {p.kind for p in product.parts} == set(PART_KINDS)
    shipped_counts = {len(p.keypoints) for p in Catalog.load(CATALOG_DIR)}
    assert len(product.keypoints) not in shipped_counts
    scenes, issues = check_paths([library], catalog)
    assert issues == []
    mine = [s for s in scenes if s.product == PRODUCT_ID]
    assert len(mine) == len(product.faults)
    assert all(s.locales == {"en", "de", "es"} for s in mine)
    spec = Twin.healthy(product).spec
    for fault in product.faults:  # each fault's twin starts faulty, and some rule acts on what its scene shows
        assert not Twin(product, fault=fault).is_healthy(0.0)
    for scene in mine:
        shown = [o for step in scene.steps.values() for o in step.overlays if o.kind == "animate"]
        assert shown and all(spec.action_rules(o.action or "", o.part) for o in shown), scene.id


def test_the_product_passes_products_check_and_scenes_validate(catalog_copy: tuple[Path, Path],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    catalog, library = catalog_copy
    assert main(["products", "check", PRODUCT_ID, "--catalog", str(catalog)]) == 0
    assert f"{PRODUCT_ID}: ok" in capsys.readouterr().out
    assert main(["scenes", "validate", "--catalog", str(catalog), str(library)]) == 0
    assert f"{len(scene_files(library))} scene(s) valid, 0 error(s), 0 warning(s)" in capsys.readouterr().err


def test_generation_is_reproducible_per_seed(tmp_path: Path) -> None:
    first = generate_product(tmp_path / "a", PRODUCT_ID, seed=4)
    again = generate_product(tmp_path / "b", PRODUCT_ID, seed=4)
    other = generate_product(tmp_path / "c", PRODUCT_ID, seed=5)
    for name in ("product.yaml", "model.glb"):
        assert (first / name).read_bytes() == (again / name).read_bytes()
    assert load_product(first / "product.yaml").size_mm != load_product(other / "product.yaml").size_mm


def test_a_part_kind_the_generator_cannot_build_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("product_models.generate.PART_KINDS", (*PART_KINDS, "hologram"))
    with pytest.raises(CatalogError, match=re.escape("cannot build part kind(s) hologram")):
        generate_product(tmp_path, PRODUCT_ID, seed=4)
    assert not (tmp_path / PRODUCT_ID).exists()


@pytest.mark.slow
def test_the_catalog_tests_pass_unchanged_with_the_product_added(catalog_copy: tuple[Path, Path]) -> None:
    catalog, library = catalog_copy
    env = {**os.environ, CATALOG_ENV: str(catalog), SCENE_DIR_ENV: str(library)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-m", "catalog and not slow", "-v", "-p", "no:cacheprovider",
                          "-o", "console_output_style=classic"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_LIMIT_S)
    tail = run.stdout[-4000:] + run.stderr[-2000:]
    assert run.returncode == 0, tail
    passed = re.findall(r"^(tests/\S+?)::(\S+) PASSED", run.stdout, re.M)
    assert passed, tail
    exercised = {module for module, test in passed if PRODUCT_ID in test}
    assert set(ENUMERATING) <= exercised, f"the generated product never appeared in {set(ENUMERATING) - exercised}"
