"""What only the PostgreSQL store does: migrations on open, URLs, errors PostgreSQL raises, a server that dies."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ar_server.errors import StoreError
from ar_server.store import SessionRecord, SQLiteStore
from ar_server.store import schema as sqlite_schema
from ar_server.store.backends import open_store
from ar_server.store.postgres_schema import MIGRATIONS, SCHEMA_VERSION
from ar_server.store.postgres_store import (
    ACTIVE_ESCALATIONS_WHERE,
    SESSION_ESCALATIONS_WHERE,
    PostgresStore,
    redact_url,
)
from tests.ar_server.store.conftest import PostgresCluster


def session(sid: str = "s1") -> SessionRecord:
    return SessionRecord(id=sid, customer="c", resume_hash=f"hash-{sid}", created_at=1.0, updated_at=1.0)


async def versions(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch("SELECT version FROM schema_version ORDER BY version")]
    finally:
        await conn.close()


async def test_open_applies_each_migration_once(postgres_database: str) -> None:
    assert SCHEMA_VERSION == len(MIGRATIONS) >= 2
    store = await PostgresStore.open(postgres_database)
    await store.close()
    store = await PostgresStore.open(postgres_database)  # nothing left to do the second time
    await store.close()
    assert await versions(postgres_database) == list(range(1, SCHEMA_VERSION + 1))


def test_a_schema_version_means_the_same_tables_on_both_backends() -> None:
    """A migration added to one backend's list must be added to the other's with the same number."""
    assert SCHEMA_VERSION == sqlite_schema.SCHEMA_VERSION


@pytest.mark.parametrize(("where", "args", "index"), [
    (SESSION_ESCALATIONS_WHERE, ("s1",), "escalations_session"),
    (ACTIVE_ESCALATIONS_WHERE, (), "escalations_active"),
])
async def test_escalation_lookups_can_use_their_index(postgres_database: str, where: str, args: tuple[str, ...],
                                                      index: str) -> None:
    """With sequential scans priced out, the planner picks the index; a query whose condition no index covers
    (say, a partial index predicate written differently) would still scan the table."""
    store = await PostgresStore.open(postgres_database)
    try:
        async def plan(conn: asyncpg.Connection) -> str:
            await conn.execute("SET LOCAL enable_seqscan = off")
            rows = await conn.fetch(f"EXPLAIN SELECT * FROM escalations {where} ORDER BY id", *args)
            return "\n".join(r[0] for r in rows)

        text = await store.run(plan)
        assert index in text and "Seq Scan" not in text, text
    finally:
        await store.close()


async def test_nodes_starting_together_migrate_once(postgres_database: str) -> None:
    """Several servers opening one fresh database at once: without the migration lock they race on CREATE."""
    stores = await asyncio.gather(*[PostgresStore.open(postgres_database) for _ in range(4)])
    try:
        await stores[0].create_session(session())
        assert (await stores[3].get_session("s1")) == session()
    finally:
        await asyncio.gather(*[s.close() for s in stores])
    assert await versions(postgres_database) == list(range(1, SCHEMA_VERSION + 1))


async def test_newer_schema_is_refused(postgres_database: str) -> None:
    await (await PostgresStore.open(postgres_database)).close()
    conn = await asyncpg.connect(postgres_database)
    await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", SCHEMA_VERSION + 1)
    await conn.close()
    with pytest.raises(StoreError) as info:
        await PostgresStore.open(postgres_database)
    assert info.value.code == "schema_too_new"


@pytest.mark.parametrize(("url", "code", "shown"), [
    ("sqlite:///tmp/x.db", "bad_value", "sqlite:///tmp/x.db"),
    ("/var/lib/fixlens.db", "bad_value", "/var/lib/fixlens.db"),
    ("postgresql://u:s3cret@127.0.0.1:notaport/db", "bad_value", "u:***@"),
    ("postgresql://u:s3cret@127.0.0.1:{closed_port}/db", "database", "u:***@127.0.0.1"),
])
async def test_bad_urls_are_clear_errors_that_hide_the_password(postgres_cluster: PostgresCluster, url: str,
                                                                 code: str, shown: str) -> None:
    closed_port = postgres_cluster.port + 1 if postgres_cluster.port < 65535 else 1  # nothing listens there
    with pytest.raises(StoreError) as info:
        await PostgresStore.open(url.format(closed_port=closed_port), connect_timeout_s=5.0)
    assert info.value.code == code and shown in info.value.message
    assert "s3cret" not in str(info.value)


async def test_unknown_database_is_a_database_error(postgres_cluster: PostgresCluster) -> None:
    with pytest.raises(StoreError) as info:
        await PostgresStore.open(postgres_cluster.url("no_such_database"))
    assert info.value.code == "database" and "no_such_database" in info.value.message


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://app:pw@db:5432/fixlens", "postgresql://app:***@db:5432/fixlens"),
    ("postgresql://app@db/fixlens", "postgresql://app@db/fixlens"),
    ("postgresql://app:p%40ss@db/fixlens?sslmode=require", "postgresql://app:***@db/fixlens?sslmode=require"),
    ("postgresql://app@db/fixlens?password=s3cret&sslmode=require",
     "postgresql://app@db/fixlens?password=***&sslmode=require"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


async def test_a_full_disk_rolls_back_the_whole_transaction(postgres_database: str) -> None:
    """PostgreSQL reports a full disk as SQLSTATE 53100; a function raising exactly that inside the transaction
    stands in for the disk, since filling a real one would need a mount the tests cannot make."""
    store = await PostgresStore.open(postgres_database)
    try:
        async def write_then_fill(conn: asyncpg.Connection) -> None:
            await conn.execute("INSERT INTO scene_versions (scene_id, version, yaml_text, author, created_at) "
                               "VALUES ('big', 1, 'x', 'ann', 1)")
            await conn.execute("DO $$ BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = 'disk_full'; "
                               "END $$")

        with pytest.raises(StoreError) as info:
            await store.run(write_then_fill)
        assert info.value.code == "storage_full" and "nothing was written" in info.value.message
        assert await store.get_scene_version("big") is None  # the insert before it was rolled back
        assert await store.put_scene_version("big", "y", "ann", at=2.0) == 1  # and the store goes on
    finally:
        await store.close()


@pytest.mark.parametrize("field", ["reason", "context"])
async def test_a_nul_character_is_a_bad_value(postgres_database: str, field: str) -> None:
    """PostgreSQL text and JSONB cannot hold U+0000 (SQLite can): the caller gets bad_value, not a crash."""
    store = await PostgresStore.open(postgres_database)
    try:
        await store.create_session(session())
        reason, context = ("a\x00b", None) if field == "reason" else ("r", {"note": "a\x00b"})
        with pytest.raises(StoreError) as info:
            await store.open_escalation("s1", reason, at=1.0, context=context)
        assert info.value.code == "bad_value" and info.value.message.startswith("open_escalation:")
        assert await store.list_escalations() == []
    finally:
        await store.close()


async def test_committed_writes_survive_a_server_crash_and_the_store_reconnects(
        postgres_cluster: PostgresCluster, postgres_database: str) -> None:
    store = await PostgresStore.open(postgres_database, max_connections=2)
    try:
        await store.create_session(session())
        for i in range(20):
            await store.enter_step("s1", f"step{i}", at=float(i))
            await store.verify_step("s1", f"step{i}", "vision", at=i + 0.5)
        postgres_cluster.stop("immediate")  # a crash: no shutdown checkpoint, WAL replay at the next start
        with pytest.raises(StoreError) as info:
            await store.get_session("s1")
        assert info.value.code == "database"
        postgres_cluster.start(postgres_cluster.port)
        # The pool drops the dead connections and opens new ones: the same store works again.
        history = await store.step_history("s1")
        assert [(s.step_id, s.verified_at, s.how) for s in history] == [
            (f"step{i}", i + 0.5, "vision") for i in range(20)]
    finally:
        if not (postgres_cluster.data / "postmaster.pid").exists():
            postgres_cluster.start(postgres_cluster.port)  # leave the shared server running for later tests
        await store.close()


async def test_open_store_picks_the_backend_from_the_url(postgres_database: str, tmp_path: Path) -> None:
    sqlite = await open_store(None, tmp_path / "fixlens.db")
    await sqlite.close()
    assert isinstance(sqlite, SQLiteStore) and (tmp_path / "fixlens.db").exists()
    postgres = await open_store(postgres_database.replace("postgresql://", "POSTGRES://"), tmp_path / "unused.db")
    await postgres.close()
    assert isinstance(postgres, PostgresStore) and not (tmp_path / "unused.db").exists()
    with pytest.raises(StoreError) as info:  # a typo must not fall back to a local file
        await open_store("postgresq://app:s3cret@db/fixlens", tmp_path / "typo.db")
    assert (info.value.code, info.value.field) == ("bad_value", "database_url") and "s3cret" not in str(info.value)
    assert not (tmp_path / "typo.db").exists()


async def test_a_server_configured_with_a_database_url_keeps_its_sessions_in_postgresql(
        start_server: Any, connect: Any, authority: Any, twin_frames: Any, postgres_database: str) -> None:
    """``database_url`` reaches the app: a whole vision-verified session is recorded in PostgreSQL, and a
    second node opening the same database reads it."""
    from ar_server.app_keys import STORE
    from ar_server.store import PostgresStore
    from tests.ar_server.conftest import stream_frames

    server = await start_server(database_url=postgres_database)
    assert isinstance(server.app[STORE], PostgresStore)
    client = await connect(server)
    welcome = await client.hello(authority.mint("customer", "cust-pg", 600))
    end = await stream_frames(client, twin_frames.fault, seconds=4, until=lambda m: m.t == "step")
    assert end is not None and end.step == "check_wan"
    end = await stream_frames(client, twin_frames.fixed, seconds=6, until=lambda m: m.t == "end")
    assert end is not None and end.outcome == "resolved"
    other_node = await open_store(postgres_database, Path("unused.db"))
    try:
        history = await other_node.step_history(welcome.session)
    finally:
        await other_node.close()
    assert [(s.step_id, s.how) for s in history] == [("check_wan", "vision"), ("resolved", None)]
