"""Items 2 and 4: a client that floods the server with messages, or does not read its answers, costs a
bounded amount; per-customer rates on user events, escalations and session creation."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import psutil

from ar_server.app_keys import STORE
from ar_server.protocol import CloseCode, Event, Hello, decode_server, encode_client
from tests.adversarial.conftest import TEST_LIMITS, assert_served, token, ws_connect

REPO = Path(__file__).resolve().parents[2]
RSS_BUDGET_MB = 10.0


async def read_until_closed(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10.0) -> tuple[list[Any], int | None]:
    """Every message until the server closes, and its close code."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = await ws.receive(timeout=deadline - time.monotonic())
        if msg.type == aiohttp.WSMsgType.BINARY:
            got.append(decode_server(msg.data))
        elif msg.type == aiohttp.WSMsgType.CLOSE:
            return got, msg.data
        elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return got, ws.close_code
    raise AssertionError(f"not closed within {timeout} s; got {[m.t for m in got][-5:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_healthy(url: str, server: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            assert server.poll() is None, f"fixlens serve exited with {server.returncode}"
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url + "/healthz") as answer:
                    if answer.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise AssertionError("fixlens serve did not become healthy in 30 s")


async def test_a_client_that_floods_and_never_reads_costs_the_server_little(tmp_path: Path) -> None:
    """Attack: hello, then 100,000 unknown-type messages without reading a byte (refusal budget set out of
    reach, so only the outbound bounds stop it). Old failure: an error per message queued without bound
    (1,000,000 messages grew the server by ~248 MB). ``FLOOD_MESSAGES=1000000 pytest -s`` runs the full
    million (about ten times as long)."""
    messages = int(os.environ.get("FLOOD_MESSAGES", "100000"))
    port = _free_port()
    env = {**os.environ, "FIXLENS_PORT": str(port), "FIXLENS_DATA_DIR": str(tmp_path / "data"),
           "FIXLENS_BAD_MESSAGES_PER_S": "10000", "FIXLENS_BAD_MESSAGES_BURST": "1000000",
           "FIXLENS_MAX_OUTBOUND_MESSAGES": "64", "FIXLENS_MAX_OUTBOUND_BYTES": str(2 * 1024 * 1024)}
    log = (tmp_path / "server.log").open("wb")  # a file, not a pipe: a full pipe would stall the server
    server = subprocess.Popen([sys.executable, "-m", "fixlens.cli", "serve", "--pipeline", "truth-table"],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}"
        await _wait_healthy(url, server)
        process = psutil.Process(server.pid)
        connector = aiohttp.TCPConnector()
        async with aiohttp.ClientSession(connector=connector) as http:
            # The client's receive buffer is kept small so the server really meets a reader that does not read.
            ws = await http.ws_connect(url + "/v1/stream", autoping=False)
            sock = ws.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            await ws.send_bytes(encode_client(Hello(token=token("flooder"), client="bench")))
            await asyncio.sleep(0.5)
            before = process.memory_info().rss / 1e6
            junk = msgpack.packb({"t": "nonsense", "v": 1, "pad": "x" * 200})
            peak = before
            for i in range(messages):
                await ws.send_bytes(junk)
                if i % 10_000 == 0:
                    peak = max(peak, process.memory_info().rss / 1e6)
            await asyncio.sleep(2.0)
            peak = max(peak, process.memory_info().rss / 1e6)
            print(f"server RSS {before:.1f} MB before, peak {peak:.1f} MB during {messages:,} unread errors")
            assert peak - before <= RSS_BUDGET_MB, f"the server grew by {peak - before:.1f} MB"
    finally:
        server.terminate()
        server.wait(30)
        log.close()


