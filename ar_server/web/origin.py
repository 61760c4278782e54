"""Which requests come from this server's own pages: one rule shared by the page routes and the agent channel."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web


def same_origin(request: web.Request) -> bool:
    """No ``Origin`` (a client that is not a browser), or one whose host[:port] is this request's ``Host``. The
    scheme is not compared, so a TLS proxy in front of the server still matches."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    try:
        return urlsplit(origin).netloc.lower() == request.host.lower()
    except ValueError:
        return False
