"""Whole sessions over a real WebSocket: proactive scene start, vision-verified steps, end, resume, takeover
races, shutdown. The session logic itself is tested without sockets in ``tests/ar_server/session``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgpack

from ar_server.app import create_app
from ar_server.app_keys import METRICS, STORE
from ar_server.protocol import Hello, Limits
from tests.ar_server.conftest import StreamClient, TwinFrames, make_config, stream_frames


def _token(authority: Any, subject: str = "cust-1", **kw: Any) -> str:
    return authority.mint("customer", subject, 600, **kw)


async def test_proactive_start_then_vision_verified_resolution(server: Any, connect: Any, authority: Any,
                                                               twin_frames: TwinFrames) -> None:
    client: StreamClient = await connect(server)
    welcome = await client.hello(_token(authority))
    assert welcome.limits == Limits(max_frame_bytes=256 * 1024, max_message_bytes=256 * 1024 + 64 * 1024)
    assert not welcome.resumed

    started = await stream_frames(client, twin_frames.fault, seconds=4,
                                  until=lambda m: m.t == "step")
    assert started is not None and started.step == "check_wan"
    notice = next(m for m in client.received if m.t == "notice")
    assert notice.code == "scene_started" and "not plugged in" in notice.text
    obs = [m for m in client.received if m.t == "obs"]
    assert obs and obs[-1].product == "router_ax1800" and obs[-1].pose is not None
    assert obs[-1].parts["port_wan"].state == "empty" and obs[-1].timing.decode_ms > 0
    assert {o.seq for o in obs} <= set(range(1, client.seq + 1))

    # The customer plugs the cable in; the twin's LED turns green; vision verifies it and the scene ends.
    end = await stream_frames(client, twin_frames.fixed, seconds=6, until=lambda m: m.t == "end")
    assert end is not None and end.outcome == "resolved"
    steps = [m.step for m in client.received if m.t == "step"]
    assert steps == ["check_wan", "resolved"]

    store = server.app[STORE]
    history = await store.step_history(welcome.session)
    assert [(s.step_id, s.how) for s in history] == [("check_wan", "vision"), ("resolved", None)]
    record = await store.get_session(welcome.session)
    assert record.outcome == "resolved" and record.scene == "router_no_internet"
    assert server.app[METRICS].outcomes.get(outcome="resolved") == 1


async def test_resume_after_drop_continues_at_the_same_step(server: Any, connect: Any, authority: Any,
                                                            twin_frames: TwinFrames) -> None:
    token = _token(authority)
    first: StreamClient = await connect(server)
    welcome = await first.hello(token, scene="router_no_internet")
    step = await first.expect("step")
    assert step.step == "check_wan"
    await first.event("done", step="check_wan")  # -> wait_link
    assert (await first.expect("step")).step == "wait_link"
    await first.ws.close()  # the connection drops

    second: StreamClient = await connect(server)
    again = await second.hello(token, resume=welcome.resume)
    assert again.resumed and again.session == welcome.session and again.resume != welcome.resume
    assert (await second.expect("step")).step == "wait_link"

    third: StreamClient = await connect(server)  # the old resume token was rotated away
    await third.send(Hello(token=token, client="bench", resume=welcome.resume))
    error = await third.expect("error")
    assert (error.code, error.reason, error.fatal) == ("bad_resume", "resume_token_used", True)


async def test_another_customer_cannot_resume_my_session(server: Any, connect: Any, authority: Any) -> None:
    mine: StreamClient = await connect(server)
    welcome = await mine.hello(_token(authority, "cust-a"), scene="router_no_internet")
    await mine.ws.close()
    theirs: StreamClient = await connect(server)
    await theirs.send(Hello(token=_token(authority, "cust-b"), client="bench", resume=welcome.resume))
    error = await theirs.expect("error")
    assert (error.code, error.reason, error.fatal) == ("forbidden", "other_customer", True)


async def test_help_is_answered_and_recorded(server: Any, connect: Any, authority: Any) -> None:
    client: StreamClient = await connect(server)
    welcome = await client.hello(_token(authority), scene="router_no_internet")
    await client.expect("step")
    await client.event("help")
    notice = await client.expect("notice", code="help_requested")
    assert notice.text == "A support agent has been asked to help you."
    escalations = await server.app[STORE].list_escalations()
    assert [(e.session_id, e.reason, e.context["step"]) for e in escalations] == [
        (welcome.session, "help", "check_wan")]


async def test_concurrent_hellos_with_one_resume_token_get_one_welcome(server: Any, connect: Any,
                                                                      authority: Any) -> None:
    """Regression: the resume token was checked and rotated in two steps, so two hellos with the same token
    could both pass the check and both get a welcome."""
    token = _token(authority)
    first: StreamClient = await connect(server)
    welcome = await first.hello(token, scene="router_no_internet")
    await first.ws.close()
    racers: list[StreamClient] = [await connect(server) for _ in range(4)]
    await asyncio.gather(*(c.send(Hello(token=token, client="bench", resume=welcome.resume)) for c in racers))
    answers = await asyncio.gather(*(c.recv() for c in racers))
    assert sorted(m.t for m in answers) == ["error", "error", "error", "welcome"]
    assert {(m.code, m.reason) for m in answers if m.t == "error"} == {("bad_resume", "resume_token_used")}


async def test_bye_with_an_empty_reason_closes_normally(server: Any, connect: Any, authority: Any) -> None:
    """Regression: ``bye`` with ``reason: ""`` was refused as a bad field."""
    client: StreamClient = await connect(server)
    await client.hello(_token(authority))
    await client.send_raw(msgpack.packb({"t": "bye", "v": 1, "reason": ""}))
    assert await client.recv() is None and client.closed_with == 1000
    assert not [m for m in client.received if m.t == "error"]


async def test_shutdown_closes_streams_with_1001_at_once(aiohttp_server: Any, tmp_path: Any, pipeline: Any,
                                                        connect: Any, authority: Any) -> None:
    """Regression: on SIGTERM, clients were cut off (1006) after the shutdown timeout instead of told 1001."""
    server = await aiohttp_server(create_app(make_config(tmp_path), pipeline=pipeline))
    client: StreamClient = await connect(server)
    welcome = await client.hello(_token(authority), scene="router_no_internet")
    await client.expect("step")
    waiting: StreamClient = await connect(server)  # connected, no hello yet
    started = time.monotonic()
    closing = asyncio.create_task(server.close())
    assert await client.recv() is None and await waiting.recv() is None
    assert (client.closed_with, waiting.closed_with) == (1001, 1001) and time.monotonic() - started < 2.0
    await closing
    assert welcome.session
