"""What the server persists, and the ``Store`` interface every backend implements.

Records are plain frozen dataclasses; times are Unix seconds (float). JSON-valued fields (``snapshot``,
``data``, ``context``) are JSON-serialisable Python values; a backend stores them as text or JSONB.
SQLite is the embedded default (``SQLiteStore``); a PostgreSQL store implements the same async methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

StepHow = Literal["vision", "user", "timeout"]
STEP_HOWS: tuple[str, ...] = get_args(StepHow)
EscalationStatus = Literal["open", "taken", "closed"]
ESCALATION_STATUSES: tuple[str, ...] = get_args(EscalationStatus)


@dataclass(frozen=True)
class SessionRecord:
    id: str
    customer: str  # token subject of the customer who opened it
    resume_hash: str  # SHA-256 hex of the resume token (auth.resume_token_hash)
    created_at: float
    updated_at: float
    locale: str = "en"
    product: str | None = None
    scene: str | None = None
    current_step: str | None = None
    snapshot: Any = None  # the scene engine's JSON snapshot, enough to resume
    outcome: str | None = None  # None while the session is live
    ended_at: float | None = None


@dataclass(frozen=True)
class StepRecord:
    id: int
    session_id: str
    step_id: str
    entered_at: float
    verified_at: float | None = None
    how: StepHow | None = None  # how the step was completed


@dataclass(frozen=True)
class EventRecord:
    id: int
    session_id: str
    at: float
    kind: str  # e.g. "event.done", "notice", "end", "resume"
    data: Any = None


@dataclass(frozen=True)
class EscalationRecord:
    id: int
    session_id: str
    created_at: float
    updated_at: float
    reason: str
    context: Any = None  # everything an agent needs: steps, last observation, customer choices
    status: EscalationStatus = "open"
    agent: str | None = None
    accepted_at: float | None = None  # when the customer accepted help from a person: it is in the agent queue


@dataclass(frozen=True)
class AgentAction:
    """Something an agent did in a session: took it, joined or left it, held control, sent a message,
    pointed at a part, moved it to a step, ended it, or handed it back to the queue."""

    id: int
    session_id: str
    at: float
    agent: str  # the agent token's subject
    kind: str  # take | join | leave | control | message | point | goto | end | hand_back
    data: Any = None
    escalation_id: int | None = None


LinkOutcome = Literal["ok", "unknown", "used", "expired"]


@dataclass(frozen=True)
class SceneVersion:
    scene_id: str
    version: int  # 1, 2, ... per scene; never reused
    yaml_text: str
    author: str
    created_at: float


class Store(Protocol):
    """Async persistence used by the server. Unknown ids raise ``StoreError("not_found")``; a duplicate
    session id raises ``StoreError("conflict")``; each method is atomic and durable once it returns."""

    async def create_session(self, record: SessionRecord) -> None: ...
    async def get_session(self, session_id: str) -> SessionRecord | None: ...
    async def find_session_by_resume(self, resume_hash: str) -> SessionRecord | None: ...
    async def update_session(self, session_id: str, *, at: float, current_step: str | None = None,
                             snapshot: Any = None, product: str | None = None, scene: str | None = None,
                             resume_hash: str | None = None) -> None: ...
    async def end_session(self, session_id: str, outcome: str, *, at: float) -> None: ...
    async def list_sessions(self, *, live: bool | None = None, limit: int = 100) -> list[SessionRecord]: ...
    async def enter_step(self, session_id: str, step_id: str, *, at: float) -> int: ...
    async def verify_step(self, session_id: str, step_id: str, how: StepHow, *, at: float) -> None: ...
    async def step_history(self, session_id: str) -> list[StepRecord]: ...
    async def add_event(self, session_id: str, kind: str, *, at: float, data: Any = None) -> int: ...
    async def events(self, session_id: str) -> list[EventRecord]: ...
    async def open_escalation(self, session_id: str, reason: str, *, at: float, context: Any = None) -> int: ...
    async def update_escalation(self, escalation_id: int, status: EscalationStatus, *, at: float,
                                agent: str | None = None) -> None: ...
    async def list_escalations(self, *, status: EscalationStatus | None = None) -> list[EscalationRecord]:
        """Every escalation (or those with ``status``), oldest first. Reads the whole table: for reports and
        tests; the server's own lookups use the three indexed queries below."""
        ...

    async def get_escalation(self, escalation_id: int) -> EscalationRecord | None:
        """The escalation ``escalation_id``, or None if there is none. A primary-key lookup."""
        ...

    async def session_escalations(self, session_id: str) -> list[EscalationRecord]:
        """Every escalation of session ``session_id`` whatever its status, oldest (lowest id) first; empty for a
        session with none or an unknown session. Must be served by an index on ``(session_id, id)``."""
        ...

    async def active_escalations(self) -> list[EscalationRecord]:
        """The escalations not closed (status ``open`` or ``taken``) of all sessions, oldest (lowest id) first:
        what the agent queue is built from. Must be served by an index that leaves closed escalations out
        (they accumulate forever), such as a partial index ``WHERE status != 'closed'``."""
        ...

    async def accept_escalation(self, escalation_id: int, *, at: float) -> None: ...
    async def take_escalation(self, escalation_id: int, agent: str, *, at: float) -> bool: ...
    async def add_agent_action(self, session_id: str, agent: str, kind: str, *, at: float, data: Any = None,
                               escalation_id: int | None = None) -> int: ...
    async def agent_actions(self, session_id: str) -> list[AgentAction]: ...
    async def create_link(self, token_hash: str, session_id: str, *, at: float, expires_at: float) -> None: ...
    async def use_link(self, token_hash: str, *, at: float) -> tuple[LinkOutcome, str | None]: ...
    async def put_scene_version(self, scene_id: str, yaml_text: str, author: str, *, at: float) -> int: ...
    async def get_scene_version(self, scene_id: str, version: int | None = None) -> SceneVersion | None: ...
    async def scene_versions(self, scene_id: str) -> list[SceneVersion]: ...
    async def close(self) -> None: ...
