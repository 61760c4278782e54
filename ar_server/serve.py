"""Run the server until SIGINT/SIGTERM, then shut down gracefully (``fixlens serve``; its command line is
``fixlens.serve``).

Graceful means: stop accepting connections, tell connected clients the server is going away (close 1001;
their sessions stay resumable), save every live session's engine state, stop the inference worker, close
the store. Configuration comes from flags > ``FIXLENS_*`` environment > defaults (``ar_server.config``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any


async def serve(config: object, *, pipeline: Any = None) -> None:
    """Serve until SIGINT or SIGTERM. Prints ``fixlens serving on http://HOST:PORT`` once listening.

    ``pipeline``: what ``create_app`` takes; None builds the vision pipeline from the config."""
    from aiohttp import web

    from ar_server.app import create_app

    app = create_app(config, pipeline=pipeline)  # type: ignore[arg-type]
    # The app closes its streams itself when shutdown starts (1001, ar_server.stream.going_away); this bounds
    # the wait for requests still running after that.
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    loop = asyncio.get_running_loop()
    try:
        site = web.TCPSite(runner, config.host, config.port)  # type: ignore[attr-defined]
        await site.start()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        host, port = runner.addresses[0][:2]
        print(f"fixlens serving on http://{host}:{port}", flush=True)  # and handling SIGINT and SIGTERM
        await stop.wait()
        logging.getLogger("fixlens.serve").info("shutting down")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
