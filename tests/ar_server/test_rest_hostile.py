"""Scene writes under hostile or unlucky clients, over a real server on a real port: bodies in pieces, bodies
over the limit, first writes at the same moment, and YAML built to exhaust the server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ar_server.app import create_app
from ar_server.app_keys import STORE
from ar_server.auth import TokenAuthority
from ar_server.config import DEV_SECRET
from ar_server.rest import MAX_SCENE_BYTES
from scenes import LIBRARY_DIR
from tests.ar_server.conftest import make_config

SCENE_ID = "router_no_internet"


@pytest.fixture
async def api(aiohttp_client: Any, tmp_path: Path, pipeline: Any) -> Any:
    scene_dir = tmp_path / "scenes"
    scene_dir.mkdir()
    for src in LIBRARY_DIR.glob("*.yaml"):
        (scene_dir / src.name).write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    return await aiohttp_client(create_app(make_config(tmp_path, scene_dir=scene_dir), pipeline=pipeline))


def _token(subject: str = "ann") -> str:
    return TokenAuthority(DEV_SECRET).mint("author", subject, 600)


async def _raw_put(api: Any, path: str, pieces: list[bytes], length: int, pause_s: float = 0.2) -> tuple[int, bytes]:
    """PUT over a plain socket, the body in ``pieces`` written apart (separate TCP segments)."""
    reader, writer = await asyncio.open_connection(api.server.host, api.server.port)
    head = (f"PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {_token()}\r\n"
            f"Content-Type: application/yaml\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n")
    writer.write(head.encode())
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(pause_s)
    # Read the answer by its own length: a server that refused a body need not close the connection at once.
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30.0)
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    body = await asyncio.wait_for(reader.readexactly(length), 30.0)
    writer.close()
    return int(head.split(b" ", 2)[1]), body


async def test_a_body_in_two_writes_is_stored_whole(api: Any, tmp_path: Path) -> None:
    """The server answered 201 and stored 186 of 229 bytes: one content.read(n) returns what has arrived."""
    text = (LIBRARY_DIR / f"{SCENE_ID}.yaml").read_text(encoding="utf-8").replace("firmly", "all the way")
    body = text.encode()
    status, answer = await _raw_put(api, f"/v1/scenes/{SCENE_ID}", [body[:200], body[200:]], len(body))
    assert status == 200, answer
    assert (tmp_path / "scenes" / f"{SCENE_ID}.yaml").read_text(encoding="utf-8") == text
    versions = await api.server.app[STORE].scene_versions(SCENE_ID)
    assert versions[-1].yaml_text == text


@pytest.mark.parametrize("size", [MAX_SCENE_BYTES + 1, 4_400_000, 50_000_000])
async def test_bodies_over_the_limit_get_413_by_their_length(api: Any, size: int) -> None:
    """4.4 MB and 50 MB bodies got 422 (cut at the limit, then parsed) instead of 413. Refused by the
    announced length, the rest of a 50 MB body is never read."""
    status, answer = await _raw_put(api, f"/v1/scenes/{SCENE_ID}", [b"x" * min(size, 65536)], size, pause_s=0.0)
    assert status == 413, answer
    assert b'"too_large"' in answer


async def test_a_chunked_body_over_the_limit_gets_413(api: Any) -> None:
    async def chunks() -> Any:
        for _ in range(MAX_SCENE_BYTES // 65536 + 2):
            yield b"x" * 65536

    response = await api.put(f"/v1/scenes/{SCENE_ID}", data=chunks(),
                             headers={"Authorization": f"Bearer {_token()}"})
    assert response.status == 413 and (await response.json())["error"]["code"] == "too_large"


async def test_first_writes_at_once_keep_one_baseline(api: Any) -> None:
    """Concurrent first writes of a scene that existed before any API write stored its baseline up to 7 times."""
    original = (LIBRARY_DIR / f"{SCENE_ID}.yaml").read_text(encoding="utf-8")
    texts = [original.replace("Plug the internet cable firmly", f"Plug the internet cable firmly ({i})")
             for i in range(7)]
    answers = await asyncio.gather(*(api.put(f"/v1/scenes/{SCENE_ID}", data=t,
                                             headers={"Authorization": f"Bearer {_token(f'a{i}')}"})
                                     for i, t in enumerate(texts)))
    assert sorted(r.status for r in answers) == [200] * 7
    versions = await api.server.app[STORE].scene_versions(SCENE_ID)
    assert [v.author for v in versions].count("file") == 1
    assert [v.version for v in versions] == list(range(1, 9))


@pytest.mark.parametrize(("name", "body", "message"), [
    ("alias bomb", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 7)), "aliases expand"),
    ("deep nesting", "[" * 50_000 + "]" * 50_000, "nesting deeper"),
    ("python tag on a map", "!!python/object/apply:os.system {args: [echo]}\n", "unsupported YAML tag"),
])
async def test_hostile_yaml_gets_422_naming_the_problem(api: Any, name: str, body: str, message: str) -> None:
    """A 487-byte alias bomb took 12.6 s and 666 MB; deep nesting was a plain-text 500 (RecursionError);
    a python tag on a full scene's map was accepted with the tag ignored."""
    response = await api.put(f"/v1/scenes/{SCENE_ID}", data=body, headers={"Authorization": f"Bearer {_token()}"})
    assert response.status == 422, name
    error = (await response.json())["error"]
    assert error["code"] == "invalid_scene" and any(message in line for line in error["lines"]), error
