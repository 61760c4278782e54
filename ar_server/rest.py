"""REST routes (JSON): products, scenes, sessions, health and metrics, each with the roles it admits.

Auth is a bearer token (``Authorization: Bearer fl1....``) on every route but ``/healthz``. A missing or
invalid token is 401, a valid token of a role the route does not admit is 403. ``ROUTE_ROLES`` is the
single table of who may do what; docs/server.md and the auth matrix test read the same table.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from ar_server.app_keys import AUTHORITY, CATALOG, CLOCK, CONFIG, INFERENCE, METRICS, SCENES, SESSIONS, STORE
from ar_server.auth import Claims, check_session_access, new_resume_token, resume_token_hash
from ar_server.errors import AuthError, ServerError
from ar_server.limits import LIMITS, retry_after_header
from ar_server.metrics import CONTENT_TYPE
from ar_server.store import EscalationRecord, SessionRecord
from product_models.catalog import Motion
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
    # public: the single-use link token in the body is the credential
    ("POST", "/v1/links/exchange"): None,
    ("GET", "/v1/escalations"): ("agent", "admin"),
    ("POST", "/v1/escalations/{id}/take"): ("agent", "admin"),
    ("POST", "/v1/escalations/{id}/release"): ("agent", "admin"),
    ("POST", "/v1/escalations/{id}/close"): ("agent", "admin"),
}
MAX_SCENE_BYTES = 256 * 1024
MAX_JSON_BYTES = 16 * 1024
LINK_PATH = "/#link="  # the page reads the link token from the fragment, which no request carries
_LINK_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
ESCALATION_ID = re.compile(r"[1-9][0-9]{0,17}")  # as the store writes ids; 18 digits stay within 64 bits
LINK_ERRORS: dict[str, tuple[int, str]] = {
    "unknown": (404, "this support link is not known; ask for a new one"),
    "used": (410, "this support link was already opened once; ask for a new one"),
    "expired": (410, "this support link has expired; ask for a new one"),
}

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
                         "actions": list(p.actions), "label": dict(p.label), "moves": _moves_json(p.moves),
                         "attached_to": p.attached_to} for p in product.parts]
        out["faults"] = {name: {"description": dict(f.description), "states": dict(f.states)}
                         for name, f in product.faults.items()}
    return out


def _moves_json(moves: dict[str, Motion]) -> dict[str, dict[str, Any]]:
    """Per state, how the part moves into it from where it rests (docs/PROTOCOL.md §9, "Moving parts")."""
    return {state: {"translate": list(m.translate), "pivot": list(m.pivot), "axis": list(m.axis),
                    "degrees": m.degrees} for state, m in moves.items()}


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
    # Keyed by who asks (a customer, or the agent making links), shared with hellos that create sessions.
    wait = request.app[LIMITS].session_creation.take(claims.subject, request.app[CLOCK]())
    if wait is not None:
        response = json_error(429, "rate_limited", f"{claims.subject!r} creates sessions too fast; try again in "
                                                   f"{retry_after_header(wait)} s")
        response.headers["Retry-After"] = retry_after_header(wait)
        return response
    subject = claims.subject if claims.role == "customer" else f"customer-{secrets.token_hex(4)}"
    if claims.role != "customer" and request.can_read_body:
        body = await read_json_object(request, '{"customer": "cust-42"}')
        if isinstance(body, web.Response):
            return body
        subject = body.get("customer", subject)
    now, config = request.app[CLOCK](), request.app[CONFIG]
    session_id = secrets.token_hex(8)
    try:
        token = request.app[AUTHORITY].mint("customer", str(subject), config.token_ttl_s, session=session_id)
    except ValueError as exc:
        return json_error(400, "bad_field", str(exc), field="customer")
    _, placeholder_hash = new_resume_token()  # replaced on the first welcome
    store = request.app[STORE]
    await store.create_session(SessionRecord(id=session_id, customer=str(subject), resume_hash=placeholder_hash,
                                             created_at=now, updated_at=now))
    link = secrets.token_urlsafe(32)  # only its hash is stored; the long-lived token never goes into a URL
    await store.create_link(resume_token_hash(link), session_id, at=now, expires_at=now + config.link_ttl_s)
    return web.json_response({"session": session_id, "token": token, "customer": subject,
                              "expires_at": int(now) + config.token_ttl_s, "url": LINK_PATH + link,
                              "link_expires_at": int(now) + config.link_ttl_s}, status=201)


async def read_json_object(request: web.Request, example: str) -> dict[str, Any] | web.Response:
    """The body as a JSON object, or the 4xx response that says what was wrong with it."""
    raw = await read_body(request, MAX_JSON_BYTES)
    if raw is None:
        return json_error(413, "too_large", f"a JSON body is at most {MAX_JSON_BYTES} bytes")
    try:
        body = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return json_error(400, "bad_json", f"expected a JSON object such as {example}")
    except RecursionError:  # nesting deeper than the interpreter's stack: answered, not a plain-text 500
        return json_error(400, "bad_json", f"JSON nested too deeply; expected a flat object such as {example}")
    if not isinstance(body, dict):
        return json_error(400, "bad_json", f"expected a JSON object such as {example}")
    return body


async def exchange_link(request: web.Request, claims: Claims | None) -> web.Response:
    """Trade a support link's single-use token for the session's customer token: once, before it expires."""
    body = await read_json_object(request, '{"link": "..."}')
    if isinstance(body, web.Response):
        return body
    link = body.get("link")
    if not isinstance(link, str) or not _LINK_TOKEN.match(link):
        return json_error(400, "bad_field", "expected link: the token after #link= in the support link",
                          field="link")
    store, now, config = request.app[STORE], request.app[CLOCK](), request.app[CONFIG]
    outcome, session_id = await store.use_link(resume_token_hash(link), at=now)
    record = None if session_id is None else await store.get_session(session_id)
    if outcome != "ok" or record is None:
        status, message = LINK_ERRORS.get(outcome, LINK_ERRORS["unknown"])
        return json_error(status, f"link_{outcome}", message)
    token = request.app[AUTHORITY].mint("customer", record.customer, config.token_ttl_s, session=record.id)
    return web.json_response({"session": record.id, "token": token, "customer": record.customer,
                              "expires_at": int(now) + config.token_ttl_s})


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
    escalations = [asdict(e) for e in await store.session_escalations(session_id)]
    events = [asdict(e) for e in (await store.events(session_id))[-50:]]
    agents = [asdict(a) for a in await store.agent_actions(session_id)]
    return web.json_response({**_session_json(record), "connected": session_id in request.app[SESSIONS].live,
                              "history": history, "escalations": escalations, "events": events,
                              "agent_actions": agents,
                              "last_observation": request.app[SESSIONS].last_observation(session_id)})


# ---------------------------------------------------------------- the agent queue


def escalation_json(escalation: EscalationRecord, record: SessionRecord | None, now: float,
                    connected: bool) -> dict[str, Any]:
    """An escalation with what an agent needs to pick it: product, scene, step, why, and how long it waits."""
    context = escalation.context if isinstance(escalation.context, dict) else {}
    waiting_since = escalation.accepted_at if escalation.accepted_at is not None else escalation.created_at
    return {"id": escalation.id, "session": escalation.session_id, "reason": escalation.reason,
            "status": escalation.status, "agent": escalation.agent, "created_at": escalation.created_at,
            "accepted_at": escalation.accepted_at, "queued": escalation.accepted_at is not None,
            "waiting_s": round(max(0.0, now - waiting_since), 1),
            "customer": None if record is None else record.customer,
            "product": None if record is None else record.product,
            "scene": context.get("scene") or (None if record is None else record.scene),
            "step": None if record is None else record.current_step, "offered_on_step": context.get("step"),
            "locale": context.get("locale"), "history": context.get("history", []),
            "outcome": None if record is None else record.outcome, "connected": connected}


async def queue_entries(app: web.Application) -> list[dict[str, Any]]:
    """Escalations an agent may act on: accepted ones waiting in the queue, and taken ones still running.
    The session of each is checked once, newest escalation per session only."""
    store, now, live = app[STORE], app[CLOCK](), app[SESSIONS].live
    newest: dict[str, EscalationRecord] = {}
    for escalation in await store.active_escalations():
        if escalation.accepted_at is not None or escalation.status == "taken":
            newest[escalation.session_id] = escalation
    out = []
    for escalation in newest.values():
        record = await store.get_session(escalation.session_id)
        if record is not None and record.outcome is None:
            out.append(escalation_json(escalation, record, now, escalation.session_id in live))
    return sorted(out, key=lambda e: (e["status"] != "open", -e["waiting_s"]))


async def list_escalations(request: web.Request, claims: Claims | None) -> web.Response:
    return web.json_response({"escalations": await queue_entries(request.app)})


async def _escalation(request: web.Request) -> EscalationRecord:
    raw = request.match_info["id"]
    # Ids are written as the store gives them: digits, no sign, no leading zero, within a 64-bit integer.
    found = await request.app[STORE].get_escalation(int(raw)) if ESCALATION_ID.fullmatch(raw) else None
    if found is None:
        raise web.HTTPNotFound(text=json.dumps({"error": {"code": "not_found",
                                                          "message": f"unknown escalation {raw[:40]!r}"}}),
                               content_type="application/json")
    return found


async def take_escalation(request: web.Request, claims: Claims | None) -> web.Response:
    """An agent takes a waiting escalation; of two agents at once, one gets it and the other 409."""
    assert claims is not None
    escalation = await _escalation(request)
    store, now = request.app[STORE], request.app[CLOCK]()
    if not await store.take_escalation(escalation.id, claims.subject, at=now):
        current = await _escalation(request)
        return json_error(409, "already_taken", f"escalation {escalation.id} is {current.status}"
                          + (f" by {current.agent}" if current.agent else ""), agent=current.agent)
    await store.add_agent_action(escalation.session_id, claims.subject, "take", at=now, escalation_id=escalation.id)
    request.app[SESSIONS].queue_changed()
    return await _answer(request, escalation.id)


async def release_escalation(request: web.Request, claims: Claims | None) -> web.Response:
    """Hand a taken escalation back to the queue (only the agent holding it, or an admin)."""
    return await _change(request, claims, "open", "hand_back")


async def close_escalation(request: web.Request, claims: Claims | None) -> web.Response:
    return await _change(request, claims, "closed", "close")


async def _change(request: web.Request, claims: Claims | None, status: str, action: str) -> web.Response:
    assert claims is not None
    escalation = await _escalation(request)
    if escalation.status == "closed":
        return json_error(409, "closed", f"escalation {escalation.id} is closed")
    if escalation.status == "taken" and escalation.agent != claims.subject and claims.role != "admin":
        return json_error(403, "forbidden", f"escalation {escalation.id} is held by {escalation.agent}")
    store, now = request.app[STORE], request.app[CLOCK]()
    await store.update_escalation(escalation.id, status, at=now)  # type: ignore[arg-type]
    await store.add_agent_action(escalation.session_id, claims.subject, action, at=now, escalation_id=escalation.id)
    request.app[SESSIONS].queue_changed()
    return await _answer(request, escalation.id)


async def _answer(request: web.Request, escalation_id: int) -> web.Response:
    app = request.app
    escalation = await app[STORE].get_escalation(escalation_id)
    assert escalation is not None, escalation_id  # escalations are never deleted
    record = await app[STORE].get_session(escalation.session_id)
    return web.json_response(escalation_json(escalation, record, app[CLOCK](), escalation.session_id in
                                             app[SESSIONS].live))


def routes() -> list[web.RouteDef]:
    table = {
        ("GET", "/healthz"): healthz, ("GET", "/metrics"): metrics,
        ("GET", "/v1/products"): list_products, ("GET", "/v1/products/{id}"): get_product,
        ("GET", "/v1/scenes"): list_scenes, ("GET", "/v1/scenes/{id}"): get_scene,
        ("PUT", "/v1/scenes/{id}"): put_scene,
        ("POST", "/v1/sessions"): create_session, ("GET", "/v1/sessions"): list_sessions,
        ("GET", "/v1/sessions/{id}"): get_session, ("POST", "/v1/links/exchange"): exchange_link,
        ("GET", "/v1/escalations"): list_escalations, ("POST", "/v1/escalations/{id}/take"): take_escalation,
        ("POST", "/v1/escalations/{id}/release"): release_escalation,
        ("POST", "/v1/escalations/{id}/close"): close_escalation,
    }
    assert set(table) == set(ROUTE_ROLES), "every route needs a role entry"
    return [guarded(method, path, handler) for (method, path), handler in table.items()]
