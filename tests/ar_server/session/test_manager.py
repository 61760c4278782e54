"""The session manager and the driver, with a real store and inference service but no sockets, on a simulated
clock: opening and resume, takeover, concurrent hellos, the timers and the idle sweep, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ar_server.auth import TokenAuthority
from ar_server.config import DEV_SECRET
from ar_server.inference import InferenceService
from ar_server.metrics import Metrics
from ar_server.protocol import Error, Event, Frame, Hello, ServerMessage
from ar_server.session import FrameArchive, SessionDriver, SessionManager
from ar_server.session.events import FrameReceived, HelloReceived, UserEventReceived
from ar_server.store import SQLiteStore
from product_models.catalog import default_catalog
from scenes import load_library
from tests.ar_server.conftest import make_config
from tests.ar_server.session.helpers import FAULT, JPEG, T0, observed

IDLE_S = 60.0


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


class Outbox:
    """What a connection would put on the wire."""

    def __init__(self) -> None:
        self.sent: list[ServerMessage] = []
        self.close_code: int | None = None

    def send(self, message: ServerMessage) -> None:
        self.sent.append(message)

    def close(self, code: int) -> None:
        self.close_code = code if self.close_code is None else self.close_code

    def of(self, kind: str) -> list[Any]:
        return [m for m in self.sent if m.t == kind]


class ScriptedPipeline:
    """Answers every frame with ``script`` (a vision result), echoing the frame's seq and ts."""

    def __init__(self) -> None:
        self.script = observed(FAULT)

    def process_batch(self, frames: Sequence[Any]) -> list[Any]:
        return [replace(self.script, seq=f.seq, ts=f.ts) for f in frames]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def manager(tmp_path: Path, clock: Clock) -> AsyncIterator[SessionManager]:
    store = await SQLiteStore.open(tmp_path / "sessions.db")
    inference = InferenceService(ScriptedPipeline(), batch_wait_ms=0)
    await inference.start()
    config = make_config(tmp_path, session_idle_timeout_s=IDLE_S)
    manager = SessionManager(config, store=store, inference=inference, catalog=default_catalog(),
                             library=load_library(), metrics=Metrics(), archive=FrameArchive(None), clock=clock)
    yield manager
    await manager.stop()
    await inference.stop()
    await store.close()


AUTHORITY = TokenAuthority(DEV_SECRET)


def token(subject: str = "cust-1", role: str = "customer", **kw: Any) -> str:
    return AUTHORITY.mint(role, subject, 600, **kw)


def connect(manager: SessionManager) -> tuple[SessionDriver, Outbox]:
    outbox = Outbox()
    driver = SessionDriver(manager, outbox, AUTHORITY)
    manager.register(driver)
    return driver, outbox


async def hello(manager: SessionManager, hello_token: str | None = None, **fields: Any) -> tuple[SessionDriver, Outbox]:
    driver, outbox = connect(manager)
    driver.feed(HelloReceived(Hello(token=hello_token or token(), client="bench", **fields)))
    await driver.drained()
    return driver, outbox


# ---------------------------------------------------------------- resume and takeover


async def test_a_second_connection_takes_the_session_over(manager: SessionManager) -> None:
    first, first_out = await hello(manager, scene="router_no_internet")
    welcome = first_out.of("welcome")[0]
    first.feed(UserEventReceived(Event("done", step="check_wan")))
    await first.drained()

    second, second_out = await hello(manager, resume=welcome.resume)
    assert first_out.sent[-1] == Error("forbidden", "this session was resumed from another connection", fatal=True,
                                       reason="taken_over")
    assert first_out.close_code == 1008 and first.closed and first not in manager.connections
    again = second_out.of("welcome")[0]
    assert again.resumed and again.session == welcome.session and again.resume != welcome.resume
    assert [m.step for m in second_out.of("step")] == ["wait_link"]  # where the first connection left it
    assert manager.live == {welcome.session: second}


