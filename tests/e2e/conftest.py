"""Fixtures for end-to-end runs: the real server (in this process, on a real port), the real detector on ONNX
Runtime, real rendering of the twin, and the AR client in lockstep on a simulated clock.

Weights come from ``FIXLENS_WEIGHTS_DIR`` or ``vision/weights``; without ``fixlens-pose.onnx`` there the
tests skip, saying where they looked (the detector is trained by ``fixlens train``; nothing is downloaded).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ar_server.config import Config

FRAME_SIZE = (640, 480)  # pixels: a router LED (4 mm) needs >= 4 px to be read; 320x240 gives less


def weights_dir() -> Path:
    return Path(os.environ.get("FIXLENS_WEIGHTS_DIR") or Config().weights_dir)


@pytest.fixture(scope="session")
def weights() -> Path:
    folder = weights_dir()
    if not (folder / "fixlens-pose.onnx").is_file():
        pytest.skip(f"no detector weights: {folder / 'fixlens-pose.onnx'} is missing (set FIXLENS_WEIGHTS_DIR)")
    return folder


def explain(transcript: dict[str, Any]) -> str:
    """What a failed run did and what vision read, for the assertion message."""
    steps = [(s["at"], s["step"]) for s in transcript.get("steps", [])]
    how = [(v["step_id"], v["how"]) for v in transcript.get("verified", [])]
    return (f"outcome={transcript.get('outcome')} scene={transcript.get('scene')} steps={steps} verified={how} "
            f"notices={[n['code'] for n in transcript.get('notices', [])]} actions="
            f"{[(round(a['at'], 1), a['action'], a['part'], a['happened']) for a in transcript.get('actions', [])]} "
            f"errors={transcript.get('errors', [])[:3]} timing={transcript.get('timing')}\n"
            f"vision vs twin truth: {json.dumps(transcript.get('vision_check'))}")
