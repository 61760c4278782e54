"""``PostgresStore``: the async ``Store`` over PostgreSQL (asyncpg), for several server nodes sharing one store.

Same meanings as ``SQLiteStore``, method for method. How each guarantee holds here:

- Atomic and durable once it returns: every method is one statement (atomic on its own) or one explicit
  transaction, committed before it returns; the server's default ``synchronous_commit=on`` flushes the WAL
  at each commit.
- Races between nodes are settled by the database, not by luck: ``take_escalation`` and ``use_link`` are
  conditional UPDATEs, which under READ COMMITTED re-check their condition after waiting for a concurrent
  writer, so exactly one of two callers wins; ``put_scene_version`` numbers versions under a per-scene
  advisory lock; ``verify_step`` locks the row it marks.
- Errors map as in SQLite: a unique or foreign-key violation is ``conflict``, a full disk is
  ``storage_full`` (the transaction is rolled back whole), a value PostgreSQL cannot hold (a NUL character
  in text) is ``bad_value``, a lost or refused connection is ``database``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from ar_server.errors import StoreError
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
)
from ar_server.store.json_columns import dump_json, load_json
from ar_server.store.postgres_schema import migrate

T = TypeVar("T")
URL_SCHEMES = ("postgresql", "postgres")
APPLICATION_NAME = "fixlens"  # shows in pg_stat_activity, so an operator can tell our connections apart
# First key of the two-key advisory lock that serialises version numbering per scene ("scen" in ASCII).
SCENE_VERSION_LOCK = 0x7363656E

_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&]*)", re.IGNORECASE)
_SESSION_COLUMNS = ("id, customer, resume_hash, created_at, updated_at, locale, product, scene, current_step, "
                    "snapshot, outcome, ended_at")
_ESCALATION_COLUMNS = "id, session_id, created_at, updated_at, reason, context, status, agent, accepted_at"
# Served by the indexes of migration 3: escalations_session, and the partial escalations_active, whose
# predicate this condition must match word for word for the planner to use it.
SESSION_ESCALATIONS_WHERE = "WHERE session_id = $1"
ACTIVE_ESCALATIONS_WHERE = "WHERE status <> 'closed'"


def redact_url(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` parameter) replaced by ``***``, fit for
    logs and error messages."""
    url = _QUERY_PASSWORD.sub(r"\1***", url)
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:
        return "<unparsable URL>"


def _hide_password(message: str, url: str) -> str:
    """``message`` with the URL's password (should a driver message quote it) replaced by ``***``."""
    passwords = [m.group(2) for m in _QUERY_PASSWORD.finditer(url)]
    try:
        passwords.append(urlsplit(url).password or "")
    except ValueError:
        pass
    for password in filter(None, passwords):
        message = message.replace(password, "***")
    return message


