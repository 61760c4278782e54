"""``fixlens demo``: a guided repair end to end, through a real server, the real detector and real rendering.

``run_guided`` starts a Fixlens server on embedded defaults (dev mode, a temporary data folder, a free
port on 127.0.0.1, the trained vision pipeline on ONNX Runtime) on a thread of this process, then runs the
AR client against a digital twin in a fault, filmed by a handheld virtual camera that a simulated customer
steers. Every frame goes over the WebSocket to the server: JPEG -> detector -> pose -> part states ->
smoothing -> scene engine -> ``step`` back to the client, which draws the overlays with the pose the server
sent. The customer does what each step's animation shows; the twin reacts with its real delays; the engine
moves on only when the observed states say the step was done. Nobody presses Done.

Headless, the run is in *lockstep* on a simulated clock shared by the twin, the customer and the server's
engine (``client_panda3d.app.SimulatedClock``): each frame's result is awaited, then the clock moves on by
one frame, so minutes of troubleshooting take as long as the server needs for the frames. With a display
(``DISPLAY`` set) it runs in real time in a window instead.

The backend is always ONNX here: this process renders with Panda3D, and torch must not be imported into it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PRODUCT = "router_ax1800"
DEFAULT_FAULT = "wan_unplugged"
FPS = 10.0  # camera frames per (simulated) second; every frame goes to the server
# In a lockstep run the client's own pacing must not hold frames back (the simulated clock already spaces
# them at FPS); the server's rate gate runs on the same simulated clock, so its default limit holds.
LOCKSTEP_CLIENT_FPS = 120.0
MAX_SECONDS = 180.0  # give up after this much (simulated) time; the default repair takes about 15 s


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="run a guided repair end to end: server + detector + AR client on a twin (writes demo-out/)",
        description="Start a server with the trained detector, point the AR client at a digital twin in a fault, "
                    "let a simulated customer follow the guidance (every step verified by vision), and write "
                    "video, key frames, a contact sheet and a transcript.")
    p.add_argument("--product", default=DEFAULT_PRODUCT, help=f"catalog product id (default {DEFAULT_PRODUCT})")
    p.add_argument("--fault", default=DEFAULT_FAULT, help=f"fault the twin starts in (default {DEFAULT_FAULT})")
    p.add_argument("--scene", default=None, help="scene id; default: the server chooses from what the camera sees")
    p.add_argument("--locale", default="en", help="customer's language, e.g. en, de-AT, es (default en)")
    p.add_argument("--seed", type=int, default=7, help="random seed of the customer and the camera walk")
    p.add_argument("--clumsy", type=float, default=0.0, help="0..1: how often the customer slips")
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (default demo-out/)")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--weights-dir", type=Path, default=None,
                   help="detector weights folder (env FIXLENS_WEIGHTS_DIR; default vision/weights)")
    p.add_argument("--headless", action="store_true", help="never open a window, even with a display")
    p.add_argument("--max-seconds", type=float, default=MAX_SECONDS, help="give up after this long (simulated)")
    p.set_defaults(handler=_cmd_demo)


@dataclass
class GuidedRun:
    """What a guided run produced: the client transcript (plus the server's verified steps), key frames."""

    transcript: dict[str, Any]
    keyframes: list[tuple[str, Any]] = field(default_factory=list)  # (caption, (h, w, 3) uint8 RGB)
    wall_s: float = 0.0
    readings: list[dict[str, Any]] = field(default_factory=list)  # client_panda3d.app.reading() per result

    @property
    def outcome(self) -> str | None:
        return self.transcript.get("outcome")


def run_guided(source: str, *, out: Path | None = None, locale: str = "en", scene: str | None = None,
               width: int = 640, height: int = 480, fps: float = FPS, weights_dir: Path | None = None,
               window: bool = False, max_seconds: float = MAX_SECONDS, pipeline: Any = None,
               data_dir: Path | None = None) -> GuidedRun:
    """Run one guided session of the AR client on ``source`` (a ``twin:...`` string) through a local server.

    ``out``: write ``view.mp4`` and ``transcript.json`` there. The returned transcript also holds
    ``verified`` (the server's step history: entered, verified, how) and ``actions`` (what the customer did).
    Raises ``ServerError`` if the server cannot start (e.g. weights missing) and ``ClientError`` for a bad source.
    """
    from ar_server.auth import TokenAuthority
    from client_panda3d.app import ClientApp, SimulatedClock
    from client_panda3d.session import ClientSession, SessionConfig
    from client_panda3d.sources import open_source
    from fixlens.local_server import LocalServer, server_config
    from product_models.catalog import default_catalog

    wall0 = time.perf_counter()
    tmp = None if data_dir is not None else tempfile.TemporaryDirectory(prefix="fixlens-demo-")
    config = server_config(weights_dir, data_dir or Path(tmp.name))  # type: ignore[union-attr]
    clock = None if window else SimulatedClock()
    server = LocalServer(config, pipeline=pipeline, clock=clock or time.time)
    try:
        url = server.start()
        cam_source = open_source(source, width, height)
        authority = TokenAuthority(config.secret)
        token = authority.mint("customer", "demo-customer", 3600)
        session = ClientSession(SessionConfig(url.replace("http://", "ws://"), token, cam_source.camera, locale,
                                              scene, cam_source.product, LOCKSTEP_CLIENT_FPS if clock else fps))
        product = default_catalog().get(cam_source.product) if cam_source.product else None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        app = ClientApp(cam_source, session, product, cam_source.camera, fps=fps, locale=locale, out=out,
                        window=window, max_seconds=max_seconds, png_every=1_000_000, clock=clock)
        transcript = app.run().__dict__.copy()
        if transcript.get("session"):
            record = server.get_json(f"/v1/sessions/{transcript['session']}",
                                     authority.mint("agent", "demo-agent", 600))
            transcript["scene"] = record.get("scene")
            transcript["verified"] = record.get("history", [])
            transcript["escalations"] = record.get("escalations", [])
        customer = getattr(cam_source, "customer", None)
        transcript["actions"] = [a.__dict__ for a in customer.log] if customer is not None else []
        transcript["pipeline"] = server.pipeline_name
        transcript["frame_size"] = [width, height]
        transcript["vision_check"] = reading_summary(app.readings)
    finally:
        server.stop()
        if tmp is not None:
            tmp.cleanup()
    if out is not None:
        (out / "transcript.json").write_text(json.dumps(transcript, indent=2, ensure_ascii=False) + "\n")
        shutil.rmtree(out / "frames", ignore_errors=True)  # only the video and key frames are kept
    return GuidedRun(transcript, app.keyframes, time.perf_counter() - wall0, app.readings)


def reading_summary(readings: list[dict[str, Any]]) -> dict[str, Any]:
    """How well the server read the twin: product and pose rates over frames with the product in view, and
    per part (frames where it truly showed): right, wrong (``"read<-true": count``) and not recognised."""
    seen = [r for r in readings if r["in_view"]]
    parts: dict[str, dict[str, Any]] = {}
    for r in seen:
        if r["product"] != r["true_product"] or not r["pose"]:
            continue
        for name, (read, true, visible) in r["parts"].items():
            if not visible:
                continue
            row = parts.setdefault(name, {"frames": 0, "right": 0, "unknown": 0, "wrong": {}})
            row["frames"] += 1
            if read == true:
                row["right"] += 1
            elif read is None:
                row["unknown"] += 1
            else:
                key = f"{read}<-{true}"
                row["wrong"][key] = row["wrong"].get(key, 0) + 1
    pose_px = sorted(r["pose_px"] for r in seen if r.get("pose_px") is not None)
    return {"frames_in_view": len(seen),
            "pose_px_median": pose_px[len(pose_px) // 2] if pose_px else None,
            "pose_px_p90": pose_px[int(0.9 * (len(pose_px) - 1))] if pose_px else None,
            "product_right": sum(r["product"] == r["true_product"] for r in seen),
            "with_pose": sum(bool(r["pose"]) and r["product"] == r["true_product"] for r in seen),
            "parts": parts}


def _cmd_demo(args: argparse.Namespace) -> int:
    from ar_server.errors import ConfigError, ServerError
    from client_panda3d.errors import ClientError

    query = f"fault={args.fault}&seed={args.seed}&clumsy={args.clumsy}"
    source = f"twin:{args.product}?{query}"
    window = not args.headless and bool(os.environ.get("DISPLAY"))
    try:
        run = run_guided(source, out=args.out, locale=args.locale, scene=args.scene, width=args.width,
                         height=args.height, weights_dir=args.weights_dir, window=window,
                         max_seconds=args.max_seconds)
    except (ServerError, ConfigError) as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_keyframes(args.out, run.keyframes)
    if (args.out / "view.mp4").exists():
        os.replace(args.out / "view.mp4", args.out / "demo.mp4")
    t = run.transcript
    print(f"scene {t.get('scene')} on {source} ({t['pipeline']}, {args.width}x{args.height})")
    how = {v["step_id"]: v.get("how") for v in t.get("verified", [])}
    for s in t["steps"]:
        print(f"  {s['at']:6.1f}s  {s['step']:<20} {('verified by ' + how[s['step']]) if how.get(s['step']) else ''}")
    timing = t["timing"]
    clock = "simulated" if timing.get("clock") == "simulated" else "real"
    seconds = timing.get("simulated_s", timing["wall_s"])
    print(f"outcome: {t['outcome']} after {len(t['steps'])} steps, {seconds:.1f} s {clock} time "
          f"({run.wall_s:.1f} s wall, {timing['frames']} frames, {timing['results']} results)")
    check = t["vision_check"]
    print(f"vision: product recognised in {check['product_right']} of {check['frames_in_view']} frames with it in "
          f"view, pose in {check['with_pose']} (keypoint error median {check['pose_px_median']} px)")
    print(f"wrote {args.out}/demo.mp4, {args.out}/contact_sheet.png, {args.out}/keyframes/, {args.out}/transcript.json")
    return 0 if t["outcome"] in ("resolved", "escalated") else 1


def write_keyframes(out: Path, keyframes: list[tuple[str, Any]]) -> None:
    """``out/keyframes/NN.png`` and ``out/contact_sheet.png`` (key frames at half size, up to 3 columns,
    captioned; a run that showed no step says so on the sheet)."""
    import cv2
    import numpy as np

    folder = out / "keyframes"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    for i, (_caption, img) in enumerate(keyframes):
        cv2.imwrite(str(folder / f"{i:02d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    if not keyframes:
        sheet = np.full((120, 320, 3), 255, np.uint8)
        cv2.putText(sheet, "no step was shown", (10, 64), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    else:
        tiles = []
        for caption, img in keyframes:
            tile = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
            tile = np.vstack([tile, np.full((22, tile.shape[1], 3), 255, np.uint8)])
            cv2.putText(tile, caption, (6, tile.shape[0] - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                        cv2.LINE_AA)
            tiles.append(tile)
        cols = min(3, len(tiles))
        tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % cols)
        sheet = np.vstack([np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)])
    cv2.imwrite(str(out / "contact_sheet.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
