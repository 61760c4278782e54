"""Typed reads from an untrusted msgpack map, each raising ``ProtocolError`` that names the field path.

Rules shared by every message (see docs/PROTOCOL.md, "Field rules"):
- an optional field may be absent or nil; both mean "not given";
- ints are msgpack ints (a bool is not an int); floats accept msgpack ints and floats, must be finite;
- strings are UTF-8 msgpack str (not bin); binary data is msgpack bin (not str);
- keys the decoder does not know are ignored, so a newer client can add optional fields.
"""

from __future__ import annotations

import math
import re
from typing import Any, NoReturn

from ar_server.errors import ProtocolError

_MISSING = object()
# Identifiers: scene ids, product ids, part names, step ids, choice ids, notice codes.
IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,4}$")


def wire_type(value: Any) -> str:
    """The msgpack type name of a decoded value, for "expected X, got Y" messages."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, bytes | bytearray):
        return "bin"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "map"
    return "ext"


def _fail(code: str, message: str, field: str) -> NoReturn:
    raise ProtocolError(code, message, field)


class MapReader:
    """Reads fields of one map; ``path`` prefixes field names in errors ("camera.fx", "parts.led.conf")."""

    def __init__(self, value: Any, path: str = "") -> None:
        if not isinstance(value, dict):
            _fail("bad_field" if path else "not_a_map", f"expected a map, got {wire_type(value)}", path or None)
        for key in value:
            if not isinstance(key, str):
                _fail("bad_field" if path else "not_a_map",
                      f"map keys must be strings, got a {wire_type(key)} key", path or None)
        self.value: dict[str, Any] = value
        self.path = path

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str, *, required: bool) -> Any:
        """The value, or ``_MISSING`` when absent (or nil and optional)."""
        value = self.value.get(key, _MISSING)
        if value is _MISSING or (value is None and not required):
            if required:
                _fail("missing_field", f"required field {self.name(key)!r} is missing", self.name(key))
            return _MISSING
        return value

    def string(self, key: str, *, required: bool = True, max_len: int = 128, pattern: re.Pattern[str] | None = None,
               choices: tuple[str, ...] | None = None, default: str | None = None, min_len: int = 1) -> Any:
        value = self.raw(key, required=required)
        if value is _MISSING:
            return default
        return check_string(value, self.name(key), max_len=max_len, pattern=pattern, choices=choices,
                            min_len=min_len)

    def integer(self, key: str, *, lo: int, hi: int, required: bool = True, default: int | None = None) -> Any:
        value = self.raw(key, required=required)
        if value is _MISSING:
            return default
        return check_int(value, self.name(key), lo=lo, hi=hi)

    def number(self, key: str, *, lo: float = -math.inf, hi: float = math.inf, required: bool = True,
               default: float | None = None, lo_open: bool = False) -> Any:
        value = self.raw(key, required=required)
        if value is _MISSING:
            return default
        return check_float(value, self.name(key), lo=lo, hi=hi, lo_open=lo_open)

    def boolean(self, key: str, *, required: bool = False, default: bool = False) -> bool:
        value = self.raw(key, required=required)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            _fail("bad_field", f"expected a bool, got {wire_type(value)}", self.name(key))
        return value

    def binary(self, key: str) -> bytes:
        value = self.raw(key, required=True)
        if not isinstance(value, bytes):
            _fail("bad_field", f"expected bin (raw bytes), got {wire_type(value)}", self.name(key))
        return value

    def nullable(self, key: str) -> Any:
        """A field that must be present but may be nil (``obs.product``, ``obs.pose``)."""
        if key not in self.value:
            _fail("missing_field", f"required field {self.name(key)!r} is missing (send nil for none)",
                  self.name(key))
        return self.value[key]

    def array(self, key: str, *, max_len: int, required: bool = True) -> list[Any]:
        value = self.raw(key, required=required)
        if value is _MISSING:
            return []
        if not isinstance(value, list):
            _fail("bad_field", f"expected an array, got {wire_type(value)}", self.name(key))
        if len(value) > max_len:
            _fail("bad_field", f"expected at most {max_len} items, got {len(value)}", self.name(key))
        return value

    def submap(self, key: str, *, required: bool = True) -> MapReader | None:
        value = self.raw(key, required=required)
        if value is _MISSING:
            return None
        return MapReader(value, self.name(key))


def check_string(value: Any, field: str, *, max_len: int, pattern: re.Pattern[str] | None = None,
                 choices: tuple[str, ...] | None = None, min_len: int = 1) -> str:
    if not isinstance(value, str):
        _fail("bad_field", f"expected a str, got {wire_type(value)}", field)
    if not min_len <= len(value) <= max_len:
        _fail("bad_field", f"expected {min_len}..{max_len} characters, got {len(value)}", field)
    if choices is not None and value not in choices:
        _fail("bad_field", f"expected one of {', '.join(choices)}, got {value[:40]!r}", field)
    if pattern is not None and not pattern.match(value):
        _fail("bad_field", f"{value[:40]!r} does not match {pattern.pattern}", field)
    return value


def check_int(value: Any, field: str, *, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail("bad_field", f"expected an int, got {wire_type(value)}", field)
    if not lo <= value <= hi:
        _fail("bad_field", f"expected {lo}..{hi}, got {value}", field)
    return value


def check_float(value: Any, field: str, *, lo: float = -math.inf, hi: float = math.inf,
                lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail("bad_field", f"expected a number, got {wire_type(value)}", field)
    number = float(value)
    if not math.isfinite(number):
        _fail("bad_field", f"expected a finite number, got {number}", field)
    if number < lo or number > hi or (lo_open and number == lo):
        low = f"({lo:g}" if lo_open else f"[{lo:g}"
        _fail("bad_field", f"expected a number in {low}, {hi:g}], got {number:g}", field)
    return number

