"""JSON in text columns, the same way for every backend: compact, no NaN, and a clear error for the rest."""

from __future__ import annotations

import json
from typing import Any

from ar_server.errors import StoreError


def dump_json(value: Any, what: str) -> str | None:
    """``value`` as compact JSON (None stays NULL); raises StoreError("bad_value") naming ``what``."""
    if value is None:
        return None
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError("bad_value", f"{what} is not JSON-serialisable: {exc}", what) from None


def load_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)
