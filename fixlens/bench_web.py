"""``fixlens bench web``: the customer web page in headless Chromium against a local server, end to end.

A short film of the router twin (its WAN cable out, the back panel in a moving hand) plays as Chromium's
fake camera; the customer page, opened from a support link, streams it to an in-process server
(``LocalServer``, the real vision pipeline on ONNX Runtime) and draws the step's overlays with the poses the
server returns.

Reported: ``p50_ms`` / ``p95_ms`` from a frame's capture in the page to the first overlay drawn with its
pose (the page's own diagnostics, ``window.fixlensPage.overlayLatencies``: [drawn at, seconds since capture],
on the page's one clock), over the measured
window; ``sent_fps`` and ``answered_fps`` (frames the page sent, and those answered by an ``obs``, per
second of that window); ``draws`` (latencies measured), ``frame_size``, ``browser`` and ``pipeline``.
Needs Chromium (``FIXLENS_CHROMIUM``, default /usr/bin/chromium) and the ``playwright`` package.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("FIXLENS_CHROMIUM", "/usr/bin/chromium")
FILM_FPS = 15
FILM_S = 12.0
WARMUP_S = 4.0  # after the first step arrives: the page's model and the server's track settle
VIEWPORT = {"width": 640, "height": 400}  # small: SwiftShader draws every pixel on the CPU


def register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("web", help="the customer web page in headless Chromium: capture -> overlay drawn, fps",
                       description="Play a router twin film as Chromium's fake camera into the customer page, "
                                   "streamed to an in-process server with the real vision pipeline; report "
                                   "capture-to-overlay-drawn latency and frames sent and answered per second.")
    p.add_argument("--seconds", type=float, default=15.0, help="measured duration, 2..600 (default 15)")
    p.add_argument("--weights-dir", type=Path, default=None,
                   help="detector weights folder (env FIXLENS_WEIGHTS_DIR; default vision/weights)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_cmd_web)


def _cmd_web(args: argparse.Namespace) -> int:
    from ar_server.errors import ServerError

    if not 2 <= args.seconds <= 600:
        print("error: expected --seconds 2..600", file=sys.stderr)
        return 2
    if not Path(CHROMIUM).is_file():
        print(f"error: no Chromium at {CHROMIUM} (apt-get install -y chromium, or set FIXLENS_CHROMIUM)",
              file=sys.stderr)
        return 2
    try:
        result = run_web(args.seconds, args.weights_dir)
    except (ServerError, ImportError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>14}: {value}")
    return 0 if result["p50_ms"] is not None else 1


def render_film(path: Path, width: int = 640, height: int = 480) -> None:
    """A Y4M film for Chromium's fake camera: the lights, then the back panel, held in a moving hand."""
    import cv2

    from product_models.camera import CameraIntrinsics
    from product_models.catalog import default_catalog
    from product_models.twin import Twin
    from product_models.virtual_camera import HandheldCamera, VirtualCamera

    product = default_catalog().get("router_ax1800")
    twin = Twin(product, fault="wan_unplugged", now=0.0)
    handheld = HandheldCamera(product, CameraIntrinsics.from_fov(width, height), seed=3)
    vcam = VirtualCamera(twin, handheld)
    with path.open("wb") as fh:
        fh.write(f"YUV4MPEG2 W{width} H{height} F{FILM_FPS}:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        for index in range(round(FILM_S * FILM_FPS)):
            t = index / FILM_FPS
            handheld.aim("led_internet" if t < 3.0 else "port_wan", t)
            twin.advance(t)
            rgb, _ = vcam.capture(t)
            fh.write(b"FRAME\n" + cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())


def run_web(seconds: float, weights_dir: Path | None = None) -> dict[str, Any]:
    """Measure for ``seconds`` after the warm-up (see the module docstring)."""
    from playwright.sync_api import sync_playwright

    from ar_server.auth import TokenAuthority
    from fixlens.local_server import LocalServer, server_config

    with tempfile.TemporaryDirectory(prefix="fixlens-bench-web-") as tmp:
        film = Path(tmp) / "film.y4m"
        render_film(film)
        server = LocalServer(server_config(weights_dir, Path(tmp) / "data"))
        url = server.start()
        try:
            token = TokenAuthority(server.config.secret).mint("customer", "bench-web", 3600)
            request = urllib.request.Request(url + "/v1/sessions", method="POST",
                                             headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=30) as response:
                link = json.loads(response.read())["url"]
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
                    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--no-sandbox",
                    "--autoplay-policy=no-user-gesture-required", f"--use-file-for-fake-video-capture={film}"])
                try:
                    page = browser.new_context(viewport=VIEWPORT).new_page()
                    page.goto(url + link)
                    state = _wait(page, lambda s: s.get("step") is not None, 120)
                    page.wait_for_timeout(WARMUP_S * 1000)
                    before = _state(page)
                    page_t0 = page.evaluate("(performance.timeOrigin + performance.now()) / 1000")
                    started = time.monotonic()
                    page.wait_for_timeout(seconds * 1000)
                    state = _state(page)
                    elapsed = time.monotonic() - started
                finally:
                    browser.close()
        finally:
            server.stop()
    ms = sorted(1000.0 * latency for at, latency in state["overlayLatencies"] if at >= page_t0)
    sent = state["stats"]["sent"] - before["stats"]["sent"]
    answered = state["stats"]["answered"] - before["stats"]["answered"]
    return {"p50_ms": round(statistics.median(ms), 1) if ms else None,
            "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 1) if ms else None,
            "draws": len(ms), "sent_fps": round(sent / elapsed, 2), "answered_fps": round(answered / elapsed, 2),
            "seconds": round(elapsed, 1), "step": state.get("step"), "frame_size": [640, 480],
            "browser": "chromium (headless, SwiftShader)", "pipeline": server.pipeline_name}


def _state(page: Any) -> dict[str, Any]:
    return page.evaluate("JSON.parse(JSON.stringify(window.fixlensPage || {}))")


def _wait(page: Any, condition: Any, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        state = _state(page)
        if condition(state):
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page did not get a step within {timeout_s:g} s: {state}")
        page.wait_for_timeout(250)
