"""Fixtures for the customer web page: a page-only server, a real ``fixlens serve``, and headless Chromium.

Browser tests need Debian's Chromium (``apt-get install -y chromium``) and the ``playwright`` package, which
drives it; Playwright's own browser download is never used. Without either they skip, saying what is
missing; with both they always run. Everything is synchronous: Playwright's sync API runs its own loop, and
the servers run on threads or in subprocesses.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from ar_server.app_keys import AUTHORITY, CATALOG
from ar_server.auth import TokenAuthority
from ar_server.rest import routes
from ar_server.web import add_web_routes
from product_models.catalog import default_catalog

REPO = Path(__file__).resolve().parents[2]
SECRET = "web-test-secret-0123456789abcdef0123456789"  # >= 32 chars: the tests never use the public dev one
CHROMIUM = os.environ.get("FIXLENS_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where a test's page screenshots go: the test's own folder, so a test run leaves the checkout as it was;
    ``make docs-images`` points ``FIXLENS_DOCS_IMAGES`` at docs/images to refresh the README's pictures."""
    folder = Path(os.environ.get("FIXLENS_DOCS_IMAGES") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium_args(video: Path | None = None) -> list[str]:
    """Flags for a fake camera (RECIPES.md, "Browser"): Chromium's test pattern, or ``video`` (a Y4M file)."""
    args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--no-sandbox",
            "--autoplay-policy=no-user-gesture-required"]
    if video is not None:
        args.append(f"--use-file-for-fake-video-capture={video}")
    return args


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need `pip install playwright`")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install -y chromium)")
    with sync_api.sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Any) -> Iterator[Any]:
    """Chromium with its built-in fake camera (a moving test pattern)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args())
    yield browser
    browser.close()


def watch_errors(page: Any) -> None:
    """Collect, in ``page.errors``, uncaught exceptions, failed loads and anything the page's
    Content-Security-Policy refused: a page that works only with a weaker policy fails its test."""
    page.errors = []

    def console(message: Any) -> None:
        text = message.text
        if message.type == "error" and ("Content Security Policy" in text or "Failed to load resource" in text):
            page.errors.append(text)

    page.on("pageerror", lambda exc: page.errors.append(f"uncaught: {exc}"))
    page.on("console", console)


def page_state(page: Any) -> dict[str, Any]:
    """The customer page's diagnostics, ``window.fixlensPage``."""
    return page.evaluate("JSON.parse(JSON.stringify(window.fixlensPage || {}))")


def console_state(page: Any) -> dict[str, Any]:
    """The agents' console's diagnostics, ``window.fixlensConsole``."""
    return page.evaluate("JSON.parse(JSON.stringify(window.fixlensConsole || {}))")


def wait_for(page: Any, condition: Callable[[dict[str, Any]], Any], timeout_s: float, what: str,
             state: Callable[[Any], dict[str, Any]] = page_state) -> dict[str, Any]:
    """Poll ``state(page)`` (the customer page's diagnostics unless told) until ``condition`` holds; returns
    that state, or fails naming ``what`` and the last state. (Playwright's ``wait_for_function`` evaluates a
    string, which the pages' policy rightly refuses.)"""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = state(page)
        if condition(seen):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}; state {seen}")
        page.wait_for_timeout(250)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """An aiohttp application served on 127.0.0.1 from a thread with its own event loop."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, name="web-test-server", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self.app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())

    def __enter__(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the test web server did not start within 10 s")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def page_app() -> web.Application:
    """The page, its files, the model route and the REST product routes; no stream, store or vision."""
    app = web.Application()
    app[AUTHORITY] = TokenAuthority(SECRET)
    app[CATALOG] = default_catalog()
    app.router.add_routes(routes())
    add_web_routes(app)
    return app


@pytest.fixture(scope="session")
def page_server() -> Iterator[ServerThread]:
    with ServerThread(page_app()) as server:
        yield server


def mint(role: str, subject: str, session: str | None = None, ttl: int = 3600) -> str:
    return TokenAuthority(SECRET).mint(role, subject, ttl, session=session)


# ---------------------------------------------------------------- a real `fixlens serve`


class FixlensServer:
    """``fixlens serve`` in a subprocess with the real vision pipeline; ``log`` is everything it printed."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout_s: float = 120.0) -> FixlensServer:
        fixlens = Path(sys.executable).with_name("fixlens")
        env = {**os.environ, "FIXLENS_SECRET": SECRET, "FIXLENS_MODE": "dev"}
        command = [str(fixlens), "serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", str(self.data_dir),
                   "--backend", "onnx", "--device", "cpu"]
        self.process = subprocess.Popen(command, stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT, env=env,
                                        cwd=REPO)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            match = re.search(r"fixlens serving on (http://\S+)", self.log)
            if match:
                self.url = match.group(1)
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"fixlens serve exited with {self.process.returncode}:\n{self.log[-4000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"fixlens serve did not start within {timeout_s:g} s:\n{self.log[-4000:]}")

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def fixlens_token(role: str, subject: str) -> str:
    """A token from ``fixlens token``, signed with the test server's secret."""
    done = subprocess.run([str(Path(sys.executable).with_name("fixlens")), "token", "--role", role, "--subject",
                           subject], capture_output=True, text=True, check=True, timeout=60,
                          env={**os.environ, "FIXLENS_SECRET": SECRET, "FIXLENS_MODE": "dev"})
    return done.stdout.strip()


def rest(server: FixlensServer, method: str, path: str, token: str) -> dict[str, Any]:
    """One REST call to ``server`` with ``token``; the JSON answer."""
    request = urllib.request.Request(server.url + path, method=method, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="session")
def fixlens_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FixlensServer]:
    weights = REPO / "vision" / "weights" / "fixlens-pose.onnx"
    if not weights.is_file():
        pytest.fail(f"the repair test needs the shipped detector weights at {weights}")
    server = FixlensServer(tmp_path_factory.mktemp("fixlens-data")).start()
    yield server
    server.stop()


def film_video(name: str) -> Path:
    """The Y4M film ``name`` of tests/web/fake_camera.py, rendered in a subprocess if not cached."""
    done = subprocess.run([sys.executable, "-m", "tests.web.fake_camera", "--film", name], cwd=REPO,
                          capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"rendering the fake camera film failed:\n{done.stderr[-4000:]}")
    path = Path(done.stdout.strip().splitlines()[-1])
    assert path.is_file(), path
    return path


@pytest.fixture(scope="session")
def fake_camera_video() -> Path:
    """The film of the router repair."""
    return film_video("repair")


@pytest.fixture(scope="session")
def handoff_camera_video() -> Path:
    """The film of the agent hand-off: the back panel held in a moving hand, the cable never plugged in."""
    return film_video("handoff")
