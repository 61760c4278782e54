"""SQLite schema as an ordered list of migrations, applied once each and recorded in ``schema_version``.

Migration N (1-based) moves the database from version N-1 to N. Never edit a released migration: append a
new one. A database newer than this code is refused rather than guessed at.
"""

from __future__ import annotations

import sqlite3

from ar_server.errors import StoreError

MIGRATIONS: tuple[str, ...] = (
    # 1: sessions, step history, events, escalations, scene versions
    """
    CREATE TABLE sessions (
        id           TEXT PRIMARY KEY,
        customer     TEXT NOT NULL,
        resume_hash  TEXT NOT NULL UNIQUE,
        created_at   REAL NOT NULL,
        updated_at   REAL NOT NULL,
        locale       TEXT NOT NULL,
        product      TEXT,
        scene        TEXT,
        current_step TEXT,
        snapshot     TEXT,              -- JSON
        outcome      TEXT,              -- NULL while live
        ended_at     REAL
    );
    CREATE INDEX sessions_live ON sessions (outcome, updated_at);
    CREATE TABLE step_history (
        id          INTEGER PRIMARY KEY,
        session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        step_id     TEXT NOT NULL,
        entered_at  REAL NOT NULL,
        verified_at REAL,
        how         TEXT CHECK (how IN ('vision', 'user', 'timeout'))
    );
    CREATE INDEX step_history_session ON step_history (session_id, id);
    CREATE TABLE events (
        id         INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        at         REAL NOT NULL,
        kind       TEXT NOT NULL,
        data       TEXT                 -- JSON
    );
    CREATE INDEX events_session ON events (session_id, id);
    CREATE TABLE escalations (
        id         INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        reason     TEXT NOT NULL,
        context    TEXT,                -- JSON
        status     TEXT NOT NULL CHECK (status IN ('open', 'taken', 'closed')),
        agent      TEXT
    );
    CREATE INDEX escalations_status ON escalations (status, created_at);
    CREATE TABLE scene_versions (
        scene_id   TEXT NOT NULL,
        version    INTEGER NOT NULL,
        yaml_text  TEXT NOT NULL,
        author     TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (scene_id, version)
    );
    """,
    # 2: single-use support links, accepted escalations, and what agents did in a session
    """
    CREATE TABLE links (
        token_hash TEXT PRIMARY KEY,   -- SHA-256 hex of the link token; the token itself is never stored
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at    REAL                -- NULL until exchanged (once)
    );
    ALTER TABLE escalations ADD COLUMN accepted_at REAL;
    CREATE TABLE agent_actions (
        id            INTEGER PRIMARY KEY,
        session_id    TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        escalation_id INTEGER REFERENCES escalations (id),
        at            REAL NOT NULL,
        agent         TEXT NOT NULL,
        kind          TEXT NOT NULL,    -- take, join, leave, control, message, point, goto, end, hand_back
        data          TEXT              -- JSON
    );
    CREATE INDEX agent_actions_session ON agent_actions (session_id, id);
    """,
    # 3: escalation lookups without a scan: one session's escalations, and the escalations not yet closed
    # (the agent queue; closed ones pile up forever and are left out of this index)
    """
    CREATE INDEX escalations_session ON escalations (session_id, id);
    CREATE INDEX escalations_active ON escalations (id) WHERE status != 'closed';
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to ``SCHEMA_VERSION``; return the version it had before.

    Each migration runs in its own transaction together with its version row, so a crash mid-migration
    leaves the previous version intact. Raises ``StoreError("schema_too_new")`` for a newer database.
    """
    before = current_version(conn)
    if before > SCHEMA_VERSION:
        raise StoreError("schema_too_new", f"database schema version {before} is newer than this server's "
                                           f"{SCHEMA_VERSION}; upgrade the server")
    for version in range(before + 1, SCHEMA_VERSION + 1):
        # executescript() would COMMIT on its own; run statements one by one inside an explicit transaction.
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[version - 1]):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return before


def _statements(script: str) -> list[str]:
    """Split a migration into statements (our migrations hold no semicolons inside literals or triggers)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
