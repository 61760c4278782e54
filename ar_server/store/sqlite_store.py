"""``SQLiteStore``: the async ``Store`` over SQLite, with every blocking call on one dedicated thread.

Why one thread: a sqlite3 connection must stay on the thread that made it, and SQLite allows one writer at
a time anyway, so a pool would only add lock waits (SQLITE_BUSY). A single-worker executor is exactly "one
thread with a queue": calls run in submission order, and the event loop only awaits their futures. Reads
are indexed lookups of a few rows, so sharing the thread with writes costs less than a second connection.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

from ar_server.errors import StoreError
from ar_server.store.base import (
    AgentAction,
    EscalationRecord,
    EscalationStatus,
    EventRecord,
    LinkOutcome,
    SceneVersion,
    SessionRecord,
    StepHow,
    StepRecord,
)
from ar_server.store.sqlite_db import SQLiteDatabase

T = TypeVar("T")
THREAD_NAME = "fixlens-sqlite"


class SQLiteStore:
    """Implements ``Store``. Create with ``await SQLiteStore.open(path)``; ``await store.close()`` at the end."""

    def __init__(self, executor: ThreadPoolExecutor, db: SQLiteDatabase) -> None:
        self._executor = executor
        self._db: SQLiteDatabase | None = db

    @classmethod
    async def open(cls, path: str | Path, *, synchronous: Literal["normal", "full"] = "normal") -> SQLiteStore:
        """Open (creating and migrating as needed) the database at ``path`` on a fresh store thread."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME)
        loop = asyncio.get_running_loop()
        try:
            db = await loop.run_in_executor(executor, functools.partial(SQLiteDatabase, path,
                                                                        synchronous=synchronous))
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(executor, db)

    async def run(self, fn: Callable[[SQLiteDatabase], T]) -> T:
        """Run ``fn(db)`` on the store thread; for admin tools and tests that need more than the interface."""
        db = self._db
        if db is None:
            raise StoreError("closed", "store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, db)

    async def close(self) -> None:
        """Wait for queued calls, close the connection and stop the thread. Closing twice is a no-op."""
        db, self._db = self._db, None
        if db is None:
            return
        await asyncio.get_running_loop().run_in_executor(self._executor, db.close)
        self._executor.shutdown(wait=True)

    async def create_session(self, record: SessionRecord) -> None:
        await self.run(lambda db: db.create_session(record))

    async def get_session(self, session_id: str) -> SessionRecord | None:
        return await self.run(lambda db: db.get_session(session_id))

    async def find_session_by_resume(self, resume_hash: str) -> SessionRecord | None:
        return await self.run(lambda db: db.find_session_by_resume(resume_hash))

    async def update_session(self, session_id: str, *, at: float, current_step: str | None = None,
                             snapshot: Any = None, product: str | None = None, scene: str | None = None,
                             resume_hash: str | None = None) -> None:
        await self.run(lambda db: db.update_session(session_id, at=at, current_step=current_step, snapshot=snapshot,
                                                    product=product, scene=scene, resume_hash=resume_hash))

    async def end_session(self, session_id: str, outcome: str, *, at: float) -> None:
        await self.run(lambda db: db.end_session(session_id, outcome, at=at))

    async def list_sessions(self, *, live: bool | None = None, limit: int = 100) -> list[SessionRecord]:
        return await self.run(lambda db: db.list_sessions(live=live, limit=limit))

    async def enter_step(self, session_id: str, step_id: str, *, at: float) -> int:
        return await self.run(lambda db: db.enter_step(session_id, step_id, at=at))

    async def verify_step(self, session_id: str, step_id: str, how: StepHow, *, at: float) -> None:
        await self.run(lambda db: db.verify_step(session_id, step_id, how, at=at))

    async def step_history(self, session_id: str) -> list[StepRecord]:
        return await self.run(lambda db: db.step_history(session_id))

    async def add_event(self, session_id: str, kind: str, *, at: float, data: Any = None) -> int:
        return await self.run(lambda db: db.add_event(session_id, kind, at=at, data=data))

    async def events(self, session_id: str) -> list[EventRecord]:
        return await self.run(lambda db: db.events(session_id))

    async def open_escalation(self, session_id: str, reason: str, *, at: float, context: Any = None) -> int:
        return await self.run(lambda db: db.open_escalation(session_id, reason, at=at, context=context))

    async def update_escalation(self, escalation_id: int, status: EscalationStatus, *, at: float,
                                agent: str | None = None) -> None:
        await self.run(lambda db: db.update_escalation(escalation_id, status, at=at, agent=agent))

    async def list_escalations(self, *, status: EscalationStatus | None = None) -> list[EscalationRecord]:
        return await self.run(lambda db: db.list_escalations(status=status))

    async def get_escalation(self, escalation_id: int) -> EscalationRecord | None:
        return await self.run(lambda db: db.get_escalation(escalation_id))

    async def session_escalations(self, session_id: str) -> list[EscalationRecord]:
        return await self.run(lambda db: db.session_escalations(session_id))

    async def active_escalations(self) -> list[EscalationRecord]:
        return await self.run(lambda db: db.active_escalations())

    async def accept_escalation(self, escalation_id: int, *, at: float) -> None:
        await self.run(lambda db: db.accept_escalation(escalation_id, at=at))

    async def take_escalation(self, escalation_id: int, agent: str, *, at: float) -> bool:
        return await self.run(lambda db: db.take_escalation(escalation_id, agent, at=at))

    async def add_agent_action(self, session_id: str, agent: str, kind: str, *, at: float, data: Any = None,
                               escalation_id: int | None = None) -> int:
        return await self.run(lambda db: db.add_agent_action(session_id, agent, kind, at=at, data=data,
                                                             escalation_id=escalation_id))

    async def agent_actions(self, session_id: str) -> list[AgentAction]:
        return await self.run(lambda db: db.agent_actions(session_id))

    async def create_link(self, token_hash: str, session_id: str, *, at: float, expires_at: float) -> None:
        await self.run(lambda db: db.create_link(token_hash, session_id, at=at, expires_at=expires_at))

    async def use_link(self, token_hash: str, *, at: float) -> tuple[LinkOutcome, str | None]:
        return await self.run(lambda db: db.use_link(token_hash, at=at))  # type: ignore[return-value]

    async def put_scene_version(self, scene_id: str, yaml_text: str, author: str, *, at: float) -> int:
        return await self.run(lambda db: db.put_scene_version(scene_id, yaml_text, author, at=at))

    async def get_scene_version(self, scene_id: str, version: int | None = None) -> SceneVersion | None:
        return await self.run(lambda db: db.get_scene_version(scene_id, version))

    async def scene_versions(self, scene_id: str) -> list[SceneVersion]:
        return await self.run(lambda db: db.scene_versions(scene_id))
