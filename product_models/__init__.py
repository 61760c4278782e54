"""The product catalog: product data, 3D models, rendering and digital twins.

Only the data layer (``catalog``, ``sourcemap``, ``errors``) is imported here; rendering and twins pull in
Panda3D and live in their own modules.
"""

from __future__ import annotations

from product_models.catalog import (
    ACTIONS,
    CATALOG_DIR,
    PART_KINDS,
    Catalog,
    Fault,
    Keypoint,
    Part,
    Product,
    default_catalog,
    load_product,
    localized,
)
from product_models.errors import CatalogError

__all__ = [
    "ACTIONS",
    "CATALOG_DIR",
    "PART_KINDS",
    "Catalog",
    "CatalogError",
    "Fault",
    "Keypoint",
    "Part",
    "Product",
    "default_catalog",
    "load_product",
    "localized",
]
