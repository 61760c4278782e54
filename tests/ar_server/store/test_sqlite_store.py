"""SQLite-only behaviour: WAL, the store thread, the file itself. The ``Store`` contract shared with PostgreSQL
is tested on both backends in ``test_store.py``."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ar_server.errors import StoreError
from ar_server.store import SCHEMA_VERSION, SessionRecord, SQLiteDatabase, SQLiteStore
from ar_server.store.sqlite_store import THREAD_NAME


def session(sid: str = "s1", **changes: object) -> SessionRecord:
    base = dict(id=sid, customer="cust-1", resume_hash=f"hash-{sid}", created_at=100.0, updated_at=100.0,
                locale="fr", product="router_ax1800", scene="router_wan_red")
    base.update(changes)
    return SessionRecord(**base)  # type: ignore[arg-type]


# SQLite only: overrides conftest.py's ``store``, which runs a test on every backend.
@pytest.fixture
async def store(tmp_path: Path) -> SQLiteStore:
    s = await SQLiteStore.open(tmp_path / "data" / "fixlens.db")
    yield s  # type: ignore[misc]
    await s.close()


async def test_wal_mode_and_schema_version(store: SQLiteStore, tmp_path: Path) -> None:
    assert await store.run(lambda db: db.pragma("journal_mode")) == "wal"
    assert await store.run(lambda db: db.pragma("synchronous")) == 1  # NORMAL
    assert await store.run(lambda db: db.pragma("foreign_keys")) == 1
    conn = sqlite3.connect(tmp_path / "data" / "fixlens.db")
    assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION


async def test_calls_run_on_the_store_thread(store: SQLiteStore) -> None:
    name = await store.run(lambda db: threading.current_thread().name)
    assert name.startswith(THREAD_NAME) and name != threading.current_thread().name


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    SQLiteDatabase(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError) as info:
        SQLiteDatabase(path)
    assert info.value.code == "schema_too_new"


def test_unusable_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "adir.db").mkdir()
    with pytest.raises(StoreError) as info:
        SQLiteDatabase(tmp_path / "adir.db")
    assert info.value.code == "database"


def test_full_synchronous(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "f.db", synchronous="full")
    assert db.pragma("synchronous") == 2
    db.close()


async def test_a_full_database_is_a_clear_error_and_the_store_goes_on(tmp_path: Path) -> None:
    """On a full disk SQLite had already rolled back; the explicit ROLLBACK then raised 'no transaction is
    active', which reached clients as a plain 500. A size limit on the database file fills it the same way."""
    store = await SQLiteStore.open(tmp_path / "full.db")

    def limit(extra_pages: int) -> Callable[[Any], None]:
        def apply(db: Any) -> None:
            db._conn.execute(f"PRAGMA max_page_count={db.pragma('page_count') + extra_pages}")
        return apply

    try:
        await store.run(limit(1))
        with pytest.raises(StoreError) as err:
            for i in range(200):
                await store.put_scene_version("big", "x" * 8000, "ann", at=float(i))
        assert err.value.code == "storage_full" and "nothing was written" in err.value.message
        await store.run(limit(10_000))  # room again: the store goes on
        await store.create_session(session("after-full"))
        assert (await store.get_session("after-full")) is not None
    finally:
        await store.close()


# -- escalation lookups: indexed, never a scan of every escalation --------------------------------------------


def query_plans(db: SQLiteDatabase, call: Callable[[SQLiteDatabase], object]) -> list[str]:
    """SQLite's plan for each statement ``call`` runs (the statements as run, with their values inlined)."""
    statements: list[str] = []
    db._conn.set_trace_callback(statements.append)
    try:
        call(db)
    finally:
        db._conn.set_trace_callback(None)
    return [" | ".join(row[3] for row in db._conn.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall())
            for sql in statements]


async def test_escalation_lookups_by_id_session_and_activity(store: SQLiteStore) -> None:
    for sid in ("a", "b"):
        await store.create_session(session(sid))
    first = await store.open_escalation("a", "help", at=101.0, context={"step": "check_wan"})
    other = await store.open_escalation("b", "timeout", at=102.0)
    second = await store.open_escalation("a", "overdue", at=103.0)
    await store.update_escalation(first, "closed", at=104.0, agent="alex")
    assert await store.take_escalation(other, "sam", at=105.0)

    got = await store.get_escalation(first)
    assert got is not None and got.session_id == "a" and got.status == "closed" and got.context == {"step": "check_wan"}
    assert await store.get_escalation(9999) is None
    assert [e.id for e in await store.session_escalations("a")] == [first, second]
    assert await store.session_escalations("nobody") == []
    assert [(e.id, e.status) for e in await store.active_escalations()] == [(other, "taken"), (second, "open")]
    everything = await store.list_escalations()
    assert [e for e in everything if e.session_id == "a"] == await store.session_escalations("a")


async def test_escalation_lookups_use_their_indexes(store: SQLiteStore) -> None:
    """Regression: the queue and per-session lookups read every escalation ever opened."""
    await store.create_session(session("a"))
    await store.open_escalation("a", "help", at=101.0)
    plans = await store.run(lambda db: [query_plans(db, lambda d: d.session_escalations("a")),
                                        query_plans(db, lambda d: d.active_escalations()),
                                        query_plans(db, lambda d: d.get_escalation(1))])
    assert plans[0] == ["SEARCH escalations USING INDEX escalations_session (session_id=?)"], plans
    assert plans[1] == ["SCAN escalations USING INDEX escalations_active"], plans  # holds open and taken only
    assert plans[2] == ["SEARCH escalations USING INTEGER PRIMARY KEY (rowid=?)"], plans


def test_migration_3_adds_the_escalation_indexes_to_a_version_2_database(tmp_path: Path) -> None:
    from ar_server.store.schema import MIGRATIONS, _statements

    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for version, script in enumerate(MIGRATIONS[:2], start=1):
        for statement in _statements(script):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    conn.execute("INSERT INTO sessions (id, customer, resume_hash, created_at, updated_at, locale) "
                 "VALUES ('old', 'c', 'h', 1, 1, 'en')")
    conn.execute("INSERT INTO escalations (session_id, created_at, updated_at, reason, status) "
                 "VALUES ('old', 1, 1, 'help', 'open')")
    conn.close()
    db = SQLiteDatabase(path)
    try:
        names = {r[0] for r in db._conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"escalations_session", "escalations_active"} <= names
        assert SCHEMA_VERSION >= 3
        assert [e.reason for e in db.session_escalations("old")] == ["help"] == [e.reason for e in
                                                                                  db.active_escalations()]
    finally:
        db.close()
