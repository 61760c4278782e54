"""Durability: ``fixlens serve`` in a subprocess with a real SQLite file is killed with SIGKILL mid-session;
after a restart every recorded step is there and the client resumes at the same step."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from ar_server.auth import TokenAuthority
from ar_server.config import DEV_SECRET
from tests.ar_server.conftest import StreamClient

REPO = Path(__file__).resolve().parents[2]


class _Server:
    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process, self.url = process, url

    def make_url(self, path: str) -> str:
        return self.url + path


async def _start(data_dir: Path) -> _Server:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIXLENS_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fixlens.cli", "serve", "--pipeline", "truth-table", "--port", "0",
        "--data-dir", str(data_dir), "--log-level", "warning", cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 60.0)).decode()
    match = re.search(r"serving on (http://\S+)", line)
    assert match, f"unexpected first line {line!r}"
    return _Server(process, match.group(1))


async def test_kill_9_mid_session_loses_no_recorded_step(tmp_path: Path) -> None:
    token = TokenAuthority(DEV_SECRET).mint("customer", "cust-durable", 600)
    agent = TokenAuthority(DEV_SECRET).mint("agent", "agent-1", 600)
    server = await _start(tmp_path / "data")
    try:
        client = await StreamClient.connect(server)
        welcome = await client.hello(token, scene="router_no_internet")
        assert (await client.expect("step")).step == "check_wan"
        await client.event("done", step="check_wan")
        assert (await client.expect("step")).step == "wait_link"
        server.process.send_signal(signal.SIGKILL)  # no shutdown code runs
        await server.process.wait()
        await client.close()
    finally:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()

    server = await _start(tmp_path / "data")
    try:
        async with aiohttp.ClientSession() as http:
            response = await http.get(server.make_url(f"/v1/sessions/{welcome.session}"),
                                      headers={"Authorization": f"Bearer {agent}"})
            body: dict[str, Any] = await response.json()
        assert [(h["step_id"], h["how"]) for h in body["history"]] == [("check_wan", "user"), ("wait_link", None)]
        assert body["current_step"] == "wait_link" and body["outcome"] is None
        client = await StreamClient.connect(server)
        again = await client.hello(token, resume=welcome.resume)
        assert again.resumed and again.session == welcome.session
        assert (await client.expect("step")).step == "wait_link"
        await client.close()
    finally:
        server.process.send_signal(signal.SIGTERM)  # graceful this time
        assert await asyncio.wait_for(server.process.wait(), 20.0) == 0
