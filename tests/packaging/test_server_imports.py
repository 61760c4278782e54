"""The server stack imports no training or client library: a ``fixlens[server]`` install has none of them.

The dev venv has them all installed, so a stray module-level import shows up here as a loaded module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Libraries of the train, client, gpu and hands extras (and MediaPipe, installed apart).
NOT_IN_SERVER = ("torch", "torchvision", "ultralytics", "panda3d", "direct", "matplotlib", "onnx", "skimage",
                 "mediapipe", "tqdm")

# Everything `fixlens serve` does up to listening: the whole CLI parser, the config, the start-up log lines,
# the app with its scene folder, and the production ONNX pipeline on the shipped weights.
_SERVER_START = """
import json, logging, sys
import ar_server, ar_server.app, ar_server.serve, fixlens.serve
from ar_server.app import create_app, load_pipeline
from ar_server.config import Config
from fixlens.cli import build_parser

args = build_parser().parse_args(["serve", "--port", "0", "--backend", "onnx", "--data-dir", sys.argv[1]])
config = Config.from_args(args, {})
fixlens.serve._announce_data(config, logging.getLogger("test"))
create_app(config)
pipeline = load_pipeline(config)
loaded = [m for m in sys.argv[2].split(",") if m in sys.modules]
print(json.dumps({"pipeline": type(pipeline).__name__, "loaded": loaded}))
"""


def test_the_server_stack_and_the_onnx_pipeline_import_no_torch_ultralytics_or_panda3d(tmp_path: Path) -> None:
    command = [sys.executable, "-c", _SERVER_START, str(tmp_path / "data"), ",".join(NOT_IN_SERVER)]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"pipeline": "Pipeline", "loaded": []}
