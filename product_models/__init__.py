"""The product catalog: product data, 3D models, rendering and digital twins.

Only the data layer (``catalog``, ``sourcemap``, ``errors``) is imported here. ``camera`` and the digital twin
(``twin``, ``twin_rules``) are light too. Rendering (``render*``, ``modeling``) pulls in OpenCV and Panda3D
and lives in its own modules; ``virtual_camera`` loads the renderer only when it captures.
``tests/product_models/test_imports.py`` checks that the light modules stay light.
"""

from __future__ import annotations

from product_models.catalog import (
    ACTIONS,
    CATALOG_DIR,
    CATALOG_ENV,
    PART_KINDS,
    Catalog,
    Fault,
    Keypoint,
    Part,
    Product,
    catalog_dir,
    default_catalog,
    load_product,
    localized,
)
from product_models.errors import CatalogError

__all__ = [
    "ACTIONS",
    "CATALOG_DIR",
    "CATALOG_ENV",
    "PART_KINDS",
    "Catalog",
    "CatalogError",
    "Fault",
    "Keypoint",
    "Part",
    "Product",
    "catalog_dir",
    "default_catalog",
    "load_product",
    "localized",
]
