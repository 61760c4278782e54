"""``fixlens client`` (the AR client) and ``fixlens agent-scene`` (the virtual agent scene)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("client", help="AR client: stream a camera, video or twin to a server and show overlays",
                       description="Send frames to a Fixlens server and show the step's overlays anchored on "
                                   "the product. Keys: Enter=Done, Backspace=Back, H=Help, 1-9=choices, Esc=quit.")
    p.add_argument("--server", required=True, help="server URL, e.g. ws://127.0.0.1:8080")
    p.add_argument("--token", required=True, help="bearer token (fixlens token ...)")
    p.add_argument("--source", required=True,
                   help="0 | webcam:N | file:PATH | twin:<product>?fault=<fault>[&seed=N&clumsy=0..1]")
    p.add_argument("--fps", type=float, default=8.0, help="frames sent to the server per second (default 8)")
    p.add_argument("--view-fps", type=float, default=15.0, help="frames composed per second (default 15)")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--quality", type=int, default=80, help="JPEG quality of sent frames, 1..100 (default 80)")
    p.add_argument("--locale", default="en")
    p.add_argument("--scene", default=None, help="scene id to run (default: the server chooses)")
    p.add_argument("--headless", action="store_true", help="no window: write frames, MP4 and transcript to --out")
    p.add_argument("--out", type=Path, default=Path("client-out"))
    p.add_argument("--max-seconds", type=float, default=600.0)
    p.set_defaults(handler=_cmd_client)

    a = sub.add_parser("agent-scene", help="virtual agent scene: the product in 3-D with a guide hand",
                       description="Render the product in the state being discussed with a hand that "
                                   "demonstrates each step. Standalone on a twin, or attached to a session.")
    a.add_argument("--scene", default=None, help="scene id (required standalone)")
    a.add_argument("--fault", default=None, help="fault the twin starts in (default: one the scene handles)")
    a.add_argument("--session", default=None, help="attach to this live session id (polls the server)")
    a.add_argument("--server", default="http://127.0.0.1:8080")
    a.add_argument("--token", default=None, help="bearer token (attached mode)")
    a.add_argument("--locale", default="en")
    a.add_argument("--width", type=int, default=640)
    a.add_argument("--height", type=int, default=400)
    a.add_argument("--fps", type=float, default=10.0)
    a.add_argument("--headless", action="store_true")
    a.add_argument("--out", type=Path, default=Path("agent-out"))
    a.add_argument("--max-seconds", type=float, default=300.0)
    a.set_defaults(handler=_cmd_agent_scene)


def _window(args: argparse.Namespace) -> bool:
    return not args.headless and bool(os.environ.get("DISPLAY"))


def _cmd_client(args: argparse.Namespace) -> int:
    from client_panda3d.app import ClientApp
    from client_panda3d.errors import ClientError
    from client_panda3d.session import ClientSession, SessionConfig
    from client_panda3d.sources import open_source
    from product_models.camera import CameraIntrinsics
    from product_models.catalog import default_catalog

    try:
        source = open_source(args.source, args.width, args.height)
        camera = getattr(source, "camera", None) or CameraIntrinsics.from_fov(args.width, args.height)
        config = SessionConfig(args.server, args.token, camera, args.locale, args.scene, source.product,
                               args.fps, args.quality)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    product = default_catalog().get(source.product) if source.product else None
    out = args.out if args.headless else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    app = ClientApp(source, ClientSession(config), product, camera, fps=args.view_fps, locale=args.locale,
                    out=out, window=_window(args), max_seconds=args.max_seconds)
    transcript = app.run()
    for s in transcript.steps:
        print(f"  {s['at']:6.1f}s  {s['step']:<16} {s['text']}")
    for e in transcript.errors:
        print(f"  error: {e}", file=sys.stderr)
    t = transcript.timing
    print(f"outcome: {transcript.outcome}; {t['frames']} frames in {t['wall_s']} s ({t['view_fps']} fps), "
          f"{t['results']} results, result age p50 {t['result_age_p50_ms']} ms")
    if out is not None:
        print(f"wrote {out}/frames/, {out}/view.mp4, {out}/transcript.json")
    return 0 if transcript.outcome in ("resolved", "escalated", "stopped") else 1


def _cmd_agent_scene(args: argparse.Namespace) -> int:
    from client_panda3d.agent_run import run_attached, run_standalone
    from client_panda3d.errors import ClientError
    from product_models.errors import CatalogError
    from scenes.errors import SceneError

    out = args.out if args.headless else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    try:
        if args.session:
            if not args.token:
                raise ClientError("--session needs --token (an agent or admin token)")
            log = run_attached(args.scene, args.session, args.server, args.token, width=args.width,
                               height=args.height, fps=args.fps, locale=args.locale, out=out,
                               max_seconds=args.max_seconds, window=_window(args))
        else:
            if not args.scene:
                raise ClientError("give --scene ID (standalone) or --session ID (attached)")
            log = run_standalone(args.scene, args.fault, width=args.width, height=args.height, fps=args.fps,
                                 locale=args.locale, out=out, max_seconds=args.max_seconds, window=_window(args))
    except (ClientError, CatalogError, SceneError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for s in log.steps:
        print(f"  {s['at']:6.1f}s  {s['step']:<16} {s['text']}")
    print(f"outcome: {log.outcome}; {log.frames} frames" + (f"; wrote {out}/frames/, {out}/agent.mp4" if out else ""))
    return 0