async def test_concurrent_hellos_with_one_resume_token_open_it_once(manager: SessionManager) -> None:
    """Regression: two hellos with the same resume token could both find the session before either rotated
    the token, and both got a welcome."""
    first, first_out = await hello(manager, scene="router_no_internet")
    resume = first_out.of("welcome")[0].resume
    await first.disconnected()

    racers = [connect(manager) for _ in range(3)]
    for driver, _ in racers:
        driver.feed(HelloReceived(Hello(token=token(), client="bench", resume=resume)))
    await asyncio.gather(*(driver.drained() for driver, _ in racers))
    welcomes = [out for _, out in racers if out.of("welcome")]
    refused = [out for _, out in racers if out.of("error")]
    assert len(welcomes) == 1 and len(refused) == 2
    for out in refused:
        error = out.of("error")[0]
        assert (error.code, error.reason, error.fatal, error.field) == ("bad_resume", "resume_token_used", True,
                                                                        "resume")
        assert out.close_code == 1008

    _, late = await hello(manager, resume=resume)
    assert late.of("error")[0].reason == "resume_token_used"
    _, unknown = await hello(manager, resume="x" * 43)
    assert unknown.of("error")[0].reason == "resume_token_unknown"


async def test_an_ended_session_cannot_be_resumed(manager: SessionManager) -> None:
    driver, out = await hello(manager, scene="router_no_internet")
    resume = out.of("welcome")[0].resume
    await manager.store.end_session(out.of("welcome")[0].session, "resolved", at=T0)
    await driver.disconnected()
    _, again = await hello(manager, resume=resume)
    assert (again.of("error")[0].code, again.of("error")[0].reason) == ("bad_resume", "session_ended")


# ---------------------------------------------------------------- who may open what


@pytest.mark.parametrize("make, code, reason", [
    (lambda: TokenAuthority(DEV_SECRET, clock=lambda: 1000.0).mint("customer", "c", 60), "unauthorized",
     "token_expired"),
    (lambda: "fl1.abc.def", "unauthorized", "token_invalid"),
    (lambda: TokenAuthority("x" * 40).mint("customer", "c", 60), "unauthorized", "token_invalid"),
    (lambda: TokenAuthority(DEV_SECRET, clock=lambda: 4e9).mint("customer", "c", 60), "unauthorized",
     "token_not_yet_valid"),
    (lambda: token(role="author"), "forbidden", "wrong_role"),
], ids=["expired", "malformed", "bad signature", "not yet valid", "author"])
async def test_a_refused_token_says_why_in_reason(manager: SessionManager, make: Any, code: str,
                                                  reason: str) -> None:
    driver, out = await hello(manager, make())
    error = out.of("error")[0]
    assert (error.code, error.reason, error.field, error.fatal) == (code, reason, "token", True)
    assert out.close_code == 1008 and driver.closed and driver not in manager.connections


async def test_another_customer_or_session_is_forbidden_with_its_reason(manager: SessionManager) -> None:
    mine, out = await hello(manager, token("cust-a"), scene="router_no_internet")
    welcome = out.of("welcome")[0]
    await mine.disconnected()
    _, theirs = await hello(manager, token("cust-b"), resume=welcome.resume)
    assert (theirs.of("error")[0].code, theirs.of("error")[0].reason) == ("forbidden", "other_customer")
    _, bound = await hello(manager, token("cust-a", session="elsewhere"), resume=welcome.resume)
    assert (bound.of("error")[0].code, bound.of("error")[0].reason) == ("forbidden", "other_session")


# ---------------------------------------------------------------- timers, on the simulated clock


async def test_hello_timeout(manager: SessionManager, clock: Clock) -> None:
    driver, out = connect(manager)
    clock.t += manager.config.hello_timeout_s - 1.0
    await manager.run_timers()
    assert out.sent == [] and not driver.closed
    clock.t += 1.0
    await manager.run_timers()
    await driver.drained()
    assert [(m.code, m.fatal) for m in out.of("error")] == [("hello_required", True)] and out.close_code == 1008
    assert driver not in manager.connections


