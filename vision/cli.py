"""``fixlens vision ...`` (model set-up) and ``fixlens bench vision`` (decode and LED timings)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    vision = sub.add_parser("vision", help="vision set-up: model files",
                            description="Vision pipeline tools.")
    vsub = vision.add_subparsers(dest="vision_command", metavar="ACTION", required=True)
    p = vsub.add_parser("models", help="create the MediaPipe hand and face model files",
                        description="Create hand_landmarker.task and face_detection_short_range.tflite from the "
                                    "mediapipe 0.10.21 wheel on PyPI (downloaded once into the cache with pip).")
    p.add_argument("--dir", type=Path, default=None, help="models folder (default: vision/models/)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="download cache (default: $FIXLENS_CACHE_DIR or ~/.cache/fixlens)")
    p.add_argument("--force", action="store_true", help="re-create the files even if they exist")
    p.set_defaults(handler=_cmd_models)


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    p = bench_sub.add_parser("vision", help="JPEG decode, LED classifier and PnP timings",
                             description="Time decode_jpeg on 640x480 frames, classify_led and estimate_pose.")
    p.add_argument("--repeat", type=int, default=200, help="timed runs per case (default: 200)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_cmd_bench)


def _cmd_models(args: argparse.Namespace) -> int:
    from vision.errors import ModelUnavailable
    from vision.model_files import ensure_models, model_files

    if args.force:
        for path in vars(model_files(args.dir)).values():
            path.unlink(missing_ok=True)
    try:
        files = ensure_models(args.dir, args.cache_dir)
    except ModelUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in vars(files).values():
        print(f"{path} ({path.stat().st_size} bytes)")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from vision.bench import run_bench

    if args.repeat < 1:
        print("error: --repeat must be >= 1", file=sys.stderr)
        return 2
    results = run_bench(args.repeat)
    if args.json:
        print(json.dumps(results))
    else:
        for name, value in results.items():
            print(f"{name:<36} {value}")
    return 0
