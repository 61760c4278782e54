"""``ar_server.serve.serve``: a real SIGTERM (connected clients are told 1001 at once, then it returns), the
guard on accepted connections before their first request, and the raised file limit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
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


@contextlib.asynccontextmanager
async def _serving(tmp_path: Path, pipeline: Any, capsys: pytest.CaptureFixture[str],
                   **limits: Any) -> AsyncIterator[tuple[str, int]]:
    """``serve()`` on a free port with these config overrides; yields (host, port); stopped by cancelling."""
    serving = asyncio.create_task(serve(make_config(tmp_path, **limits), pipeline=pipeline))
    try:
        for _ in range(400):
            if match := re.search(r"serving on http://([\d.]+):(\d+)", capsys.readouterr().out):
                break
            assert not serving.done(), serving.exception()
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the server did not say where it listens")
        yield match.group(1), int(match.group(2))
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving


async def _answer(reader: asyncio.StreamReader, timeout: float = 3.0) -> tuple[int, dict[str, Any], float]:
    """Read one whole HTTP response to a raw request: status, JSON body, seconds it took."""
    started = time.monotonic()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    length = int(re.search(rb"Content-Length: (\d+)", head, re.IGNORECASE).group(1))  # type: ignore[union-attr]
    body = await asyncio.wait_for(reader.readexactly(length), timeout)
    return int(head.split()[1]), json.loads(body), time.monotonic() - started


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: fixlens\r\n\r\n"


async def test_connections_past_the_per_address_cap_are_refused_at_once(
        tmp_path: Path, pipeline: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: raw connections that sent nothing held a descriptor each until aiohttp's keep-alive timeout,
    however many one address opened."""
    async with _serving(tmp_path, pipeline, capsys, max_pre_request_per_address=2) as (host, port):
        silent = [await asyncio.open_connection(host, port) for _ in range(2)]
        reader, writer = await asyncio.open_connection(host, port)
        status, body, took = await _answer(reader)
        assert status == 503 and body["error"]["code"] == "overloaded" and "2 connections" in body["error"]["message"]
        assert took < 1.0 and await reader.read() == b""  # answered and closed at once, before any request
        writer.close()
        # A held connection that sends its request is served, and no longer counts against the address.
        silent[0][1].write(HEALTHZ)
        status, body, _ = await _answer(silent[0][0])
        assert status == 200 and body["status"] == "ok"
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(HEALTHZ)
        assert (await _answer(reader))[0] == 200
        for _, w in [*silent, (reader, writer)]:
            w.close()


async def test_a_request_still_incomplete_at_the_deadline_gets_408(
        tmp_path: Path, pipeline: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Attack: a request line and headers trickled in a byte at a time; trickling does not move the deadline."""
    async with _serving(tmp_path, pipeline, capsys, first_request_timeout_s=1.0) as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        started = time.monotonic()

        async def trickle() -> None:
            with contextlib.suppress(OSError):  # the server closed the connection: what is expected
                for byte in HEALTHZ[:-4]:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.05)

        trickling = asyncio.create_task(trickle())
        try:
            status, body, _ = await _answer(reader)
            assert status == 408 and body["error"]["code"] == "request_timeout", body
            assert "within 1 s" in body["error"]["message"] and 1.0 <= time.monotonic() - started < 2.0
        finally:
            trickling.cancel()
            writer.close()


async def test_connections_that_sent_their_request_outlive_the_deadline(
        tmp_path: Path, pipeline: Any, authority: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """The deadline is for the first request only: a stream, and a REST keep-alive connection between two
    requests, go on past it."""
    async with _serving(tmp_path, pipeline, capsys, first_request_timeout_s=0.5) as (host, port):
        client = await StreamClient.connect(_Url(f"http://{host}:{port}"))
        reader, writer = await asyncio.open_connection(host, port)
        try:
            await client.hello(authority.mint("customer", "cust-deadline", 600), scene="router_no_internet")
            await client.expect("step")
            writer.write(HEALTHZ)
            assert (await _answer(reader))[0] == 200
            await asyncio.sleep(1.5)
            await client.event("help")
            assert await client.recv() is not None, f"the stream was closed: {client.closed_with}"
            writer.write(HEALTHZ)
            assert (await _answer(reader))[0] == 200
        finally:
            writer.close()
            await client.close()


async def test_past_the_keepalive_cap_the_least_recently_used_idle_connection_is_closed(
        tmp_path: Path, pipeline: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Attack: one request per connection, then keep every connection open. An address keeps at most
    ``max_keepalive_per_address`` idle ones; the one used least recently goes, the others still serve."""
    async with _serving(tmp_path, pipeline, capsys, max_keepalive_per_address=2) as (host, port):
        async def request(connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
            connection[1].write(HEALTHZ)
            assert (await _answer(connection[0]))[0] == 200

        first = await asyncio.open_connection(host, port)
        second = await asyncio.open_connection(host, port)
        await request(first)
        await request(second)
        await request(first)  # used again: now the second is the least recently used
        third = await asyncio.open_connection(host, port)
        await request(third)
        assert await asyncio.wait_for(second[0].read(), 2.0) == b""  # closed by the server
        await request(first)
        await request(third)
        for _, writer in (first, second, third):
            writer.close()


def test_the_soft_file_limit_is_raised_to_the_hard_one() -> None:
    """In a process of its own started with a soft limit of 256 under a hard one of 512 (the usual 1024 under
    a much higher hard limit, scaled down): afterwards the soft limit is 512."""
    code = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 512)); "
            "from ar_server.serve import raise_file_limit; "
            "print(raise_file_limit(), *resource.getrlimit(resource.RLIMIT_NOFILE))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2], check=True)
    assert done.stdout.split() == ["512", "512", "512"], done.stdout + done.stderr
