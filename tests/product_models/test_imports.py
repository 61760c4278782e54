"""The catalog's data layer stays light: the scene validator, the server and vision load it without pulling in
a web server, a vision stack or the renderer. Each module is imported alone, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("aiohttp", "cv2", "torch", "panda3d", "ultralytics", "mediapipe")
# The data loader, and the twin and handheld camera walk, which the demo and the end-to-end tests drive
# without rendering (the virtual camera loads the renderer only to capture).
LIGHT = ("product_models", "product_models.catalog", "product_models.sourcemap", "product_models.errors",
         "product_models.camera", "product_models.twin_rules", "product_models.twin",
         "product_models.virtual_camera")


def heavy_modules_after_import(module: str) -> list[str]:
    """The HEAVY top-level packages present in ``sys.modules`` after importing ``module`` in a new process."""
    code = (f"import importlib, sys\nimportlib.import_module({module!r})\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return [m for m in done.stdout.strip().split(",") if m]


@pytest.mark.parametrize("module", LIGHT)
def test_data_layer_imports_nothing_heavy(module: str) -> None:
    assert heavy_modules_after_import(module) == []


def test_the_check_sees_a_heavy_import() -> None:
    """The renderer's module loads OpenCV, so an empty list above means something."""
    assert "cv2" in heavy_modules_after_import("product_models.render")
