"""``fixlens bench plain``: is a product on a plain grey or white surface recognised, streamed to a real server?

The figure behind "the router on a plain grey or white surface, rendered with ``fixlens products render``
and streamed to ``fixlens serve``, is recognised in >= 95% of frames".

Frames: ``fixlens.plain_frames`` (each product healthy, as ``fixlens products render`` draws it, over each
surface, from the same seeded handheld-like viewpoints). Server: the full app (``create_app``, what ``fixlens
serve`` runs) on 127.0.0.1 and a free port, on a thread of this process (``LocalServer``), with the real
vision pipeline on ONNX Runtime (this process renders, so never torch) and the weights of ``--weights-dir``.

Client, one session per product and surface: ``hello`` with the frames' true intrinsics and no product hint
or scene, then every frame as a JPEG ``frame``, each sent after the previous one's ``obs`` and at least
``1 / limits.max_fps`` after it, so the server drops none. Capture times (``ts``) are ``CAPTURE_GAP_S``
apart: the frames are separate shots, not a video, and the server forgets a track older than 0.5 s, so
every frame goes through the detector. (A handheld stream is tracked between detections; this measures
each frame on its own.)

Reported, per product and surface and per product overall: ``frames``, ``answered`` (an ``obs`` came back),
``recognised`` (its ``product`` is the product shown), ``recognised_share`` (of ``frames``),
``other_product``, ``no_product``, ``errors``, ``latency_p50_ms`` (frame sent -> its ``obs`` received),
``server_total_p50_ms`` (``obs.timing.total_ms``), ``product_conf_p50`` (over recognised frames),
``width_share`` (min, max) and ``cut_off`` (frames with part of the product outside them). ``misses``
lists the viewpoint of every frame not recognised. ``server_frames_received`` and
``server_frames_processed`` come from the server's ``/metrics``: the frames really reached the pipeline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the renderer loads OpenCV and Panda3D: only the handler imports it, so --help stays instant
    from fixlens.plain_frames import PlainFrame, Surface

DEFAULT_PRODUCTS = ("router_ax1800", "printer_lx400")
DEFAULT_SURFACES = ("grey", "white")
TARGET_PRODUCT, TARGET_SHARE = "router_ax1800", 0.95  # recognised on every surface in >= 95% of frames
CAPTURE_GAP_S = 1.0  # between frames' capture times: more than the server's 0.5 s track age
OBS_TIMEOUT_S = 60.0  # a frame without its result after this long counts as unanswered
DEFAULT_FRAMES, DEFAULT_SEED = 80, 11


def register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plain", help="recognition of products on a plain grey or white surface, over loopback",
                       description="Render each product as `fixlens products render` does, over plain surfaces, "
                                   "from seeded handheld-like viewpoints; stream the frames to an in-process server "
                                   "with the real vision pipeline; report the share of frames in which the product "
                                   "is recognised, and the result latency.")
    p.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                   help=f"frames per product and surface, 1..10000 (default {DEFAULT_FRAMES})")
    p.add_argument("--product", action="append", default=None, metavar="ID",
                   help=f"product id (repeatable; default {' and '.join(DEFAULT_PRODUCTS)})")
    p.add_argument("--surface", action="append", default=None, metavar="COLOUR",
                   help="grey, white or R,G,B, as `products render --background` takes (repeatable; default grey "
                        "and white)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"viewpoint seed (default {DEFAULT_SEED})")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--weights-dir", type=Path, default=None,
                   help="vision weights folder (env FIXLENS_WEIGHTS_DIR; default vision/weights)")
    p.add_argument("--save-frames", type=Path, default=None, metavar="DIR",
                   help="also write every frame as DIR/<product>-<surface>-<index>.png")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_cmd_plain)


def _cmd_plain(args: argparse.Namespace) -> int:
    from ar_server.errors import ConfigError, ServerError
    from product_models.errors import CatalogError

    if not (1 <= args.frames <= 10_000 and 0 <= args.seed < 2**32):
        print("error: expected --frames 1..10000 and --seed 0..2**32-1", file=sys.stderr)
        return 2
    try:
        surfaces = _surfaces(args.surface or list(DEFAULT_SURFACES))
        report = run_plain(args.product or list(DEFAULT_PRODUCTS), surfaces, args.frames, seed=args.seed,
                           width=args.width, height=args.height, weights_dir=args.weights_dir,
                           save_frames=args.save_frames)
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ServerError, ConfigError) as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report))
    else:
        for product, row in report["products"].items():
            for surface, figures in row["surfaces"].items():
                print(f"{product} on {surface}: recognised {figures['recognised']} of {figures['frames']} "
                      f"({figures['recognised_share']:.1%}), latency p50 {figures['latency_p50_ms']} ms")
        print(f"target ({TARGET_PRODUCT} >= {TARGET_SHARE:.0%} on every surface): "
              f"{ {True: 'met', False: 'not met', None: 'not measured'}[report['target']['met']]}; "
              f"{report['pipeline']}, {report['seconds']} s")
    return 0 if report["frames_sent"] == report["frames_answered"] == report["server_frames_processed"] else 1


def _surfaces(texts: list[str]) -> list[Surface]:
    """``--surface`` values -> surfaces; CatalogError names a bad or repeated one."""
    from fixlens.plain_frames import Surface
    from product_models.errors import CatalogError

    surfaces = []
    for text in texts:
        try:
            surfaces.append(Surface.from_text(text))
        except CatalogError as exc:
            raise CatalogError(f"--surface: {exc}") from None
    names = [s.name for s in surfaces]
    if len(set(names)) != len(names):
        raise CatalogError(f"--surface: each surface once, got {', '.join(names)}")
    return surfaces


@dataclass
class FrameResult:
    """What came back for one frame; ``answered`` False when nothing did."""

    answered: bool = False
    product: str | None = None
    product_conf: float = 0.0
    latency_ms: float | None = None  # frame sent -> obs received, this client's clock
    server_total_ms: float | None = None  # obs.timing.total_ms
    error: str | None = None  # code: message of an `error` about this frame


def run_plain(products: list[str], surfaces: list[Surface], frames_per_surface: int, *, seed: int = DEFAULT_SEED,
              width: int = 640, height: int = 480, weights_dir: Path | None = None,
              save_frames: Path | None = None) -> dict[str, Any]:
    """Render, stream and report (keys in the module docstring). Raises CatalogError for an unknown product
    or bad size, ServerError/ConfigError if the server cannot start (weights missing, bad folder)."""
    from ar_server.auth import TokenAuthority
    from fixlens.local_server import LocalServer, server_config
    from fixlens.plain_frames import (
        JPEG_QUALITY,
        PITCH_RANGE_DEG,
        WIDTH_SHARE_RANGE,
        YAW_RANGE_DEG,
        render_plain_frames,
        viewpoints,
    )
    from product_models.catalog import default_catalog
    from product_models.errors import CatalogError
    from product_models.render import Renderer
    from product_models.render_view import MAX_SIZE_PX, MIN_SIZE_PX, background_rgb8

    started = time.perf_counter()
    catalog = default_catalog()
    chosen = [catalog.get(pid) for pid in dict.fromkeys(products)]  # CatalogError names an unknown id
    if not (MIN_SIZE_PX <= width <= MAX_SIZE_PX and MIN_SIZE_PX <= height <= MAX_SIZE_PX):
        raise CatalogError(f"--width/--height must be within {MIN_SIZE_PX}..{MAX_SIZE_PX}, got {width}x{height}")
    views = viewpoints(frames_per_surface, seed)
    with tempfile.TemporaryDirectory(prefix="fixlens-bench-plain-") as tmp:
        config = server_config(weights_dir, Path(tmp))
        server = LocalServer(config)
        try:
            url = server.start()  # first: a missing weight file fails before any rendering
            renderer = Renderer(width, height)
            render_started = time.perf_counter()
            rendered = {product.id: render_plain_frames(product, surfaces, views, width=width, height=height,
                                                        renderer=renderer) for product in chosen}
            render_s = time.perf_counter() - render_started
            if save_frames is not None:
                _save(save_frames, rendered)
            authority = TokenAuthority(config.secret)
            stream_url = url.replace("http://", "ws://") + "/v1/stream"
            results: dict[str, dict[str, list[FrameResult]]] = {}
            for product_id, by_surface in rendered.items():
                results[product_id] = {}
                for surface_name, frames in by_surface.items():
                    token = authority.mint("customer", f"bench-plain-{product_id}-{surface_name}", 3600)
                    results[product_id][surface_name] = asyncio.run(stream_frames(stream_url, token, frames))
            counters = _server_counters(url, authority.mint("admin", "bench-plain", 600))
            pipeline_name = server.pipeline_name
        finally:
            server.stop()
    products_report = {pid: summarise_product(pid, rendered[pid], results[pid]) for pid in rendered}
    for row in products_report.values():
        for surface in surfaces:
            row["surfaces"][surface.name]["rgb"] = list(background_rgb8(surface.rgb))
    target_rows = products_report.get(TARGET_PRODUCT, {}).get("surfaces", {})
    sent = sum(len(frames) for by_surface in rendered.values() for frames in by_surface.values())
    answered = sum(r.answered for by_surface in results.values() for rs in by_surface.values() for r in rs)
    return {
        "bench": "plain", "seed": seed, "frame_size": [width, height], "frames_per_surface": frames_per_surface,
        "surfaces": [s.name for s in surfaces], "jpeg_quality": JPEG_QUALITY, "capture_gap_s": CAPTURE_GAP_S,
        "viewpoints": {"yaw_deg": list(YAW_RANGE_DEG), "pitch_deg": list(PITCH_RANGE_DEG),
                       "width_share": list(WIDTH_SHARE_RANGE)},
        "weights_dir": str(config.weights_dir), "pipeline": pipeline_name,
        "products": products_report,
        "target": {"product": TARGET_PRODUCT, "min_share": TARGET_SHARE,
                   "met": all(r["recognised_share"] >= TARGET_SHARE for r in target_rows.values())
                   if target_rows else None},  # None: the target product was not in this run
        "frames_sent": sent, "frames_answered": answered,
        "server_frames_received": counters.get("fixlens_frames_received_total"),
        "server_frames_processed": counters.get("fixlens_frames_processed_total"),
        "render_seconds": round(render_s, 1), "seconds": round(time.perf_counter() - started, 1),
    }


async def stream_frames(url: str, token: str, frames: list[PlainFrame]) -> list[FrameResult]:
    """One session: ``hello`` with the frames' intrinsics, then each frame in turn, awaiting its result."""
    import aiohttp

    from ar_server.errors import ServerError
    from ar_server.protocol import Frame, Hello, Intrinsics, decode_server, encode_client

    results = [FrameResult() for _ in frames]
    if not frames:
        return results
    cam = frames[0].camera
    hello = Hello(token=token, client="bench", camera=Intrinsics(cam.fx, cam.fy, cam.cx, cam.cy, cam.width,
                                                                 cam.height))
    async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=16 * 1024 * 1024) as ws:
        await ws.send_bytes(encode_client(hello))
        welcome = await _next_message(ws, decode_server)
        if welcome is None or welcome.t != "welcome":
            raise ServerError("bench_failed", f"expected a welcome from the server, got {welcome!r}")
        min_gap_s = 1.0 / welcome.limits.max_fps
        last_sent = 0.0
        for index, frame in enumerate(frames):
            seq = index + 1
            await asyncio.sleep(max(0.0, last_sent + min_gap_s - time.perf_counter()))
            last_sent = time.perf_counter()
            await ws.send_bytes(encode_client(Frame(seq=seq, ts=seq * CAPTURE_GAP_S, jpeg=frame.jpeg,
                                                    width=cam.width, height=cam.height)))
            if not await _wait_result(ws, decode_server, seq, last_sent, results[index]):
                break  # the connection is gone: the rest stay unanswered
        await ws.close()
    return results


