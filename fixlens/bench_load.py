"""``fixlens bench load``: N simulated customers stream twin renders to a real server over loopback.

The server runs in this process on its own thread and event loop (127.0.0.1, a free port); the customers
run on the main thread's loop and talk to it over real TCP WebSockets. Each customer sends pre-encoded JPEG
frames of a router twin render at F fps (on a fixed schedule, so a slow server does not slow the senders)
and matches every reply to the frame whose ``seq`` it echoes.

Every frame offered in the measured window is accounted for, per customer, as exactly one of:

- ``answered``: its ``obs`` arrived by the run's deadline (the end of the window plus ``drain_s``);
- ``late``: its ``obs`` arrived after the deadline (the customer listens ``late_s`` longer);
- ``refused``: an ``error`` named it (a bad frame, or ``rate_limited``);
- ``unanswered``: nothing came back. The server drops a frame silently when a newer one of the session
  arrives before it was processed (superseded) or when it comes over ``max_fps``, and tells the client
  neither (docs/PROTOCOL.md, "dropped silently"); ``server_dropped`` has its own counts by reason.

Reported (JSON with ``--json``): ``frames_offered``, ``answered``, ``late``, ``refused``, ``unanswered``;
``drop_rate`` (unanswered / offered) and ``late_or_lost`` (late + unanswered: frames a customer never saw an
answer for in time); ``p50_ms``/``p95_ms`` (frame sent -> obs received, over answered frames);
``processed_fps_total`` (answered frames per second); ``min_session_share`` (slowest session's answered fps
/ the mean); ``errors`` (every error message and failed connection, warm-up included); ``rss_growth_mb``
(RSS growth of this process -- server thread and clients -- over the measured window, after a warm-up);
``server_frames_received``, ``server_frames_processed`` and ``server_dropped`` (by reason), the server's
own counters over the whole run, warm-up included; and ``pipeline`` (which vision pipeline served the
frames).
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
DRAIN_S = 2.0  # after the last frame, wait this long for outstanding observations: the run's deadline
LATE_S = 2.0  # after the deadline, listen this long more, to tell late answers from none
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
    return 0 if result["errors"] == 0 and result["answered"] > 0 else 1


def choose_pipeline(frames: list[Any], *, prefer_real: bool = True) -> tuple[Any, str]:
    """The real vision pipeline if it imports and loads its weights, else the truth-table stand-in."""
    from ar_server.app import load_pipeline
    from ar_server.config import Config
    from fixlens.truth_pipeline import TruthTablePipeline

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
        self.metrics: Any = None  # the app's ar_server.metrics.Metrics; read it once stop() returned
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
        from ar_server.app_keys import METRICS

        app = create_app(self.config, pipeline=self.pipeline)
        self.metrics = app[METRICS]
        runner = web.AppRunner(app, handle_signals=False)
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
class CustomerRecord:
    """One customer's record of the frames it offered in the measured window and what came back for each.
    Holds one entry per offered frame: ``seconds * fps`` of them."""

    offered: dict[int, float] = field(default_factory=dict)  # seq -> perf_counter seconds when sent
    answered_ms: dict[int, float] = field(default_factory=dict)  # seq -> sent -> obs received, by the deadline
    late: set[int] = field(default_factory=set)  # seq whose obs came after the deadline
    refused: set[int] = field(default_factory=set)  # seq an error named
    errors: int = 0  # every error message and failed connection, warm-up included

    def record(self, kind: str, seq: int | None, now: float, deadline: float) -> None:
        """Note a reply (``obs`` or ``error``) received at ``now`` (perf_counter seconds)."""
        if kind == "error":
            self.errors += 1
        if seq is None or seq not in self.offered or seq in self.answered_ms or seq in self.late or seq in self.refused:
            return  # a reply without a frame, a warm-up frame, or a second reply
        if kind == "error":
            self.refused.add(seq)
        elif now <= deadline:
            self.answered_ms[seq] = (now - self.offered[seq]) * 1000.0
        else:
            self.late.add(seq)

    @property
    def unanswered(self) -> int:
        return len(self.offered) - len(self.answered_ms) - len(self.late) - len(self.refused)


async def _customer(index: int, url: str, token: str, frames: list[bytes], fps: float, measure_from: float,
                    measure_to: float, customer: CustomerRecord, deadline: float, late_s: float) -> None:
    import aiohttp

    from ar_server.protocol import Frame, Hello, decode_server, encode_client

    async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY:
                break
            reply = decode_server(msg.data)
            if reply.t in ("obs", "error"):
                customer.record(reply.t, reply.seq, time.perf_counter(), deadline)

    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=16 * 1024 * 1024) as ws:
            await ws.send_bytes(encode_client(Hello(token=token, client="bench")))
            reader = asyncio.create_task(read(ws))
            start = time.perf_counter() + (index / max(1, fps)) / 8  # stagger customers a little
            seq = 0
            while (at := start + seq / fps) < measure_to:
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                seq += 1
                sent = time.perf_counter()
                if sent >= measure_from:
                    customer.offered[seq] = sent
                await ws.send_bytes(encode_client(Frame(seq=seq, ts=time.time(), jpeg=frames[seq % len(frames)])))
            await asyncio.sleep(max(0.0, deadline + late_s - time.perf_counter()))
            await ws.close()
            await asyncio.wait_for(reader, 5.0)
    except (aiohttp.ClientError, OSError, TimeoutError):
        customer.errors += 1


def account(customers: list[CustomerRecord], seconds: float) -> dict[str, Any]:
    """The per-frame accounting and latency figures over all customers (keys in the module docstring)."""
    latencies = sorted(ms for c in customers for ms in c.answered_ms.values())
    offered = sum(len(c.offered) for c in customers)
    unanswered = sum(c.unanswered for c in customers)
    late = sum(len(c.late) for c in customers)
    per_session = [len(c.answered_ms) / seconds for c in customers]
    mean = sum(per_session) / len(per_session) if per_session else 0.0

    def pct(q: float) -> float | None:
        return None if not latencies else round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2)

    return {
        "frames_offered": offered, "answered": len(latencies), "late": late,
        "refused": sum(len(c.refused) for c in customers), "unanswered": unanswered,
        "drop_rate": round(unanswered / offered, 4) if offered else None, "late_or_lost": late + unanswered,
        "errors": sum(c.errors for c in customers), "p50_ms": pct(0.50), "p95_ms": pct(0.95),
        "processed_fps_total": round(sum(per_session), 2),
        "min_session_share": round(min(per_session) / mean, 3) if mean > 0 else 0.0,
    }


def run_load(sessions: int, fps: float, seconds: float, *, width: int = 640, height: int = 480,
             batch_size: int = 8, batch_wait_ms: float = 5.0, prefer_real: bool = True,
             warmup_s: float = WARMUP_S, drain_s: float = DRAIN_S, late_s: float = LATE_S) -> dict[str, Any]:
    """Run the load test; see the module docstring for the keys. Bounded: about warm-up + seconds + drain
    + late."""
    import psutil

    from ar_server.auth import TokenAuthority
    from ar_server.config import Config
    from fixlens.truth_pipeline import render_frames

    rendered = render_frames(PRODUCT, [{"port_wan": "empty", "led_internet": "red"}], width=width, height=height,
                             yaws=tuple(172.0 + 2.0 * i for i in range(9)))[0]
    pipeline, pipeline_name = choose_pipeline(rendered, prefer_real=prefer_real)
    with tempfile.TemporaryDirectory(prefix="fixlens-bench-") as tmp:
        config = Config.from_sources({"data_dir": str(Path(tmp) / "data"), "port": 0,
                                      "max_fps": max(30.0, fps * 1.5), "batch_size": batch_size,
                                      "batch_wait_ms": batch_wait_ms,
                                      # every simulated customer comes from 127.0.0.1, all at once
                                      "max_unauthenticated_per_address": max(16, sessions)}, {})
        server = _ServerThread(config, pipeline)
        server.start()
        try:
            authority = TokenAuthority(config.secret)
            url = f"http://127.0.0.1:{server.port}/v1/stream"
            customers = [CustomerRecord() for _ in range(sessions)]
            process = psutil.Process()

            async def main() -> float:
                measure_from = time.perf_counter() + warmup_s
                measure_to = measure_from + seconds
                deadline = measure_to + drain_s
                tasks = [asyncio.create_task(_customer(i, url, authority.mint("customer", f"bench-{i}", 3600),
                                                       [f.jpeg for f in rendered], fps, measure_from, measure_to,
                                                       customers[i], deadline, late_s)) for i in range(sessions)]
                await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
                rss_start = process.memory_info().rss
                await asyncio.wait_for(asyncio.gather(*tasks), seconds + warmup_s + drain_s + late_s + 30.0)
                return (process.memory_info().rss - rss_start) / 1e6

            rss_growth_mb = asyncio.run(main())
        finally:
            server.stop()
    metrics = server.metrics
    return {
        "sessions": sessions, "fps": fps, "seconds": seconds, "width": width, "height": height,
        "drain_s": drain_s, "late_s": late_s,
        **account(customers, seconds),
        "server_frames_received": int(metrics.frames_received.get()),
        "server_frames_processed": int(metrics.frames_processed.get()),
        "server_dropped": {dict(key).get("reason", ""): int(value)
                           for key, value in sorted(metrics.frames_dropped.values.items())},
        "rss_growth_mb": round(rss_growth_mb, 2), "rss_scope": "bench process (server thread and customers)",
        "pipeline": pipeline_name,
        "mean_batch_size": round(sum(pipeline.batches) / len(pipeline.batches), 2)
        if getattr(pipeline, "batches", None) else None,
    }
