"""``fixlens products ...``: inspect, render and build the product catalog."""

from __future__ import annotations

import argparse
import sys

from product_models.catalog import default_catalog, localized
from product_models.errors import CatalogError


def register(sub: argparse._SubParsersAction) -> None:
    products = sub.add_parser("products", help="the product catalog: list, render, sheet, build",
                              description="Inspect the product catalog.")
    psub = products.add_subparsers(dest="products_command", metavar="ACTION", required=True)

    p = psub.add_parser("list", help="print every product with its parts and faults",
                        description="Print the id, name, parts (with states) and faults of every product.")
    p.add_argument("--locale", default="en", help="language of names (default: en)")
    p.set_defaults(handler=_cmd_list)


def _cmd_list(args: argparse.Namespace) -> int:
    try:
        catalog = default_catalog()
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for product in catalog:
        print(f"{product.id}: {localized(product.name, args.locale)}  "
              f"({product.size_mm[0]:g} x {product.size_mm[1]:g} x {product.size_mm[2]:g} mm)")
        print("  parts:")
        for part in product.parts:
            states = f" [{', '.join(part.states)}]" if part.states else ""
            actions = f" actions: {', '.join(part.actions)}" if part.actions else ""
            print(f"    {part.name:<16} {part.kind:<8}{states}{actions}")
        print("  faults:")
        for fault in product.faults.values():
            print(f"    {fault.name:<16} {localized(fault.description, args.locale)}")
    return 0
