from __future__ import annotations

import json

import pytest

from ar_server.auth import TokenAuthority
from ar_server.config import DEV_SECRET
from fixlens.cli import main

SECRET = "s" * 40


def test_token_with_configured_secret(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FIXLENS_SECRET", SECRET)
    monkeypatch.setenv("FIXLENS_MODE", "production")
    assert main(["token", "--role", "customer", "--subject", "cust-7", "--ttl", "120", "--session", "s1"]) == 0
    out = capsys.readouterr()
    claims = TokenAuthority(SECRET).verify(out.out.strip(), roles=("customer",))
    assert (claims.subject, claims.session, claims.expires_at - claims.issued_at) == ("cust-7", "s1", 120)
    assert "warning" not in out.err


def test_token_in_dev_mode_warns_about_the_dev_secret(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("FIXLENS_SECRET", raising=False)
    monkeypatch.delenv("FIXLENS_MODE", raising=False)
    assert main(["token", "--role", "admin", "--json"]) == 0
    out = capsys.readouterr()
    data = json.loads(out.out)
    assert data["role"] == "admin" and data["subject"] == "admin" and data["expires_at"] - data["issued_at"] == 3600
    assert TokenAuthority(DEV_SECRET).verify(data["token"]).role == "admin"
    assert "development secret" in out.err


def test_token_refuses_production_without_secret(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("FIXLENS_SECRET", raising=False)
    assert main(["token", "--role", "agent", "--mode", "production"]) == 2
    err = capsys.readouterr().err
    assert "no secret is configured" in err and "FIXLENS_SECRET" in err


@pytest.mark.parametrize("argv", [["token", "--role", "agent", "--ttl", "0"],
                                  ["token", "--role", "agent", "--subject", "two words"]])
def test_token_bad_arguments(argv: list[str], monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("FIXLENS_MODE", raising=False)
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("error:")


def test_token_unknown_role_is_an_argparse_error() -> None:
    with pytest.raises(SystemExit):
        main(["token", "--role", "root"])