async def _next_message(ws: Any, decode: Any, timeout_s: float = OBS_TIMEOUT_S) -> Any:
    """The next server message, or None when the connection closed or nothing came in time."""
    import aiohttp

    try:
        msg = await ws.receive(timeout=timeout_s)
    except TimeoutError:
        return None
    if msg.type != aiohttp.WSMsgType.BINARY:
        return None
    return decode(msg.data)


async def _wait_result(ws: Any, decode: Any, seq: int, sent_at: float, result: FrameResult) -> bool:
    """Read until the ``obs`` (or an ``error``) for ``seq``; False if the connection ended first."""
    deadline = sent_at + OBS_TIMEOUT_S
    while (left := deadline - time.perf_counter()) > 0:
        reply = await _next_message(ws, decode, left)
        if reply is None:
            return not ws.closed
        if reply.t == "obs" and reply.seq == seq:
            result.answered, result.product, result.product_conf = True, reply.product, reply.product_conf
            result.latency_ms = (time.perf_counter() - sent_at) * 1000.0
            result.server_total_ms = reply.timing.total_ms
            return True
        if reply.t == "error" and (reply.seq == seq or reply.fatal):
            result.error = f"{reply.code}: {reply.message}"
            return not reply.fatal
        if reply.t == "end":
            return False
        # `step` and `notice` (a scene the server started by itself, view hints) do not concern this bench.
    return True


