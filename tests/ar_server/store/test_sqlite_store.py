from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ar_server.errors import StoreError
from ar_server.store import SCHEMA_VERSION, SessionRecord, SQLiteDatabase, SQLiteStore, StepRecord
from ar_server.store.sqlite_store import THREAD_NAME


def session(sid: str = "s1", **changes: object) -> SessionRecord:
    base = dict(id=sid, customer="cust-1", resume_hash=f"hash-{sid}", created_at=100.0, updated_at=100.0,
                locale="fr", product="router_ax1800", scene="router_wan_red")
    base.update(changes)
    return SessionRecord(**base)  # type: ignore[arg-type]


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


async def test_session_round_trip_and_resume_lookup(store: SQLiteStore) -> None:
    await store.create_session(session(snapshot={"step": "a", "vars": [1, 2]}))
    got = await store.get_session("s1")
    assert got == session(snapshot={"step": "a", "vars": [1, 2]})
    assert await store.find_session_by_resume("hash-s1") == got
    assert await store.find_session_by_resume("nope") is None
    assert await store.get_session("nope") is None


async def test_duplicate_session_is_a_conflict(store: SQLiteStore) -> None:
    await store.create_session(session())
    with pytest.raises(StoreError) as info:
        await store.create_session(session())
    assert info.value.code == "conflict"


async def test_update_end_and_list(store: SQLiteStore) -> None:
    await store.create_session(session("a"))
    await store.create_session(session("b"))
    await store.update_session("a", at=105.0, current_step="plug", snapshot={"k": 1})
    got = await store.get_session("a")
    assert got is not None and (got.current_step, got.snapshot, got.updated_at, got.product) == (
        "plug", {"k": 1}, 105.0, "router_ax1800")
    await store.end_session("b", "resolved", at=110.0)
    assert [s.id for s in await store.list_sessions(live=True)] == ["a"]
    ended = await store.list_sessions(live=False)
    assert [(s.id, s.outcome, s.ended_at) for s in ended] == [("b", "resolved", 110.0)]
    assert len(await store.list_sessions()) == 2
    with pytest.raises(StoreError) as info:
        await store.update_session("zzz", at=1.0)
    assert info.value.code == "not_found"


async def test_step_history(store: SQLiteStore) -> None:
    await store.create_session(session())
    first = await store.enter_step("s1", "check_led", at=101.0)
    await store.verify_step("s1", "check_led", "vision", at=102.5)
    await store.enter_step("s1", "plug_wan", at=103.0)
    history = await store.step_history("s1")
    assert history == [StepRecord(first, "s1", "check_led", 101.0, 102.5, "vision"),
                       StepRecord(first + 1, "s1", "plug_wan", 103.0, None, None)]
    assert (await store.get_session("s1")).current_step == "plug_wan"  # type: ignore[union-attr]


@pytest.mark.parametrize(("session_id", "step", "how", "code"), [
    ("s1", "check_led", "magic", "bad_value"),
    ("s1", "never_entered", "user", "not_found"),
    ("other", "check_led", "user", "not_found"),
])
async def test_verify_step_errors(store: SQLiteStore, session_id: str, step: str, how: str, code: str) -> None:
    await store.create_session(session())
    await store.enter_step("s1", "check_led", at=101.0)
    with pytest.raises(StoreError) as info:
        await store.verify_step(session_id, step, how, at=102.0)  # type: ignore[arg-type]
    assert info.value.code == code


async def test_events_and_unknown_session(store: SQLiteStore) -> None:
    await store.create_session(session())
    await store.add_event("s1", "event.choose", at=101.0, data={"choice": "still_red"})
    await store.add_event("s1", "end", at=102.0)
    assert [(e.kind, e.data) for e in await store.events("s1")] == [("event.choose", {"choice": "still_red"}),
                                                                     ("end", None)]
    with pytest.raises(StoreError) as info:
        await store.add_event("ghost", "x", at=1.0)
    assert info.value.code == "not_found"
    with pytest.raises(StoreError) as info:
        await store.add_event("s1", "x", at=1.0, data={"bad": float("nan")})
    assert info.value.code == "bad_value"


async def test_escalations(store: SQLiteStore) -> None:
    await store.create_session(session())
    eid = await store.open_escalation("s1", "still red after reboot", at=120.0, context={"steps": ["a", "b"]})
    await store.update_escalation(eid, "taken", at=125.0, agent="alice")
    (open_one,) = await store.list_escalations()
    assert (open_one.status, open_one.agent, open_one.context, open_one.updated_at) == (
        "taken", "alice", {"steps": ["a", "b"]}, 125.0)
    await store.update_escalation(eid, "closed", at=130.0)  # agent kept
    assert (await store.list_escalations(status="closed"))[0].agent == "alice"
    assert await store.list_escalations(status="open") == []
    with pytest.raises(StoreError):
        await store.update_escalation(eid, "lost", at=1.0)  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        await store.update_escalation(999, "closed", at=1.0)


async def test_scene_versions_keep_history(store: SQLiteStore) -> None:
    assert await store.put_scene_version("wan_red", "v: 1\n", "carol", at=1.0) == 1
    assert await store.put_scene_version("wan_red", "v: 2\n", "dave", at=2.0) == 2
    assert await store.put_scene_version("other", "x: 1\n", "carol", at=3.0) == 1
    latest = await store.get_scene_version("wan_red")
    assert latest is not None and (latest.version, latest.yaml_text, latest.author) == (2, "v: 2\n", "dave")
    first = await store.get_scene_version("wan_red", 1)
    assert first is not None and first.yaml_text == "v: 1\n"
    assert [v.version for v in await store.scene_versions("wan_red")] == [1, 2]
    assert await store.get_scene_version("wan_red", 3) is None
    assert await store.get_scene_version("nope") is None


async def test_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    first = await SQLiteStore.open(path)
    await first.create_session(session())
    await first.enter_step("s1", "a", at=1.0)
    await first.close()
    await first.close()  # closing twice is fine
    with pytest.raises(StoreError) as info:
        await first.get_session("s1")
    assert info.value.code == "closed"
    second = await SQLiteStore.open(path)
    assert [s.step_id for s in await second.step_history("s1")] == ["a"]
    await second.close()


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
