"""``ar_server.serve.serve`` under a real SIGTERM: connected clients are told 1001 at once, then it returns."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from ar_server.serve import serve
from tests.ar_server.conftest import StreamClient, make_config


class _Url:
    def __init__(self, url: str) -> None:
        self.url = url

    def make_url(self, path: str) -> str:
        return self.url + path


async def test_sigterm_closes_streams_with_1001_at_once(tmp_path: Path, pipeline: Any, authority: Any,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: on SIGTERM, connected clients were cut off (1006) after the shutdown timeout."""
    serving = asyncio.create_task(serve(make_config(tmp_path), pipeline=pipeline))
    url = None
    for _ in range(400):
        if match := re.search(r"serving on (http://\S+)", capsys.readouterr().out):
            url = match.group(1)
            break
        assert not serving.done(), serving.exception()
        await asyncio.sleep(0.05)
    assert url is not None, "the server did not say where it listens"
    client = await StreamClient.connect(_Url(url))
    try:
        await client.hello(authority.mint("customer", "cust-term", 600), scene="router_no_internet")
        await client.expect("step")
        started = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)  # serve() handles it from before it prints its line
        assert await client.recv() is None and client.closed_with == 1001
        await asyncio.wait_for(serving, 10.0)
        assert time.monotonic() - started < 3.0
    finally:
        await client.close()
        if not serving.done():
            serving.cancel()
