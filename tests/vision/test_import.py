from __future__ import annotations

import subprocess
import sys

import pytest


def test_import_vision_loads_no_heavy_libraries() -> None:
    code = ("import sys, vision; vision.PartState; vision.TemporalSmoother; "
            "print(','.join(m for m in ('cv2', 'mediapipe', 'torch', 'ultralytics', 'ar_server') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_lazy_exports_resolve() -> None:
    import vision

    for name in vision.__all__:
        assert getattr(vision, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        vision.nope  # noqa: B018
