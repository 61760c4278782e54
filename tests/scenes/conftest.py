from __future__ import annotations

import pytest

from product_models.catalog import Catalog, default_catalog
from scenes import Library, load_library


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return default_catalog()


@pytest.fixture(scope="session")
def library() -> Library:
    return load_library()
