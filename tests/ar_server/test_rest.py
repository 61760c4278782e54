"""REST over a real server: the auth matrix (every route x every role, no token, bad token), scene writes
(validation with file:line:col, atomic write, every version kept, path traversal refused), sessions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ar_server.app import create_app
from ar_server.app_keys import STORE
from ar_server.auth import TokenAuthority, resume_token_hash
from ar_server.config import DEV_SECRET
from ar_server.rest import ROUTE_ROLES
from ar_server.store import SessionRecord
from scenes import LIBRARY_DIR
from tests.ar_server.conftest import make_config

ROLES = ("customer", "agent", "author", "admin")
MATRIX_LINK = "matrix-link-0123456789abcdef"
SCENE_ID = "router_no_internet"


@pytest.fixture
async def api(aiohttp_client: Any, tmp_path: Path, pipeline: Any) -> Any:
    scene_dir = tmp_path / "scenes"
    scene_dir.mkdir()
    for src in LIBRARY_DIR.glob("*.yaml"):
        (scene_dir / src.name).write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    return await aiohttp_client(create_app(make_config(tmp_path, scene_dir=scene_dir), pipeline=pipeline))


def _auth(role: str | None, subject: str | None = None, **kw: Any) -> dict[str, str]:
    if role is None:
        return {}
    if role == "bad":
        return {"Authorization": "Bearer fl1.e30.AAAA"}
    return {"Authorization": "Bearer " + TokenAuthority(DEV_SECRET).mint(role, subject or f"{role}-1", 600, **kw)}


def _expected(method: str, path: str, role: str | None) -> int:
    roles = ROUTE_ROLES[(method, path)]
    if roles is None:
        return 200
    if role in (None, "bad"):
        return 401
    if role not in roles:
        return 403
    if path == "/v1/sessions":
        return 201 if method == "POST" else 200
    return 200


@pytest.mark.parametrize("role", [*ROLES, None, "bad"])
@pytest.mark.parametrize(("method", "path"), sorted(ROUTE_ROLES))
async def test_auth_matrix(api: Any, method: str, path: str, role: str | None) -> None:
    session_id = "sess-matrix"
    await api.server.app[STORE].create_session(SessionRecord(id=session_id, customer="customer-1",
                                                             resume_hash="h" * 64, created_at=1.0, updated_at=1.0))
    store = api.server.app[STORE]
    escalation = await store.open_escalation(session_id, "help", at=1.0)
    await store.create_link(resume_token_hash(MATRIX_LINK), session_id, at=1.0, expires_at=1e12)
    url = path.replace("{id}", {"/v1/products/{id}": "router_ax1800", "/v1/scenes/{id}": SCENE_ID,
                                "/v1/sessions/{id}": session_id}.get(path, str(escalation)))
    body: str | None = None
    if method == "PUT":
        body = (LIBRARY_DIR / f"{SCENE_ID}.yaml").read_text(encoding="utf-8")
    elif path == "/v1/links/exchange":
        body = json.dumps({"link": MATRIX_LINK})
    response = await api.request(method, url, headers=_auth(role), data=body)
    assert response.status == _expected(method, path, role), await response.text()
    if response.status >= 400:
        assert (await response.json())["error"]["code"] in ("unauthorized", "forbidden")


async def test_customer_reaches_only_their_own_session(api: Any) -> None:
    created = await (await api.post("/v1/sessions", headers=_auth("customer", "cust-a"))).json()
    assert created["customer"] == "cust-a" and created["token"].startswith("fl1.")
    mine = await api.get(f"/v1/sessions/{created['session']}", headers={"Authorization": f"Bearer {created['token']}"})
    assert mine.status == 200 and (await mine.json())["id"] == created["session"]
    theirs = await api.get(f"/v1/sessions/{created['session']}", headers=_auth("customer", "cust-b"))
    assert theirs.status == 403
    agent = await api.get(f"/v1/sessions/{created['session']}", headers=_auth("agent"))
    body = await agent.json()
    assert body["customer"] == "cust-a" and body["history"] == [] and "resume_hash" not in body


async def test_put_scene_validates_writes_atomically_and_keeps_versions(api: Any, tmp_path: Path) -> None:
    path = tmp_path / "scenes" / f"{SCENE_ID}.yaml"
    original = path.read_text(encoding="utf-8")
    edited = original.replace("Plug the internet cable firmly", "Push the internet cable firmly")
    response = await api.put(f"/v1/scenes/{SCENE_ID}", data=edited, headers=_auth("author", "ann"))
    assert response.status == 200 and (await response.json())["version"] == 2
    assert path.read_text(encoding="utf-8") == edited
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary file left behind
    versions = await api.server.app[STORE].scene_versions(SCENE_ID)
    assert [(v.version, v.author, v.yaml_text) for v in versions] == [(1, "file", original), (2, "ann", edited)]
    got = await (await api.get(f"/v1/scenes/{SCENE_ID}", headers=_auth("agent"))).json()
    assert got["yaml"] == edited and [v["version"] for v in got["versions"]] == [1, 2]


async def test_invalid_scene_gets_422_with_cli_style_issues_and_changes_nothing(api: Any, tmp_path: Path) -> None:
    path = tmp_path / "scenes" / f"{SCENE_ID}.yaml"
    original = path.read_text(encoding="utf-8")
    broken = original.replace("{part: port_wan, is: plugged}", "{part: port_wan, is: glowing}", 1)
    response = await api.put(f"/v1/scenes/{SCENE_ID}", data=broken, headers=_auth("author"))
    assert response.status == 422
    body = (await response.json())["error"]
    assert body["code"] == "invalid_scene"
    line = next(n for n, row in enumerate(broken.splitlines(), start=1) if "glowing" in row)
    assert any(i["line"] == line and "glowing" in i["message"] for i in body["issues"]), body["issues"]
    assert body["lines"][0].startswith(f"{path}:{body['issues'][0]['line']}:")
    assert path.read_text(encoding="utf-8") == original
    assert await api.server.app[STORE].scene_versions(SCENE_ID) == []


@pytest.mark.parametrize("scene_id", ["..%2F..%2Fetc%2Fpasswd", "..", ".hidden", "a..b", "%2E%2E", "x%00y",
                                      "a%5Cb"])
async def test_path_traversal_in_scene_ids_is_refused(api: Any, scene_id: str, tmp_path: Path) -> None:
    for method in ("GET", "PUT"):
        response = await api.request(method, f"/v1/scenes/{scene_id}", data="id: x\n", headers=_auth("admin"))
        assert response.status in (400, 404), (method, response.status)
        if response.status == 400:
            assert (await response.json())["error"]["code"] == "bad_id"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "scenes"]


async def test_products_and_metrics(api: Any) -> None:
    products = await (await api.get("/v1/products", headers=_auth("customer"))).json()
    assert {p["id"] for p in products["products"]} == {"router_ax1800", "printer_lx400"}
    router = await (await api.get("/v1/products/router_ax1800", headers=_auth("customer"))).json()
    assert "led_internet" in {p["name"] for p in router["parts"]} and "wan_unplugged" in router["faults"]
    assert (await api.get("/v1/products/toaster", headers=_auth("customer"))).status == 404
    assert all(p["moves"] == {} and p["attached_to"] is None for p in router["parts"])
    printer = await (await api.get("/v1/products/printer_lx400", headers=_auth("customer"))).json()
    parts = {p["name"]: p for p in printer["parts"]}
    assert parts["tray_paper"]["moves"] == {"open": {"translate": [0.0, -0.17, 0.0], "pivot": [0.0, 0.0, 0.0],
                                                     "axis": [1.0, 0.0, 0.0], "degrees": 0.0}}
    assert parts["cover_front"]["moves"]["open"] == {"translate": [0.0, 0.0, 0.0], "pivot": [0.0, -0.185, 0.11],
                                                     "axis": [1.0, 0.0, 0.0], "degrees": 80.0}
    assert parts["tray_media"]["attached_to"] == "tray_paper" and parts["tray_media"]["moves"] == {}
    text = await (await api.get("/metrics", headers=_auth("admin"))).text()
    for name in ("fixlens_frames_received_total", "fixlens_active_sessions", "fixlens_stage_seconds",
                 "fixlens_session_outcomes_total", "fixlens_frames_dropped_total"):
        assert f"# TYPE {name} " in text
