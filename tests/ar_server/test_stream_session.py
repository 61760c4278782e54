"""Whole sessions over a real WebSocket: proactive scene start, vision-verified steps, end, resume."""

from __future__ import annotations

from typing import Any

from ar_server.app_keys import METRICS, STORE
from ar_server.protocol import Hello, Limits
from tests.ar_server.conftest import StreamClient, TwinFrames, stream_frames


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
    assert error.code == "bad_resume" and error.fatal


async def test_another_customer_cannot_resume_my_session(server: Any, connect: Any, authority: Any) -> None:
    mine: StreamClient = await connect(server)
    welcome = await mine.hello(_token(authority, "cust-a"), scene="router_no_internet")
    await mine.ws.close()
    theirs: StreamClient = await connect(server)
    await theirs.send(Hello(token=_token(authority, "cust-b"), client="bench", resume=welcome.resume))
    error = await theirs.expect("error")
    assert error.code == "forbidden" and error.fatal


async def test_help_offers_escalation_and_records_it(server: Any, connect: Any, authority: Any) -> None:
    client: StreamClient = await connect(server)
    welcome = await client.hello(_token(authority), scene="router_no_internet")
    await client.expect("step")
    await client.event("help")
    notice = await client.expect("notice", code="escalation_offer")
    assert notice.text
    escalations = await server.app[STORE].list_escalations()
    assert [(e.session_id, e.reason, e.context["step"]) for e in escalations] == [
        (welcome.session, "help", "check_wan")]
