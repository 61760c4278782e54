"""Server metrics in the Prometheus text exposition format (version 0.0.4), written by hand.

Why not ``prometheus-client``: the server needs three metric kinds and one output format; a hundred lines
keep the dependency list short and the output fully under test. Metric names follow Prometheus
conventions (``_total`` for counters, base units: seconds). Everything runs on the event loop thread, so
no locks are needed; the inference worker reports its timings back through the loop.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds: from 1 ms (decode of a small JPEG) to 10 s (a stalled batch).
LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Labels, extra: Labels = ()) -> str:
    items = (*labels, *extra)
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


@dataclass
class Counter:
    name: str
    help: str
    values: dict[Labels, float] = field(default_factory=dict)
    kind: str = "counter"

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, **labels: str) -> float:
        return self.values.get(tuple(sorted(labels.items())), 0.0)

    def samples(self) -> Iterable[str]:
        for key, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(key)} {_number(value)}"


@dataclass
class Gauge(Counter):
    kind: str = "gauge"

    def set(self, value: float, **labels: str) -> None:
        self.values[tuple(sorted(labels.items()))] = float(value)


@dataclass
class _Series:
    counts: list[int]
    total: float = 0.0
    count: int = 0


@dataclass
class Histogram:
    name: str
    help: str
    buckets: Sequence[float] = LATENCY_BUCKETS
    series: dict[Labels, _Series] = field(default_factory=dict)
    kind: str = "histogram"

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = _Series([0] * len(self.buckets))
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                s.counts[i] += 1
        s.total += value
        s.count += 1

    def count(self, **labels: str) -> int:
        s = self.series.get(tuple(sorted(labels.items())))
        return 0 if s is None else s.count

    def samples(self) -> Iterable[str]:
        for key, s in sorted(self.series.items()):
            for bound, n in zip(self.buckets, s.counts, strict=True):
                yield f"{self.name}_bucket{_labels(key, (('le', _number(bound)),))} {n}"
            yield f"{self.name}_bucket{_labels(key, (('le', '+Inf'),))} {s.count}"
            yield f"{self.name}_sum{_labels(key)} {_number(s.total)}"
            yield f"{self.name}_count{_labels(key)} {s.count}"


class Metrics:
    """Every metric the server exports. ``render()`` gives the ``/metrics`` body."""

    def __init__(self) -> None:
        self.frames_received = Counter("fixlens_frames_received_total", "Frames received over the stream")
        self.frames_processed = Counter("fixlens_frames_processed_total", "Frames run through the vision pipeline")
        self.frames_dropped = Counter("fixlens_frames_dropped_total",
                                      "Frames not processed, by reason (superseded, rate, invalid, vision_error, "
                                      "fault, overloaded, internal)")
        self.stage_seconds = Histogram("fixlens_stage_seconds",
                                       "Per-frame latency by stage (decode, detect, pose, states, queue, total)")
        self.batch_size = Histogram("fixlens_inference_batch_size", "Frames per inference batch", BATCH_BUCKETS)
        self.active_sessions = Gauge("fixlens_active_sessions", "Sessions with a connected client")
        self.outcomes = Counter("fixlens_session_outcomes_total", "Sessions ended, by outcome")
        self.errors = Counter("fixlens_protocol_errors_total", "Error messages sent to clients, by code")
        self.escalations = Counter("fixlens_escalations_total", "Escalations recorded, by reason and offer")
        self.http_requests = Counter("fixlens_http_requests_total", "REST requests, by route and status")
        # Several nodes (ar_server.cluster): absent from the output while the node runs alone.
        self.cluster_redis_up = Gauge("fixlens_cluster_redis_up", "1 while Redis answers this node, 0 while it is "
                                                                  "degraded (serving its own sessions only)")
        self.cluster_redis_errors = Counter("fixlens_cluster_redis_errors_total", "Redis calls that failed")
        self.cluster_claims = Counter("fixlens_cluster_claims_total", "Session leases taken, by how (new, own, "
                                                                       "handed, dead, unanswered, unavailable)")
        self.cluster_messages = Counter("fixlens_cluster_messages_total", "Messages between nodes, by kind and "
                                                                           "direction")

    def all(self) -> tuple[Counter | Histogram, ...]:
        return (self.frames_received, self.frames_processed, self.frames_dropped, self.stage_seconds,
                self.batch_size, self.active_sessions, self.outcomes, self.errors, self.escalations,
                self.http_requests, self.cluster_redis_up, self.cluster_redis_errors, self.cluster_claims,
                self.cluster_messages)

    def render(self) -> str:
        lines: list[str] = []
        for metric in self.all():
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            lines.extend(metric.samples())
        return "\n".join(lines) + "\n"
