"""The page's routes: what is served, with which headers (the Content-Security-Policy above all), what is
refused, and the product model route. Plain HTTP against the page-only server; no browser."""

from __future__ import annotations

import gzip
import http.client
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ar_server.web import content_security_policy
from ar_server.web.routes import CONTENT_TYPES, WEB_DIR
from product_models.catalog import default_catalog
from tests.web.conftest import ServerThread, mint

SERVED = sorted(p for p in WEB_DIR.rglob("*") if p.is_file() and p.suffix in CONTENT_TYPES
                and "__pycache__" not in p.parts)


def get(server: ServerThread, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def directives(policy: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


def test_the_page_has_a_strict_content_security_policy(page_server: ServerThread) -> None:
    status, headers, body = get(page_server, "/")
    assert status == 200 and headers["content-type"].startswith("text/html") and b"<main" in body
    policy = directives(headers["content-security-policy"])
    host = f"127.0.0.1:{page_server.port}"
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]  # no inline, no eval
    assert policy["connect-src"] == ["'self'", "blob:", f"ws://{host}", f"wss://{host}"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert policy["object-src"] == ["'none'"] and policy["form-action"] == ["'none'"]
    assert "unsafe" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"


def test_the_console_carries_the_same_policy(page_server: ServerThread) -> None:
    status, headers, body = get(page_server, "/console")
    assert status == 200 and b"Fixlens console" in body
    _, page_headers, _ = get(page_server, "/")
    assert headers["content-security-policy"] == page_headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("path", [p.relative_to(WEB_DIR).as_posix() for p in SERVED])
def test_every_page_file_is_served_with_the_policy_and_its_type(page_server: ServerThread, path: str) -> None:
    status, headers, body = get(page_server, f"/web/{path}")
    assert status == 200, path
    assert headers["content-type"] == CONTENT_TYPES[Path(path).suffix]
    assert "script-src 'self'" in headers["content-security-policy"]
    assert body == (WEB_DIR / path).read_bytes()


def test_text_files_go_compressed_to_a_client_that_accepts_it(page_server: ServerThread) -> None:
    path = "vendor/three/build/three.core.js"
    status, headers, body = get(page_server, f"/web/{path}", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == (WEB_DIR / path).read_bytes() and len(body) < len(gzip.decompress(body)) / 3
    assert "script-src 'self'" in headers["content-security-policy"]


def test_a_revalidated_file_is_a_clean_304_even_when_gzip_is_accepted(page_server: ServerThread) -> None:
    """Regression: a compressed 304 carried a gzip trailer as its body, and a reload failed to load."""
    connection = http.client.HTTPConnection("127.0.0.1", page_server.port, timeout=10)
    try:
        connection.request("GET", "/web/app.css", headers={"Accept-Encoding": "gzip"})
        first = connection.getresponse()
        first.read()
        connection.request("GET", "/web/app.css", headers={"Accept-Encoding": "gzip",
                                                           "If-None-Match": first.getheader("ETag")})
        second = connection.getresponse()
        assert second.status == 304 and second.read() == b""
        connection.request("GET", "/web/icon.svg")  # the same connection must still parse
        third = connection.getresponse()
        assert third.status == 200 and third.read() == (WEB_DIR / "icon.svg").read_bytes()
    finally:
        connection.close()


@pytest.mark.parametrize("path", [
    "/web/routes.py", "/web/__init__.py", "/web/../rest.py", "/web/%2e%2e/rest.py", "/web/js/../../rest.py",
    "/web/.hidden.js", "/web/__pycache__/routes.cpython-311.pyc", "/web/vendor/three/LICENSE",
    "/web/vendor/README.md", "/web/", "/web/js//main.js", "/web/nothing.js",
])
def test_anything_else_is_not_found(page_server: ServerThread, path: str) -> None:
    status, _, body = get(page_server, path)
    assert status == 404, path
    assert b"import" not in body


def test_a_forged_host_header_cannot_widen_the_policy() -> None:
    assert "connect-src 'self' blob:;" in content_security_policy("evil.example; script-src *") + ";"
    assert "ws://[::1]:8080" in content_security_policy("[::1]:8080")


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._tag = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag = tag
        names = {name for name, _ in attrs}
        if tag == "style" or "style" in names:
            self.problems.append(f"inline style on <{tag}>")
        if any(name.startswith("on") for name in names):
            self.problems.append(f"inline handler on <{tag}>")
        if tag == "script" and "src" not in names:
            self.problems.append("inline <script>")

    def handle_data(self, data: str) -> None:
        if self._tag == "script" and data.strip():
            self.problems.append("script body")


def test_the_page_has_no_inline_script_or_style() -> None:
    markup = _Markup()
    markup.feed((WEB_DIR / "index.html").read_text())
    assert markup.problems == []


@pytest.mark.parametrize("path", [p for p in SERVED if p.suffix == ".js"], ids=lambda p: p.name)
def test_modules_import_only_relative_paths_and_never_eval(path: Path) -> None:
    text = path.read_text()
    imports = re.findall(r"""^(?:import\s*|(?:import|export)\b[^;'"]*?\bfrom\s*|\}\s*from\s*)['"]([^'"]+)['"]""", text,
                         re.MULTILINE)
    assert all(name.startswith(("./", "../")) for name in imports), imports
    if "vendor" not in path.parts:
        assert not re.search(r"\beval\(|new Function\(", text)


def test_the_product_model_is_served_to_a_token_holder(page_server: ServerThread) -> None:
    path = "/v1/products/router_ax1800/model.glb"
    status, _, _ = get(page_server, path)
    assert status == 401
    status, _, _ = get(page_server, path, {"Authorization": "Bearer fl1.bad.token"})
    assert status == 401
    status, headers, body = get(page_server, path, {"Authorization": f"Bearer {mint('customer', 'cust-1')}"})
    assert status == 200 and headers["content-type"] == "model/gltf-binary"
    assert body == (default_catalog().get("router_ax1800").folder / "model.glb").read_bytes()
    status, _, _ = get(page_server, "/v1/products/no_such_thing/model.glb",
                       {"Authorization": f"Bearer {mint('agent', 'agent-1')}"})
    assert status == 404
