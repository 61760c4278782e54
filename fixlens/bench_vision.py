"""``fixlens bench vision``: JPEG decode, LED classifier and PnP timings (``vision.bench`` measures them)."""

from __future__ import annotations

import argparse
import json
import sys


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    p = bench_sub.add_parser("vision", help="JPEG decode, LED classifier and PnP timings",
                             description="Time decode_jpeg on 640x480 frames, classify_led and estimate_pose.")
    p.add_argument("--repeat", type=int, default=200, help="timed runs per case (default: 200)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_cmd_bench)


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
