"""``fixlens bench e2e``: latency from frame capture to overlay ready, through a real server on loopback.

One AR client (``client_panda3d.app.ClientApp``) runs in real time against a router twin (its customer
does nothing: the fault stays, so the session keeps showing its first step's overlays). It sends every
captured frame to a local server with the real vision pipeline (ONNX Runtime; this process renders, so
never torch), and composes the AR view at ``--view-fps``.

Reported: ``p50_ms`` / ``p95_ms``, from a frame's capture to the end of the first composed view frame that
uses its result (capture ts -> obs received -> overlay composed); ``obs_p50_ms`` / ``obs_p95_ms`` (capture
-> obs taken from the inbox); ``overlay_fps`` (composed view frames per second actually reached);
``results_per_s``; ``compose_p50_ms``; ``backend`` and ``frame_size``. Anchoring with the server's poses:
``anchor_within_8px`` (share of composed frames whose highlight lies within 8 px of the part's true projection,
from the twin's ground truth), ``anchor_median_px`` and ``anchor_frames``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SOURCE = "twin:router_ax1800?fault=wan_unplugged&seed=3"
SCENE = "router_no_internet"  # requested up front, so its first step's overlays are composed from the start


def register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("e2e", help="capture -> server -> overlay latency and overlay fps, over loopback",
                       description="Run the AR client on a router twin against an in-process server with the real "
                                   "vision pipeline; report capture-to-overlay latency and composed frames/s.")
    p.add_argument("--seconds", type=float, default=15.0, help="measured duration, 2..600 (default 15)")
    p.add_argument("--fps", type=float, default=15.0, help="frames sent per second, 1..60 (default 15)")
    p.add_argument("--view-fps", type=float, default=30.0, help="view frames composed per second (default 30)")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--weights-dir", type=Path, default=None,
                   help="detector weights folder (env FIXLENS_WEIGHTS_DIR; default vision/weights)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_cmd_e2e)


def _cmd_e2e(args: argparse.Namespace) -> int:
    from ar_server.errors import ServerError

    if not (2 <= args.seconds <= 600 and 1 <= args.fps <= 60 and 1 <= args.view_fps <= 240):
        print("error: expected --seconds 2..600, --fps 1..60, --view-fps 1..240", file=sys.stderr)
        return 2
    try:
        result = run_e2e(args.seconds, args.fps, args.view_fps, args.width, args.height, args.weights_dir)
    except ServerError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>16}: {value}")
    return 0 if result["p50_ms"] is not None else 1


def run_e2e(seconds: float, fps: float, view_fps: float, width: int, height: int,
            weights_dir: Path | None = None) -> dict[str, Any]:
    """Run the client for ``seconds`` of real time; the measured figures (see the module docstring)."""
    import tempfile
    import time

    from ar_server.auth import TokenAuthority
    from client_panda3d.app import ClientApp
    from client_panda3d.session import ClientSession, SessionConfig
    from client_panda3d.sources import open_source
    from fixlens.local_server import LocalServer, server_config
    from product_models.catalog import default_catalog

    with tempfile.TemporaryDirectory(prefix="fixlens-bench-e2e-") as tmp:
        config = server_config(weights_dir, Path(tmp), max_fps=max(30.0, fps * 1.5))
        server = LocalServer(config)
        try:
            url = server.start()
            source = open_source(SOURCE, width, height)
            # A customer who never gets round to acting: the fault stays and so do the first step's overlays,
            # so the whole measured window has overlays to compose.
            source.customer.delay_range_s = (1e9, 1e9)  # type: ignore[attr-defined]
            token = TokenAuthority(config.secret).mint("customer", "bench-e2e", 3600)
            session = ClientSession(SessionConfig(url.replace("http://", "ws://"), token, source.camera,
                                                  scene=SCENE, product=source.product, fps=fps))
            product = default_catalog().get(source.product)
            app = ClientApp(source, session, product, source.camera, fps=view_fps, max_seconds=seconds)
            started = time.perf_counter()
            transcript = app.run()
            wall = time.perf_counter() - started
        finally:
            server.stop()
    t = transcript.timing
    return {
        "p50_ms": t["overlay_ready_p50_ms"], "p95_ms": t["overlay_ready_p95_ms"],
        "obs_p50_ms": t["result_age_p50_ms"], "obs_p95_ms": t["result_age_p95_ms"],
        "overlay_fps": t["view_fps"], "results_per_s": round(t["results"] / wall, 2) if wall > 0 else None,
        "frames_sent": t["frames_sent"], "compose_p50_ms": t["compose_p50_ms"],
        "steps_shown": len(transcript.steps), "errors": len(transcript.errors),
        "anchor_within_8px": t.get("anchor_within_8px"), "anchor_median_px": t.get("anchor_median_px"),
        "anchor_frames": t.get("anchor_frames", 0),
        "backend": server.pipeline_name, "frame_size": [width, height], "send_fps": fps, "view_fps_target": view_fps,
        "seconds": seconds,
    }
