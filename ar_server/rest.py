"""REST routes (JSON): products, scenes, sessions, health and metrics, each with the roles it admits.

Auth is a bearer token (``Authorization: Bearer fl1....``) on every route but ``/healthz``. A missing or
invalid token is 401, a valid token of a role the route does not admit is 403. ``ROUTE_ROLES`` is the
single table of who may do what; docs/server.md and the auth matrix test read the same table.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from ar_server.app_keys import AUTHORITY, CATALOG, CLOCK, CONFIG, INFERENCE, METRICS, SCENES, SESSIONS, STORE
from ar_server.auth import Claims, check_session_access, new_resume_token
from ar_server.errors import AuthError, ServerError
from ar_server.metrics import CONTENT_TYPE
from ar_server.store import SessionRecord
from scenes.i18n import pick

ALL_ROLES = ("customer", "agent", "author", "admin")
# (method, path) -> roles admitted; None = public.
ROUTE_ROLES: dict[tuple[str, str], tuple[str, ...] | None] = {
    ("GET", "/healthz"): None,
    ("GET", "/metrics"): ("admin",),
    ("GET", "/v1/products"): ALL_ROLES,
    ("GET", "/v1/products/{id}"): ALL_ROLES,
    ("GET", "/v1/scenes"): ("agent", "author", "admin"),
    ("GET", "/v1/scenes/{id}"): ("agent", "author", "admin"),
    ("PUT", "/v1/scenes/{id}"): ("author", "admin"),
    ("POST", "/v1/sessions"): ("customer", "agent", "admin"),
    ("GET", "/v1/sessions"): ("agent", "admin"),
    # customers too, but only for their own session (checked in the handler)
    ("GET", "/v1/sessions/{id}"): ("customer", "agent", "admin"),
}
MAX_SCENE_BYTES = 256 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole request body, or None when it is over ``limit`` bytes (by its Content-Length, before
    reading anything, or once more than ``limit`` bytes have arrived). A single ``content.read(n)`` returns
    only what has arrived so far: a body sent in two TCP writes was stored cut short."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _claims(request: web.Request, roles: tuple[str, ...]) -> Claims:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _http(401, "unauthorized", "send Authorization: Bearer <token>")
    try:
        claims = request.app[AUTHORITY].verify(token.strip())
    except AuthError as exc:
        raise _http(401, "unauthorized", f"token {exc.code.replace('_', ' ')}: {exc.message}") from None
    if claims.role not in roles:
        raise _http(403, "forbidden", f"role {claims.role!r} may not do this; needs one of {', '.join(roles)}")
    return claims


def _http(status: int, code: str, message: str) -> web.HTTPException:
    body = json.dumps({"error": {"code": code, "message": message}})
    cls = {400: web.HTTPBadRequest, 401: web.HTTPUnauthorized, 403: web.HTTPForbidden, 404: web.HTTPNotFound}
    return cls[status](text=body, content_type="application/json")


def guarded(method: str, path: str, handler: Callable[[web.Request, Claims | None], Awaitable[web.StreamResponse]]
            ) -> web.RouteDef:
    """A route whose handler receives the verified claims (None on public routes), per ``ROUTE_ROLES``."""
    roles = ROUTE_ROLES[(method, path)]

    async def wrapped(request: web.Request) -> web.StreamResponse:
        claims = None if roles is None else _claims(request, roles)
        return await handler(request, claims)

    return web.route(method, path, wrapped)


# ---------------------------------------------------------------- health and metrics


async def healthz(request: web.Request, claims: Claims | None) -> web.Response:
    app = request.app
    return web.json_response({"status": "ok", "sessions": len(app[SESSIONS].live),
                              "inference_pending": app[INFERENCE].pending,
                              "pipeline": type(app[INFERENCE].pipeline).__name__})


async def metrics(request: web.Request, claims: Claims | None) -> web.Response:
    return web.Response(body=request.app[METRICS].render().encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})


# ---------------------------------------------------------------- products


def _product_json(product: Any, full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"id": product.id, "name": dict(product.name), "size_mm": list(product.size_mm)}
    if full:
        out["parts"] = [{"name": p.name, "kind": p.kind, "states": list(p.states), "healthy": p.healthy,
                         "facing": p.facing, "anchor": list(p.anchor), "size_mm": list(p.size_mm),
                         "actions": list(p.actions), "label": dict(p.label)} for p in product.parts]
        out["faults"] = {name: {"description": dict(f.description), "states": dict(f.states)}
                         for name, f in product.faults.items()}
    return out


async def list_products(request: web.Request, claims: Claims | None) -> web.Response:
    return web.json_response({"products": [_product_json(p, False) for p in request.app[CATALOG]]})


async def get_product(request: web.Request, claims: Claims | None) -> web.Response:
    catalog = request.app[CATALOG]
    product_id = request.match_info["id"]
    if product_id not in catalog:
        return json_error(404, "not_found", f"unknown product {product_id[:80]!r}")
    return web.json_response(_product_json(catalog.get(product_id), True))


# ---------------------------------------------------------------- scenes


async def list_scenes(request: web.Request, claims: Claims | None) -> web.Response:
    scenes = [{"id": s.id, "product": s.product, "title": pick(s.title, "en", s.default_locale),
               "locales": sorted(s.locales)} for s in request.app[SCENES].library]
    return web.json_response({"scenes": scenes})


def _scene_path(request: web.Request) -> str:
    scene_id = request.match_info["id"]
    try:
        request.app[SCENES].path_for(scene_id)
    except ServerError as exc:
        raise _http(400, exc.code, exc.message) from None
    return scene_id


async def get_scene(request: web.Request, claims: Claims | None) -> web.Response:
    scene_id = _scene_path(request)
    files = request.app[SCENES]
    text = await asyncio.to_thread(files.text, scene_id)
    if text is None or scene_id not in files.library:
        return json_error(404, "not_found", f"unknown scene {scene_id!r}")
    scene = files.library.get(scene_id)
    versions = await request.app[STORE].scene_versions(scene_id)
    return web.json_response({"id": scene.id, "product": scene.product, "yaml": text,
                              "versions": [{"version": v.version, "author": v.author, "created_at": v.created_at}
                                           for v in versions]})


async def put_scene(request: web.Request, claims: Claims | None) -> web.Response:
    assert claims is not None
    scene_id = _scene_path(request)
    raw = await read_body(request, MAX_SCENE_BYTES)
    if raw is None:
        return json_error(413, "too_large", f"a scene is at most {MAX_SCENE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return json_error(400, "bad_encoding", f"scene YAML must be UTF-8: {exc}")
    files, store, now = request.app[SCENES], request.app[STORE], request.app[CLOCK]()
    scene, issues = await asyncio.to_thread(files.check, scene_id, text)
    if scene is None:
        return json_error(422, "invalid_scene", f"scene {scene_id!r} has {len(issues)} issue(s)",
                          issues=[i.to_dict() for i in issues], lines=[str(i) for i in issues])
    # One write at a time: two first writes at once would each find no stored version and each store the
    # file that predates the API as a baseline.
    async with files.api_lock:
        previous = await asyncio.to_thread(files.text, scene_id)
        if previous is not None and not await store.scene_versions(scene_id):
            await store.put_scene_version(scene_id, previous, "file", at=now)  # the version that predates the API
        version = await store.put_scene_version(scene_id, text, claims.subject, at=now)
        await asyncio.to_thread(files.write, scene_id, text)
    request.app[SESSIONS].replace_library(files.library)
    return web.json_response({"id": scene_id, "version": version, "created": previous is None,
                              "warnings": [str(i) for i in issues]}, status=201 if previous is None else 200)


# ---------------------------------------------------------------- sessions


async def create_session(request: web.Request, claims: Claims | None) -> web.Response:
    """A new session and a customer token bound to it (a support link for a customer)."""
    assert claims is not None
    subject = claims.subject if claims.role == "customer" else f"customer-{secrets.token_hex(4)}"
    if claims.role != "customer" and request.can_read_body:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return json_error(400, "bad_json", "expected a JSON object such as {\"customer\": \"cust-42\"}")
        if not isinstance(body, dict):
            return json_error(400, "bad_json", "expected a JSON object")
        subject = body.get("customer", subject)
    now, config = request.app[CLOCK](), request.app[CONFIG]
    session_id = secrets.token_hex(8)
    try:
        token = request.app[AUTHORITY].mint("customer", str(subject), config.token_ttl_s, session=session_id)
    except ValueError as exc:
        return json_error(400, "bad_field", str(exc), field="customer")
    _, placeholder_hash = new_resume_token()  # replaced on the first welcome
    await request.app[STORE].create_session(SessionRecord(id=session_id, customer=str(subject),
                                                          resume_hash=placeholder_hash, created_at=now,
                                                          updated_at=now))
    return web.json_response({"session": session_id, "token": token, "customer": subject,
                              "expires_at": int(now) + config.token_ttl_s}, status=201)


def _session_json(record: SessionRecord) -> dict[str, Any]:
    out = asdict(record)
    out.pop("resume_hash")
    out.pop("snapshot")
    return out


async def list_sessions(request: web.Request, claims: Claims | None) -> web.Response:
    live_param = request.query.get("live")
    live = None if live_param is None else live_param.lower() in ("1", "true", "yes")
    records = await request.app[STORE].list_sessions(live=live, limit=200)
    connected = request.app[SESSIONS].live
    return web.json_response({"sessions": [{**_session_json(r), "connected": r.id in connected} for r in records]})


async def get_session(request: web.Request, claims: Claims | None) -> web.Response:
    assert claims is not None
    session_id = request.match_info["id"]
    store = request.app[STORE]
    record = await store.get_session(session_id)
    try:
        check_session_access(claims, session_id, None if record is None else record.customer)
    except AuthError as exc:
        return json_error(403, "forbidden", exc.message)
    if record is None:
        return json_error(404, "not_found", f"unknown session {session_id[:80]!r}")
    history = [asdict(s) for s in await store.step_history(session_id)]
    escalations = [asdict(e) for e in await store.list_escalations() if e.session_id == session_id]
    events = [asdict(e) for e in (await store.events(session_id))[-50:]]
    return web.json_response({**_session_json(record), "connected": session_id in request.app[SESSIONS].live,
                              "history": history, "escalations": escalations, "events": events,
                              "last_observation": request.app[SESSIONS].last_observation(session_id)})


def routes() -> list[web.RouteDef]:
    table = {
        ("GET", "/healthz"): healthz, ("GET", "/metrics"): metrics,
        ("GET", "/v1/products"): list_products, ("GET", "/v1/products/{id}"): get_product,
        ("GET", "/v1/scenes"): list_scenes, ("GET", "/v1/scenes/{id}"): get_scene,
        ("PUT", "/v1/scenes/{id}"): put_scene,
        ("POST", "/v1/sessions"): create_session, ("GET", "/v1/sessions"): list_sessions,
        ("GET", "/v1/sessions/{id}"): get_session,
    }
    assert set(table) == set(ROUTE_ROLES), "every route needs a role entry"
    return [guarded(method, path, handler) for (method, path), handler in table.items()]
