"""What the nodes of a cluster say to each other over Redis: key and channel names, and the messages.

Rules:
1. Every node subscribes to its own channel (``node_channel``) and to the broadcast channel. A message is one
   msgpack map with a type tag ``t`` and named keys, like the stream's; an unknown or malformed message is
   logged and dropped by the receiver, never fatal.
2. Keys and channels share the prefix ``fixlens:`` so one Redis may hold other data beside them.
3. An agent's event crosses nodes as its dataclass name plus its fields; only the agent events of
   ``ar_server.session.events`` may (``AGENT_EVENTS``), so a message cannot build anything else.

Messages (``t``): ``event`` (session, event: an agent's event for the session's holder), ``watch`` (session,
node: the sender has agents watching the session; refreshed every heartbeat), ``unwatch`` (session, node),
``state`` (session: send the session's state to its watchers now), ``deliver`` (session, message: a message
for the receiver's agents watching the session), ``take_over`` (session, node, nonce:
close your connection of the session, saving its state, then answer ``taken``), ``taken`` (nonce), ``queue``
(broadcast: the escalation queue changed).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack

from ar_server.session.events import AgentEnded, AgentEvent, AgentJoined, AgentLeft, AgentMoved, AgentPointed, AgentSaid

PREFIX = "fixlens:"
BROADCAST_CHANNEL = PREFIX + "broadcast"
MESSAGE_TYPES = ("event", "watch", "unwatch", "state", "deliver", "take_over", "taken", "queue")
AGENT_EVENTS: dict[str, type] = {cls.__name__: cls for cls in (AgentJoined, AgentLeft, AgentSaid, AgentPointed,
                                                                AgentMoved, AgentEnded)}


class WireError(ValueError):
    """A message from another node that cannot be read (rule 1)."""


def node_channel(node: str) -> str:
    return f"{PREFIX}node:{node}"


def lease_key(session: str) -> str:
    """Which node holds ``session``: its value is the node id, with a time to live."""
    return f"{PREFIX}lease:{session}"


def node_key(node: str) -> str:
    """A node that is alive: ``{"sessions": n, "at": seconds}`` with a time to live (for operators and benches)."""
    return f"{PREFIX}alive:{node}"


def rate_key(kind: str, key: str) -> str:
    return f"{PREFIX}rate:{kind}:{key}"


def encode(message: dict[str, Any]) -> bytes:
    if message.get("t") not in MESSAGE_TYPES:
        raise WireError(f"unknown cluster message type {message.get('t')!r}; expected one of {MESSAGE_TYPES}")
    return msgpack.packb(message, use_bin_type=True)


def decode(data: bytes) -> dict[str, Any]:
    try:
        message = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise WireError(f"not a msgpack message: {exc}") from None
    if not isinstance(message, dict) or message.get("t") not in MESSAGE_TYPES:
        raise WireError(f"expected a map with t in {MESSAGE_TYPES}, got {str(message)[:80]}")
    return message


def event_to_wire(event: AgentEvent) -> dict[str, Any]:
    return {"type": type(event).__name__, "fields": dataclasses.asdict(event)}


def event_from_wire(data: Any) -> AgentEvent:
    """Rule 3; raises ``WireError`` for anything but an agent event with its fields."""
    if not isinstance(data, dict) or data.get("type") not in AGENT_EVENTS or not isinstance(data.get("fields"), dict):
        raise WireError(f"expected an agent event {{type, fields}} with type in {sorted(AGENT_EVENTS)}, got "
                        f"{str(data)[:80]}")
    try:
        return AGENT_EVENTS[data["type"]](**data["fields"])  # type: ignore[no-any-return]
    except TypeError as exc:
        raise WireError(f"agent event {data['type']}: {exc}") from None
