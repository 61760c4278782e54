"""Persistence: the ``Store`` interface, its records, the embedded SQLite store and the PostgreSQL one."""

from __future__ import annotations

from ar_server.store.backends import open_store
from ar_server.store.base import (
    ESCALATION_STATUSES,
    STEP_HOWS,
    AgentAction,
    EscalationRecord,
    EscalationStatus,
    EventRecord,
    LinkOutcome,
    SceneVersion,
    SessionRecord,
    StepHow,
    StepRecord,
    Store,
)
from ar_server.store.postgres_store import PostgresStore
from ar_server.store.schema import SCHEMA_VERSION
from ar_server.store.sqlite_db import SQLiteDatabase
from ar_server.store.sqlite_store import SQLiteStore

__all__ = [
    "ESCALATION_STATUSES", "SCHEMA_VERSION", "STEP_HOWS", "AgentAction", "EscalationRecord", "EscalationStatus",
    "EventRecord", "LinkOutcome", "PostgresStore", "SQLiteDatabase", "SQLiteStore", "SceneVersion",
    "SessionRecord", "StepHow", "StepRecord", "Store", "open_store",
]
