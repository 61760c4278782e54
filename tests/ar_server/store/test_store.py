"""The ``Store`` contract, run against every backend (SQLite and PostgreSQL) through the ``store`` fixture.

Backend-specific behaviour (SQLite's WAL and thread, PostgreSQL's migrations and server loss) is tested in
``test_sqlite_store.py`` and ``test_postgres_store.py``.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest

from ar_server.errors import StoreError
from ar_server.store import SessionRecord, SQLiteStore, StepRecord, Store
from ar_server.store.postgres_store import PostgresStore
from tests.ar_server.store.conftest import StoreTarget


def session(sid: str = "s1", **changes: object) -> SessionRecord:
    base = dict(id=sid, customer="cust-1", resume_hash=f"hash-{sid}", created_at=100.0, updated_at=100.0,
                locale="fr", product="router_ax1800", scene="router_wan_red")
    base.update(changes)
    return SessionRecord(**base)  # type: ignore[arg-type]


def interface_methods() -> list[str]:
    return sorted(name for name, value in vars(Store).items() if inspect.iscoroutinefunction(value))


@pytest.mark.parametrize("backend", [SQLiteStore, PostgresStore], ids=["sqlite", "postgres"])
def test_every_backend_implements_the_whole_interface(backend: type) -> None:
    """A method added to ``Store`` must exist, with the same parameters, in every backend."""
    assert len(interface_methods()) >= 20
    for name in interface_methods():
        assert inspect.iscoroutinefunction(getattr(backend, name, None)), f"{backend.__name__} lacks {name}"
        assert inspect.signature(getattr(backend, name)) == inspect.signature(getattr(Store, name)), name


async def test_session_round_trip_and_resume_lookup(store: Store) -> None:
    await store.create_session(session(snapshot={"step": "a", "vars": [1, 2]}))
    got = await store.get_session("s1")
    assert got == session(snapshot={"step": "a", "vars": [1, 2]})
    assert await store.find_session_by_resume("hash-s1") == got
    assert await store.find_session_by_resume("nope") is None
    assert await store.get_session("nope") is None


async def test_values_come_back_exactly(store: Store) -> None:
    snapshot = {"text": "LED rouge ✓ 路由器", "big": 2**62, "float": 0.1 + 0.2, "nested": {"list": [None, True, -3.5]},
                "empty": {}}
    record = session(created_at=1_764_490_000.123456, updated_at=1_764_490_001.5, snapshot=snapshot, locale="zh",
                     product=None, scene=None, current_step="a b", outcome="resolved", ended_at=1_764_490_002.25)
    await store.create_session(record)
    assert await store.get_session("s1") == record


async def test_duplicate_session_is_a_conflict(store: Store) -> None:
    await store.create_session(session())
    with pytest.raises(StoreError) as info:
        await store.create_session(session())
    assert info.value.code == "conflict"
    with pytest.raises(StoreError) as info:
        await store.create_session(session("other", resume_hash="hash-s1"))  # resume hashes are unique too
    assert info.value.code == "conflict"


async def test_resume_token_rotation(store: Store) -> None:
    """A resume rotates the token: the new hash finds the session, the old one nothing."""
    await store.create_session(session("a"))
    await store.create_session(session("b"))
    await store.update_session("a", at=101.0, resume_hash="hash-a2")
    assert await store.find_session_by_resume("hash-a") is None
    assert (await store.find_session_by_resume("hash-a2")).id == "a"  # type: ignore[union-attr]
    before = await store.get_session("a")
    with pytest.raises(StoreError) as info:  # another session's hash: refused, and nothing of it written
        await store.update_session("a", at=102.0, resume_hash="hash-b", current_step="x")
    assert info.value.code == "conflict"
    assert await store.get_session("a") == before


async def test_update_end_and_list(store: Store) -> None:
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
    assert [s.id for s in await store.list_sessions()] == ["b", "a"]  # most recently updated first
    assert [s.id for s in await store.list_sessions(limit=1)] == ["b"]
    assert await store.list_sessions(limit=-5) == []
    for call in (store.update_session("zzz", at=1.0), store.end_session("zzz", "resolved", at=1.0)):
        with pytest.raises(StoreError) as info:
            await call
        assert info.value.code == "not_found"


async def test_list_ties_sort_by_id_bytes(store: Store) -> None:
    for sid in ("b", "B", "a", "_"):
        await store.create_session(session(sid))
    assert [s.id for s in await store.list_sessions()] == ["B", "_", "a", "b"]


async def test_step_history(store: Store) -> None:
    await store.create_session(session())
    first = await store.enter_step("s1", "check_led", at=101.0)
    await store.verify_step("s1", "check_led", "vision", at=102.5)
    await store.enter_step("s1", "plug_wan", at=103.0)
    history = await store.step_history("s1")
    assert history == [StepRecord(first, "s1", "check_led", 101.0, 102.5, "vision"),
                       StepRecord(first + 1, "s1", "plug_wan", 103.0, None, None)]
    assert (await store.get_session("s1")).current_step == "plug_wan"  # type: ignore[union-attr]
    with pytest.raises(StoreError) as info:
        await store.enter_step("ghost", "a", at=1.0)
    assert info.value.code == "not_found"


async def test_verify_marks_the_latest_open_entry(store: Store) -> None:
    await store.create_session(session())
    older = await store.enter_step("s1", "a", at=1.0)
    newer = await store.enter_step("s1", "a", at=2.0)
    await store.verify_step("s1", "a", "user", at=3.0)
    await store.verify_step("s1", "a", "timeout", at=4.0)
    assert [(s.id, s.how) for s in await store.step_history("s1")] == [(older, "timeout"), (newer, "user")]


@pytest.mark.parametrize(("session_id", "step", "how", "code"), [
    ("s1", "check_led", "magic", "bad_value"),
    ("s1", "never_entered", "user", "not_found"),
    ("other", "check_led", "user", "not_found"),
])
async def test_verify_step_errors(store: Store, session_id: str, step: str, how: str, code: str) -> None:
    await store.create_session(session())
    await store.enter_step("s1", "check_led", at=101.0)
    with pytest.raises(StoreError) as info:
        await store.verify_step(session_id, step, how, at=102.0)  # type: ignore[arg-type]
    assert info.value.code == code


async def test_events_and_unknown_session(store: Store) -> None:
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
    assert len(await store.events("s1")) == 2
    assert await store.events("ghost") == []


async def test_escalations(store: Store) -> None:
    await store.create_session(session())
    eid = await store.open_escalation("s1", "still red after reboot", at=120.0, context={"steps": ["a", "b"]})
    await store.update_escalation(eid, "taken", at=125.0, agent="alice")
    (open_one,) = await store.list_escalations()
    assert (open_one.status, open_one.agent, open_one.context, open_one.updated_at, open_one.created_at) == (
        "taken", "alice", {"steps": ["a", "b"]}, 125.0, 120.0)
    await store.update_escalation(eid, "closed", at=130.0)  # agent kept
    assert (await store.list_escalations(status="closed"))[0].agent == "alice"
    assert await store.list_escalations(status="open") == []
    with pytest.raises(StoreError):
        await store.update_escalation(eid, "lost", at=1.0)  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        await store.update_escalation(999, "closed", at=1.0)
    with pytest.raises(StoreError) as info:
        await store.open_escalation("ghost", "x", at=1.0)
    assert info.value.code == "not_found"


async def test_escalation_lookups(store: Store) -> None:
    await store.create_session(session("a"))
    await store.create_session(session("b"))
    a1 = await store.open_escalation("a", "first", at=1.0, context={"k": 1})
    b1 = await store.open_escalation("b", "other session", at=2.0)
    a2 = await store.open_escalation("a", "second", at=3.0)
    a3 = await store.open_escalation("a", "third", at=4.0)
    assert await store.take_escalation(a2, "alice", at=5.0)
    await store.update_escalation(a1, "closed", at=6.0)
    got = await store.get_escalation(a1)
    assert got is not None and (got.id, got.session_id, got.reason, got.context, got.status, got.agent) == (
        a1, "a", "first", {"k": 1}, "closed", None)
    assert await store.get_escalation(a3 + 100) is None
    assert [e.id for e in await store.session_escalations("a")] == [a1, a2, a3]  # whatever the status
    assert await store.session_escalations("ghost") == []
    assert [(e.id, e.status) for e in await store.active_escalations()] == [(b1, "open"), (a2, "taken"),
                                                                             (a3, "open")]


async def test_accept_and_take_escalation(store: Store) -> None:
    await store.create_session(session())
    eid = await store.open_escalation("s1", "help", at=1.0)
    await store.accept_escalation(eid, at=2.0)
    await store.accept_escalation(eid, at=3.0)  # the first acceptance time stays
    (record,) = await store.list_escalations()
    assert (record.accepted_at, record.updated_at, record.status) == (2.0, 3.0, "open")
    assert await store.take_escalation(eid, "alice", at=4.0) is True
    assert await store.take_escalation(eid, "bob", at=5.0) is False
    (record,) = await store.list_escalations()
    assert (record.status, record.agent, record.updated_at) == ("taken", "alice", 4.0)
    assert await store.take_escalation(999, "bob", at=6.0) is False
    with pytest.raises(StoreError) as info:
        await store.accept_escalation(999, at=1.0)
    assert info.value.code == "not_found"


async def test_agent_actions(store: Store) -> None:
    await store.create_session(session())
    eid = await store.open_escalation("s1", "help", at=1.0)
    first = await store.add_agent_action("s1", "alice", "take", at=2.0, escalation_id=eid)
    await store.add_agent_action("s1", "alice", "point", at=3.0, data={"part": "port_wan"})
    actions = await store.agent_actions("s1")
    assert [(a.id, a.agent, a.kind, a.data, a.escalation_id, a.at) for a in actions] == [
        (first, "alice", "take", None, eid, 2.0), (first + 1, "alice", "point", {"part": "port_wan"}, None, 3.0)]
    with pytest.raises(StoreError) as info:
        await store.add_agent_action("ghost", "alice", "take", at=1.0)
    assert info.value.code == "not_found"
    with pytest.raises(StoreError) as info:
        await store.add_agent_action("s1", "alice", "take", at=1.0, escalation_id=eid + 100)
    assert info.value.code == "conflict"  # a foreign key to no escalation


async def test_links_are_single_use(store: Store) -> None:
    await store.create_session(session())
    await store.create_link("tok-a", "s1", at=10.0, expires_at=20.0)
    await store.create_link("tok-b", "s1", at=10.0, expires_at=20.0)
    assert await store.use_link("tok-a", at=15.0) == ("ok", "s1")
    assert await store.use_link("tok-a", at=16.0) == ("used", None)
    assert await store.use_link("tok-b", at=20.0) == ("expired", None)  # expiry is exclusive
    assert await store.use_link("tok-zzz", at=15.0) == ("unknown", None)
    with pytest.raises(StoreError) as info:
        await store.create_link("tok-a", "s1", at=10.0, expires_at=20.0)
    assert info.value.code == "conflict"
    with pytest.raises(StoreError) as info:
        await store.create_link("tok-c", "ghost", at=10.0, expires_at=20.0)
    assert info.value.code == "not_found"


async def test_scene_versions_keep_history(store: Store) -> None:
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


# ---------------------------------------------------------------- two stores on the same data (two nodes)


async def test_two_nodes_racing_for_one_escalation_one_wins(store: Store, store_target: StoreTarget) -> None:
    other = await store_target.open()
    try:
        await store.create_session(session())
        for round_ in range(5):
            eid = await store.open_escalation("s1", f"help {round_}", at=1.0)
            calls = [node.take_escalation(eid, f"agent-{i}", at=2.0) for i in range(4) for node in (store, other)]
            results = await asyncio.gather(*calls)
            assert sorted(results) == [False] * 7 + [True]
            (record,) = [r for r in await other.list_escalations() if r.id == eid]
            assert record.agent == f"agent-{results.index(True) // 2}"  # calls alternate between the nodes
    finally:
        await other.close()


async def test_two_nodes_exchanging_one_link_one_wins(store: Store, store_target: StoreTarget) -> None:
    other = await store_target.open()
    try:
        await store.create_session(session())
        for round_ in range(5):
            await store.create_link(f"tok-{round_}", "s1", at=1.0, expires_at=100.0)
            results = await asyncio.gather(*[node.use_link(f"tok-{round_}", at=2.0)
                                             for _ in range(4) for node in (store, other)])
            assert sorted(results) == [("ok", "s1")] + [("used", None)] * 7
    finally:
        await other.close()


async def test_two_nodes_saving_one_scene_get_distinct_versions(store: Store, store_target: StoreTarget) -> None:
    other = await store_target.open()
    try:
        versions = await asyncio.gather(*[node.put_scene_version("wan_red", f"v: {i}\n", "carol", at=float(i))
                                          for i in range(6) for node in (store, other)])
        assert sorted(versions) == list(range(1, 13))
        assert [v.version for v in await other.scene_versions("wan_red")] == list(range(1, 13))
    finally:
        await other.close()


async def test_data_survives_reopen_and_a_closed_store_says_so(store_target: StoreTarget) -> None:
    await store_target.reset()
    first = await store_target.open()
    await first.create_session(session())
    await first.enter_step("s1", "a", at=1.0)
    await first.close()
    await first.close()  # closing twice is fine
    with pytest.raises(StoreError) as info:
        await first.get_session("s1")
    assert info.value.code == "closed"
    second = await store_target.open()
    try:
        assert [s.step_id for s in await second.step_history("s1")] == ["a"]
    finally:
        await second.close()
