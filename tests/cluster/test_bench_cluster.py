"""``fixlens bench cluster`` end to end, kept small: 2 nodes, 4 customers, one short capacity step."""

from __future__ import annotations

import json

from fixlens.cli import main

KEYS = ("nodes", "sessions_on_killed_node", "sessions_resumed", "steps_lost", "failover_p50_s", "failover_p95_s",
        "sessions_per_node_p95_150ms", "cross_node_agent_ms")


def test_the_cluster_bench_reports_every_figure(capsys: object) -> None:
    code = main(["bench", "cluster", "--nodes", "2", "--sessions", "4", "--seconds", "1", "--max-per-node", "1",
                 "--json"])
    result = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    assert code == 0, result
    assert set(KEYS) <= set(result), result
    assert result["nodes"] == 2 and result["sessions_on_killed_node"] >= 1
    assert result["sessions_resumed"] == result["sessions_on_killed_node"] and result["steps_lost"] == 0
    assert 0 < result["failover_p50_s"] <= result["failover_p95_s"] <= 5.0
    assert result["cross_node_agent_ms"] > 0 and result["sessions_per_node_p95_150ms"] in (0, 1)


def test_bad_bench_arguments_are_refused(capsys: object) -> None:
    assert main(["bench", "cluster", "--nodes", "1"]) == 2
    assert "--nodes 2..8" in capsys.readouterr().err  # type: ignore[attr-defined]
