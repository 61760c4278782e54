"""The session core with people from support (rule 8), driven directly: no sockets, one simulated clock."""

from __future__ import annotations

import pytest

from ar_server.errors import SessionStateError
from ar_server.protocol import Agent, End, Event, Step
from ar_server.session.agents import AGENT_TEXTS
from ar_server.session.effects import AcceptHelp, Close, EndSession, EnterStep, Send, ShowAgents
from ar_server.session.events import (
    AgentEnded,
    AgentJoined,
    AgentLeft,
    AgentMoved,
    AgentPointed,
    AgentSaid,
    UserEventReceived,
)
from tests.ar_server.session.helpers import new_core
from tests.ar_server.session.test_core import opened


def test_welcome_says_people_can_join() -> None:
    sim = opened()
    welcome = next(e.message for e in sim.effects if isinstance(e, Send) and e.message.t == "welcome")
    assert welcome.agents is True


def test_accepting_help_queues_the_session_with_its_step_and_says_so_in_the_locale() -> None:
    sim = opened(locale="de")
    out = sim.feed(UserEventReceived(Event("accept_help", step="check_wan")))
    assert out[0] == AcceptHelp("check_wan", "router_no_internet", "de")
    assert out[1].message.code == "agent_queued" and out[1].message.text == AGENT_TEXTS["agent_queued"]["de"]
    assert sim.core.engine is not None and sim.core.engine.step_id == "check_wan"  # the scene goes on


def test_accepting_help_before_a_scene_queues_it_without_a_step() -> None:
    sim = opened(scene=None)
    assert sim.feed(UserEventReceived(Event("accept_help")))[0] == AcceptHelp(None, None, "en")


def test_agents_joining_writing_pointing_and_leaving_reach_the_customer_once_each() -> None:
    sim = opened()
    assert sim.feed(AgentJoined("alex")) == [Send(Agent("joined", "alex"))]
    assert sim.feed(AgentJoined("alex")) == []  # a second console of the same person
    assert sim.feed(AgentSaid("alex", "hi")) == [Send(Agent("message", "alex", text="hi"))]
    assert sim.feed(AgentPointed("alex", "port_wan", "#3fa9f5")) == [
        Send(Agent("point", "alex", part="port_wan", color="#3fa9f5"))]
    assert sim.feed(AgentPointed("alex", None, "#3fa9f5")) == [Send(Agent("point", "alex"))]
    assert sim.feed(AgentLeft("alex")) == []
    assert sim.feed(AgentLeft("alex")) == [Send(Agent("left", "alex"))]


def test_frames_reach_watching_agents_at_most_at_their_rate_and_only_while_they_watch() -> None:
    sim = opened()
    assert not [e for e in sim.frame(after=0.1) if isinstance(e, ShowAgents)]
    sim.feed(AgentJoined("alex"))
    shown = []
    for _ in range(20):  # 2 s at 10 fps
        shown += [e for e in sim.frame(after=0.1) if isinstance(e, ShowAgents)]
    assert 9 <= len(shown) <= 11  # 5 a second
    sim.feed(AgentLeft("alex"))
    assert not [e for e in sim.frame(after=0.5) if isinstance(e, ShowAgents)]


def test_an_agent_moves_the_session_to_a_step_recorded_like_a_done() -> None:
    sim = opened()
    out = sim.feed(AgentMoved("alex", "wait_link"))
    enter = next(e for e in out if isinstance(e, EnterStep))
    assert (enter.step, enter.left, enter.how) == ("wait_link", "check_wan", "user")
    assert [e.message.step for e in out if isinstance(e, Send) and isinstance(e.message, Step)] == ["wait_link"]


def test_a_move_to_a_step_the_scene_lacks_raises_and_changes_nothing() -> None:
    sim = opened()
    with pytest.raises(SessionStateError):
        sim.feed(AgentMoved("alex", "no_such_step"))
    assert sim.core.engine is not None and sim.core.engine.step_id == "check_wan"


def test_an_agent_ends_the_session_with_an_outcome() -> None:
    sim = opened()
    out = sim.feed(AgentEnded("alex", "resolved", "Fixed together."))
    assert isinstance(out[0], EndSession) and out[0].outcome == "resolved"
    assert out[1:] == [Send(End("resolved", "Fixed together.")), Close(1000)]
    assert sim.core.closed


def test_agent_events_before_the_session_opens_are_illegal() -> None:
    sim = new_core()
    with pytest.raises(SessionStateError):
        sim.feed(AgentJoined("alex"))
