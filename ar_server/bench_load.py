"""``fixlens bench load``: N simulated customers stream twin renders to a real server over loopback.

The server runs in this process on its own thread and event loop (127.0.0.1, a free port); the customers
run on the main thread's loop and talk to it over real TCP WebSockets. Each customer sends pre-encoded JPEG
frames of a router twin render at F fps (on a fixed schedule, so a slow server does not slow the senders)
and times each ``obs`` against the send time of the frame it echoes.

Reported (JSON with ``--json``): ``errors`` (error messages + failed connections), ``p50_ms``/``p95_ms``
(frame sent -> obs received), ``processed_fps_total``, ``min_session_share`` (slowest session's processed
fps / the mean), ``rss_growth_mb`` (RSS growth of this process -- server thread and clients -- over the
measured window, after a warm-up) and ``pipeline`` (which vision pipeline served the frames).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WARMUP_S = 2.0
DRAIN_S = 2.0  # after the last frame, wait this long for outstanding observations
PRODUCT = "router_ax1800"


def register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("load", help="simulated customers stream frames to a loopback server",
                       description="Run N simulated customers against an in-process server over loopback and "
                                   "report latency, throughput, fairness and memory growth.")
    p.add_argument("--sessions", type=int, default=8, help="simulated customers (1..256)")
    p.add_argument("--fps", type=float, default=15.0, help="frames per second each customer sends (0.1..60)")
    p.add_argument("--seconds", type=float, default=30.0, help="measured duration (1..3600), after a warm-up")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--batch-wait-ms", type=float, default=5.0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_cmd_load)


def _cmd_load(args: argparse.Namespace) -> int:
    if not (1 <= args.sessions <= 256 and 0.1 <= args.fps <= 60 and 1 <= args.seconds <= 3600):
        print("error: expected --sessions 1..256, --fps 0.1..60, --seconds 1..3600", file=sys.stderr)
        return 2
    result = run_load(args.sessions, args.fps, args.seconds, width=args.width, height=args.height,
                      batch_size=args.batch_size, batch_wait_ms=args.batch_wait_ms)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")
    return 0 if result["errors"] == 0 else 1


def choose_pipeline(frames: list[Any], *, prefer_real: bool = True) -> tuple[Any, str]:
    """The real vision pipeline if it imports and loads its weights, else the truth-table stand-in."""
    from ar_server.app import load_pipeline
    from ar_server.config import Config
    from ar_server.truth_pipeline import TruthTablePipeline

    reason = "not requested"
    if prefer_real:
        try:
            return load_pipeline(Config()), "vision.pipeline.Pipeline"
        except Exception as exc:  # any failure to build it means: no usable real pipeline here
            reason = f"vision.pipeline unavailable: {str(exc)[:160]}"
    stand_in = TruthTablePipeline(frames)
    return stand_in, f"{stand_in.name}; {reason}"


class _ServerThread:
    """The app on its own loop and thread, so customers and server do not share an event loop."""

    def __init__(self, config: Any, pipeline: Any) -> None:
        self.config, self.pipeline = config, pipeline
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="fixlens-bench-server", daemon=True)
        self.failure: BaseException | None = None

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(60.0) or self.failure is not None:
            raise RuntimeError(f"bench server did not start: {self.failure}")

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30.0)

    def _main(self) -> None:
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:
            self.failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        from aiohttp import web

        from ar_server.app import create_app

        runner = web.AppRunner(create_app(self.config, pipeline=self.pipeline), handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
            self._stop = asyncio.Event()
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()


@dataclass
class _Customer:
    sent: dict[int, float] = field(default_factory=dict)  # seq -> perf_counter when sent
    latencies_ms: list[float] = field(default_factory=list)  # measured window only
    processed: int = 0  # obs received in the measured window
    errors: int = 0


async def _customer(index: int, url: str, token: str, frames: list[bytes], fps: float, measure_from: float,
                    measure_to: float, customer: _Customer, drain_s: float) -> None:
    import aiohttp

    from ar_server.protocol import Frame, Hello, decode_server, encode_client

    async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY:
                break
            reply = decode_server(msg.data)
            now = time.perf_counter()
            if reply.t == "error":
                customer.errors += 1
            elif reply.t == "obs" and measure_from <= now <= measure_to + drain_s:
                sent = customer.sent.pop(reply.seq, None)
                if sent is not None and sent >= measure_from:
                    customer.latencies_ms.append((now - sent) * 1000.0)
                    customer.processed += 1

    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=16 * 1024 * 1024) as ws:
            await ws.send_bytes(encode_client(Hello(token=token, client="bench")))
            reader = asyncio.create_task(read(ws))
            start = time.perf_counter() + (index / max(1, fps)) / 8  # stagger customers a little
            seq = 0
            while (at := start + seq / fps) < measure_to:
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                seq += 1
                customer.sent[seq] = time.perf_counter()
                await ws.send_bytes(encode_client(Frame(seq=seq, ts=time.time(), jpeg=frames[seq % len(frames)])))
                for old in [s for s in customer.sent if s < seq - 4 * fps]:  # forget dropped frames: bounded
                    del customer.sent[old]
            await asyncio.sleep(drain_s)
            await ws.close()
            await asyncio.wait_for(reader, 5.0)
    except (aiohttp.ClientError, OSError, TimeoutError):
        customer.errors += 1


def run_load(sessions: int, fps: float, seconds: float, *, width: int = 640, height: int = 480,
             batch_size: int = 8, batch_wait_ms: float = 5.0, prefer_real: bool = True,
             warmup_s: float = WARMUP_S, drain_s: float = DRAIN_S) -> dict[str, Any]:
    """Run the load test; see the module docstring for the keys. Bounded: about warmup + seconds + drain."""
    import psutil

    from ar_server.auth import TokenAuthority
    from ar_server.config import Config
    from ar_server.truth_pipeline import render_frames

    rendered = render_frames(PRODUCT, [{"port_wan": "empty", "led_internet": "red"}], width=width, height=height,
                             yaws=tuple(172.0 + 2.0 * i for i in range(9)))[0]
    pipeline, pipeline_name = choose_pipeline(rendered, prefer_real=prefer_real)
    with tempfile.TemporaryDirectory(prefix="fixlens-bench-") as tmp:
        config = Config.from_sources({"data_dir": str(Path(tmp) / "data"), "port": 0,
                                      "max_fps": max(30.0, fps * 1.5), "batch_size": batch_size,
                                      "batch_wait_ms": batch_wait_ms}, {})
        server = _ServerThread(config, pipeline)
        server.start()
        try:
            authority = TokenAuthority(config.secret)
            url = f"http://127.0.0.1:{server.port}/v1/stream"
            customers = [_Customer() for _ in range(sessions)]
            process = psutil.Process()

            async def main() -> float:
                measure_from = time.perf_counter() + warmup_s
                measure_to = measure_from + seconds
                tasks = [asyncio.create_task(_customer(i, url, authority.mint("customer", f"bench-{i}", 3600),
                                                       [f.jpeg for f in rendered], fps, measure_from, measure_to,
                                                       customers[i], drain_s)) for i in range(sessions)]
                await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
                rss_start = process.memory_info().rss
                await asyncio.wait_for(asyncio.gather(*tasks), seconds + warmup_s + drain_s + 30.0)
                return (process.memory_info().rss - rss_start) / 1e6

            rss_growth_mb = asyncio.run(main())
        finally:
            server.stop()
    latencies = sorted(x for c in customers for x in c.latencies_ms)
    per_session = [c.processed / seconds for c in customers]
    mean = sum(per_session) / len(per_session)

    def pct(q: float) -> float | None:
        return None if not latencies else round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2)

    return {
        "sessions": sessions, "fps": fps, "seconds": seconds, "width": width, "height": height,
        "errors": sum(c.errors for c in customers), "p50_ms": pct(0.50), "p95_ms": pct(0.95),
        "processed_fps_total": round(sum(per_session), 2),
        "min_session_share": round(min(per_session) / mean, 3) if mean > 0 else 0.0,
        "rss_growth_mb": round(rss_growth_mb, 2), "rss_scope": "bench process (server thread and customers)",
        "pipeline": pipeline_name,
        "mean_batch_size": round(sum(pipeline.batches) / len(pipeline.batches), 2)
        if getattr(pipeline, "batches", None) else None,
    }
