"""Writable state outside the package: the per-user data dir, and the scene folder seeded from the shipped
library (``ar_server.scene_files.seed_scene_folder``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ar_server.errors import ServerError
from ar_server.scene_files import SEED_MANIFEST, SceneFiles, seed_scene_folder
from product_models.catalog import default_catalog
from scenes.collection import LIBRARY_DIR, scene_files
from vision.hands import unavailable_reason
from vision.model_files import IN_SOURCE_CHECKOUT, default_data_dir

SHIPPED = sorted(p.name for p in scene_files(LIBRARY_DIR))


def _shipped(tmp_path: Path, *names: str) -> Path:
    """A stand-in for the shipped library holding copies of the real scenes ``names``."""
    folder = tmp_path / "shipped"
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_text((LIBRARY_DIR / name).read_text(encoding="utf-8"), encoding="utf-8")
    return folder


def test_a_missing_scene_folder_is_created_with_the_shipped_library_and_loads(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "scenes"
    files = SceneFiles(folder, default_catalog())
    assert sorted(p.name for p in scene_files(folder)) == SHIPPED
    assert sorted(s.source.rsplit("/", 1)[-1] for s in files.library) == SHIPPED
    assert (folder / SEED_MANIFEST).read_text(encoding="utf-8").split() == SHIPPED


def test_an_edit_and_a_deletion_stand_and_a_later_release_adds_only_its_new_scene(tmp_path: Path) -> None:
    first, second = SHIPPED[0], SHIPPED[1]
    folder = tmp_path / "scenes"
    assert seed_scene_folder(folder, _shipped(tmp_path, first)) == [first]
    (folder / first).write_text("edited by an author\n", encoding="utf-8")
    assert seed_scene_folder(folder, _shipped(tmp_path, first)) == []
    assert (folder / first).read_text(encoding="utf-8") == "edited by an author\n"
    (folder / first).unlink()
    assert seed_scene_folder(folder, _shipped(tmp_path, first, second)) == [second]  # the upgrade
    assert not (folder / first).exists()
    assert (folder / SEED_MANIFEST).read_text(encoding="utf-8").split() == sorted([first, second])


def test_a_folder_that_was_never_seeded_is_left_alone(tmp_path: Path) -> None:
    """The source tree's library and a --scene-dir folder are the user's: nothing is copied into them."""
    folder = tmp_path / "mine"
    folder.mkdir()
    assert seed_scene_folder(folder, _shipped(tmp_path, *SHIPPED)) == []
    assert list(folder.iterdir()) == []
    before = sorted(p.name for p in LIBRARY_DIR.iterdir())
    SceneFiles(LIBRARY_DIR, default_catalog())
    assert sorted(p.name for p in LIBRARY_DIR.iterdir()) == before


def test_a_file_where_the_scene_folder_should_be_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a folder")
    with pytest.raises(ServerError, match=rf"cannot seed the scene folder {tmp_path}/data/scenes"):
        seed_scene_folder(tmp_path / "data" / "scenes")


@pytest.mark.parametrize(("environ", "expected"), [
    ({"XDG_DATA_HOME": "/srv/xdg"}, Path("/srv/xdg/fixlens")),
    ({"XDG_DATA_HOME": ""}, Path.home() / ".local" / "share" / "fixlens"),  # empty means unset (XDG spec)
    ({}, Path.home() / ".local" / "share" / "fixlens"),
])
def test_the_per_user_data_dir_follows_xdg(environ: dict[str, str], expected: Path) -> None:
    assert default_data_dir(environ) == expected


def test_this_checkout_is_recognised_as_one() -> None:
    """The dev defaults (./fixlens-data, the scene library in the tree) hold only in a source checkout."""
    assert IN_SOURCE_CHECKOUT


def test_missing_hand_models_are_named_without_importing_mediapipe(tmp_path: Path) -> None:
    reason = unavailable_reason(tmp_path)
    assert reason is not None and f"{tmp_path}/hand_landmarker.task is missing" in reason
    assert "fixlens vision models" in reason