def summarise_product(product_id: str, frames: dict[str, list[PlainFrame]],
                      results: dict[str, list[FrameResult]]) -> dict[str, Any]:
    """Per-surface figures, the overall figures and the misses of one product (keys in the module docstring)."""
    surfaces = {name: _figures(product_id, frames[name], results[name]) for name in frames}
    every_frame = [f for name in frames for f in frames[name]]
    every_result = [r for name in frames for r in results[name]]
    misses = [{"surface": f.surface, "index": f.index, "yaw_deg": f.view.yaw_deg, "pitch_deg": f.view.pitch_deg,
               "width_share": f.width_share, "got": r.product if r.answered else (r.error or "no answer")}
              for f, r in zip(every_frame, every_result, strict=True) if not (r.answered and r.product == product_id)]
    return {"surfaces": surfaces, "overall": _figures(product_id, every_frame, every_result), "misses": misses}


def _figures(product_id: str, frames: list[PlainFrame], results: list[FrameResult]) -> dict[str, Any]:
    answered = [r for r in results if r.answered]
    recognised = [r for r in answered if r.product == product_id]

    def median(values: list[float]) -> float | None:
        return round(statistics.median(values), 2) if values else None

    return {
        "frames": len(frames), "answered": len(answered), "recognised": len(recognised),
        "recognised_share": round(len(recognised) / len(frames), 4) if frames else 0.0,
        "other_product": sum(r.product not in (None, product_id) for r in answered),
        "no_product": sum(r.product is None for r in answered),
        "errors": sum(r.error is not None for r in results),
        "latency_p50_ms": median([r.latency_ms for r in answered if r.latency_ms is not None]),
        "server_total_p50_ms": median([r.server_total_ms for r in answered if r.server_total_ms is not None]),
        "product_conf_p50": median([r.product_conf for r in recognised]),
        "width_share": [min(f.width_share for f in frames), max(f.width_share for f in frames)] if frames else None,
        "cut_off": sum(f.cut_off for f in frames),
    }


def _server_counters(url: str, admin_token: str) -> dict[str, int]:
    """The server's frame counters, from its Prometheus ``/metrics`` text."""
    request = urllib.request.Request(url + "/metrics", headers={"Authorization": f"Bearer {admin_token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode("utf-8")
    out = {}
    for name in ("fixlens_frames_received_total", "fixlens_frames_processed_total"):
        match = re.search(rf"^{name} ([0-9.eE+]+)$", text, re.MULTILINE)
        out[name] = int(float(match.group(1))) if match else 0
    return out


def _save(folder: Path, rendered: dict[str, dict[str, list[PlainFrame]]]) -> None:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for by_surface in rendered.values():
        for frames in by_surface.values():
            for f in frames:
                cv2.imwrite(str(folder / f"{f.product}-{f.surface}-{f.index:03d}.png"), f.image[:, :, ::-1])
