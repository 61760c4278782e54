"""``fixlens bench load`` end to end, tiny: every key is reported and nothing errors."""

from __future__ import annotations

from ar_server.bench_load import run_load


def test_bench_load_reports_every_key() -> None:
    result = run_load(2, 5.0, 1.0, width=160, height=120, prefer_real=False, warmup_s=0.5, drain_s=0.5)
    assert result["errors"] == 0
    assert set(result) >= {"errors", "p50_ms", "p95_ms", "processed_fps_total", "min_session_share",
                           "rss_growth_mb", "pipeline"}
    assert result["processed_fps_total"] > 0 and 0 < result["min_session_share"] <= 1.0
    assert result["p50_ms"] <= result["p95_ms"]
    assert result["pipeline"].startswith("truth-table")
