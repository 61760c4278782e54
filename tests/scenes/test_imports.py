from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import scenes

HEAVY = ("aiohttp", "cv2", "torch", "panda3d", "ultralytics", "mediapipe")


def test_scenes_imports_nothing_heavy() -> None:
    """scenes/ must stay importable by light tools: no web server, vision or rendering stacks."""
    modules = sorted(f"scenes.{p.stem}" for p in Path(scenes.__file__).parent.glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, sys\n"
        f"for name in {['scenes', *modules, 'product_models.catalog']!r}:\n"
        "    importlib.import_module(name)\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(heavy)\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scenes.engine" in modules and "scenes.cli" in modules
