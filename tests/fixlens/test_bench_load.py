"""``fixlens bench load``: the per-frame accounting as a pure unit, then a tiny run end to end."""

from __future__ import annotations

import pytest

from fixlens.bench_load import CustomerRecord, account, run_load

DEADLINE = 10.0


def _customer(replies: list[tuple[str, int | None, float]], offered: range = range(1, 6)) -> CustomerRecord:
    customer = CustomerRecord(offered={seq: float(seq) for seq in offered})
    for kind, seq, at in replies:
        customer.record(kind, seq, at, DEADLINE)
    return customer


def test_every_offered_frame_is_answered_late_refused_or_unanswered() -> None:
    """Frames the server dropped left no trace: percentiles over the answered ones hid how many went unanswered."""
    customer = _customer([
        ("obs", 1, 1.05), ("obs", 2, 2.5), ("error", 3, 3.01),  # answered twice, refused once
        ("obs", 5, 11.0),  # after the deadline: late
        ("obs", 0, 0.5), ("error", None, 4.0),  # a warm-up frame and an error about no frame
        ("obs", 1, 1.5),  # a second reply for a frame changes nothing
    ])  # frame 4: nothing came back (superseded or over the rate; the client cannot tell which)
    assert (sorted(customer.answered_ms), customer.late, customer.refused, customer.unanswered) == ([1, 2], {5}, {3}, 1)
    assert customer.answered_ms[1] == pytest.approx(50.0) and customer.errors == 2
    report = account([customer, _customer([("obs", s, s + 0.1) for s in range(1, 6)])], seconds=5.0)
    assert (report["frames_offered"], report["answered"], report["late"], report["refused"],
            report["unanswered"]) == (10, 7, 1, 1, 1)
    assert report["drop_rate"] == 0.1 and report["late_or_lost"] == 2
    assert report["processed_fps_total"] == 1.4 and report["min_session_share"] == round(0.4 / 0.7, 3)
    assert report["p50_ms"] == pytest.approx(100.0) and report["p95_ms"] == pytest.approx(500.0)


def test_a_run_without_frames_reports_no_rates() -> None:
    report = account([CustomerRecord()], seconds=1.0)
    assert (report["frames_offered"], report["drop_rate"], report["p50_ms"], report["min_session_share"]) == (
        0, None, None, 0.0)


def test_bench_load_accounts_for_every_offered_frame() -> None:
    result = run_load(2, 5.0, 1.0, width=160, height=120, prefer_real=False, warmup_s=0.5, drain_s=0.5, late_s=0.2)
    assert result["errors"] == 0
    assert set(result) >= {"errors", "p50_ms", "p95_ms", "processed_fps_total", "min_session_share",
                           "rss_growth_mb", "pipeline", "frames_offered", "answered", "late", "refused",
                           "unanswered", "drop_rate", "late_or_lost", "server_frames_received",
                           "server_frames_processed", "server_dropped"}
    assert result["frames_offered"] >= 8  # 2 customers x 5 fps x 1 s, give or take the edges of the window
    assert (result["answered"] + result["late"] + result["refused"] + result["unanswered"]
            == result["frames_offered"])
    assert result["late_or_lost"] == result["late"] + result["unanswered"]
    assert 0.0 <= result["drop_rate"] <= 1.0 and result["answered"] > 0
    assert result["processed_fps_total"] > 0 and 0 < result["min_session_share"] <= 1.0
    assert result["p50_ms"] <= result["p95_ms"]
    assert result["server_frames_received"] >= result["frames_offered"]
    assert result["server_frames_processed"] + sum(result["server_dropped"].values()) <= result[
        "server_frames_received"]
    assert result["pipeline"].startswith("truth-table")