async def test_a_flood_of_bad_messages_is_closed_with_a_fatal_error(start: Any, honest: Any) -> None:
    """Attack: hello, then unknown-type messages as fast as possible. Old failure: every one was answered
    with an error, forever."""
    server = await start()
    customer = await honest(server)
    before = await customer.p95_over(2.0)
    async with aiohttp.ClientSession() as http:
        ws = await ws_connect(http, server)
        await ws.send_bytes(encode_client(Hello(token=token("flooder"), client="bench")))
        for _ in range(2000):
            await ws.send_bytes(msgpack.packb({"t": "nonsense", "v": 1}))
        during = await customer.p95_over(1.5)
        got, code = await read_until_closed(ws)
    errors = [m for m in got if m.t == "error"]
    assert errors[-1].code == "rate_limited" and errors[-1].fatal, errors[-1]
    assert len(errors) <= TEST_LIMITS["bad_messages_burst"] + 15  # the burst, what refilled meanwhile, the last
    assert code == 1008
    assert_served(before, during, "bad-message flood")


async def test_user_events_over_the_rate_are_refused(start: Any, honest: Any) -> None:
    """Attack: 200 `done` events at once. Old failure: each was handled (and answered) without a limit."""
    server = await start(bad_messages_burst=1000, bad_messages_per_s=1000)
    customer = await honest(server)
    before = await customer.p95_over(2.0)
    async with aiohttp.ClientSession() as http:
        ws = await ws_connect(http, server)
        await ws.send_bytes(encode_client(Hello(token=token("clicker"), client="bench")))
        assert decode_server((await ws.receive(timeout=5)).data).t == "welcome"
        for _ in range(200):
            await ws.send_bytes(encode_client(Event(kind="done")))
        during = await customer.p95_over(1.5)
        await ws.send_bytes(msgpack.packb({"t": "bye", "v": 1}))
        got, _ = await read_until_closed(ws)
    refused = [m for m in got if m.t == "error" and m.code == "rate_limited"]
    answered = [m for m in got if m.t == "notice" and m.code == "no_scene"]
    # What the client did not read in time was dropped (rule 2 of ar_server.stream), so count what came.
    assert len(answered) <= TEST_LIMITS["events_burst"] + 10 and refused
    assert_served(before, during, "event flood")


async def test_a_help_flood_opens_few_escalations(start: Any, honest: Any) -> None:
    """Attack: 300 `help` events. Old failure: 10,000 open escalations in 3.7 s, every one loaded by each
    agent GET /v1/sessions/{id}."""
    server = await start(events_per_s=1000, events_burst=1000)
    customer = await honest(server)
    before = await customer.p95_over(2.0)
    async with aiohttp.ClientSession() as http:
        ws = await ws_connect(http, server)
        await ws.send_bytes(encode_client(Hello(token=token("asker"), client="bench")))
        welcome = decode_server((await ws.receive(timeout=5)).data)
        for _ in range(300):
            await ws.send_bytes(encode_client(Event(kind="help")))
        during = await customer.p95_over(1.5)
        await ws.send_bytes(msgpack.packb({"t": "bye", "v": 1}))
        await read_until_closed(ws)
    opened = [e for e in await server.app[STORE].list_escalations() if e.session_id == welcome.session]
    assert 1 <= len(opened) <= TEST_LIMITS["max_open_escalations"]
    assert_served(before, during, "help flood")


async def test_session_creation_is_rate_limited_per_customer(start: Any, honest: Any) -> None:
    """Attack: POST /v1/sessions and session-creating hellos in a loop. Old failure: every one created a
    session row."""
    server = await start(sessions_per_minute=6, sessions_burst=3)
    customer = await honest(server)
    before = await customer.p95_over(1.5)
    headers = {"Authorization": f"Bearer {token('creator')}"}
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(6):
            async with http.post(server.make_url("/v1/sessions"), headers=headers) as answer:
                statuses.append(answer.status)
                if answer.status == 429:
                    body = await answer.json()
                    assert body["error"]["code"] == "rate_limited", body
                    assert int(answer.headers["Retry-After"]) >= 1
        assert statuses[:3] == [201] * 3 and set(statuses[3:]) == {429}, statuses
        ws = await ws_connect(http, server)  # the same customer, now by hello: the same budget
        await ws.send_bytes(encode_client(Hello(token=token("creator"), client="bench")))
        got, code = await read_until_closed(ws)
        assert [(m.code, m.fatal) for m in got] == [("rate_limited", True)] and code == 1008
        during = await customer.p95_over(1.5)
    assert_served(before, during, "session creation flood")


def test_not_reading_close_code_is_documented() -> None:
    assert CloseCode.NOT_READING == 4000
