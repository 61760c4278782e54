"""A real Fixlens server on 127.0.0.1 and a free port, on a thread of the calling process.

For the demo, the end-to-end tests, ``fixlens bench e2e`` and ``fixlens bench plain``: the full
``create_app`` (store, inference service, sessions, REST) behind a real TCP socket, so the client speaks to
it exactly as to ``fixlens serve``. Its event loop runs on its own thread; the vision pipeline runs on the
inference service's worker thread as always. ``start()`` returns once the server listens, or raises the
error that stopped it.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ar_server.config import Config
from ar_server.errors import ServerError

START_TIMEOUT_S = 120.0  # loading the detector on a busy 2-core machine can take a while


def server_config(weights_dir: Path | None, data_dir: Path, **overrides: Any) -> Config:
    """The embedded-defaults config of a local server: dev mode, 127.0.0.1, a free port, ONNX backend (the
    callers render with Panda3D in this process, and torch must not share it)."""
    values: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "mode": "dev", "data_dir": str(data_dir),
                              "backend": "onnx", "batch_wait_ms": 1.0}
    if weights_dir is not None:
        values["weights_dir"] = str(weights_dir)
    values.update(overrides)
    # The catalog and scene library too: the caller's own side (the demo's twin, a bench's renders) reads them
    # from the same variables, and a server with another catalog would refuse a product set made for this one.
    env = {k: v for k, v in os.environ.items()
           if k in ("FIXLENS_WEIGHTS_DIR", "FIXLENS_DEVICE", "FIXLENS_CATALOG_DIR", "FIXLENS_SCENE_DIR")}
    return Config.from_sources(values, env)


class LocalServer:
    """``start()`` -> ``http://127.0.0.1:PORT``; ``stop()`` shuts it down gracefully. Not reusable."""

    def __init__(self, config: Config, *, pipeline: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.config, self.pipeline, self.clock = config, pipeline, clock
        self.url: str | None = None
        self.pipeline_name = ""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> str:
        if self._thread is not None:
            raise RuntimeError("LocalServer.start() called twice")
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), name="fixlens-local-server",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise ServerError("start_timeout", f"the local server did not start within {START_TIMEOUT_S:g} s")
        if self._error is not None:
            raise self._error
        assert self.url is not None
        return self.url

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop closed meanwhile
                pass
        if self._thread is not None:
            self._thread.join(30.0)

    def get_json(self, path: str, token: str) -> dict[str, Any]:
        """GET ``path`` on the REST API with a bearer token; the decoded JSON body."""
        assert self.url is not None, "start() first"
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    async def _serve(self) -> None:
        from aiohttp import web

        from ar_server.app import PIPELINE, create_app

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner: web.AppRunner | None = None
        try:
            app = create_app(self.config, pipeline=self.pipeline, clock=self.clock)
            runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
            await runner.setup()
            site = web.TCPSite(runner, self.config.host, self.config.port)
            await site.start()
            host, port = runner.addresses[0][:2]
            self.url = f"http://{host}:{port}"
            built = app[PIPELINE]
            backend = getattr(built, "backend", None)
            self.pipeline_name = f"{type(built).__name__}" + (f" ({backend})" if backend else "")
        except BaseException as exc:  # the caller's start() re-raises it
            self._error = exc
            self._ready.set()
            if runner is not None:
                await runner.cleanup()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()
