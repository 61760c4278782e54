"""People from support over a real server: single-use support links, the escalation queue (accept, take,
hand back, close), and the agent channel (`/v1/agent`): watching, frames, acting, roles and origins."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ar_server.app import create_app
from ar_server.app_keys import STORE
from ar_server.auth import TokenAuthority
from ar_server.config import DEV_SECRET
from tests.ar_server.conftest import StreamClient, TwinFrames, make_config, stream_frames


def _bearer(role: str, subject: str, **kw: Any) -> dict[str, str]:
    return {"Authorization": "Bearer " + TokenAuthority(DEV_SECRET).mint(role, subject, 600, **kw)}


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def clocked(aiohttp_server: Any, tmp_path: Path, pipeline: Any) -> tuple[Any, Clock]:
    clock = Clock()
    return await aiohttp_server(create_app(make_config(tmp_path), pipeline=pipeline, clock=clock)), clock


async def _post(server: Any, path: str, headers: dict[str, str] | None = None, body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(server.make_url(path), headers=headers or {},
                                                           data=None if body is None else json.dumps(body)) as r:
        return r.status, await r.json()


async def _get(server: Any, path: str, headers: dict[str, str]) -> Any:
    async with aiohttp.ClientSession() as http, http.get(server.make_url(path), headers=headers) as r:
        assert r.status == 200, await r.text()
        return await r.json()


# ---------------------------------------------------------------- links


async def test_a_support_link_is_exchanged_once_for_the_session_token(clocked: tuple[Any, Clock]) -> None:
    server, _ = clocked
    status, created = await _post(server, "/v1/sessions", _bearer("agent", "alex"), {"customer": "cust-42"})
    assert status == 201 and created["url"].startswith("/#link=")
    link = created["url"].removeprefix("/#link=")
    assert created["token"] not in created["url"] and len(link) >= 32
    status, exchanged = await _post(server, "/v1/links/exchange", body={"link": link})
    assert status == 200 and exchanged["session"] == created["session"] and exchanged["customer"] == "cust-42"
    claims = TokenAuthority(DEV_SECRET).verify(exchanged["token"])
    assert (claims.role, claims.session, claims.subject) == ("customer", created["session"], "cust-42")
    status, again = await _post(server, "/v1/links/exchange", body={"link": link})
    assert status == 410 and again["error"]["code"] == "link_used" and "already" in again["error"]["message"]


async def test_an_expired_or_unknown_link_is_refused(clocked: tuple[Any, Clock]) -> None:
    server, clock = clocked
    _, created = await _post(server, "/v1/sessions", _bearer("customer", "cust-1"))
    clock.now += 600.0  # the default link_ttl_s
    status, body = await _post(server, "/v1/links/exchange", body={"link": created["url"].removeprefix("/#link=")})
    assert status == 410 and body["error"]["code"] == "link_expired"
    status, body = await _post(server, "/v1/links/exchange", body={"link": "x" * 43})
    assert status == 404 and body["error"]["code"] == "link_unknown"


@pytest.mark.parametrize("body", [None, [], {"link": 5}, {"link": "short"}, {"link": "a/b" * 10}])
async def test_a_malformed_exchange_is_a_400_naming_the_field(server: Any, body: Any) -> None:
    status, answer = await _post(server, "/v1/links/exchange", body=body)
    assert status == 400 and answer["error"]["code"] in ("bad_field", "bad_json"), answer


# ---------------------------------------------------------------- the queue


async def _help_accepted(server: Any, connect: Any, subject: str = "cust-1") -> tuple[StreamClient, str]:
    customer: StreamClient = await connect(server)
    welcome = await customer.hello(TokenAuthority(DEV_SECRET).mint("customer", subject, 600),
                                   scene="router_no_internet")
    assert welcome.agents
    await customer.expect("step")
    await customer.event("help")
    await customer.expect("notice", code="help_requested")
    await customer.event("accept_help")
    queued = await customer.expect("notice", code="agent_queued")
    assert "support" in queued.text
    return customer, welcome.session


async def test_an_accepted_escalation_waits_in_the_queue_with_its_context(server: Any, connect: Any) -> None:
    _, session = await _help_accepted(server, connect)
    agent = _bearer("agent", "alex")
    queue = (await _get(server, "/v1/escalations", agent))["escalations"]
    assert len(queue) == 1
    entry = queue[0]
    assert (entry["session"], entry["status"], entry["reason"], entry["queued"]) == (session, "open", "help", True)
    assert (entry["product"], entry["scene"], entry["step"]) == ("router_ax1800", "router_no_internet", "check_wan")
    assert entry["waiting_s"] >= 0 and entry["history"][0]["step"] == "check_wan" and entry["connected"]

    status, taken = await _post(server, f"/v1/escalations/{entry['id']}/take", agent)
    assert status == 200 and (taken["status"], taken["agent"]) == ("taken", "alex")
    status, refused = await _post(server, f"/v1/escalations/{entry['id']}/take", _bearer("agent", "bo"))
    assert status == 409 and refused["error"]["agent"] == "alex"
    status, _ = await _post(server, f"/v1/escalations/{entry['id']}/close", _bearer("agent", "bo"))
    assert status == 403  # only the agent holding it (or an admin)
    status, back = await _post(server, f"/v1/escalations/{entry['id']}/release", agent)
    assert status == 200 and back["status"] == "open"
    status, closed = await _post(server, f"/v1/escalations/{entry['id']}/close", agent)
    assert status == 200 and closed["status"] == "closed"
    assert (await _get(server, "/v1/escalations", agent))["escalations"] == []
    record = await _get(server, f"/v1/sessions/{session}", agent)
    actions = [(a["agent"], a["kind"]) for a in record["agent_actions"]]
    assert actions == [("alex", "take"), ("alex", "hand_back"), ("alex", "close")]
    assert all(a["at"] > 0 for a in record["agent_actions"])
    assert [(e["id"], e["status"]) for e in record["escalations"]] == [(entry["id"], "closed")]
    assert any(e["kind"] == "accept_help" for e in record["events"])


@pytest.mark.parametrize("raw", ["0", "007", "-1", "1e3", "99999999999999999999", "abc", "１"])
async def test_an_escalation_id_not_written_as_the_store_writes_it_is_not_found(server: Any, raw: str) -> None:
    status, body = await _post(server, f"/v1/escalations/{raw}/take", _bearer("agent", "alex"))
    assert status == 404 and body["error"]["code"] == "not_found" and "unknown escalation" in body["error"]["message"]


# ---------------------------------------------------------------- the agent channel


async def _agent_message(customer: StreamClient, which: str) -> Any:
    """The customer's next ``agent`` message of kind ``which`` (``expect`` takes ``kind`` for the type)."""
    for _ in range(50):
        message = await customer.expect("agent")
        if message.kind == which:
            return message
    raise AssertionError(f"no agent {which} message")


