"""The one base exception of ``product_models``."""

from __future__ import annotations


class CatalogError(Exception):
    """Bad catalog data, an unknown product, part, state or action, or an unusable model file.

    The message says what was wrong and where; ``file``/``line``/``col``/``path`` are set when the
    error comes from a catalog file.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 col: int | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.file, self.line, self.col, self.path = file, line, col, path
