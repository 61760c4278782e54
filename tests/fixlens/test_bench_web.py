"""``fixlens bench web``: its arguments, then a short real run (Chromium, the page, a local server with the
shipped weights). The figures are benchmark results, not asserted beyond being there and sane."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixlens.bench_web import CHROMIUM
from fixlens.cli import main


def test_out_of_range_seconds_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "web", "--seconds", "1"]) == 2
    assert "--seconds 2..600" in capsys.readouterr().err


@pytest.mark.slow
def test_a_short_run_reports_latency_and_frame_rates() -> None:
    pytest.importorskip("playwright.sync_api", reason="the web bench needs `pip install playwright`")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"the web bench needs Chromium at {CHROMIUM}")
    # In a child process: Playwright's sync API runs an event loop of its own, which must not outlive this
    # test in the process that later runs the suite's asyncio tests.
    done = subprocess.run([str(Path(sys.executable).with_name("fixlens")), "bench", "web", "--seconds", "3",
                           "--json"], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["draws"] > 0 and 0 < result["p50_ms"] <= result["p95_ms"] < 5000
    assert result["sent_fps"] > 1 and 0 < result["answered_fps"] <= result["sent_fps"] + 1
