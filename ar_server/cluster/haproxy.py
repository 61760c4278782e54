"""The HAProxy configuration in front of N nodes: the one docs/deploy.md shows, and the one tests run.

Why each setting is what it is (docs/deploy.md, "Several nodes", says it for operators too):

- ``balance leastconn``: stream connections last minutes, so the node with the fewest open ones takes the next;
- ``cookie FIXLENS_NODE insert indirect nocache``: a browser comes back to the node that served it (its page,
  its REST calls and its stream); a client without cookies is balanced, and any node can resume any session;
- ``option redispatch`` with ``retries``: a connection to a node that is gone (refused) is retried on another at
  once, before the health check has marked it down, so a resume after a crash never waits for the check;
- ``option httpchk GET /readyz`` every ``CHECK_INTERVAL``: a draining node (503) gets nothing new; a degraded one
  (200) keeps its customers;
- ``timeout tunnel``: a WebSocket is idle between frames for as long as a customer pauses; an hour is the
  longest a session is expected to last. ``timeout client``/``server`` bound the HTTP exchange before upgrade.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

CHECK_INTERVAL = "500ms"
COOKIE = "FIXLENS_NODE"


@dataclass(frozen=True)
class Backend:
    name: str  # the node id; also the cookie value
    address: str  # host:port


def haproxy_config(backends: Sequence[Backend], *, bind: str, tls_certificate: str | None = None,
                   maxconn: int = 20000, stats_socket: str | None = None) -> str:
    """An HAProxy 2.6 configuration. ``bind`` is ``host:port``; with ``tls_certificate`` (a PEM with the key)
    the front end terminates TLS (``wss://``) and the cookie is marked ``secure``."""
    if not backends:
        raise ValueError("expected at least one backend node, got none")
    tls = f" ssl crt {tls_certificate} alpn http/1.1" if tls_certificate else ""
    secure = " secure" if tls_certificate else ""
    stats = f"    stats socket {stats_socket} mode 600 level admin\n" if stats_socket else ""
    servers = "\n".join(f"    server {b.name} {b.address} check cookie {b.name}" for b in backends)
    return f"""global
    maxconn {maxconn}
    hard-stop-after 30s
{stats}
defaults
    mode http
    option redispatch
    retries 3
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout tunnel 1h
    timeout client-fin 5s

frontend fixlens
    bind {bind}{tls}
    option forwardfor
    default_backend fixlens_nodes

backend fixlens_nodes
    balance leastconn
    cookie {COOKIE} insert indirect nocache httponly{secure}
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter {CHECK_INTERVAL} fall 2 rise 2
{servers}
"""
