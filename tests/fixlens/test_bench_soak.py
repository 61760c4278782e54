"""``fixlens bench soak`` on a real server process, briefly: the report's shape and its accounting."""

from __future__ import annotations

import pytest

from fixlens.bench_soak import run_soak

pytestmark = pytest.mark.slow


def test_a_short_soak_reports_the_server_process_before_and_after() -> None:
    result = run_soak(0.1, 2, 4.0, warmup_s=2.0, sample_s=2.0, settle_s=1.0)
    for when in ("start", "end"):
        assert result[when]["rss_mb"] > 50 and result[when]["fds"] > 3 and result[when]["threads"] >= 1
    assert result["frames_offered"] == result["answered"] + result["late"] + result["refused"] + result["unanswered"]
    assert result["answered"] > 0 and result["errors"] == 0
    assert result["samples"] and all(s["rss_mb"] > 0 for s in result["samples"])
    assert result["server_exit_code"] == 0  # SIGTERM stops it cleanly
    assert isinstance(result["fds_back"], bool) and isinstance(result["rss_growth_pct"], float)
