"""Which store a server opens: PostgreSQL when a ``postgresql://`` URL is configured, else the SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from ar_server.errors import StoreError
from ar_server.store.base import Store
from ar_server.store.postgres_store import URL_SCHEMES, PostgresStore, redact_url
from ar_server.store.sqlite_store import SQLiteStore


async def open_store(database_url: str | None, db_path: str | Path, *,
                     synchronous: Literal["normal", "full"] = "normal", max_connections: int = 10) -> Store:
    """Open the PostgreSQL database at ``database_url``, or, when it is None or empty, the SQLite file at
    ``db_path`` (``synchronous`` applies to SQLite only, ``max_connections`` to PostgreSQL only).

    Raises ``StoreError("bad_value")`` for a URL of any other scheme, so a typo never silently falls back
    to a local file while the other nodes share a database.
    """
    if not database_url:
        return await SQLiteStore.open(db_path, synchronous=synchronous)
    if urlsplit(database_url).scheme not in URL_SCHEMES:
        raise StoreError("bad_value", f"database URL: expected postgresql://user:password@host:port/database (or "
                                      f"no URL for the SQLite file), got {redact_url(database_url)!r}",
                         "database_url")
    return await PostgresStore.open(database_url, max_connections=max_connections)
