"""The SQLite store's blocking half: one connection, used from one thread only.

Durability: the database runs in WAL mode. Each public method is one transaction, committed before it
returns. With ``synchronous=NORMAL`` a commit is written to the WAL file (the OS page cache) but not
fsync'ed, so killing the *process* (even SIGKILL) loses nothing committed: the kernel still holds and later
writes those pages. Only an OS crash or power loss can drop the last few commits; ``synchronous=FULL``
fsyncs every commit and survives those too, at a few milliseconds per write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from ar_server.errors import StoreError
from ar_server.store.base import (
    ESCALATION_STATUSES,
    STEP_HOWS,
    AgentAction,
    EscalationRecord,
    EventRecord,
    SceneVersion,
    SessionRecord,
    StepRecord,
)
from ar_server.store.json_columns import dump_json, load_json
from ar_server.store.schema import migrate

_SESSION_COLUMNS = ("id, customer, resume_hash, created_at, updated_at, locale, product, scene, current_step, "
                    "snapshot, outcome, ended_at")


class SQLiteDatabase:
    """Blocking store operations (same names and meanings as ``Store``). Not thread-safe by design:
    ``SQLiteStore`` confines it to one thread."""

    def __init__(self, path: str | Path, *, synchronous: Literal["normal", "full"] = "normal") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: no implicit transactions; _tx() issues BEGIN/COMMIT itself.
            self._conn = sqlite3.connect(str(path), isolation_level=None)
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode not in ("wal", "memory"):
                raise StoreError("database", f"{path}: could not enable WAL mode (got {mode!r})")
            self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA busy_timeout=5000")
            migrate(self._conn)
        except sqlite3.Error as exc:
            raise StoreError("database", f"{path}: {exc}") from None
        self.path = path

    def close(self) -> None:
        self._conn.close()

    def pragma(self, name: str) -> Any:
        """Read one PRAGMA (for checks and tests): ``db.pragma("journal_mode") -> "wal"``."""
        if not name.isidentifier():
            raise StoreError("bad_value", f"not a pragma name: {name!r}")
        return self._conn.execute(f"PRAGMA {name}").fetchone()[0]

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so a second process gets SQLITE_BUSY (and waits up to
        # busy_timeout) at BEGIN instead of failing half-way through.
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.ProgrammingError as exc:
            raise StoreError("closed", f"store is closed: {exc}") from None
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            self._rollback()
            raise StoreError("conflict", str(exc)) from None
        except sqlite3.Error as exc:
            self._rollback()
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                raise StoreError("storage_full", f"the database is full, nothing was written: {exc}") from None
            raise StoreError("database", str(exc)) from None
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        # On a full disk or an I/O error SQLite may already have rolled the transaction back itself; an
        # explicit ROLLBACK would then raise and hide the real error behind "no transaction is active".
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.ProgrammingError as exc:
            raise StoreError("closed", f"store is closed: {exc}") from None

    # ------------------------------------------------------------ sessions

    def create_session(self, r: SessionRecord) -> None:
        snapshot = dump_json(r.snapshot, "snapshot")
        with self._tx() as c:
            c.execute(f"INSERT INTO sessions ({_SESSION_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                      (r.id, r.customer, r.resume_hash, r.created_at, r.updated_at, r.locale, r.product, r.scene,
                       r.current_step, snapshot, r.outcome, r.ended_at))

    def get_session(self, session_id: str) -> SessionRecord | None:
        rows = self._read(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,))
        return _session(rows[0]) if rows else None

    def find_session_by_resume(self, resume_hash: str) -> SessionRecord | None:
        rows = self._read(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE resume_hash = ?", (resume_hash,))
        return _session(rows[0]) if rows else None

    def update_session(self, session_id: str, *, at: float, current_step: str | None = None, snapshot: Any = None,
                       product: str | None = None, scene: str | None = None, resume_hash: str | None = None) -> None:
        """Set the given fields (None = leave unchanged) and ``updated_at``."""
        sets, args = ["updated_at = ?"], [at]
        for column, value in (("current_step", current_step), ("snapshot", dump_json(snapshot, "snapshot")),
                              ("product", product), ("scene", scene), ("resume_hash", resume_hash)):
            if value is not None:
                sets.append(f"{column} = ?")
                args.append(value)
        with self._tx() as c:
            if c.execute(f"UPDATE sessions SET {', '.join(sets)} WHERE id = ?", (*args, session_id)).rowcount == 0:
                raise StoreError("not_found", f"no session {session_id!r}", "session")

    def end_session(self, session_id: str, outcome: str, *, at: float) -> None:
        with self._tx() as c:
            cur = c.execute("UPDATE sessions SET outcome = ?, ended_at = ?, updated_at = ? WHERE id = ?",
                            (outcome, at, at, session_id))
            if cur.rowcount == 0:
                raise StoreError("not_found", f"no session {session_id!r}", "session")

    def list_sessions(self, *, live: bool | None = None, limit: int = 100) -> list[SessionRecord]:
        where = {None: "", True: "WHERE outcome IS NULL", False: "WHERE outcome IS NOT NULL"}[live]
        rows = self._read(f"SELECT {_SESSION_COLUMNS} FROM sessions {where} ORDER BY updated_at DESC, id LIMIT ?",
                          (max(0, int(limit)),))
        return [_session(row) for row in rows]

    # ------------------------------------------------------------ steps and events

    def enter_step(self, session_id: str, step_id: str, *, at: float) -> int:
        with self._tx() as c:
            self._require_session(c, session_id)
            cur = c.execute("INSERT INTO step_history (session_id, step_id, entered_at) VALUES (?,?,?)",
                            (session_id, step_id, at))
            c.execute("UPDATE sessions SET current_step = ?, updated_at = ? WHERE id = ?", (step_id, at, session_id))
            return int(cur.lastrowid or 0)

    def verify_step(self, session_id: str, step_id: str, how: str, *, at: float) -> None:
        """Mark the latest unverified entry of ``step_id`` in this session as verified."""
        if how not in STEP_HOWS:
            raise StoreError("bad_value", f"how must be one of {', '.join(STEP_HOWS)}, got {how!r}", "how")
        with self._tx() as c:
            row = c.execute("SELECT MAX(id) FROM step_history WHERE session_id = ? AND step_id = ? "
                            "AND verified_at IS NULL", (session_id, step_id)).fetchone()
            if row[0] is None:
                raise StoreError("not_found", f"session {session_id!r} has no open step {step_id!r}", "step")
            c.execute("UPDATE step_history SET verified_at = ?, how = ? WHERE id = ?", (at, how, row[0]))

    def step_history(self, session_id: str) -> list[StepRecord]:
        rows = self._read("SELECT id, session_id, step_id, entered_at, verified_at, how FROM step_history "
                          "WHERE session_id = ? ORDER BY id", (session_id,))
        return [StepRecord(*row) for row in rows]

    def add_event(self, session_id: str, kind: str, *, at: float, data: Any = None) -> int:
        payload = dump_json(data, "data")
        with self._tx() as c:
            self._require_session(c, session_id)
            cur = c.execute("INSERT INTO events (session_id, at, kind, data) VALUES (?,?,?,?)",
                            (session_id, at, kind, payload))
            return int(cur.lastrowid or 0)

    def events(self, session_id: str) -> list[EventRecord]:
        rows = self._read("SELECT id, session_id, at, kind, data FROM events WHERE session_id = ? ORDER BY id",
                          (session_id,))
        return [EventRecord(id=r[0], session_id=r[1], at=r[2], kind=r[3], data=load_json(r[4])) for r in rows]

    # ------------------------------------------------------------ escalations

    def open_escalation(self, session_id: str, reason: str, *, at: float, context: Any = None) -> int:
        payload = dump_json(context, "context")
        with self._tx() as c:
            self._require_session(c, session_id)
            cur = c.execute("INSERT INTO escalations (session_id, created_at, updated_at, reason, context, status) "
                            "VALUES (?,?,?,?,?, 'open')", (session_id, at, at, reason, payload))
            return int(cur.lastrowid or 0)

    def update_escalation(self, escalation_id: int, status: str, *, at: float, agent: str | None = None) -> None:
        if status not in ESCALATION_STATUSES:
            raise StoreError("bad_value", f"status must be one of {', '.join(ESCALATION_STATUSES)}, got {status!r}",
                             "status")
        with self._tx() as c:
            cur = c.execute("UPDATE escalations SET status = ?, agent = COALESCE(?, agent), updated_at = ? "
                            "WHERE id = ?", (status, agent, at, escalation_id))
            if cur.rowcount == 0:
                raise StoreError("not_found", f"no escalation {escalation_id}", "escalation")

    def list_escalations(self, *, status: str | None = None) -> list[EscalationRecord]:
        return self._escalations(" WHERE status = ? ORDER BY id" if status else " ORDER BY id",
                                 (status,) if status else ())

    def get_escalation(self, escalation_id: int) -> EscalationRecord | None:
        found = self._escalations(" WHERE id = ?", (escalation_id,))
        return found[0] if found else None

    def session_escalations(self, session_id: str) -> list[EscalationRecord]:
        return self._escalations(" WHERE session_id = ? ORDER BY id", (session_id,))  # index escalations_session

    def active_escalations(self) -> list[EscalationRecord]:
        # The condition is written exactly as the partial index escalations_active's, so SQLite uses it.
        return self._escalations(" WHERE status != 'closed' ORDER BY id", ())

    def _escalations(self, where: str, params: tuple[Any, ...]) -> list[EscalationRecord]:
        sql = ("SELECT id, session_id, created_at, updated_at, reason, context, status, agent, accepted_at "
               "FROM escalations")
        return [EscalationRecord(id=r[0], session_id=r[1], created_at=r[2], updated_at=r[3], reason=r[4],
                                 context=load_json(r[5]), status=r[6], agent=r[7], accepted_at=r[8])
                for r in self._read(sql + where, params)]

    def accept_escalation(self, escalation_id: int, *, at: float) -> None:
        """The customer accepted help from a person: the escalation joins the agent queue (first time only)."""
        with self._tx() as c:
            cur = c.execute("UPDATE escalations SET accepted_at = COALESCE(accepted_at, ?), updated_at = ? "
                            "WHERE id = ?", (at, at, escalation_id))
            if cur.rowcount == 0:
                raise StoreError("not_found", f"no escalation {escalation_id}", "escalation")

    def take_escalation(self, escalation_id: int, agent: str, *, at: float) -> bool:
        """``agent`` takes an open escalation; False when it is no longer open (another agent was faster)."""
        with self._tx() as c:
            cur = c.execute("UPDATE escalations SET status = 'taken', agent = ?, updated_at = ? "
                            "WHERE id = ? AND status = 'open'", (agent, at, escalation_id))
            return cur.rowcount == 1

    # ------------------------------------------------------------ agents and links

    def add_agent_action(self, session_id: str, agent: str, kind: str, *, at: float, data: Any = None,
                         escalation_id: int | None = None) -> int:
        payload = dump_json(data, "data")
        with self._tx() as c:
            self._require_session(c, session_id)
            cur = c.execute("INSERT INTO agent_actions (session_id, escalation_id, at, agent, kind, data) "
                            "VALUES (?,?,?,?,?,?)", (session_id, escalation_id, at, agent, kind, payload))
            return int(cur.lastrowid or 0)

    def agent_actions(self, session_id: str) -> list[AgentAction]:
        rows = self._read("SELECT id, session_id, at, agent, kind, data, escalation_id FROM agent_actions "
                          "WHERE session_id = ? ORDER BY id", (session_id,))
        return [AgentAction(id=r[0], session_id=r[1], at=r[2], agent=r[3], kind=r[4], data=load_json(r[5]),
                            escalation_id=r[6]) for r in rows]

    def create_link(self, token_hash: str, session_id: str, *, at: float, expires_at: float) -> None:
        with self._tx() as c:
            self._require_session(c, session_id)
            c.execute("INSERT INTO links (token_hash, session_id, created_at, expires_at) VALUES (?,?,?,?)",
                      (token_hash, session_id, at, expires_at))

    def use_link(self, token_hash: str, *, at: float) -> tuple[str, str | None]:
        """Exchange a link once: ("ok", session id), or ("unknown" | "used" | "expired", None). Checking and
        marking happen in one transaction, so of two exchanges at once exactly one succeeds."""
        with self._tx() as c:
            row = c.execute("SELECT session_id, expires_at, used_at FROM links WHERE token_hash = ?",
                            (token_hash,)).fetchone()
            if row is None:
                return "unknown", None
            if row[2] is not None:
                return "used", None
            if at >= row[1]:
                return "expired", None
            c.execute("UPDATE links SET used_at = ? WHERE token_hash = ?", (at, token_hash))
            return "ok", str(row[0])

    # ------------------------------------------------------------ scene versions

    def put_scene_version(self, scene_id: str, yaml_text: str, author: str, *, at: float) -> int:
        """Store a new version (earlier ones are kept); returns its number, 1 for a new scene."""
        with self._tx() as c:
            row = c.execute("SELECT COALESCE(MAX(version), 0) FROM scene_versions WHERE scene_id = ?",
                            (scene_id,)).fetchone()
            version = int(row[0]) + 1
            c.execute("INSERT INTO scene_versions (scene_id, version, yaml_text, author, created_at) "
                      "VALUES (?,?,?,?,?)", (scene_id, version, yaml_text, author, at))
            return version

    def get_scene_version(self, scene_id: str, version: int | None = None) -> SceneVersion | None:
        sql = "SELECT scene_id, version, yaml_text, author, created_at FROM scene_versions WHERE scene_id = ?"
        if version is None:
            rows = self._read(sql + " ORDER BY version DESC LIMIT 1", (scene_id,))
        else:
            rows = self._read(sql + " AND version = ?", (scene_id, version))
        return SceneVersion(*rows[0]) if rows else None

    def scene_versions(self, scene_id: str) -> list[SceneVersion]:
        rows = self._read("SELECT scene_id, version, yaml_text, author, created_at FROM scene_versions "
                          "WHERE scene_id = ? ORDER BY version", (scene_id,))
        return [SceneVersion(*row) for row in rows]

    @staticmethod
    def _require_session(c: sqlite3.Connection, session_id: str) -> None:
        if c.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is None:
            raise StoreError("not_found", f"no session {session_id!r}", "session")


def _session(row: tuple[Any, ...]) -> SessionRecord:
    return SessionRecord(id=row[0], customer=row[1], resume_hash=row[2], created_at=row[3], updated_at=row[4],
                         locale=row[5], product=row[6], scene=row[7], current_step=row[8], snapshot=load_json(row[9]),
                         outcome=row[10], ended_at=row[11])