class AgentClient:
    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.http, self.ws = http, ws
        self.received: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, server: Any, headers: dict[str, str] | None = None) -> AgentClient:
        http = aiohttp.ClientSession()
        return cls(http, await http.ws_connect(server.make_url("/v1/agent"), headers=headers or {}))

    async def send(self, **message: Any) -> None:
        await self.ws.send_str(json.dumps(message))

    async def expect(self, t: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"no {t} {match}; got {[m['t'] for m in self.received]}")
            msg = await self.ws.receive(timeout=left)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"connection closed before {t}: {msg}")
            data = json.loads(msg.data)
            self.received.append(data)
            if data["t"] == t and all(data.get(k) == v for k, v in match.items()):
                return data

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()


@pytest.fixture
async def agents() -> Any:
    opened: list[AgentClient] = []

    async def open_agent(server: Any, role: str = "agent", subject: str = "alex", **kw: Any) -> AgentClient:
        client = await AgentClient.connect(server, kw.pop("headers", None))
        opened.append(client)
        await client.send(t="hello", token=TokenAuthority(DEV_SECRET).mint(role, subject, 600))
        return client

    yield open_agent
    for client in opened:
        await client.close()


async def test_an_agent_watches_sees_the_camera_and_acts_through_the_session(
        server: Any, connect: Any, agents: Any, twin_frames: TwinFrames) -> None:
    customer, session = await _help_accepted(server, connect)
    alex = await agents(server)
    assert (await alex.expect("welcome"))["agent"] == "alex"
    queue = await alex.expect("queue")
    assert [e["session"] for e in queue["escalations"]] == [session]
    await alex.send(t="watch", session=session)
    watching = await alex.expect("watching")
    assert watching["control"] is True
    joined = await _agent_message(customer, "joined")
    assert joined.agent == "alex"

    await stream_frames(customer, twin_frames.fault, seconds=1.5)
    frame = await alex.expect("frame")
    assert frame["width"] <= 320 and frame["jpeg"]
    state = await alex.expect("state", timeout=5)
    assert state["step"] == "check_wan" and state["history"] == ["check_wan"]

    bo = await agents(server, subject="bo")
    await bo.send(t="watch", session=session)
    assert (await bo.expect("watching"))["control"] is False
    await bo.send(t="act", kind="message", text="hi")
    assert (await bo.expect("error"))["code"] == "no_control"

    await alex.send(t="act", kind="message", text="The WAN port is the blue one.")
    said = await _agent_message(customer, "message")
    assert said.text == "The WAN port is the blue one."
    await alex.send(t="act", kind="point", part="port_wan")
    pointed = await _agent_message(customer, "point")
    assert pointed.part == "port_wan" and pointed.color == "#3fa9f5"
    await alex.send(t="act", kind="point", part="no_such_part")
    assert "no part" in (await alex.expect("error"))["message"]
    await alex.send(t="act", kind="goto", step="wait_link")
    assert (await customer.expect("step")).step == "wait_link"
    await alex.send(t="act", kind="end", outcome="resolved")
    end = await customer.expect("end")
    assert end.outcome == "resolved"

    record = await server.app[STORE].get_session(session)
    assert record.outcome == "resolved"
    kinds = [(a.agent, a.kind) for a in await server.app[STORE].agent_actions(session)]
    assert kinds == [("alex", "join"), ("bo", "join"), ("alex", "message"), ("alex", "point"),
                     ("alex", "goto"), ("alex", "end")]
    assert [h.step_id for h in await server.app[STORE].step_history(session)] == ["check_wan", "wait_link"]


