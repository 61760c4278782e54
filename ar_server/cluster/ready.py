"""``/readyz`` and the cluster's place in the app: what a load balancer asks before it sends a node traffic.

``/readyz`` answers (JSON, no auth, like ``/healthz``):

- 200 ``{"status": "ready", ...}``: serving, and in a cluster Redis answers;
- 200 ``{"status": "degraded", "reasons": [...]}``: serving its own sessions, but Redis is lost, so agents
  reach only this node's sessions and leases are not written. A 200 on purpose: the node still serves
  every customer routed to it (sessions and their state are in PostgreSQL), and taking it out of the load
  balancer would only move its customers to nodes that have lost the same Redis;
- 503 ``{"status": "draining"}``: the server is shutting down (SIGTERM): send it nothing new.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from ar_server.app_keys import CONFIG, METRICS, SESSIONS
from ar_server.limits import LIMITS

if TYPE_CHECKING:  # redis is imported only by a node that joins a cluster
    from ar_server.cluster.node import ClusterNode

READY_PATH = "/readyz"


@dataclass
class Readiness:
    node_id: str
    cluster: ClusterNode | None = None  # None: a single node (no redis_url)
    draining: bool = False


READINESS = web.AppKey("readiness", Readiness)


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def add_cluster(app: web.Application) -> None:
    """Add ``/readyz``, and with a ``redis_url`` the node's link to the cluster (started after the session
    manager, stopped before it). Call before other ``on_shutdown`` hooks: draining shows at once."""
    config = app[CONFIG]
    app[READINESS] = Readiness(config.node_id or default_node_id())
    app.router.add_get(READY_PATH, readyz)
    app.on_shutdown.append(_draining)
    if config.redis_url:
        app.cleanup_ctx.append(_cluster_ctx)


async def _cluster_ctx(app: web.Application) -> AsyncIterator[None]:
    from ar_server.cluster.node import ClusterNode

    config, readiness = app[CONFIG], app[READINESS]
    assert config.redis_url is not None
    node = ClusterNode(config.redis_url, readiness.node_id, lease_ttl_s=config.lease_ttl_s, metrics=app[METRICS])
    manager = app[SESSIONS]
    manager.cluster = node
    readiness.cluster = node
    # The per-customer budgets hold across nodes (ar_server.limits, rule 4).
    shared = {"sessions": app[LIMITS].session_creation, "events": manager.customer_limits.events,
              "refusals": manager.customer_limits.refusals}
    for kind, buckets in shared.items():
        buckets.share(kind, node)
    await node.start(manager)
    yield
    for buckets in shared.values():
        buckets.share("", None)
    await node.stop()
    manager.cluster = None


async def _draining(app: web.Application) -> None:
    app[READINESS].draining = True


async def readyz(request: web.Request) -> web.Response:
    readiness = request.app[READINESS]
    node = readiness.cluster
    body: dict[str, object] = {"node": readiness.node_id, "sessions": len(request.app[SESSIONS].live),
                               "cluster": node is not None}
    if readiness.draining:
        return web.json_response({**body, "status": "draining"}, status=503)
    if node is not None and not node.healthy:
        return web.json_response({**body, "status": "degraded", "reasons": node.reasons})
    return web.json_response({**body, "status": "ready"})
