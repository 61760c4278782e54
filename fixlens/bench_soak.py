"""``fixlens bench soak``: a bounded soak of a real ``fixlens serve`` process, looking for leaks.

The server runs as its own process (``python -m fixlens.cli serve`` on a free loopback port, a temporary data
folder, a random token secret passed through the environment), so what is measured is the server's alone.
A short warm-up session loads the models and fills the caches first; then, with no client connected, the
server's resident memory (RSS), open file descriptors and threads are read (``start``). N customers stream
twin renders at F fps for the given minutes (the same customers as ``fixlens bench load``), the server is
sampled every ``SAMPLE_S`` seconds, the customers disconnect, and after ``SETTLE_S`` seconds the same three
figures are read again (``end``).

Reported (JSON with ``--json``): ``start`` and ``end`` (``rss_mb``, ``fds``, ``threads``),
``rss_growth_pct`` ((end - start) / start), ``load_warmup_s``, ``rss_warm_mb``, ``rss_last_under_load_mb`` and
``rss_growth_after_warmup_pct`` (below), ``rss_peak_mb``, ``fds_back`` and ``threads_back`` (end <= start),
the per-frame accounting of ``bench load`` over the whole soak (``frames_offered``, ``answered``,
``drop_rate``, ``late_or_lost``, ``p50_ms``, ``p95_ms``, ``errors``), ``samples`` (seconds, rss_mb, fds,
threads), and ``server_exit_code`` (the server is stopped with SIGTERM at the end).

Two growth figures, side by side. ``rss_growth_pct`` is the plain one: from ``start`` (idle, after the
one-customer warm-up) to ``end`` (idle again). ``start`` is cold for the soak's load: N sessions at once
take memory in their first tens of seconds (buffers per connection and session, the C allocator's arenas
for the decode and inference threads) that is reused afterwards; a leak keeps growing after that.
``rss_growth_after_warmup_pct`` therefore measures from ``rss_warm_mb``, the first sample at least
``LOAD_WARMUP_S`` into the soak, to the last sample of the soak, both under the same load (None when the
soak is not longer than that warm-up plus a sample). A tracemalloc comparison during a 2.5-minute soak found
the Python heap flat (31.3 MB traced at 63 s, 31.1 MB at 194 s): what grows early is native memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SAMPLE_S = 10.0  # how often the server is sampled during the soak
SETTLE_S = 5.0  # after the customers leave: time for sessions to close and buffers to be released
WARMUP_S = 8.0  # one customer streams this long before ``start`` is read: models loaded, caches warm
# Seconds of the soak's own load before the after-warm-up growth is measured from: the RSS of 8 sessions at
# 15 fps levels off after about 40 s on a 2-core machine (``samples`` of `fixlens bench soak --minutes 2`).
LOAD_WARMUP_S = 60.0
START_TIMEOUT_S = 120.0  # loading the models can take a while on a busy machine
PRODUCT = "router_ax1800"


def register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("soak", help="stream to a real server process for minutes; report RSS, fds, threads",
                       description="Run N customers against a `fixlens serve` process for M minutes and report "
                                   "its memory, file descriptors and threads before and after.")
    p.add_argument("--minutes", type=float, default=10.0, help="soak duration (0.1..600)")
    p.add_argument("--sessions", type=int, default=8, help="simulated customers (1..256)")
    p.add_argument("--fps", type=float, default=15.0, help="frames per second each customer sends (0.1..60)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_cmd_soak)


def _cmd_soak(args: argparse.Namespace) -> int:
    if not (0.1 <= args.minutes <= 600 and 1 <= args.sessions <= 256 and 0.1 <= args.fps <= 60):
        print("error: expected --minutes 0.1..600, --sessions 1..256, --fps 0.1..60", file=sys.stderr)
        return 2
    result = run_soak(args.minutes, args.sessions, args.fps)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            if key != "samples":
                print(f"{key:>18}: {value}")
    return 0 if result["errors"] == 0 and result["answered"] > 0 else 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _snapshot(process: Any) -> dict[str, float]:
    return {"rss_mb": round(process.memory_info().rss / 1e6, 2), "fds": process.num_fds(),
            "threads": process.num_threads()}


def _wait_ready(port: int, server: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with code {server.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2.0) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server was not ready after {START_TIMEOUT_S:.0f} s")


def run_soak(minutes: float, sessions: int, fps: float, *, warmup_s: float = WARMUP_S,
             sample_s: float = SAMPLE_S, settle_s: float = SETTLE_S,
             load_warmup_s: float = LOAD_WARMUP_S) -> dict[str, Any]:
    """Run the soak; see the module docstring for the keys. Bounded: about warm-up + minutes + settle, plus
    the server's start-up."""
    import psutil

    from ar_server.auth import TokenAuthority
    from fixlens.bench_load import CustomerRecord, _customer, account
    from fixlens.truth_pipeline import render_frames

    frames = [f.jpeg for f in render_frames(PRODUCT, [{"port_wan": "empty", "led_internet": "red"}],
                                            yaws=tuple(172.0 + 2.0 * i for i in range(9)))[0]]
    secret = secrets.token_urlsafe(32)
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="fixlens-soak-") as tmp:
        env = {**os.environ, "FIXLENS_SECRET": secret}
        cmd = [sys.executable, "-m", "fixlens.cli", "serve", "--port", str(port), "--data-dir", str(Path(tmp)),
               "--max-fps", str(max(30.0, fps * 1.5)), "--log-level", "warning",
               # every simulated customer comes from 127.0.0.1, all at once
               "--max-unauthenticated-per-address", str(max(16, sessions))]
        log = open(Path(tmp) / "server.log", "wb")  # closed in the finally below
        server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(port, server)
            process = psutil.Process(server.pid)
            authority = TokenAuthority(secret)
            url = f"http://127.0.0.1:{port}/v1/stream"

            async def stream(n: int, seconds: float, records: list[CustomerRecord], tag: str) -> None:
                now = time.perf_counter()
                end = now + seconds
                await asyncio.gather(*(_customer(i, url, authority.mint("customer", f"soak-{tag}-{i}", 3600), frames,
                                                 fps, now, end, records[i], end + 2.0, 1.0) for i in range(n)))

            asyncio.run(stream(1, warmup_s, [CustomerRecord()], "warmup"))
            time.sleep(settle_s)
            start = _snapshot(process)
            records = [CustomerRecord() for _ in range(sessions)]
            samples: list[dict[str, float]] = []
            t0 = time.perf_counter()

            async def soak() -> None:
                task = asyncio.create_task(stream(sessions, minutes * 60.0, records, "soak"))
                while not task.done():
                    await asyncio.wait({task}, timeout=sample_s)
                    samples.append({"seconds": round(time.perf_counter() - t0, 1), **_snapshot(process)})
                await task

            asyncio.run(soak())
            time.sleep(settle_s)
            end = _snapshot(process)
            under_load = samples[:-1] if len(samples) > 1 else samples  # the last is taken as the soak ends
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                code = server.wait(30.0)
            except subprocess.TimeoutExpired:
                server.kill()
                code = server.wait()
            log.close()
    warm = next((s for s in under_load if s["seconds"] >= load_warmup_s), None)
    last = under_load[-1] if under_load else None
    after_warmup = (None if warm is None or last is None or last is warm
                    else round(100.0 * (last["rss_mb"] - warm["rss_mb"]) / warm["rss_mb"], 2))
    return {
        "minutes": minutes, "sessions": sessions, "fps": fps, "start": start, "end": end,
        "rss_growth_pct": round(100.0 * (end["rss_mb"] - start["rss_mb"]) / start["rss_mb"], 2),
        "load_warmup_s": load_warmup_s, "rss_warm_mb": None if warm is None else warm["rss_mb"],
        "rss_last_under_load_mb": None if last is None else last["rss_mb"],
        "rss_growth_after_warmup_pct": after_warmup,
        "rss_peak_mb": max([start["rss_mb"], end["rss_mb"], *(s["rss_mb"] for s in samples)]),
        "fds_back": end["fds"] <= start["fds"], "threads_back": end["threads"] <= start["threads"],
        **account(records, minutes * 60.0), "samples": samples, "server_exit_code": code,
    }
