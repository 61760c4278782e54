"""The pure parts of the cluster: its messages between nodes, its config fields, and a shared rate limiter."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from ar_server.cluster import wire
from ar_server.config import Config
from ar_server.errors import ConfigError
from ar_server.limits import KeyedBuckets
from ar_server.session.events import AgentEnded, AgentPointed, AgentSaid


@pytest.mark.parametrize("event", [AgentPointed("alex", "port_wan", "#3fa9f5"), AgentPointed("alex", None, "#000000"),
                                   AgentSaid("bo", "Hallo"), AgentEnded("alex", "resolved")])
def test_an_agent_event_crosses_nodes_unchanged(event: Any) -> None:
    message = wire.decode(wire.encode({"t": "event", "session": "s1", "event": wire.event_to_wire(event)}))
    assert wire.event_from_wire(message["event"]) == event


@pytest.mark.parametrize(("data", "expected"), [
    (b"\xc1", "not a msgpack message"),
    (msgpack.packb([1, 2]), "expected a map"),
    (msgpack.packb({"t": "shutdown"}), "expected a map with t in"),
])
def test_a_message_that_cannot_be_read_is_refused_with_why(data: bytes, expected: str) -> None:
    with pytest.raises(wire.WireError, match=expected):
        wire.decode(data)


@pytest.mark.parametrize("data", [
    {"type": "Tick", "fields": {}},  # not an agent event: a message cannot build anything else
    {"type": "AgentSaid", "fields": {"agent": "a"}},  # a field missing
    {"type": "AgentSaid", "fields": {"agent": "a", "text": "b", "evil": 1}},
    "AgentSaid",
])
def test_only_agent_events_with_their_fields_are_built(data: Any) -> None:
    with pytest.raises(wire.WireError):
        wire.event_from_wire(data)


def test_an_unknown_message_type_is_not_sent() -> None:
    with pytest.raises(wire.WireError, match="unknown cluster message type"):
        wire.encode({"t": "reboot"})


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("redis_url", "http://redis:6379", "expected redis://"),
    ("node_id", "node 1", "expected 1 to 64 letters"),
    ("node_id", "x" * 65, "expected 1 to 64 letters"),
    ("lease_ttl_s", "0.5", "expected a number in [1, 600]"),
])
def test_bad_cluster_settings_are_refused_naming_the_field(field: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)) as raised:
        Config.from_sources({}, {f"FIXLENS_{field.upper()}": value})
    assert field in raised.value.message


def test_the_redis_url_is_never_echoed_and_has_no_flag() -> None:
    with pytest.raises(ConfigError) as raised:
        Config.from_sources({}, {"FIXLENS_REDIS_URL": "http://:hunter2@redis"})
    assert "hunter2" not in raised.value.message
    config = Config.from_sources({}, {"FIXLENS_REDIS_URL": "redis://:hunter2@redis:6379/0", "FIXLENS_NODE_ID": "n1"})
    assert (config.redis_url, config.node_id) == ("redis://:hunter2@redis:6379/0", "n1")
    assert "hunter2" not in repr(config)


class _SharedLevel:
    """Stands in for the other nodes: the shared bucket has ``left`` tokens after each spend."""

    def __init__(self, left: float) -> None:
        self.left = left
        self.spent: list[tuple[str, str]] = []

    def spend(self, kind: str, key: str, rate: float, burst: float, settle: Callable[[float], None]) -> None:
        self.spent.append((kind, key))
        settle(self.left)


def test_a_shared_limiter_keeps_no_more_than_the_shared_bucket_has() -> None:
    buckets = KeyedBuckets(1.0, 10)
    shared = _SharedLevel(left=0.0)  # other nodes spent the customer's budget already
    buckets.share("events", shared)
    assert buckets.take("cust", now=100.0) is None  # decided here at once (one over, at most)
    assert shared.spent == [("events", "cust")]
    wait = buckets.take("cust", now=100.0)
    assert wait is not None and wait == pytest.approx(1.0)
    buckets.share("", None)
    assert buckets.take("other", now=100.0) is None and len(shared.spent) == 1