class PostgresStore:
    """Implements ``Store``. Create with ``await PostgresStore.open(url)``; ``await store.close()`` at the end."""

    def __init__(self, pool: asyncpg.Pool, shown_url: str) -> None:
        self._pool: asyncpg.Pool | None = pool
        self.url = shown_url  # password redacted

    @classmethod
    async def open(cls, url: str, *, min_connections: int = 1, max_connections: int = 10,
                   connect_timeout_s: float = 10.0) -> PostgresStore:
        """Connect to ``url`` (``postgresql://user:password@host:port/database``), apply pending migrations and
        return a store with a pool of at most ``max_connections`` connections.

        Raises ``StoreError``: ``bad_value`` for a URL that is not ``postgresql://``, ``database`` when the
        server cannot be reached or refuses us, ``schema_too_new`` for a database migrated by newer code.
        """
        shown = redact_url(url)
        if urlsplit(url).scheme not in URL_SCHEMES:
            raise StoreError("bad_value", f"database URL: expected postgresql://user:password@host:port/database, "
                                          f"got {shown!r}", "database_url")
        if not 1 <= min_connections <= max_connections:
            raise StoreError("bad_value", f"expected 1 <= min_connections <= max_connections, got "
                                          f"{min_connections} and {max_connections}", "max_connections")
        settings = {"application_name": APPLICATION_NAME}
        try:
            conn = await asyncpg.connect(url, timeout=connect_timeout_s, server_settings=settings)
            try:
                await migrate(conn)
            finally:
                await conn.close()
            pool = await asyncpg.create_pool(url, min_size=min_connections, max_size=max_connections,
                                             timeout=connect_timeout_s, server_settings=settings)
        except StoreError:
            raise
        except ValueError as exc:  # the driver's URL parser: e.g. a port that is not a number
            raise StoreError("bad_value", _hide_password(f"database URL {shown!r}: {exc}", url),
                             "database_url") from None
        except Exception as exc:
            mapped = _store_error(exc, f"cannot open the database {shown}")
            if mapped is None:
                raise
            raise StoreError(mapped.code, _hide_password(mapped.message, url), mapped.field) from None
        return cls(pool, shown)

    async def close(self) -> None:
        """Wait for calls in flight, then close every connection. Closing twice is a no-op."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``await fn(conn)`` in one transaction, with errors mapped as for the interface's methods; for
        admin tools and tests that need more than the interface."""
        async with self._tx("run") as conn:
            return await fn(conn)

    # ------------------------------------------------------------ plumbing

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("closed", "store is closed")
        return self._pool

    @asynccontextmanager
    async def _tx(self, what: str) -> AsyncIterator[asyncpg.Connection]:
        """One transaction on a pooled connection; ``what`` (the method) prefixes mapped error messages."""
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn, conn.transaction():
                yield conn
        except StoreError:
            raise
        except Exception as exc:
            mapped = _store_error(exc, what)
            if mapped is None:
                raise
            raise mapped from None

    async def _fetch(self, what: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        """One statement outside an explicit transaction (a single statement is atomic by itself)."""
        pool = self._require_pool()
        try:
            return await pool.fetch(sql, *args)
        except Exception as exc:
            mapped = _store_error(exc, what)
            if mapped is None:
                raise
            raise mapped from None

    async def _fetchval(self, what: str, sql: str, *args: Any) -> Any:
        rows = await self._fetch(what, sql, *args)
        return rows[0][0] if rows else None

    # ------------------------------------------------------------ sessions

    async def create_session(self, record: SessionRecord) -> None:
        r = record
        await self._fetch("create_session", f"INSERT INTO sessions ({_SESSION_COLUMNS}) "
                                            "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
                          r.id, r.customer, r.resume_hash, r.created_at, r.updated_at, r.locale, r.product, r.scene,
                          r.current_step, dump_json(r.snapshot, "snapshot"), r.outcome, r.ended_at)

    async def get_session(self, session_id: str) -> SessionRecord | None:
        rows = await self._fetch("get_session", f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = $1",
                                 session_id)
        return _session(rows[0]) if rows else None

    async def find_session_by_resume(self, resume_hash: str) -> SessionRecord | None:
        rows = await self._fetch("find_session_by_resume",
                                 f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE resume_hash = $1", resume_hash)
        return _session(rows[0]) if rows else None

    async def update_session(self, session_id: str, *, at: float, current_step: str | None = None,
                             snapshot: Any = None, product: str | None = None, scene: str | None = None,
                             resume_hash: str | None = None) -> None:
        """Set the given fields (None = leave unchanged) and ``updated_at``."""
        sets, args = ["updated_at = $2"], [session_id, at]
        for column, value in (("current_step", current_step), ("snapshot", dump_json(snapshot, "snapshot")),
                              ("product", product), ("scene", scene), ("resume_hash", resume_hash)):
            if value is not None:
                args.append(value)
                sets.append(f"{column} = ${len(args)}")
        found = await self._fetchval("update_session",
                                     f"UPDATE sessions SET {', '.join(sets)} WHERE id = $1 RETURNING 1", *args)
        if found is None:
            raise StoreError("not_found", f"no session {session_id!r}", "session")

    async def end_session(self, session_id: str, outcome: str, *, at: float) -> None:
        found = await self._fetchval("end_session", "UPDATE sessions SET outcome = $2, ended_at = $3, "
                                                    "updated_at = $3 WHERE id = $1 RETURNING 1",
                                     session_id, outcome, at)
        if found is None:
            raise StoreError("not_found", f"no session {session_id!r}", "session")

    async def list_sessions(self, *, live: bool | None = None, limit: int = 100) -> list[SessionRecord]:
        where = {None: "", True: "WHERE outcome IS NULL", False: "WHERE outcome IS NOT NULL"}[live]
        rows = await self._fetch("list_sessions", f"SELECT {_SESSION_COLUMNS} FROM sessions {where} "
                                                  "ORDER BY updated_at DESC, id LIMIT $1", max(0, int(limit)))
        return [_session(row) for row in rows]

    # ------------------------------------------------------------ steps and events

    async def enter_step(self, session_id: str, step_id: str, *, at: float) -> int:
        async with self._tx("enter_step") as c:
            # Updating the session first also locks its row, so steps of one session are entered one at a time.
            if await c.fetchval("UPDATE sessions SET current_step = $2, updated_at = $3 WHERE id = $1 RETURNING 1",
                                session_id, step_id, at) is None:
                raise StoreError("not_found", f"no session {session_id!r}", "session")
            return int(await c.fetchval("INSERT INTO step_history (session_id, step_id, entered_at) "
                                        "VALUES ($1, $2, $3) RETURNING id", session_id, step_id, at))

    async def verify_step(self, session_id: str, step_id: str, how: StepHow, *, at: float) -> None:
        """Mark the latest unverified entry of ``step_id`` in this session as verified."""
        if how not in STEP_HOWS:
            raise StoreError("bad_value", f"how must be one of {', '.join(STEP_HOWS)}, got {how!r}", "how")
        # FOR UPDATE: of two verifications at once the second waits, finds the row verified and skips it.
        found = await self._fetchval(
            "verify_step",
            "UPDATE step_history SET verified_at = $3, how = $4 WHERE id = (SELECT id FROM step_history "
            "WHERE session_id = $1 AND step_id = $2 AND verified_at IS NULL ORDER BY id DESC LIMIT 1 FOR UPDATE) "
            "RETURNING id", session_id, step_id, at, how)
        if found is None:
            raise StoreError("not_found", f"session {session_id!r} has no open step {step_id!r}", "step")

    async def step_history(self, session_id: str) -> list[StepRecord]:
        rows = await self._fetch("step_history", "SELECT id, session_id, step_id, entered_at, verified_at, how "
                                                 "FROM step_history WHERE session_id = $1 ORDER BY id", session_id)
        return [StepRecord(*row) for row in rows]

    async def add_event(self, session_id: str, kind: str, *, at: float, data: Any = None) -> int:
        event_id = await self._fetchval("add_event", "INSERT INTO events (session_id, at, kind, data) "
                                                     "SELECT $1, $2, $3, $4 WHERE EXISTS "
                                                     "(SELECT 1 FROM sessions WHERE id = $1) RETURNING id",
                                        session_id, at, kind, dump_json(data, "data"))
        return _inserted(event_id, session_id)

    async def events(self, session_id: str) -> list[EventRecord]:
        rows = await self._fetch("events", "SELECT id, session_id, at, kind, data FROM events "
                                           "WHERE session_id = $1 ORDER BY id", session_id)
        return [EventRecord(id=r[0], session_id=r[1], at=r[2], kind=r[3], data=load_json(r[4])) for r in rows]

    # ------------------------------------------------------------ escalations

    async def open_escalation(self, session_id: str, reason: str, *, at: float, context: Any = None) -> int:
        escalation_id = await self._fetchval(
            "open_escalation",
            "INSERT INTO escalations (session_id, created_at, updated_at, reason, context, status) "
            "SELECT $1, $2, $2, $3, $4, 'open' WHERE EXISTS (SELECT 1 FROM sessions WHERE id = $1) RETURNING id",
            session_id, at, reason, dump_json(context, "context"))
        return _inserted(escalation_id, session_id)

    async def update_escalation(self, escalation_id: int, status: EscalationStatus, *, at: float,
                                agent: str | None = None) -> None:
        if status not in ESCALATION_STATUSES:
            raise StoreError("bad_value", f"status must be one of {', '.join(ESCALATION_STATUSES)}, got {status!r}",
                             "status")
        found = await self._fetchval("update_escalation", "UPDATE escalations SET status = $2, "
                                                          "agent = COALESCE($3, agent), updated_at = $4 "
                                                          "WHERE id = $1 RETURNING 1",
                                     escalation_id, status, agent, at)
        if found is None:
            raise StoreError("not_found", f"no escalation {escalation_id}", "escalation")

    async def list_escalations(self, *, status: EscalationStatus | None = None) -> list[EscalationRecord]:
        """Every escalation (or those with ``status``), oldest first: a whole-table read, for reports."""
        if status:
            return await self._escalations("list_escalations", "WHERE status = $1", status)
        return await self._escalations("list_escalations", "")

    async def get_escalation(self, escalation_id: int) -> EscalationRecord | None:
        found = await self._escalations("get_escalation", "WHERE id = $1", escalation_id)
        return found[0] if found else None

    async def session_escalations(self, session_id: str) -> list[EscalationRecord]:
        return await self._escalations("session_escalations", SESSION_ESCALATIONS_WHERE, session_id)

    async def active_escalations(self) -> list[EscalationRecord]:
        return await self._escalations("active_escalations", ACTIVE_ESCALATIONS_WHERE)

    async def _escalations(self, what: str, where: str, *args: Any) -> list[EscalationRecord]:
        rows = await self._fetch(what, f"SELECT {_ESCALATION_COLUMNS} FROM escalations {where} ORDER BY id", *args)
        return [EscalationRecord(id=r[0], session_id=r[1], created_at=r[2], updated_at=r[3], reason=r[4],
                                 context=load_json(r[5]), status=r[6], agent=r[7], accepted_at=r[8]) for r in rows]

    async def accept_escalation(self, escalation_id: int, *, at: float) -> None:
        """The customer accepted help from a person: the escalation joins the agent queue (first time only)."""
        found = await self._fetchval("accept_escalation", "UPDATE escalations SET accepted_at = "
                                                          "COALESCE(accepted_at, $2), updated_at = $2 "
                                                          "WHERE id = $1 RETURNING 1", escalation_id, at)
        if found is None:
            raise StoreError("not_found", f"no escalation {escalation_id}", "escalation")

    async def take_escalation(self, escalation_id: int, agent: str, *, at: float) -> bool:
        """``agent`` takes an open escalation; False when it is no longer open (another agent was faster)."""
        taken = await self._fetchval("take_escalation", "UPDATE escalations SET status = 'taken', agent = $2, "
                                                        "updated_at = $3 WHERE id = $1 AND status = 'open' "
                                                        "RETURNING 1", escalation_id, agent, at)
        return taken is not None

    # ------------------------------------------------------------ agents and links

    async def add_agent_action(self, session_id: str, agent: str, kind: str, *, at: float, data: Any = None,
                               escalation_id: int | None = None) -> int:
        action_id = await self._fetchval(
            "add_agent_action",
            "INSERT INTO agent_actions (session_id, escalation_id, at, agent, kind, data) "
            "SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM sessions WHERE id = $1) RETURNING id",
            session_id, escalation_id, at, agent, kind, dump_json(data, "data"))
        return _inserted(action_id, session_id)

    async def agent_actions(self, session_id: str) -> list[AgentAction]:
        rows = await self._fetch("agent_actions", "SELECT id, session_id, at, agent, kind, data, escalation_id "
                                                  "FROM agent_actions WHERE session_id = $1 ORDER BY id", session_id)
        return [AgentAction(id=r[0], session_id=r[1], at=r[2], agent=r[3], kind=r[4], data=load_json(r[5]),
                            escalation_id=r[6]) for r in rows]

    async def create_link(self, token_hash: str, session_id: str, *, at: float, expires_at: float) -> None:
        found = await self._fetchval("create_link", "INSERT INTO links (token_hash, session_id, created_at, "
                                                    "expires_at) SELECT $1, $2, $3, $4 WHERE EXISTS "
                                                    "(SELECT 1 FROM sessions WHERE id = $2) RETURNING 1",
                                     token_hash, session_id, at, expires_at)
        if found is None:
            raise StoreError("not_found", f"no session {session_id!r}", "session")

    async def use_link(self, token_hash: str, *, at: float) -> tuple[LinkOutcome, str | None]:
        """Exchange a link once: ("ok", session id), or ("unknown" | "used" | "expired", None). The check and
        the mark are one conditional UPDATE, so of two exchanges at once exactly one succeeds."""
        session_id = await self._fetchval("use_link", "UPDATE links SET used_at = $2 WHERE token_hash = $1 "
                                                      "AND used_at IS NULL AND $2 < expires_at RETURNING session_id",
                                          token_hash, at)
        if session_id is not None:
            return "ok", str(session_id)
        rows = await self._fetch("use_link", "SELECT used_at FROM links WHERE token_hash = $1", token_hash)
        if not rows:
            return "unknown", None
        return ("used" if rows[0][0] is not None else "expired"), None

    # ------------------------------------------------------------ scene versions

    async def put_scene_version(self, scene_id: str, yaml_text: str, author: str, *, at: float) -> int:
        """Store a new version (earlier ones are kept); returns its number, 1 for a new scene."""
        async with self._tx("put_scene_version") as c:
            # Two editors saving one scene at once would both read the same MAX; the lock (released at commit)
            # makes the second read after the first committed. hashtext collisions only serialise more.
            await c.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", SCENE_VERSION_LOCK, scene_id)
            return int(await c.fetchval("INSERT INTO scene_versions (scene_id, version, yaml_text, author, "
                                        "created_at) SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4 "
                                        "FROM scene_versions WHERE scene_id = $1 RETURNING version",
                                        scene_id, yaml_text, author, at))

    async def get_scene_version(self, scene_id: str, version: int | None = None) -> SceneVersion | None:
        sql = "SELECT scene_id, version, yaml_text, author, created_at FROM scene_versions WHERE scene_id = $1"
        if version is None:
            rows = await self._fetch("get_scene_version", sql + " ORDER BY version DESC LIMIT 1", scene_id)
        else:
            rows = await self._fetch("get_scene_version", sql + " AND version = $2", scene_id, int(version))
        return SceneVersion(*rows[0]) if rows else None

    async def scene_versions(self, scene_id: str) -> list[SceneVersion]:
        rows = await self._fetch("scene_versions", "SELECT scene_id, version, yaml_text, author, created_at "
                                                   "FROM scene_versions WHERE scene_id = $1 ORDER BY version",
                                 scene_id)
        return [SceneVersion(*row) for row in rows]


# ---------------------------------------------------------------- helpers


def _store_error(exc: BaseException, what: str) -> StoreError | None:
    """The ``StoreError`` for a driver or network error, or None for anything else (a bug: let it raise)."""
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return StoreError("conflict", f"{what}: {exc}")
    if isinstance(exc, asyncpg.DiskFullError):
        return StoreError("storage_full", f"{what}: the database is full, nothing was written: {exc}")
    if isinstance(exc, asyncpg.DataError):  # e.g. a NUL character, which PostgreSQL text and JSONB cannot hold
        return StoreError("bad_value", f"{what}: PostgreSQL cannot store this value: {exc}")
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError | OSError | TimeoutError):
        return StoreError("database", f"{what}: {type(exc).__name__}: {exc}")
    return None


def _inserted(row_id: int | None, session_id: str) -> int:
    """The id of a row inserted only if its session exists."""
    if row_id is None:
        raise StoreError("not_found", f"no session {session_id!r}", "session")
    return int(row_id)


def _session(row: asyncpg.Record) -> SessionRecord:
    return SessionRecord(id=row[0], customer=row[1], resume_hash=row[2], created_at=row[3], updated_at=row[4],
                         locale=row[5], product=row[6], scene=row[7], current_step=row[8], snapshot=load_json(row[9]),
                         outcome=row[10], ended_at=row[11])
