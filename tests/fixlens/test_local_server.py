"""``fixlens.local_server.server_config``: the embedded server of the demo and the benches."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixlens.local_server import server_config
from product_models.catalog import CATALOG_DIR


def test_the_local_server_reads_the_catalog_and_scene_library_its_caller_uses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's twin and a bench's renders read ``$FIXLENS_CATALOG_DIR`` and ``$FIXLENS_SCENE_DIR``; the server
    they start must see the same product catalog and scenes (a product set for the caller's catalog is refused
    by a server with another)."""
    catalog, scenes = tmp_path / "catalog", tmp_path / "scenes"
    catalog.mkdir()
    scenes.mkdir()
    monkeypatch.setenv("FIXLENS_CATALOG_DIR", str(catalog))
    monkeypatch.setenv("FIXLENS_SCENE_DIR", str(scenes))
    monkeypatch.setenv("FIXLENS_PORT", "1234")  # the embedded server keeps its own settings
    config = server_config(None, tmp_path / "data")
    assert (Path(config.catalog_dir), Path(config.scene_dir)) == (catalog, scenes)
    assert config.port == 0
    monkeypatch.delenv("FIXLENS_CATALOG_DIR")
    assert Path(server_config(None, tmp_path / "data").catalog_dir) == CATALOG_DIR
