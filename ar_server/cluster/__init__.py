"""Several server nodes as one: a session directory with leases, agents across nodes, ``/readyz``.

Redis sits between the nodes (``Config.redis_url``); PostgreSQL (``Config.database_url``) keeps every
session's state, so any node can continue any session. docs/deploy.md, "Several nodes", has the topology.
``ClusterNode`` lives in ``ar_server.cluster.node``, imported only by a node given a ``redis_url``: a single
node never loads the Redis client.
"""

from ar_server.cluster.ready import READINESS, READY_PATH, Readiness, add_cluster

__all__ = ["READINESS", "READY_PATH", "Readiness", "add_cluster"]