async def test_a_customer_who_comes_back_is_told_who_watches_and_frames_flow_again(
        server: Any, connect: Any, agents: Any, twin_frames: TwinFrames) -> None:
    customer, session = await _help_accepted(server, connect)
    welcome_resume = next(m for m in customer.received if m.t == "welcome").resume
    alex = await agents(server)
    await alex.send(t="watch", session=session)
    await _agent_message(customer, "joined")
    await customer.ws.close()  # the connection drops
    again: StreamClient = await connect(server)
    await again.hello(TokenAuthority(DEV_SECRET).mint("customer", "cust-1", 600), resume=welcome_resume)
    assert (await _agent_message(again, "joined")).agent == "alex"
    await stream_frames(again, twin_frames.fault, seconds=1.0)
    assert (await alex.expect("frame"))["session"] == session


@pytest.mark.parametrize("role", ["customer", "author"])
async def test_only_agents_and_admins_may_use_the_agent_channel(server: Any, agents: Any, role: str) -> None:
    client = await agents(server, role=role, subject="someone")
    error = await client.expect("error")
    assert (error["code"], error["reason"], error["fatal"]) == ("forbidden", "wrong_role", True)
    assert (await client.ws.receive(timeout=5)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


@pytest.mark.parametrize("path", ["/v1/agent", "/v1/stream"])
async def test_websockets_refuse_another_origin_and_take_their_own_or_none(server: Any, path: str) -> None:
    async with aiohttp.ClientSession() as http:
        for origin in ("https://evil.example", f"http://{server.host}:{server.port}.evil.example", "null"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await http.ws_connect(server.make_url(path), headers={"Origin": origin})
            assert info.value.status == 403, origin
        for headers in ({"Origin": f"http://{server.host}:{server.port}"}, {}):
            ws = await http.ws_connect(server.make_url(path), headers=headers)
            await ws.close()


async def test_a_customer_token_cannot_take_or_see_the_queue_or_another_session(server: Any, connect: Any) -> None:
    _, session = await _help_accepted(server, connect, "cust-a")
    other = _bearer("customer", "cust-b")
    async with aiohttp.ClientSession() as http:
        async with http.get(server.make_url("/v1/escalations"), headers=other) as r:
            assert r.status == 403
        async with http.post(server.make_url("/v1/escalations/1/take"), headers=other) as r:
            assert r.status == 403
        async with http.get(server.make_url(f"/v1/sessions/{session}"), headers=other) as r:
            assert r.status == 403
