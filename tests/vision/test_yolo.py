"""Ultralytics, imported for the first time on a machine, must not write to stdout (``--json`` output)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_first_import_writes_nothing_to_stdout(tmp_path: Path) -> None:
    # A settings folder Ultralytics has never seen: it creates its settings file and says so, as on a new machine.
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", "from vision.yolo import load_yolo; load_yolo()"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert any(tmp_path.rglob("settings.json"))
    assert done.stdout == ""
    assert "Settings" in done.stderr
