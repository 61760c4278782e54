from __future__ import annotations

import base64
import json

import pytest

from ar_server.auth import (
    Claims,
    TokenAuthority,
    check_role,
    check_session_access,
    new_resume_token,
    resume_token_hash,
)
from ar_server.errors import AuthError

SECRET = "test-secret-0123456789abcdef0123456789"


class Clock:
    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def authority(clock: Clock) -> TokenAuthority:
    return TokenAuthority(SECRET, clock=clock)


def _payload(token: str) -> dict[str, object]:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def _forge(payload: dict[str, object], secret: str = SECRET) -> str:
    """A token with any payload, correctly signed with ``secret`` (to reach the payload checks)."""
    import hashlib
    import hmac

    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    sig = hmac.new(secret.encode(), f"fl1.{body}".encode(), hashlib.sha256).digest()
    return f"fl1.{body}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


def test_mint_and_verify_round_trip(authority: TokenAuthority, clock: Clock) -> None:
    token = authority.mint("customer", "cust-42", 600, session="sess_1")
    claims = authority.verify(token, roles=("customer",))
    assert claims == Claims(subject="cust-42", role="customer", issued_at=int(clock.now),
                            expires_at=int(clock.now) + 600, session="sess_1")
    assert token.startswith("fl1.") and token.count(".") == 2 and "=" not in token


def test_token_is_valid_until_just_before_expiry(authority: TokenAuthority, clock: Clock) -> None:
    token = authority.mint("agent", "alice", 60)
    clock.now += 59.9
    assert authority.verify(token).role == "agent"
    clock.now += 0.1
    with pytest.raises(AuthError) as info:
        authority.verify(token)
    assert info.value.code == "expired"


def test_wrong_secret_is_bad_signature(authority: TokenAuthority, clock: Clock) -> None:
    token = TokenAuthority("another-secret", clock=clock).mint("admin", "root", 60)
    with pytest.raises(AuthError) as info:
        authority.verify(token)
    assert info.value.code == "bad_signature"


def test_tampered_payload_is_bad_signature(authority: TokenAuthority) -> None:
    token = authority.mint("customer", "bob", 60)
    payload = _payload(token)
    payload["role"] = "admin"
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    forged = ".".join(["fl1", body, token.split(".")[2]])
    with pytest.raises(AuthError) as info:
        authority.verify(forged)
    assert info.value.code == "bad_signature"


def test_flipped_signature_character(authority: TokenAuthority) -> None:
    token = authority.mint("customer", "bob", 60)
    last = "A" if token[-2] != "A" else "B"
    with pytest.raises(AuthError) as info:
        authority.verify(token[:-2] + last + token[-1])
    assert info.value.code in ("bad_signature", "malformed")


def test_wrong_role(authority: TokenAuthority) -> None:
    token = authority.mint("customer", "bob", 60)
    with pytest.raises(AuthError) as info:
        authority.verify(token, roles=("agent", "admin"))
    assert info.value.code == "wrong_role" and "customer" in info.value.message


def test_issued_in_the_future(authority: TokenAuthority, clock: Clock) -> None:
    token = _forge({"sub": "x", "role": "admin", "iat": int(clock.now) + 3600, "exp": int(clock.now) + 7200})
    with pytest.raises(AuthError) as info:
        authority.verify(token)
    assert info.value.code == "not_yet_valid"


MALFORMED = [
    ("empty", ""),
    ("one part", "abc"),
    ("jwt-looking", "eyJhbGciOiJIUzI1NiJ9.e30.abc"),
    ("four parts", "fl1.a.b.c"),
    ("empty payload", "fl1..abc"),
    ("bad base64 signature", "fl1.e30.!!!"),
    ("non-ascii", "fl1.é.abc"),
    ("huge", "fl1." + "a" * 5000 + ".b"),
]


@pytest.mark.parametrize("token", [row[1] for row in MALFORMED], ids=[row[0] for row in MALFORMED])
def test_malformed(authority: TokenAuthority, token: str) -> None:
    with pytest.raises(AuthError) as info:
        authority.verify(token)
    assert info.value.code == "malformed"


BAD_PAYLOADS = [
    ("not an object", [1, 2]),
    ("no sub", {"role": "admin", "iat": 0, "exp": 2**40}),
    ("unknown role", {"sub": "x", "role": "root", "iat": 0, "exp": 2**40}),
    ("exp string", {"sub": "x", "role": "admin", "iat": 0, "exp": "never"}),
    ("sid int", {"sub": "x", "role": "admin", "iat": 0, "exp": 2**40, "sid": 5}),
]


@pytest.mark.parametrize("payload", [row[1] for row in BAD_PAYLOADS], ids=[row[0] for row in BAD_PAYLOADS])
def test_signed_but_malformed_payload(authority: TokenAuthority, payload: object) -> None:
    with pytest.raises(AuthError) as info:
        authority.verify(_forge(payload))  # type: ignore[arg-type]
    assert info.value.code == "malformed"


@pytest.mark.parametrize(("role", "subject", "ttl", "session"), [
    ("root", "x", 60, None), ("admin", "", 60, None), ("admin", "a b", 60, None), ("admin", "x", 0, None),
    ("customer", "x", 60, "../s"),
])
def test_mint_rejects_bad_arguments(authority: TokenAuthority, role: str, subject: str, ttl: int,
                                    session: str | None) -> None:
    with pytest.raises(ValueError):
        authority.mint(role, subject, ttl, session=session)


def test_check_role() -> None:
    claims = Claims("a", "author", 0, 10)
    check_role(claims, ("author", "admin"))
    with pytest.raises(AuthError) as info:
        check_role(claims, ("admin",))
    assert info.value.code == "wrong_role" and "author" in info.value.message


ACCESS = [
    # (role, token subject, token session, session id, owner, allowed code or None)
    ("customer", "bob", "s1", "s1", "bob", None),
    ("customer", "bob", "s1", "s2", "bob", "forbidden"),
    ("customer", "bob", None, "s2", "bob", None),
    ("customer", "bob", None, "s2", "eve", "forbidden"),
    ("customer", "bob", None, "s2", None, "forbidden"),
    ("agent", "alice", None, "s9", "bob", None),
    ("admin", "root", None, "s9", "bob", None),
    ("author", "carol", None, "s9", "carol", "wrong_role"),
]


@pytest.mark.parametrize(("role", "subject", "bound", "session", "owner", "code"), ACCESS)
def test_session_access(role: str, subject: str, bound: str | None, session: str, owner: str | None,
                        code: str | None) -> None:
    claims = Claims(subject, role, 0, 10, bound)  # type: ignore[arg-type]
    if code is None:
        check_session_access(claims, session, owner)
    else:
        with pytest.raises(AuthError) as info:
            check_session_access(claims, session, owner)
        assert info.value.code == code


def test_resume_tokens_are_random_and_hashed() -> None:
    token, digest = new_resume_token()
    other, _ = new_resume_token()
    assert token != other and len(token) >= 40
    assert digest == resume_token_hash(token) and len(digest) == 64 and token not in digest
