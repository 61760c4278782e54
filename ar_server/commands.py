"""``fixlens token``: mint an access token with the configured secret (for operators and tests)."""

from __future__ import annotations

import argparse
import os
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "token", help="mint a signed access token",
        description="Print a token signed with the configured secret (FIXLENS_SECRET; the public development "
                    "secret in dev mode). Production mode without a secret refuses to mint.")
    p.add_argument("--role", required=True, choices=("customer", "agent", "author", "admin"),
                   help="what the token may do")
    p.add_argument("--subject", default=None, help="who it is for (default: the role name)")
    p.add_argument("--ttl", type=int, default=None, metavar="SECONDS",
                   help="lifetime in seconds (default: token_ttl_s from the config)")
    p.add_argument("--session", default=None, metavar="ID", help="bind the token to one session id")
    p.add_argument("--mode", default=None, choices=("dev", "production"), help="override FIXLENS_MODE")
    p.add_argument("--json", action="store_true", help="print the token and its claims as JSON")
    p.set_defaults(handler=_cmd_token)


def _cmd_token(args: argparse.Namespace) -> int:
    import json

    from ar_server.auth import TokenAuthority
    from ar_server.config import Config
    from ar_server.errors import ConfigError

    try:
        config = Config.from_sources({"mode": args.mode}, os.environ)
    except ConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    ttl = config.token_ttl_s if args.ttl is None else args.ttl
    authority = TokenAuthority(config.secret)
    try:
        token = authority.mint(args.role, args.subject or args.role, ttl, session=args.session)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if config.secret_is_dev:
        print("warning: signed with the public development secret (dev mode); set FIXLENS_SECRET for real use",
              file=sys.stderr)
    if args.json:
        claims = authority.verify(token)
        print(json.dumps({"token": token, "role": claims.role, "subject": claims.subject,
                          "session": claims.session, "issued_at": claims.issued_at,
                          "expires_at": claims.expires_at}))
    else:
        print(token)
    return 0
