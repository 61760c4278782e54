"""Hypothesis sends thousands of random payloads over one real WebSocket; each gets the error the decoder
names, the connection stays usable, and the server stays up."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgpack
from aiohttp import web
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ar_server.app import create_app
from ar_server.auth import TokenAuthority
from ar_server.config import DEV_SECRET
from ar_server.errors import ProtocolError
from ar_server.protocol import decode_client
from fixlens.truth_pipeline import TruthTablePipeline
from tests.ar_server.conftest import StreamClient, make_config

KEYS = ["t", "v", "seq", "ts", "jpeg", "kind", "choice", "step", "token", "client", "camera", "reason", "fx"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=20),
                    st.binary(max_size=40), st.sampled_from(["frame", "event", "bye", "hello", "done", "choose"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=4), max_leaves=6)
maps = st.dictionaries(st.sampled_from(KEYS), values, max_size=6).map(
    lambda d: {"v": 1, **d} if "t" in d else d)
payloads = st.one_of(st.binary(max_size=80), maps.map(lambda d: msgpack.packb(d, use_bin_type=True)),
                     values.map(lambda v: msgpack.packb(v, use_bin_type=True)))


def test_random_payloads_each_get_the_decoders_error(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    # Over a thousand refused messages on one connection: past the default refusal budget, which closes it
    # (tests/adversarial/test_floods.py); here every one must get the decoder's own error.
    config = make_config(tmp_path, bad_messages_burst=1_000_000)
    runner = web.AppRunner(create_app(config, pipeline=TruthTablePipeline()))
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]

    class _Url:
        def make_url(self, path: str) -> str:
            return f"http://127.0.0.1:{port}{path}"

    client: StreamClient = loop.run_until_complete(StreamClient.connect(_Url()))
    token = TokenAuthority(DEV_SECRET).mint("customer", "fuzz", 600)
    loop.run_until_complete(client.hello(token))
    sent = [0]
    limits = make_config(tmp_path).limits()

    @settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.lists(payloads, min_size=4, max_size=12))  # 250 examples of 4 or more: the 1,000 below
    def exchange(batch: list[bytes]) -> None:
        expected = []
        for payload in batch:
            try:
                decode_client(payload, limits)
            except ProtocolError as exc:
                expected.append(exc.code)
            else:
                assume(False)  # a valid message (rare) would change the session; not what this test is about

        async def run() -> list[Any]:
            for payload in batch:  # pipelined: the server answers each in order
                await client.send_raw(payload)
            return [await client.expect("error", timeout=5.0) for _ in batch]

        replies = loop.run_until_complete(run())
        assert [r.code for r in replies] == expected
        assert all(not r.fatal and r.message for r in replies)
        sent[0] += len(batch)

    try:
        exchange()
        assert sent[0] >= 1000
        loop.run_until_complete(client.send_raw(b"\xc1"))  # still answering
        assert loop.run_until_complete(client.expect("error")).code == "bad_msgpack"
    finally:
        loop.run_until_complete(client.close())
        loop.run_until_complete(runner.cleanup())
        loop.close()
