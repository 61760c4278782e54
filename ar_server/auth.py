"""Signed, expiring bearer tokens with roles, and the access rules built on them.

Format (deliberately not JWT, so nobody mistakes it for one and feeds it to a JWT library):

    fl1.<payload>.<signature>

``payload`` is base64url (no padding) of compact JSON ``{"sub", "role", "iat", "exp"[, "sid"]}`` (times are
integer Unix seconds); ``signature`` is base64url of HMAC-SHA256(secret, "fl1." + payload). The signature is
checked, in constant time, before the payload is parsed, so unsigned input never reaches the JSON parser.
Resume tokens are separate: random strings of which the store keeps only a SHA-256 hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal, get_args

from ar_server.errors import AuthError

Role = Literal["customer", "agent", "author", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
# Roles that may open, watch or take over any session; a customer reaches only its own.
STAFF_ROLES: frozenset[str] = frozenset({"agent", "admin"})

PREFIX = "fl1"
MAX_TOKEN_CHARS = 4096
CLOCK_SKEW_S = 60  # an `iat` this far in the future is still accepted (clocks of several nodes differ)
_SUBJECT = re.compile(r"^[A-Za-z0-9@._:\-]{1,128}$")
_SESSION = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
_B64 = re.compile(r"^[A-Za-z0-9_\-]+$")


@dataclass(frozen=True)
class Claims:
    subject: str
    role: Role
    issued_at: int  # Unix seconds
    expires_at: int  # Unix seconds
    session: str | None = None  # when set, the token reaches this session only


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not _B64.match(text):
        raise AuthError("malformed", "token part is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise AuthError("malformed", "token part is not base64url") from None


class TokenAuthority:
    """Mints and verifies tokens with one secret. ``clock`` returns Unix seconds (injectable for tests)."""

    def __init__(self, secret: str | bytes, *, clock: Callable[[], float] = time.time) -> None:
        key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        if not key:
            raise ValueError("token secret must not be empty")
        self._key = key
        self._clock = clock

    def _sign(self, signing_input: bytes) -> bytes:
        return hmac.new(self._key, signing_input, hashlib.sha256).digest()

    def mint(self, role: str, subject: str, ttl_s: int, *, session: str | None = None) -> str:
        """A token for ``subject`` with ``role`` valid for ``ttl_s`` seconds from now.

        Raises ``ValueError`` for an unknown role, a bad subject or session id, or a ttl under 1 s.
        """
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
        if not _SUBJECT.match(subject):
            raise ValueError(f"bad subject {subject!r}: expected 1..128 of A-Z a-z 0-9 @ . _ : -")
        if session is not None and not _SESSION.match(session):
            raise ValueError(f"bad session id {session!r}: expected 1..128 of A-Z a-z 0-9 _ . -")
        if ttl_s < 1:
            raise ValueError(f"ttl must be at least 1 second, got {ttl_s}")
        now = int(self._clock())
        payload: dict[str, object] = {"sub": subject, "role": role, "iat": now, "exp": now + int(ttl_s)}
        if session is not None:
            payload["sid"] = session
        body = _b64encode(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8"))
        signing_input = f"{PREFIX}.{body}"
        return f"{signing_input}.{_b64encode(self._sign(signing_input.encode('ascii')))}"

    def verify(self, token: str, *, roles: Collection[str] | None = None) -> Claims:
        """The claims of a valid token, or ``AuthError`` with code ``malformed``, ``bad_signature``,
        ``expired``, ``not_yet_valid`` or ``wrong_role`` (when ``roles`` is given and excludes the token's)."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not token.isascii():
            raise AuthError("malformed", f"a token is an ASCII string of at most {MAX_TOKEN_CHARS} characters")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
            raise AuthError("malformed", f"expected {PREFIX}.<payload>.<signature>")
        signature = _b64decode(parts[2])
        expected = self._sign(f"{parts[0]}.{parts[1]}".encode("ascii"))
        if not hmac.compare_digest(signature, expected):
            raise AuthError("bad_signature", "token signature does not match (wrong secret or altered token)")
        claims = _parse_payload(_b64decode(parts[1]))
        now = self._clock()
        if now >= claims.expires_at:
            raise AuthError("expired", f"token expired {int(now - claims.expires_at)} s ago")
        if claims.issued_at > now + CLOCK_SKEW_S:
            raise AuthError("not_yet_valid", "token issued in the future; check the server clocks")
        if roles is not None:
            check_role(claims, roles)
        return claims


def _parse_payload(raw: bytes) -> Claims:
    # Reached only with a valid signature, so a failure here means a minting bug or a leaked secret.
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise AuthError("malformed", "token payload is not JSON") from None
    if not isinstance(data, dict):
        raise AuthError("malformed", "token payload is not a JSON object")
    sub, role, iat, exp, sid = (data.get(k) for k in ("sub", "role", "iat", "exp", "sid"))
    if not isinstance(sub, str) or not _SUBJECT.match(sub):
        raise AuthError("malformed", "token payload: bad or missing sub", "sub")
    if role not in ROLES:
        raise AuthError("malformed", f"token payload: unknown role {role!r}", "role")
    for name, value in (("iat", iat), ("exp", exp)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise AuthError("malformed", f"token payload: {name} must be an integer", name)
    if sid is not None and (not isinstance(sid, str) or not _SESSION.match(sid)):
        raise AuthError("malformed", "token payload: bad sid", "sid")
    return Claims(subject=sub, role=role, issued_at=iat, expires_at=exp, session=sid)  # type: ignore[arg-type]


def check_role(claims: Claims, roles: Collection[str]) -> None:
    """Raise ``AuthError("wrong_role")`` unless the token's role is one of ``roles``."""
    if claims.role not in roles:
        raise AuthError("wrong_role", f"role {claims.role!r} may not do this; needs one of {', '.join(sorted(roles))}",
                        "role")


def check_session_access(claims: Claims, session_id: str, owner_subject: str | None) -> None:
    """Agents and admins reach any session. A customer reaches a session only if its token is bound to that
    session id, or, for an unbound token, if it is the session's owner. Authors reach none.

    Raises ``AuthError`` with ``wrong_role`` or ``forbidden``.
    """
    if claims.role in STAFF_ROLES:
        return
    check_role(claims, ("customer", *STAFF_ROLES))
    if claims.session is not None:
        if not hmac.compare_digest(claims.session.encode(), session_id.encode()):
            raise AuthError("forbidden", "this token is bound to another session", "session")
        return
    if owner_subject is None or claims.subject != owner_subject:
        raise AuthError("forbidden", "this session belongs to another customer", "session")


def new_resume_token() -> tuple[str, str]:
    """A fresh resume token and the hash the store keeps (the token itself is never stored)."""
    token = secrets.token_urlsafe(32)
    return token, resume_token_hash(token)


def resume_token_hash(token: str) -> str:
    """SHA-256 hex of a resume token. The token has 256 random bits, so a plain hash is enough (no salt)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
