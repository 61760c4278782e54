"""``/v1/agent``: the WebSocket of people from support (the console page, or any client with an agent token).

JSON text messages, one object each with a type ``t`` (docs/PROTOCOL.md, "The agent channel").

Rules:
1. The upgrade is refused (403) when an ``Origin`` header names another host than this server's (the origin
   guard of ``routes.py`` checks every upgrade; this handler checks again): a page elsewhere cannot drive an
   agent's browser. No ``Origin`` is a non-browser client, allowed.
2. The first message is ``hello`` with a bearer token, within ``HELLO_TIMEOUT_S``. The token is checked again
   on every message (it may expire meanwhile) and must have the role ``agent`` or ``admin``: a customer or
   an author is refused (``forbidden``, ``wrong_role``) and the connection closes.
3. An agent watches one session at a time (``watch``): the customer hears who joined, the agent gets the
   session's state (connection, step, history, part states with confidences) and its camera downscaled, at
   most ``agent_frame_fps`` a second, only while watching. One watcher holds control and alone acts.
4. Every join, leave, control change and action is recorded in the store with its time and the agent.
5. A bad message is answered with an ``error`` and changes nothing; the connection stays open unless the
   error says ``fatal``.
6. In a cluster the agent may watch a session whose customer is connected to another node: its actions go to
   that node, whose state and frames come back (``ar_server.cluster``). Control is decided among the agents
   of one node; an agent's move to a step that the scene lacks is refused by the other node and logged there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from ar_server.app_keys import AUTHORITY, CATALOG, CLOCK, SESSIONS, STORE
from ar_server.auth import Claims
from ar_server.errors import AuthError, SessionStateError
from ar_server.protocol import OUTCOMES
from ar_server.protocol.fields import IDENT
from ar_server.rest import queue_entries
from ar_server.session.agents import AGENT_COLOR
from ar_server.session.events import AgentEnded, AgentJoined, AgentLeft, AgentMoved, AgentPointed, AgentSaid
from ar_server.session.watchers import Watcher
from ar_server.web.origin import same_origin

log = logging.getLogger(__name__)
AGENT_PATH = "/v1/agent"
AGENT_ROLES = ("agent", "admin")
HELLO_TIMEOUT_S = 10.0
MAX_MESSAGE_BYTES = 16 * 1024  # agents send text; nothing they send needs more
MAX_TEXT_CHARS = 2000
ACT_KINDS = ("message", "point", "goto", "end")
# The messages of each direction and their keys (docs/PROTOCOL.md section 11; a test holds the doc to these).
AGENT_MESSAGES: dict[str, tuple[str, ...]] = {
    "hello": ("token",), "watch": ("session",), "leave": (), "control": (),
    "act": ("kind", "text", "part", "step", "outcome"),
}
SERVER_MESSAGES: dict[str, tuple[str, ...]] = {
    "welcome": ("agent", "role"), "queue": ("escalations",), "watching": ("session", "control", "product"),
    "left": ("session",),
    "state": ("session", "connected", "scene", "step", "steps", "history", "observation", "agents"),
    "frame": ("session", "seq", "width", "height", "jpeg"), "acted": ("kind",),
    "error": ("code", "message", "fatal", "reason"),
}
ERROR_CODES = ("hello_required", "missing_field", "bad_json", "unauthorized", "forbidden", "unknown_type",
               "bad_field", "not_found", "session_ended", "not_watching", "control_held", "no_control",
               "not_connected")


class ChannelError(Exception):
    def __init__(self, code: str, message: str, *, fatal: bool = False, reason: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.fatal, self.reason = code, message, fatal, reason


async def agent_socket(request: web.Request) -> web.StreamResponse:
    if not same_origin(request):
        return web.json_response({"error": {"code": "forbidden", "message": "the agent channel takes connections "
                                            "from this server's own pages only (Origin header)"}}, status=403)
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    channel = AgentChannel(request.app, ws)
    try:
        await channel.run()
    finally:
        await channel.stop()
    return ws


class AgentChannel:
    """One agent connection; see the module rules."""

    def __init__(self, app: web.Application, ws: web.WebSocketResponse) -> None:
        self.app = app
        self.ws = ws
        self.token: str | None = None
        self.watcher: Watcher | None = None
        self._sender: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            first = await asyncio.wait_for(self.ws.receive(), HELLO_TIMEOUT_S)
        except TimeoutError:
            await self._fail(ChannelError("hello_required", f"no hello within {HELLO_TIMEOUT_S:g} s", fatal=True))
            return
        try:
            await self._hello(self._parse(first))
        except ChannelError as exc:
            if exc.code != "closed":  # the client left before saying hello: nobody to tell
                await self._fail(exc)
            return
        async for raw in self.ws:
            try:
                message = self._parse(raw)
                claims = self._claims()  # rule 2: on every message
                await self._dispatch(message, claims)
            except ChannelError as exc:
                await self._fail(exc)
                if exc.fatal:
                    return

    async def stop(self) -> None:
        watcher = self.watcher
        if watcher is not None:
            await self._leave(watcher)
            self.app[SESSIONS].watchers.queue_listeners.discard(watcher)
            watcher.close()
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender

    # ---------------------------------------------------------------- reading

    @staticmethod
    def _parse(raw: Any) -> dict[str, Any]:
        if raw.type != WSMsgType.TEXT:
            if raw.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                raise ChannelError("closed", "the connection closed", fatal=True)
            raise ChannelError("bad_json", "the agent channel takes JSON text messages")
        try:
            message = json.loads(raw.data)
        except json.JSONDecodeError as exc:
            raise ChannelError("bad_json", f"not JSON: {exc}") from None
        if not isinstance(message, dict) or not isinstance(message.get("t"), str):
            raise ChannelError("bad_json", "expected a JSON object with a string `t`")
        return message

    def _claims(self) -> Claims:
        try:
            claims = self.app[AUTHORITY].verify(self.token or "")
        except AuthError as exc:
            raise ChannelError("unauthorized", f"token {exc.code.replace('_', ' ')}: {exc.message}",
                               fatal=True) from None
        if claims.role not in AGENT_ROLES:
            raise ChannelError("forbidden", f"role {claims.role!r} may not use the agent channel; needs agent or "
                                            "admin", fatal=True, reason="wrong_role")
        return claims

    async def _hello(self, message: dict[str, Any]) -> None:
        if message["t"] != "hello":
            raise ChannelError("hello_required", f"the first message must be hello, got {message['t'][:40]!r}",
                               fatal=True)
        token = message.get("token")
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise ChannelError("missing_field", "hello needs token: an agent's bearer token", fatal=True)
        self.token = token
        claims = self._claims()
        watcher = self.watcher = Watcher(claims.subject, claims.role)
        self.app[SESSIONS].watchers.queue_listeners.add(watcher)
        self._sender = asyncio.create_task(self._send_loop(watcher))
        watcher.send({"t": "welcome", "agent": claims.subject, "role": claims.role})
        watcher.send({"t": "queue"})

    async def _send_loop(self, watcher: Watcher) -> None:
        while not self.ws.closed:
            for message in await watcher.next_messages():
                if message["t"] == "closed":
                    return
                if message["t"] == "queue":
                    message = {"t": "queue", "escalations": await queue_entries(self.app)}
                await self.ws.send_str(json.dumps(message))

    async def _fail(self, exc: ChannelError) -> None:
        if self.ws.closed:
            return
        body = {"t": "error", "code": exc.code, "message": exc.message, "fatal": exc.fatal}
        if exc.reason:
            body["reason"] = exc.reason
        await self.ws.send_str(json.dumps(body))
        if exc.fatal:
            await self.ws.close(code=1008)

    # ---------------------------------------------------------------- messages

    async def _dispatch(self, message: dict[str, Any], claims: Claims) -> None:
        watcher = self.watcher
        assert watcher is not None
        kind = message["t"]
        if kind == "watch":
            await self._watch(watcher, _ident(message, "session"))
        elif kind == "leave":
            await self._leave(watcher)
        elif kind == "control":
            await self._control(watcher)
        elif kind == "act":
            await self._act(watcher, message)
        else:
            raise ChannelError("unknown_type", f"unknown message type {kind[:40]!r}; expected watch, leave, "
                                               "control or act")

    async def _watch(self, watcher: Watcher, session: str) -> None:
        record = await self.app[STORE].get_session(session)
        if record is None:
            raise ChannelError("not_found", f"unknown session {session!r}")
        if record.outcome is not None:
            raise ChannelError("session_ended", f"session {session} has ended ({record.outcome})")
        await self._leave(watcher)
        manager = self.app[SESSIONS]
        control = manager.start_watching(watcher, session)
        await self._record(watcher, "join", {"control": control})
        await manager.agent_event_anywhere(session, AgentJoined(watcher.subject))
        watcher.send({"t": "watching", "session": session, "control": control, "product": record.product})
        manager.publish_state(session, force=True)

    async def _leave(self, watcher: Watcher) -> None:
        manager = self.app[SESSIONS]
        session = watcher.session
        if session is None:
            return
        await self._record(watcher, "leave", None)
        manager.stop_watching(watcher)
        await manager.agent_event_anywhere(session, AgentLeft(watcher.subject))
        watcher.send({"t": "left", "session": session})
        manager.publish_state(session, force=True)

    async def _control(self, watcher: Watcher) -> None:
        session = self._watching(watcher)
        manager = self.app[SESSIONS]
        if not manager.watchers.take_control(watcher):
            raise ChannelError("control_held", "another agent holds control of this session")
        await self._record(watcher, "control", None)
        watcher.send({"t": "watching", "session": session, "control": True})
        manager.publish_state(session, force=True)

    async def _act(self, watcher: Watcher, message: dict[str, Any]) -> None:
        session = self._watching(watcher)
        manager = self.app[SESSIONS]
        if not manager.watchers.holds_control(watcher):
            raise ChannelError("no_control", "another agent holds control: ask for it with control first")
        kind = message.get("kind")
        name = watcher.subject
        if kind == "message":
            text = message.get("text")
            if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT_CHARS:
                raise ChannelError("bad_field", f"act message needs text: 1 to {MAX_TEXT_CHARS} characters")
            event: Any = AgentSaid(name, text.strip())
            data: dict[str, Any] = {"text": text.strip()}
        elif kind == "point":
            part = message.get("part")
            if part is not None:
                await self._check_part(session, _ident(message, "part"))
            event, data = AgentPointed(name, part, AGENT_COLOR), {"part": part}
        elif kind == "goto":
            step = _ident(message, "step")
            event, data = AgentMoved(name, step), {"step": step}
        elif kind == "end":
            outcome = message.get("outcome")
            if outcome not in OUTCOMES:
                raise ChannelError("bad_field", f"act end needs outcome: one of {', '.join(OUTCOMES)}")
            text = message.get("text")
            event = AgentEnded(name, str(outcome), text if isinstance(text, str) and text else None)
            data = {"outcome": outcome}
        else:
            raise ChannelError("bad_field", f"act kind must be one of {', '.join(ACT_KINDS)}, got {kind!r}")
        try:
            delivered = await manager.agent_event_anywhere(session, event)
        except SessionStateError as exc:
            raise ChannelError("bad_field", exc.message) from None
        if not delivered:
            raise ChannelError("not_connected", "the customer is not connected right now; try again when they are")
        await self._record(watcher, str(kind), data)
        if kind == "end":
            await self._close_escalations(session, watcher)
        watcher.send({"t": "acted", "kind": kind, **data})
        manager.publish_state(session, force=True)

    def _watching(self, watcher: Watcher) -> str:
        if watcher.session is None:
            raise ChannelError("not_watching", "watch a session first")
        return watcher.session

    async def _check_part(self, session: str, part: str) -> None:
        record = await self.app[STORE].get_session(session)
        catalog = self.app[CATALOG]
        product = None if record is None or record.product is None or record.product not in catalog else \
            catalog.get(record.product)
        if product is None:
            raise ChannelError("bad_field", "no product is known for this session yet: nothing to point at")
        names = [p.name for p in product.parts]
        if part not in names:
            raise ChannelError("bad_field", f"{product.id} has no part {part!r}; parts: {', '.join(names)}")

    async def _record(self, watcher: Watcher, kind: str, data: Any) -> None:
        assert watcher.session is not None
        await self.app[STORE].add_agent_action(watcher.session, watcher.subject, kind, at=self.app[CLOCK](),
                                               data=data)

    async def _close_escalations(self, session: str, watcher: Watcher) -> None:
        store, now = self.app[STORE], self.app[CLOCK]()
        for escalation in await store.session_escalations(session):
            if escalation.status != "closed":
                await store.update_escalation(escalation.id, "closed", at=now, agent=watcher.subject)
        self.app[SESSIONS].queue_changed()


def _ident(message: dict[str, Any], key: str) -> str:
    value = message.get(key)
    if not isinstance(value, str) or not IDENT.match(value):
        raise ChannelError("bad_field", f"{key}: expected an identifier (letters, digits, _.-), got {value!r}")
    return value
