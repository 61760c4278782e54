"""``fixlens serve``: the command line of the server; ``ar_server.serve`` runs it.

``--pipeline truth-table`` swaps the vision pipeline for the stand-in of ``fixlens.truth_pipeline`` (frames
are decoded, nothing is recognised), which is why the command lives above the server.

At start it logs where writable state goes (the data dir; docs/server.md, "Data directory") and whether
hands and face blur are on: a ``fixlens[server]`` install has no MediaPipe, and runs with both off.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import sys
from typing import TYPE_CHECKING

from ar_server.config import add_config_flags

if TYPE_CHECKING:
    from ar_server.config import Config

PIPELINES = ("vision", "truth-table")
# What the server imports beyond the core install (the `server` extra); the vision pipeline's onnxruntime is
# checked where the pipeline loads, with its own error.
SERVER_MODULES = ("aiohttp", "cv2")


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
    missing = [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:  # a core-only install: name the extra, rather than a traceback from deep in the start
        print(f"error: fixlens serve needs {', '.join(missing)}, which are not installed; install them with "
              "`pip install 'fixlens[server]'`", file=sys.stderr)
        return 2
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
    _announce_data(config, log)
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


def _announce_data(config: Config, log: logging.Logger) -> None:
    """Log the data dir in force, and make it the one the MediaPipe model files are looked up under in an
    installed package (``vision.model_files.default_models_dir`` reads ``FIXLENS_DATA_DIR``), so that
    ``--data-dir`` moves them too. Then log whether hands and face blur can run."""
    from vision.hands import unavailable_reason
    from vision.model_files import IN_SOURCE_CHECKOUT

    if not IN_SOURCE_CHECKOUT:  # a checkout keeps its model files in vision/models/ whatever the data dir
        os.environ["FIXLENS_DATA_DIR"] = str(config.data_dir.absolute())
    log.info("data dir: %s (database %s, scenes %s)", config.data_dir, config.db_path, config.scene_dir)
    reason = unavailable_reason()
    if reason is None:
        log.info("hands: on, face blur: on")
    elif config.store_frames_dir is not None:
        log.warning("hands: off, face blur: off, so no frame will be stored: %s", reason)
    else:
        log.info("hands: off, face blur: off: %s", reason)
