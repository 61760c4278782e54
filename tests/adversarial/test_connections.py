"""Item 3: a hard hello deadline, and caps on connections per address (before hello) and in total."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from ar_server.protocol import Hello, decode_server, encode_client
from tests.adversarial.conftest import TEST_LIMITS, assert_served, token


async def _from(address: str) -> aiohttp.ClientSession:
    """A client session whose connections come from ``address`` (a loopback alias: 127.0.0.0/8 is all ours)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0), force_close=True))


async def test_pings_do_not_extend_the_hello_deadline(start: Any, honest: Any) -> None:
    """Attack: connect and only ping, never hello. Old failure risk: a deadline that counted any traffic as
    life would hold the connection forever; the deadline was also a fixed 30 s."""
    server = await start(hello_timeout_s=1.5)
    customer = await honest(server)
    before = await customer.p95_over(1.0)
    async with await _from("127.0.0.2") as http:
        ws = await http.ws_connect(server.make_url("/v1/stream"), autoping=False)
        opened = time.monotonic()
        closed_at = None
        got = []
        pongs = 0
        while time.monotonic() - opened < 6.0:
            try:
                msg = await ws.receive(timeout=0.25)
            except TimeoutError:
                await ws.ping()  # keep the connection visibly alive
                continue
            if msg.type == aiohttp.WSMsgType.PONG:
                pongs += 1
                continue
            if msg.type == aiohttp.WSMsgType.BINARY:
                got.append(decode_server(msg.data))
                continue
            closed_at = time.monotonic() - opened
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1008, msg
            break
    during = await customer.p95_over(1.0)
    assert [(m.code, m.fatal) for m in got] == [("hello_required", True)] and pongs >= 3
    assert closed_at is not None and 1.5 <= closed_at <= 1.5 + 1.5, closed_at  # the deadline plus a tick or two
    assert_served(before, during, "ping-only connection")


async def test_idle_connections_from_one_address_cannot_lock_out_customers(start: Any, honest: Any) -> None:
    """Attack: open connection after connection from one address and never say hello (1,050 of them
    exhausted the process's file limit). Now: past `max_unauthenticated_per_address` the upgrade is refused
    with HTTP 503 JSON, and customers from other addresses still get in."""
    server = await start(hello_timeout_s=30)
    customer = await honest(server)
    before = await customer.p95_over(1.0)
    cap = TEST_LIMITS["max_unauthenticated_per_address"]
    async with await _from("127.0.0.3") as attacker, await _from("127.0.0.4") as newcomer:
        idle = [await attacker.ws_connect(server.make_url("/v1/stream")) for _ in range(cap)]
        refused = []
        for _ in range(20):
            try:
                await attacker.ws_connect(server.make_url("/v1/stream"))
            except aiohttp.WSServerHandshakeError as exc:
                refused.append(exc.status)
        assert refused == [503] * 20
        async with attacker.get(server.make_url("/v1/stream"), headers={"Connection": "Upgrade",
                                                                         "Upgrade": "websocket"}) as answer:
            assert answer.status == 503 and answer.headers["Retry-After"]
            assert (await answer.json())["error"]["code"] == "overloaded"
        ws = await newcomer.ws_connect(server.make_url("/v1/stream"))  # another customer still gets in
        await ws.send_bytes(encode_client(Hello(token=token("newcomer"), client="bench")))
        assert decode_server((await ws.receive(timeout=5)).data).t == "welcome"
        # Once an idle connection says hello, it no longer counts against its address.
        await idle[0].send_bytes(encode_client(Hello(token=token("late"), client="bench")))
        assert decode_server((await idle[0].receive(timeout=5)).data).t == "welcome"
        extra = await attacker.ws_connect(server.make_url("/v1/stream"))
        during = await customer.p95_over(1.0)
        for socket in [*idle, ws, extra]:
            await socket.close()
    assert_served(before, during, "idle connections from one address")


async def test_the_total_connection_cap_is_a_clear_refusal(start: Any, honest: Any) -> None:
    """Attack: connections from many addresses, past the total cap. The cap (kept under the file limit)
    answers HTTP 503 JSON instead of running out of file descriptors and failing accept()."""
    server = await start(max_connections=6, max_unauthenticated_per_address=2)
    customer = await honest(server)  # holds one of the six
    sessions = [await _from(f"127.0.1.{i}") for i in range(1, 5)]
    try:
        held = [await s.ws_connect(server.make_url("/v1/stream")) for s in sessions for _ in range(2)][:5]
    except aiohttp.WSServerHandshakeError as exc:
        assert exc.status == 503
        held = []
    try:
        async with sessions[0].get(server.make_url("/v1/stream"), headers={"Connection": "Upgrade",
                                                                           "Upgrade": "websocket"}) as answer:
            assert answer.status == 503
            body = await answer.json()
            assert body["error"]["code"] == "overloaded" and "maximum of 6" in body["error"]["message"], body
        assert await customer.p95_over(1.0) < 1000
    finally:
        for ws in held:
            await ws.close()
        for s in sessions:
            await s.close()
