"""The web pages: ``/`` (the customer page), ``/console`` (the agents' console), ``/web/...`` (their files),
``/v1/products/{id}/model.glb``, and ``/v1/agent`` (the console's WebSocket, ``agent_channel.py``).

Rules:
1. Files come only from this package's folder, and only with an extension in ``CONTENT_TYPES``: a path that
   leaves the folder, has a hidden or ``__pycache__`` component, or another extension (this module itself)
   is 404. Nothing is listed.
2. Every page response carries ``CSP``: scripts and styles from this origin only (no inline script or style,
   no eval), network access only to this origin and its WebSocket, nothing framed or framing. The page
   needs nothing else, so a token read from the URL fragment cannot be sent anywhere else.
3. ``model.glb`` is the catalog's file of a known product, read-only, behind a bearer token of any role like
   every REST route but ``/healthz`` (the page loads it with the session's token).
4. Every WebSocket upgrade (the stream and the agent channel) whose ``Origin`` header names another host than
   the request's own is refused (403) before anything else runs: a page on another site cannot open a socket
   with the browser's credentials. A request without ``Origin`` comes from a non-browser client: allowed. The
   scheme is not compared, so a TLS-terminating proxy in front keeps working.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from ar_server.app_keys import AUTHORITY, CATALOG
from ar_server.errors import AuthError
from ar_server.rest import ALL_ROLES, json_error
from ar_server.web.agent_channel import AGENT_PATH, agent_socket
from ar_server.web.origin import same_origin

WEB_DIR: Final = Path(__file__).resolve().parent
PAGE: Final = "index.html"
CONSOLE: Final = "console.html"
STATIC_PREFIX: Final = "/web/"
MODEL_FILE: Final = "model.glb"
CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# Text files are sent compressed to clients that accept it: three.js is 2 MB as text, 0.5 MB gzipped.
COMPRESSED: Final = frozenset({".html", ".css", ".js", ".svg"})
GLB_TYPE: Final = "model/gltf-binary"
# Only a plain host[:port] goes into the policy; anything else in a Host header falls back to 'self' alone.
_HOST = re.compile(r"^[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?$")


def content_security_policy(host: str | None) -> str:
    """The page's policy. ``connect-src`` names the WebSocket of ``host`` as well as ``'self'``: browsers
    before CSP level 3 do not count ws(s) of the page's own host as ``'self'``. ``blob:`` is where the glTF
    loader puts the model's embedded label texture before it decodes it."""
    sockets = f" ws://{host} wss://{host}" if host and _HOST.match(host) else ""
    return "; ".join((
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob: mediastream:",
        f"connect-src 'self' blob:{sockets}",
        "object-src 'none'",
        "worker-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ))


def page_headers(request: web.Request, content_type: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "Content-Security-Policy": content_security_policy(request.host),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
        # Revalidate every time (ETag): a new server version must never run with the previous page's modules.
        "Cache-Control": "no-cache",
    }


def static_file(relative: str) -> Path | None:
    """The file ``relative`` names under ``WEB_DIR`` if rule 1 allows serving it, else None."""
    parts = relative.split("/")
    if not relative or any(p in ("", ".", "..") or p.startswith(".") or p == "__pycache__" for p in parts):
        return None
    path = WEB_DIR.joinpath(*parts)
    if path.suffix not in CONTENT_TYPES or not path.resolve().is_relative_to(WEB_DIR) or not path.is_file():
        return None
    return path


def _file(request: web.Request, path: Path) -> web.FileResponse:
    response = web.FileResponse(path, headers=page_headers(request, CONTENT_TYPES[path.suffix]))
    # aiohttp 3.14 writes a gzip trailer as the body of a 304 when compression is on, which breaks the
    # connection (the browser reports ERR_INVALID_HTTP_RESPONSE): compress only what cannot become a 304.
    conditional = request.if_none_match or request.if_modified_since or "Range" in request.headers
    if path.suffix in COMPRESSED and not conditional:
        response.enable_compression()
    return response


async def page(request: web.Request) -> web.StreamResponse:
    """``GET /``: the customer page. Its session token travels in the URL fragment, which no request carries."""
    return _file(request, WEB_DIR / PAGE)


async def console(request: web.Request) -> web.StreamResponse:
    """``GET /console``: the agents' console. Its agent token is typed in and kept in sessionStorage."""
    return _file(request, WEB_DIR / CONSOLE)


async def web_file(request: web.Request) -> web.StreamResponse:
    path = static_file(request.match_info["path"])
    if path is None:
        raise web.HTTPNotFound()
    return _file(request, path)


async def product_model(request: web.Request) -> web.StreamResponse:
    """``GET /v1/products/{id}/model.glb``: rule 3."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return json_error(401, "unauthorized", "send Authorization: Bearer <token>")
    try:
        claims = request.app[AUTHORITY].verify(token.strip())
    except AuthError as exc:
        return json_error(401, "unauthorized", f"token {exc.code.replace('_', ' ')}: {exc.message}")
    if claims.role not in ALL_ROLES:
        return json_error(403, "forbidden", f"role {claims.role!r} may not do this")
    catalog = request.app[CATALOG]
    product_id = request.match_info["id"]
    if product_id not in catalog:
        return json_error(404, "not_found", f"unknown product {product_id[:80]!r}")
    path = catalog.get(product_id).folder / MODEL_FILE
    if not path.is_file():
        return json_error(404, "not_found", f"product {product_id!r} has no {MODEL_FILE}")
    return web.FileResponse(path, headers={"Content-Type": GLB_TYPE, "Cache-Control": "private, no-cache",
                                           "X-Content-Type-Options": "nosniff"})


@web.middleware
async def origin_guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Rule 4, for every route: a cross-origin WebSocket upgrade is 403."""
    if request.headers.get("Upgrade", "").lower() == "websocket" and not same_origin(request):
        return json_error(403, "forbidden", "WebSocket connections are taken from this server's own pages only "
                                            f"(Origin {request.headers.get('Origin', '')[:100]!r})")
    return await handler(request)


def add_web_routes(app: web.Application) -> None:
    """Register the pages, their files, the product model route and the agent channel on ``app`` (which
    provides ``AUTHORITY`` and ``CATALOG``), and the origin guard (rule 4) among its middlewares."""

    app.middlewares.append(origin_guard)
    app.router.add_get("/", page)
    app.router.add_get("/console", console)
    app.router.add_get(AGENT_PATH, agent_socket)
    app.router.add_get(STATIC_PREFIX + "{path:.+}", web_file)
    app.router.add_get("/v1/products/{id}/" + MODEL_FILE, product_model)
