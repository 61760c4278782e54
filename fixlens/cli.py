"""The ``fixlens`` command line.

Each package contributes its own subcommands through a ``register(subparsers)`` function; the ``bench``
group is registered here from ``register_bench(subparsers)`` functions. Heavy imports happen inside the
handlers so that ``--help`` stays instant. A handler returns the process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# Modules that add subcommands. Order sets the order in ``fixlens --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "product_models.cli",
    "vision.cli",
    "vision.training.cli",
    "scenes.cli",
    "ar_server.commands",
    "fixlens.serve",
    "fixlens.demo",
    "client_panda3d.cli",
)
# Modules that add ``fixlens bench`` subcommands, in ``fixlens bench --help`` order. The render timings stay
# with the renderer they time; every bench that runs the vision pipeline or a server is wired here.
BENCH_MODULES: tuple[str, ...] = (
    "product_models.cli",
    "fixlens.bench_vision",
    "fixlens.bench_pipeline",
    "fixlens.bench_load",
    "fixlens.bench_plain",
    "fixlens.bench_e2e",
    "fixlens.bench_soak",
    "fixlens.bench_cluster",
    "fixlens.bench_web",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fixlens",
        description="Fixlens: vision-verified, step-by-step AR troubleshooting.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    bench = sub.add_parser("bench", help="performance benchmarks (JSON output)",
                           description="Benchmarks. Each prints a JSON object with --json.")
    bench_sub = bench.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for name in BENCH_MODULES:
        importlib.import_module(name).register_bench(bench_sub)
    return parser


def use_catalog(folder: Path) -> str | None:
    """Make ``folder`` the catalog of this process and its children (``$FIXLENS_CATALOG_DIR``, which
    ``product_models.catalog.default_catalog`` reads); the problem, when it does not load."""
    from product_models.catalog import CATALOG_ENV, Catalog, CatalogError

    try:
        Catalog.load(folder)
    except CatalogError as exc:
        return str(exc)
    os.environ[CATALOG_ENV] = str(folder.resolve())
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "catalog_env", None) is not None and (problem := use_catalog(args.catalog_env)):
        print(f"error: --catalog: {problem}", file=sys.stderr)
        return 2
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `fixlens ... | head` is fine
        return 0


if __name__ == "__main__":
    sys.exit(main())