async def test_idle_timeout_ends_a_connected_session(manager: SessionManager, clock: Clock) -> None:
    driver, out = await hello(manager, scene="router_no_internet")
    session = out.of("welcome")[0].session
    clock.t += IDLE_S + 1.0
    await manager.run_timers()
    await driver.drained()
    assert [(m.code, m.fatal) for m in out.of("error")] == [("idle_timeout", True)] and out.close_code == 1008
    record = await manager.store.get_session(session)
    assert record is not None and record.outcome == "abandoned" and session not in manager.live
    assert manager.metrics.outcomes.get(outcome="abandoned") == 1


async def test_the_sweep_ends_disconnected_sessions_idle_past_the_timeout(manager: SessionManager,
                                                                         clock: Clock) -> None:
    old, old_out = await hello(manager, token("cust-old"), scene="router_no_internet")
    await old.disconnected()
    clock.t += IDLE_S / 2
    recent, recent_out = await hello(manager, token("cust-recent"), scene="router_no_internet")
    await recent.disconnected()
    clock.t += IDLE_S / 2 + 1.0
    await manager.run_timers()
    outcomes = {m.of("welcome")[0].session: (await manager.store.get_session(m.of("welcome")[0].session)).outcome
                for m in (old_out, recent_out)}
    assert list(outcomes.values()) == ["abandoned", None]


async def test_a_session_idle_past_the_timeout_cannot_be_resumed(manager: SessionManager, clock: Clock) -> None:
    driver, out = await hello(manager, scene="router_no_internet")
    await driver.disconnected()
    clock.t += IDLE_S + 1.0
    _, again = await hello(manager, resume=out.of("welcome")[0].resume)
    assert (again.of("error")[0].code, again.of("error")[0].reason) == ("bad_resume", "session_timed_out")


async def test_engine_timers_fire_on_ticks_without_frames(manager: SessionManager, clock: Clock) -> None:
    driver, out = await hello(manager, scene="router_no_internet")
    driver.feed(UserEventReceived(Event("done", step="check_wan")))  # wait_link times out after 30 s
    for _ in range(62):
        clock.t += 0.5
        await manager.run_timers()
    await driver.drained()
    assert [m.step for m in out.of("step")] == ["check_wan", "wait_link", "unplug_power"]
    history = await manager.store.step_history(out.of("welcome")[0].session)
    assert [(h.step_id, h.how) for h in history] == [("check_wan", "user"), ("wait_link", "timeout"),
                                                     ("unplug_power", None)]


# ---------------------------------------------------------------- frames through the inference service


async def test_frames_go_through_inference_and_come_back_as_obs(manager: SessionManager, clock: Clock) -> None:
    driver, out = await hello(manager)
    for seq in range(1, 4):
        clock.t += 0.125
        driver.feed(FrameReceived(Frame(seq=seq, ts=clock.t - T0, jpeg=JPEG)))
        for _ in range(200):
            if any(m.seq == seq for m in out.of("obs")):
                break
            await asyncio.sleep(0.005)
    assert [m.seq for m in out.of("obs")] == [1, 2, 3]
    assert manager.last_observation(out.of("welcome")[0].session)["seq"] == 3


# ---------------------------------------------------------------- shutdown


async def test_going_away_closes_every_connection_with_1001_and_keeps_the_sessions(manager: SessionManager) -> None:
    driver, out = await hello(manager, scene="router_no_internet")
    driver.feed(UserEventReceived(Event("done", step="check_wan")))
    _, waiting_out = connect(manager)  # no hello yet
    await manager.going_away()
    assert out.close_code == 1001 and waiting_out.close_code == 1001 and not manager.connections
    record = await manager.store.get_session(out.of("welcome")[0].session)
    assert record is not None and record.outcome is None and record.snapshot["step"] == "wait_link"
    late, late_out = connect(manager)  # a connection that was still being set up
    await late.drained()
    assert late_out.close_code == 1001 and late.closed
