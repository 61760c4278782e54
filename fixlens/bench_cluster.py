"""``fixlens bench cluster``: a node of a real cluster killed mid-session, agents across nodes, capacity per node.

The cluster is ``ar_server.cluster.local.LocalCluster``: throwaway PostgreSQL and Redis, N ``fixlens serve``
processes and HAProxy, all on loopback. The nodes run ``--pipeline``: the truth-table stand-in by default
(frames are decoded, nothing is recognised), or ``vision``, the trained models (reported as ``pipeline``).
Three measurements, in order:

1. Failover: ``--sessions`` customers connect through HAProxy and go one step into ``router_no_internet``;
   the node holding the most of them is killed with SIGKILL; each of its customers reconnects through
   HAProxy with its resume token. ``failover_p50_s``/``failover_p95_s``: from the kill to the resumed
   session's ``step`` message. ``sessions_resumed``: those that came back at the step they were on;
   ``steps_lost``: recorded steps (the store's step history) missing afterwards. The node is then restarted.
2. ``cross_node_agent_ms``: an agent connected to one node points at a part for a customer connected to
   another; the median, over ``AGENT_POINTS`` points, of act sent -> the customer's ``agent`` message.
3. ``sessions_per_node_p95_150ms``: customers stream twin renders at ``--fps`` through HAProxy, 1, 2, 4, ...
   per node (up to ``--max-per-node``), ``--seconds`` each; the most per node whose frame -> ``obs`` p95 stays
   within 150 ms with no errors (0 when even one per node misses it); ``sessions_per_node_capped`` is true
   when no step missed (the figure is then a lower bound). ``ramp`` has each step's figures. With the
   truth-table pipeline this is the nodes' own cost (protocol, sessions, JPEG decode), not the detector's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from typing import Any

SCENE = "router_no_internet"
PRODUCT = "router_ax1800"
AGENT_POINTS = 10
P95_LIMIT_MS = 150.0


def register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="kill a node of a local 3-node cluster; failover, cross-node agents, capacity",
                       description="Start PostgreSQL, Redis, N server nodes and HAProxy on loopback; kill a node "
                                   "mid-session and measure the failover, agents across nodes, and sessions per node.")
    p.add_argument("--nodes", type=int, default=3, help="server nodes (2..8)")
    p.add_argument("--sessions", type=int, default=12, help="customers in the failover measurement (1..200)")
    p.add_argument("--fps", type=float, default=15.0, help="frames per second per customer in the capacity ramp")
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per capacity step (1..300)")
    p.add_argument("--max-per-node", type=int, default=64, help="the capacity ramp's last step (1..256)")
    p.add_argument("--pipeline", choices=("truth-table", "vision"), default="truth-table",
                   help="what every node runs on frames: the truth-table stand-in (the nodes' own cost; default) "
                        "or the trained vision pipeline")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_cmd_cluster)


def _cmd_cluster(args: argparse.Namespace) -> int:
    if not (2 <= args.nodes <= 8 and 1 <= args.sessions <= 200 and 0.1 <= args.fps <= 60
            and 1 <= args.seconds <= 300 and 1 <= args.max_per_node <= 256):
        print("error: expected --nodes 2..8, --sessions 1..200, --fps 0.1..60, --seconds 1..300, "
              "--max-per-node 1..256", file=sys.stderr)
        return 2
    result = run_cluster(args.nodes, args.sessions, args.fps, args.seconds, args.max_per_node, args.pipeline)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>28}: {value}")
    ok = result["sessions_resumed"] == result["sessions_on_killed_node"] and result["steps_lost"] == 0
    return 0 if ok else 1


def _pct(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return None if not ordered else ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_cluster(nodes: int, sessions: int, fps: float, seconds: float, max_per_node: int,
                pipeline: str = "truth-table") -> dict[str, Any]:
    """Run the three measurements; see the module docstring for the keys."""
    from ar_server.cluster.local import LocalCluster

    cluster = LocalCluster(nodes=nodes, pipeline=pipeline).start()
    try:
        result: dict[str, Any] = {"nodes": nodes, "pipeline": pipeline}
        result.update(asyncio.run(_failover(cluster, sessions)))
        result["cross_node_agent_ms"] = asyncio.run(_agent_latency(cluster))
        ramp = _capacity(cluster, fps, seconds, max_per_node)
        passing = [step["per_node"] for step in ramp if step["ok"]]
        result["sessions_per_node_p95_150ms"] = max(passing, default=0)
        result["sessions_per_node_capped"] = bool(ramp) and ramp[-1]["ok"]  # the ramp ended before a miss
        result["ramp"] = ramp
        return result
    finally:
        cluster.close()


async def _failover(cluster: Any, sessions: int) -> dict[str, Any]:
    import redis.asyncio as aioredis

    from ar_server.auth import TokenAuthority
    from ar_server.cluster import wire
    from ar_server.protocol import Event, Hello
    from ar_server.store.postgres_store import PostgresStore

    authority = TokenAuthority(cluster.secret)
    redis = aioredis.Redis.from_url(cluster.redis_url)
    store = await PostgresStore.open(cluster.database_url, max_connections=2)
    opened: list[tuple[_Client, Any, str]] = []
    try:
        async def start(i: int) -> tuple[_Client, Any, str]:
            token = authority.mint("customer", f"bench-cluster-{i}", 3600)
            customer = await _Client.open(cluster.url)
            welcome = await customer.send_and_expect(Hello(token=token, client="bench", scene=SCENE), "welcome")
            await customer.expect("step")
            await customer.send(Event(kind="done", step="check_wan"))
            await customer.expect("step")
            return customer, welcome, token

        opened = list(await asyncio.gather(*(start(i) for i in range(sessions))))
        holders = [(await redis.get(wire.lease_key(w.session)) or b"").decode() for _, w, _ in opened]
        victim_id = Counter(holders).most_common(1)[0][0]
        moved = [i for i, h in enumerate(holders) if h == victim_id]
        before = {i: [r.step_id for r in await store.step_history(opened[i][1].session)] for i in moved}
        steps_at = {i: before[i][-1] for i in moved}
        victim = cluster.node(victim_id)
        killed_at = time.monotonic()
        cluster.kill_node(victim)

        async def resume(i: int) -> tuple[str | None, float]:
            customer, welcome, token = opened[i]
            await customer.wait_closed(10.0)
            again = await _Client.open(cluster.url)
            opened.append((again, welcome, token))
            await again.send_and_expect(Hello(token=token, client="bench", resume=welcome.resume), "welcome")
            step = await again.expect("step")
            return step.step, time.monotonic() - killed_at

        resumed = await asyncio.gather(*(resume(i) for i in moved), return_exceptions=True)
        times = [r[1] for r in resumed if isinstance(r, tuple)]
        same = sum(1 for i, r in zip(moved, resumed, strict=True) if isinstance(r, tuple) and r[0] == steps_at[i])
        lost = 0
        for i in moved:
            after = [r.step_id for r in await store.step_history(opened[i][1].session)]
            kept = next((n for n, (a, b) in enumerate(zip(before[i], after, strict=False)) if a != b),
                        min(len(before[i]), len(after)))
            lost += len(before[i]) - kept  # recorded steps not found, in order, after the failover
        await asyncio.to_thread(cluster.start_node, victim)
        return {"sessions": sessions, "killed_node": victim_id, "sessions_on_killed_node": len(moved),
                "sessions_resumed": same, "steps_lost": lost,
                "failover_p50_s": None if not times else round(statistics.median(times), 3),
                "failover_p95_s": None if not times else round(_pct(times, 0.95) or 0.0, 3)}
    finally:
        await asyncio.gather(*(c.close() for c, _, _ in opened), return_exceptions=True)
        await redis.aclose()
        await store.close()


async def _agent_latency(cluster: Any) -> float | None:
    import aiohttp

    from ar_server.auth import TokenAuthority
    from ar_server.protocol import Hello

    authority = TokenAuthority(cluster.secret)
    node_a, node_b = cluster.node_list[0], cluster.node_list[1]
    customer = await _Client.open(node_a.url)
    http = aiohttp.ClientSession()
    try:
        welcome = await customer.send_and_expect(Hello(token=authority.mint("customer", "bench-agent-customer", 3600),
                                                       client="bench", scene=SCENE), "welcome")
        await customer.expect("step")
        agent = await http.ws_connect(node_b.url + "/v1/agent")

        async def agent_expect(t: str) -> dict[str, Any]:
            while True:
                msg = await agent.receive(timeout=10.0)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise RuntimeError(f"the agent channel closed: {msg}")
                data: dict[str, Any] = json.loads(msg.data)
                if data["t"] == t:
                    return data

        await agent.send_str(json.dumps({"t": "hello", "token": authority.mint("agent", "bench-agent", 3600)}))
        await agent_expect("welcome")
        await agent.send_str(json.dumps({"t": "watch", "session": welcome.session}))
        await agent_expect("watching")
        await agent_expect("state")
        samples = []
        for i in range(AGENT_POINTS):
            part = "port_wan" if i % 2 == 0 else "led_internet"
            started = time.perf_counter()
            await agent.send_str(json.dumps({"t": "act", "kind": "point", "part": part}))
            while True:
                message = await customer.expect("agent")
                if message.kind == "point" and message.part == part:
                    break
            samples.append((time.perf_counter() - started) * 1000.0)
        await agent.close()
        return round(statistics.median(samples), 2)
    finally:
        await customer.close()
        await http.close()


def _capacity(cluster: Any, fps: float, seconds: float, max_per_node: int) -> list[dict[str, Any]]:
    from ar_server.auth import TokenAuthority
    from fixlens.bench_load import CustomerRecord, _customer, account
    from fixlens.truth_pipeline import render_frames

    frames = [f.jpeg for f in render_frames(PRODUCT, [{"port_wan": "empty", "led_internet": "red"}],
                                            yaws=tuple(172.0 + 2.0 * i for i in range(5)))[0]]
    authority = TokenAuthority(cluster.secret)
    url = cluster.url.replace("http://", "ws://") + "/v1/stream"
    ramp: list[dict[str, Any]] = []
    per_node = 1
    while per_node <= max_per_node:
        count = per_node * len(cluster.node_list)
        records = [CustomerRecord() for _ in range(count)]

        async def stream(count: int = count, records: list[CustomerRecord] = records, step: int = per_node) -> None:
            now = time.perf_counter()
            warm = now + 1.0
            end = warm + seconds
            await asyncio.gather(*(_customer(i, url, authority.mint("customer", f"bench-cap-{step}-{i}", 3600), frames,
                                             fps, warm, end, records[i], end + 2.0, 1.0) for i in range(count)))

        asyncio.run(stream())
        figures = account(records, seconds)
        ok = figures["errors"] == 0 and figures["p95_ms"] is not None and figures["p95_ms"] <= P95_LIMIT_MS
        ramp.append({"per_node": per_node, "sessions": count, "ok": ok, **{k: figures[k] for k in (
            "p50_ms", "p95_ms", "answered", "unanswered", "errors")}})
        if not ok:
            break
        per_node *= 2
    return ramp


class _Client:
    """A protocol client over one WebSocket (the bench's own: no test code in the package)."""

    def __init__(self, http: Any, ws: Any) -> None:
        self.http, self.ws = http, ws

    @classmethod
    async def open(cls, base_url: str) -> _Client:
        import aiohttp

        http = aiohttp.ClientSession()
        if not base_url.startswith("http"):
            raise ValueError(f"expected an http:// URL, got {base_url!r}")
        try:
            ws = await http.ws_connect(base_url + "/v1/stream", max_msg_size=16 * 1024 * 1024)
        except BaseException:
            await http.close()
            raise
        return cls(http, ws)

    async def send(self, message: Any) -> None:
        from ar_server.protocol import encode_client

        await self.ws.send_bytes(encode_client(message))

    async def send_and_expect(self, message: Any, kind: str) -> Any:
        await self.send(message)
        return await self.expect(kind)

    async def expect(self, kind: str, timeout: float = 10.0) -> Any:
        import aiohttp

        from ar_server.protocol import decode_server

        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = await self.ws.receive(timeout=left)
            if msg.type != aiohttp.WSMsgType.BINARY:
                raise RuntimeError(f"the connection closed while waiting for {kind}")
            decoded = decode_server(msg.data)
            if decoded.t == kind:
                return decoded
            if decoded.t == "error" and getattr(decoded, "fatal", False):
                raise RuntimeError(f"waiting for {kind}: {decoded}")
        raise TimeoutError(f"no {kind} within {timeout:g} s")

    async def wait_closed(self, timeout: float) -> None:
        import aiohttp

        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = await self.ws.receive(timeout=left)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return
        raise TimeoutError(f"the connection stayed open {timeout:g} s after its node was killed")

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()
