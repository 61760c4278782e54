"""``fixlens serve``: the command line of the server; ``ar_server.serve`` runs it.

``--pipeline truth-table`` swaps the vision pipeline for the stand-in of ``fixlens.truth_pipeline`` (frames
are decoded, nothing is recognised), which is why the command lives above the server.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from ar_server.config import add_config_flags

PIPELINES = ("vision", "truth-table")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the AR server (REST + /v1/stream WebSocket)",
                       description="Run the Fixlens server. Flags override FIXLENS_* environment variables, which "
                                   "override the defaults; see docs/server.md.")
    add_config_flags(p)
    p.add_argument("--pipeline", choices=PIPELINES, default="vision",
                   help="vision: the trained vision pipeline (default). truth-table: a stand-in that decodes frames "
                        "but recognises nothing (every frame is 'no product'); for protocol tests and load tests "
                        "without model weights")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.set_defaults(handler=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from ar_server.config import Config, unknown_env_vars
    from ar_server.errors import ConfigError, ServerError
    from ar_server.serve import serve
    from fixlens.truth_pipeline import TruthTablePipeline

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("fixlens.serve")
    try:
        config = Config.from_args(args, os.environ)
    except ConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    for name in unknown_env_vars(os.environ):
        log.warning("environment variable %s configures nothing (typo?)", name)
    if config.secret_is_dev:
        log.warning("tokens use the public development secret (dev mode); set FIXLENS_SECRET for real use")
    pipeline = TruthTablePipeline() if args.pipeline == "truth-table" else None
    try:
        asyncio.run(serve(config, pipeline=pipeline))
    except ServerError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:  # port in use, permission denied, ...
        print(f"error: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 2
    return 0
