"""Store backends for the shared suite, and a throwaway PostgreSQL server started once per test session.

``store`` is parametrised by backend: every test that takes it runs against SQLite (a fresh file) and against
PostgreSQL (one shared database, emptied before each test, which is much faster than a database per test).
The PostgreSQL server is Debian's package (``make setup`` installs it), run from a temporary directory on a
free loopback port and stopped at the end of the session. ``initdb`` refuses to run as root, so as root (CI)
the cluster belongs to an unprivileged system user. A missing PostgreSQL fails the tests; it never skips them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from ar_server.store import SQLiteStore, Store
from ar_server.store.postgres_store import PostgresStore

BACKENDS = ("sqlite", "postgres")
ROLE = "fixlens"  # the superuser role initdb creates; tests connect as it, trusted on loopback only
SHARED_DATABASE = "fixlens_store_tests"
CLUSTER_OWNER = "fixlens-pg"  # created when running as root on a machine without Debian's `postgres` user
START_TIMEOUT_S = 60


def postgres_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` (Debian), else the directory of ``initdb`` on PATH."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                    key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if debian:
        return debian[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    pytest.fail("PostgreSQL is not installed: expected /usr/lib/postgresql/<version>/bin/initdb or initdb on "
                "PATH; `make setup` installs Debian's package (apt-get install postgresql)")


def _cluster_owner() -> str | None:
    """The unprivileged user to run the server as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", CLUSTER_OWNER):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    CLUSTER_OWNER], check=True, capture_output=True)
    return CLUSTER_OWNER


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """One PostgreSQL server in a temporary directory: ``root/data`` holds the cluster, ``root`` the socket."""

    def __init__(self, bindir: Path, owner: str | None) -> None:
        self.bindir = bindir
        self.owner = owner
        self.root = Path(tempfile.mkdtemp(prefix="fixlens-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = 0
        if owner is not None:
            shutil.chown(self.root, owner, owner)

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / tool), *args]
        if self.owner is not None:
            command = ["runuser", "-u", self.owner, "--", *command]
        # cwd: the owner may not be allowed into the caller's directory.
        return subprocess.run(command, cwd=self.root, capture_output=True, text=True, timeout=START_TIMEOUT_S)

    def _must(self, tool: str, *args: str) -> None:
        done = self._run(tool, *args)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}{log}")

    def init(self) -> None:
        # --no-sync: a throwaway cluster need not be flushed to disk.
        self._must("initdb", "-D", str(self.data), "-A", "trust", "-U", ROLE, "-E", "UTF8", "--locale=C",
                   "--no-sync")

    def start(self, port: int | None = None) -> None:
        """Start on ``port``, or on a free one (tried three times: another process may take it first)."""
        for attempt in range(3):
            self.port = port or _free_port()
            # fsync=off: only an OS crash or power loss needs the flush, and neither happens mid-test; a killed
            # server (what the tests do to it) loses nothing committed, its WAL writes being in the kernel's
            # cache. With fsync on, each CREATE DATABASE and crash recovery costs seconds on a busy disk.
            options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            done = self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w",
                             "-t", str(START_TIMEOUT_S), "start")
            if done.returncode == 0:
                return
            if port is not None or attempt == 2:
                log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
                raise RuntimeError(f"pg_ctl start failed:\n{done.stdout}{done.stderr}{log}")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends connections and shuts down cleanly; ``immediate`` is a crash (recovery at next start)."""
        self._must("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def crash_and_restart(self) -> None:
        self.stop("immediate")
        self.start(self.port)

    def url(self, database: str) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a fresh name when ``name`` is None); return its URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        done = subprocess.run([str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", ROLE,
                               name], capture_output=True, text=True, timeout=START_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"createdb {name} failed: {done.stderr}")
        return self.url(name)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(postgres_bindir(), _cluster_owner())
    try:
        cluster.init()
        cluster.start()
        cluster.create_database(SHARED_DATABASE)
        yield cluster
    finally:
        if cluster.port and (cluster.data / "postmaster.pid").exists():
            cluster.stop()
        cluster.remove()


@pytest.fixture
def postgres_database(postgres_cluster: PostgresCluster) -> str:
    """The URL of a new, empty database, for tests of migrations and of opening."""
    return postgres_cluster.create_database()


async def empty_database(url: str) -> None:
    """Delete every row of every table but ``schema_version``, and restart ids at 1 as a fresh file would."""
    conn = await asyncpg.connect(url)
    try:
        tables = [r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                                 "AND tablename <> 'schema_version'")]
        if tables:
            await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@dataclass(frozen=True)
class StoreTarget:
    """Where a backend's store lives; ``open()`` may be called again for a second store on the same data (the
    same file, or the same database as another server node would)."""

    backend: str
    open: Callable[[], Awaitable[Store]]
    reset: Callable[[], Awaitable[None]]


@pytest.fixture(params=BACKENDS)
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> StoreTarget:
    if request.param == "sqlite":
        path = tmp_path / "data" / "fixlens.db"

        async def nothing() -> None:
            return None

        return StoreTarget("sqlite", lambda: SQLiteStore.open(path), nothing)
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    url = cluster.url(SHARED_DATABASE)
    return StoreTarget("postgres", lambda: PostgresStore.open(url, max_connections=4), lambda: empty_database(url))


@pytest.fixture
async def store(store_target: StoreTarget) -> AsyncIterator[Store]:
    await store_target.reset()
    opened = await store_target.open()
    yield opened
    await opened.close()
