"""A killed server process loses no committed step: WAL + synchronous=NORMAL survives SIGKILL."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ar_server.store import SQLiteDatabase

WRITER = r"""
import asyncio, os, signal, sys
from ar_server.store import SessionRecord, SQLiteStore

async def main(path, count, kill_self):
    store = await SQLiteStore.open(path)
    await store.create_session(SessionRecord(id="s1", customer="c", resume_hash="h", created_at=0.0,
                                             updated_at=0.0))
    i = 0
    while count < 0 or i < count:
        await store.enter_step("s1", f"step{i}", at=float(i))
        await store.verify_step("s1", f"step{i}", "vision", at=i + 0.5)
        print(i, flush=True)  # reported only after both commits returned
        i += 1
    if kill_self:
        def half_done(db):  # a transaction that is open, not committed, when the process dies
            db._conn.execute("BEGIN IMMEDIATE")
            db._conn.execute("INSERT INTO step_history (session_id, step_id, entered_at) VALUES ('s1', 'torn', 9)")
        await store.run(half_done)
        os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"))
"""


def _history(path: Path) -> list[tuple[str, float | None, str | None]]:
    db = SQLiteDatabase(path)  # reopening also recovers the WAL left by the dead process
    try:
        return [(s.step_id, s.verified_at, s.how) for s in db.step_history("s1")]
    finally:
        db.close()


def test_process_that_kills_itself_keeps_every_committed_step(tmp_path: Path) -> None:
    path = tmp_path / "fixlens.db"
    result = subprocess.run([sys.executable, "-c", WRITER, str(path), "40", "1"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr
    reported = result.stdout.split()
    assert reported == [str(i) for i in range(40)]
    assert (path.parent / "fixlens.db-wal").exists()  # the kill left a WAL to recover from
    history = _history(path)
    assert history == [(f"step{i}", i + 0.5, "vision") for i in range(40)]  # and nothing of the torn write


@pytest.mark.slow
def test_process_killed_from_outside_mid_stream(tmp_path: Path) -> None:
    path = tmp_path / "fixlens.db"
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "-1", "0"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        reported = [child.stdout.readline().strip() for _ in range(25)]
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert reported == [str(i) for i in range(25)], child.stderr.read() if child.stderr else ""
    history = _history(path)
    # Every reported step is there and verified; the child may have committed a few more before it died.
    assert history[:25] == [(f"step{i}", i + 0.5, "vision") for i in range(25)]
    assert all(step == f"step{i}" for i, (step, _, _) in enumerate(history))
    # A plain sqlite3 reader agrees (the recovered file is a normal database).
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
