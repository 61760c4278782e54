"""``fixlens serve``: run the server until SIGINT/SIGTERM, then shut down gracefully.

Graceful means: stop accepting connections, tell connected clients the server is going away (close 1001;
their sessions stay resumable), save every live session's engine state, stop the inference worker, close
the store. Configuration comes from flags > ``FIXLENS_*`` environment > defaults (``ar_server.config``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from ar_server.config import add_config_flags

PIPELINES = ("vision", "truth-table")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the AR server (REST + /v1/stream WebSocket)",
                       description="Run the Fixlens server. Flags override FIXLENS_* environment variables, which "
                                   "override the defaults; see docs/server.md.")
    add_config_flags(p)
    p.add_argument("--pipeline", choices=PIPELINES, default="vision",
                   help="vision: the trained vision pipeline (default). truth-table: a stand-in that decodes frames "
                        "but recognises nothing (every frame is 'no product'); for protocol tests and load tests "
                        "without model weights")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.set_defaults(handler=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from ar_server.config import Config, unknown_env_vars
    from ar_server.errors import ConfigError, ServerError

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("fixlens.serve")
    try:
        config = Config.from_args(args, os.environ)
    except ConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    for name in unknown_env_vars(os.environ):
        log.warning("environment variable %s configures nothing (typo?)", name)
    if config.secret_is_dev:
        log.warning("tokens use the public development secret (dev mode); set FIXLENS_SECRET for real use")
    try:
        asyncio.run(serve(config, pipeline_name=args.pipeline))
    except ServerError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:  # port in use, permission denied, ...
        print(f"error: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 2
    return 0


async def serve(config: object, *, pipeline_name: str = "vision") -> None:
    """Serve until SIGINT or SIGTERM. Prints ``fixlens serving on http://HOST:PORT`` once listening."""
    from aiohttp import web

    from ar_server.app import create_app
    from ar_server.truth_pipeline import TruthTablePipeline

    pipeline = TruthTablePipeline() if pipeline_name == "truth-table" else None
    app = create_app(config, pipeline=pipeline)  # type: ignore[arg-type]
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port, shutdown_timeout=5.0)  # type: ignore[attr-defined]
        await site.start()
        host, port = runner.addresses[0][:2]
        print(f"fixlens serving on http://{host}:{port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        logging.getLogger("fixlens.serve").info("shutting down")
    finally:
        await runner.cleanup()
