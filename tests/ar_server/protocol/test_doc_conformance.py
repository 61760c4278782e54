"""docs/PROTOCOL.md against the code, so that a client written from the doc alone works with this server.

The doc's field tables are Markdown tables whose first header cell is ``field``; each is named by the first
code span of the heading above it (``hello``, ``camera``, ``parts.<name>``, ``highlight``...). Checked:

- each table against the class it describes: the same field names, the documented type of each (from the
  class's annotations), the documented values of each ``Literal`` field; and, by decoding the doc's own
  examples with the real codec after removing a field, setting it to nil or giving it a wrong type, that
  ``req`` (yes, no, nullable, if ...) and ``type`` are what the decoder does;
- every message type and every map class the messages hold has a table, and every message an example;
- error codes, error reasons and close codes, both ways against the code's enumerations;
- every ``json`` example decodes with the real codec; the ``json rest`` example and the product tables
  match what ``GET /v1/products/{id}`` returns;
- the default field of view, the default limits and the face-frame table.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgpack
import pytest

from ar_server.protocol import (
    ACTIONS,
    ERROR_REASONS,
    OVERLAY_TYPES,
    Animate,
    Arrow,
    Choice,
    ClientMessage,
    CloseCode,
    ErrorCode,
    Highlight,
    Intrinsics,
    Label,
    Limits,
    PartObs,
    PoseData,
    Progress,
    ProtocolError,
    ServerMessage,
    Timing,
    decode_client,
    decode_server,
)
from tests.ar_server.protocol.jpegs import real_jpeg

DOC = Path(__file__).resolve().parents[3] / "docs" / "PROTOCOL.md"
FIELD_HEADER = ["field", "type", "req", "unit / range", "meaning"]
CLIENT_TYPES = {cls.t: cls for cls in typing.get_args(ClientMessage)}
SERVER_TYPES = {cls.t: cls for cls in typing.get_args(ServerMessage)}
MESSAGE_TYPES = {**CLIENT_TYPES, **SERVER_TYPES}


@dataclass(frozen=True)
class Nested:
    """Where the maps a nested table describes live: in which message, at which field path."""

    cls: type
    message: str
    path: str  # regex over the codec's field paths ("camera", "parts.led_power", "overlays[2]")
    kind: str | None = None  # overlays: only maps of this kind


NESTED: dict[str, Nested] = {
    "camera": Nested(Intrinsics, "hello", r"camera"),
    "limits": Nested(Limits, "welcome", r"limits"),
    "pose": Nested(PoseData, "obs", r"pose"),
    "parts.<name>": Nested(PartObs, "obs", r"parts\.[^.\[]+"),
    "timing": Nested(Timing, "obs", r"timing"),
    "progress": Nested(Progress, "step", r"progress"),
    "choices[]": Nested(Choice, "step", r"choices\[\d+\]"),
    "highlight": Nested(Highlight, "step", r"overlays\[\d+\]", "highlight"),
    "arrow": Nested(Arrow, "step", r"overlays\[\d+\]", "arrow"),
    "label": Nested(Label, "step", r"overlays\[\d+\]", "label"),
    "animate": Nested(Animate, "step", r"overlays\[\d+\]", "animate"),
}
PRODUCT_TABLE, PART_TABLE = "GET /v1/products/{id}", "parts[]"
WRONG_TYPE: dict[str, Any] = {"str": 12345, "int": "1", "float": "1.5", "bool": 1, "bin": "not bin", "map": 1,
                              "array of float": {"not": "an array"}, "array of map": 1}


# ---------------------------------------------------------------- reading the doc


@dataclass(frozen=True)
class Table:
    name: str  # first code span of the heading above the table ("" if it has none)
    header: list[str]
    rows: list[list[str]]
    line: int  # 1-based line of the header row

    def column(self, row: list[str], name: str) -> str:
        return row[self.header.index(name)]


def _cells(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def parse_tables(text: str) -> list[Table]:
    tables: list[Table] = []
    lines = text.splitlines()
    heading, fenced, i = "", False, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            heading = line
        elif not fenced and line.startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|[-| ]+\|",
                                                                                          lines[i + 1]):
            rows, j = [], i + 2
            while j < len(lines) and lines[j].startswith("|"):
                rows.append(_cells(lines[j]))
                j += 1
            spans = code_spans(heading)
            tables.append(Table(spans[0] if spans else "", _cells(line), rows, i + 1))
            i = j
            continue
        i += 1
    return tables


def parse_examples(text: str, info: str) -> list[Any]:
    """The JSON value of every fenced block whose info string is exactly ``info``."""
    return [json.loads(body) for tag, body in re.findall(r"^```([^\n]*)\n(.*?)^```", text, re.M | re.S)
            if tag.strip() == info]


TEXT = DOC.read_text(encoding="utf-8")
TABLES = parse_tables(TEXT)
FIELD_TABLES = {t.name: t for t in TABLES if t.header and t.header[0] == "field"}
EXAMPLES = parse_examples(TEXT, "json")


def table_with(first_header: str, second: str | None = None) -> Table:
    found = [t for t in TABLES if t.header[:1] == [first_header] and (second is None or t.header[1] == second)]
    assert len(found) == 1, f"expected one table headed {first_header!r} in {DOC.name}, found {len(found)}"
    return found[0]


def field_name(table: Table, row: list[str]) -> str:
    spans = code_spans(row[0])
    assert len(spans) == 1, f"{DOC.name}:{table.line}: one field per row, in backticks; got {row[0]!r}"
    return spans[0]


def documented_fields(name: str) -> dict[str, list[str]]:
    table = FIELD_TABLES[name]
    assert table.header == FIELD_HEADER, f"{DOC.name}:{table.line}: table {name!r} needs columns {FIELD_HEADER}"
    return {field_name(table, row): row for row in table.rows}


def materialize(value: Any) -> Any:
    """An example with each ``"<bin N>"`` made real: a JPEG of the declared size for ``jpeg``."""
    value = copy.deepcopy(value)
    if value.get("t") == "frame":
        value["jpeg"] = real_jpeg(value.get("width", 64), value.get("height", 48))
    return value


def decode(message: dict[str, Any]) -> Any:
    data = msgpack.packb(message, use_bin_type=True)
    return decode_client(data) if message["t"] in CLIENT_TYPES else decode_server(data)


# ---------------------------------------------------------------- reading the code


def message_fields(cls: type) -> list[dataclasses.Field[Any]]:
    """The fields a table lists: a message's, less its type tag ``t`` (the envelope); a map's, all."""
    tagged = cls in MESSAGE_TYPES.values()
    return [f for f in dataclasses.fields(cls) if not (tagged and f.name == "t")]


def _options(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def wire_type(annotation: Any) -> str:
    """The doc's type word for a field annotation: str, int, float, bool, bin, map, array of X."""
    options = [a for a in _options(annotation) if a is not type(None)]
    if all(dataclasses.is_dataclass(a) for a in options):
        return "map"
    (only,) = options
    origin = typing.get_origin(only)
    if origin is Literal:
        return "str"
    if origin is tuple:
        return f"array of {wire_type(typing.get_args(only)[0])}"
    if origin in (dict, Mapping) or only in (dict, Mapping):
        return "map"
    return {str: "str", int: "int", float: "float", bool: "bool", bytes: "bin"}[only]


def literal_values(annotation: Any) -> tuple[str, ...] | None:
    for option in _options(annotation):
        if typing.get_origin(option) is Literal:
            return typing.get_args(option)
    return None


def reachable_classes(cls: type, seen: set[type] | None = None) -> set[type]:
    """Every dataclass a message holds, however deep."""
    seen = set() if seen is None else seen
    for annotation in typing.get_type_hints(cls).values():
        stack = [annotation]
        while stack:
            item = stack.pop()
            stack.extend(typing.get_args(item))
            if dataclasses.is_dataclass(item) and item not in seen:
                seen.add(item)  # type: ignore[arg-type]
                reachable_classes(item, seen)  # type: ignore[arg-type]
    return seen


def maps_in(value: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(codec field path, map) for the message and every map inside it."""
    if isinstance(value, dict):
        yield path, value
        for key, item in value.items():
            yield from maps_in(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from maps_in(item, f"{path}[{i}]")


# ---------------------------------------------------------------- the tables


ALL_TABLES = sorted(MESSAGE_TYPES) + sorted(NESTED)


def _class_of(name: str) -> type:
    return MESSAGE_TYPES[name] if name in MESSAGE_TYPES else NESTED[name].cls


def test_every_message_and_map_has_a_table() -> None:
    """A new message type, or a new kind of map inside one (an overlay kind), needs a table in the doc."""
    assert set(ALL_TABLES) <= set(FIELD_TABLES), sorted(set(ALL_TABLES) - set(FIELD_TABLES))
    held = set().union(*(reachable_classes(cls) for cls in MESSAGE_TYPES.values()))
    described = {spec.cls for spec in NESTED.values()}
    assert held == described, f"undescribed map classes: {sorted(c.__name__ for c in held - described)}"
    assert {n for n, spec in NESTED.items() if spec.kind} == set(OVERLAY_TYPES)
    extra = set(FIELD_TABLES) - set(ALL_TABLES) - {PRODUCT_TABLE, PART_TABLE}
    assert not extra, f"tables the test does not know: {sorted(extra)}"


@pytest.mark.parametrize("name", ALL_TABLES)
def test_table_lists_exactly_the_class_fields_with_their_types(name: str) -> None:
    cls = _class_of(name)
    hints = typing.get_type_hints(cls)
    documented = documented_fields(name)
    fields = {f.name: f for f in message_fields(cls)}
    assert sorted(documented) == sorted(fields), (
        f"{DOC.name}: table {name!r} lists {sorted(documented)}; {cls.__name__} has {sorted(fields)}")
    for field, row in documented.items():
        assert row[1] == wire_type(hints[field]), f"{name}.{field}: doc says {row[1]!r}"
        no_default = fields[field].default is dataclasses.MISSING and fields[field].default_factory is \
            dataclasses.MISSING
        allows_nil = type(None) in _options(hints[field])
        assert (row[2] == "nullable") == (no_default and allows_nil), f"{name}.{field}: req {row[2]!r}"
        assert row[2] in ("yes", "no", "nullable") or row[2].startswith("if "), f"{name}.{field}: req {row[2]!r}"
        values = literal_values(hints[field])
        if values is not None:
            assert set(code_spans(row[3])) == set(values), (
                f"{name}.{field}: the doc lists {code_spans(row[3])}; the code has {values}")


def _cases(name: str) -> Iterator[tuple[dict[str, Any], str, str]]:
    """(example, map path, field) for each documented field, from the first example map that has it."""
    message, path, kind = (name, "", None) if name in MESSAGE_TYPES else (
        NESTED[name].message, NESTED[name].path, NESTED[name].kind)
    candidates = [(example, p, m) for example in EXAMPLES if example.get("t") == message
                  for p, m in maps_in(example) if re.fullmatch(path, p) and (kind is None or m.get("kind") == kind)]
    for field in documented_fields(name):
        found = next(((example, p) for example, p, m in candidates if field in m), None)
        assert found is not None, f"{DOC.name}: no example of {message!r} shows {name}.{field}"
        yield found[0], found[1], field


def _changed(example: dict[str, Any], path: str, field: str, value: Any) -> dict[str, Any]:
    message = materialize(example)
    target = dict(maps_in(message))[path]
    if value is _REMOVE:
        del target[field]
    else:
        target[field] = value
    return message


_REMOVE = object()


@pytest.mark.parametrize("name", ALL_TABLES)
def test_decoder_does_what_the_table_says(name: str) -> None:
    """Required fields are refused when missing, optional ones are not, nullable ones take nil, and every
    field refuses a value of the wrong type, each with the field's path in the error."""
    for example, path, field in _cases(name):
        row = documented_fields(name)[field]
        full = f"{path}.{field}" if path else field
        required = row[2] in ("yes", "nullable") or row[2].startswith("if ")
        missing = _changed(example, path, field, _REMOVE)
        if required:
            with pytest.raises(ProtocolError) as info:
                decode(missing)
            assert (info.value.code, info.value.field) == ("missing_field", full), f"{name}.{field}: {info.value}"
        else:
            decode(missing)
        if row[2] != "yes" and not row[2].startswith("if "):
            decode(_changed(example, path, field, None))
        with pytest.raises(ProtocolError) as info:
            decode(_changed(example, path, field, WRONG_TYPE[row[1]]))
        assert (info.value.code, info.value.field) == ("bad_field", full), f"{name}.{field}: {info.value}"


# ---------------------------------------------------------------- examples


def test_every_example_decodes_with_the_real_codec() -> None:
    assert EXAMPLES, f"no ```json examples in {DOC.name}"
    for example in EXAMPLES:
        decoded = decode(materialize(example))
        assert decoded.t == example["t"] and example["v"] == 1
    assert {e["t"] for e in EXAMPLES} == set(MESSAGE_TYPES), "every message type needs an example"


def test_examples_show_the_default_limits() -> None:
    (welcome,) = [e for e in EXAMPLES if e["t"] == "welcome"]
    assert decode(materialize(welcome)).limits == Limits()
    for field, row in documented_fields("limits").items():
        (default,) = re.findall(r"default ([\d.]+)", row[3])
        assert float(default) == getattr(Limits(), field), field


# ---------------------------------------------------------------- enumerations, both ways


def test_error_codes_match_the_code() -> None:
    documented = {code_spans(row[0])[0] for row in table_with("code", "fatal?").rows}
    code = {v for k, v in vars(ErrorCode).items() if k.isupper()}
    assert documented == code, (f"only in the doc: {sorted(documented - code)}; "
                                f"only in the code: {sorted(code - documented)}")


def test_error_reasons_match_the_code() -> None:
    documented = {(code_spans(row[0])[0], code_spans(row[1])[0]) for row in table_with("code", "reason").rows}
    assert documented == {(code, reason) for code, reasons in ERROR_REASONS.items() for reason in reasons}


def test_close_codes_match_the_code() -> None:
    documented = {int(row[0]) for row in table_with("code", "name").rows}
    assert documented == {v for k, v in vars(CloseCode).items() if k.isupper()}


def test_the_action_table_covers_every_action() -> None:
    assert {s for row in table_with("action").rows for s in code_spans(row[0])} == set(ACTIONS)


# ---------------------------------------------------------------- camera, products, face frames


def test_default_field_of_view_is_the_one_the_server_assumes() -> None:
    from product_models.camera import DEFAULT_HFOV_DEG

    (fov,) = re.findall(r"(\d+(?:\.\d+)?)° horizontal field of view", TEXT)
    assert float(fov) == DEFAULT_HFOV_DEG and "DEFAULT_HFOV_DEG" in TEXT
    (half,) = re.findall(r"tan\((\d+(?:\.\d+)?)°\)", TEXT)
    assert float(half) == DEFAULT_HFOV_DEG / 2


def _names(name: str) -> set[str]:
    return {field_name(FIELD_TABLES[name], row) for row in FIELD_TABLES[name].rows}


def test_product_tables_and_example_match_the_rest_answer() -> None:
    from ar_server.rest import _product_json
    from product_models.catalog import default_catalog

    catalog = default_catalog()
    for product in catalog:
        real = _product_json(product, True)
        assert _names(PRODUCT_TABLE) == set(real), product.id
        assert all(_names(PART_TABLE) == set(part) for part in real["parts"]), product.id
    (example,) = parse_examples(TEXT, "json rest")
    real = _product_json(catalog.get(example["id"]), True)
    assert set(example) == set(real)
    parts = {p["name"]: p for p in real["parts"]}
    for part in example["parts"]:
        assert set(part) == _names(PART_TABLE)
        shown = {k: v for k, v in part.items() if k != "label"}
        assert shown == {k: v for k, v in parts[part["name"]].items() if k != "label"}, part["name"]
    assert example["size_mm"] == real["size_mm"]


def test_face_frame_table_matches_the_catalog() -> None:
    from product_models.catalog import FACING_NORMALS
    from product_models.modeling.mesh import face_frame

    table = table_with("facing")
    assert {code_spans(row[0])[0] for row in table.rows} == set(FACING_NORMALS)
    for row in table.rows:
        facing = code_spans(row[0])[0]
        normal, right, up = (tuple(float(x) for x in re.findall(r"-?\d+", cell)) for cell in row[1:4])
        real_right, real_up, real_normal = (tuple(float(x) for x in v) for v in face_frame(facing))
        assert normal == tuple(FACING_NORMALS[facing]) == real_normal, facing
        assert (right, up) == (real_right, real_up), facing
        assert math.isclose(sum(a * b for a, b in zip(right, up, strict=True)), 0.0)


# ---------------------------------------------------------------- the agent channel (section 11)


def test_the_agent_channel_tables_match_its_messages() -> None:
    from ar_server.web.agent_channel import AGENT_MESSAGES, ERROR_CODES, SERVER_MESSAGES

    tables = [t for t in TABLES if t.header == ["message", "keys", "meaning"]]
    assert len(tables) == 2, f"{DOC.name}: expected the agent channel's two message tables"
    for table, code in zip(tables, (AGENT_MESSAGES, SERVER_MESSAGES), strict=True):
        documented = {code_spans(row[0])[0]: code_spans(row[1]) for row in table.rows}
        assert set(documented) == set(code), f"{DOC.name}:{table.line}: {sorted(documented)} vs {sorted(code)}"
        for name, keys in code.items():
            assert documented[name][:len(keys)] == list(keys), f"{DOC.name}:{table.line}: {name}"
    error_row = next(row for row in tables[1].rows if code_spans(row[0])[0] == "error")
    assert set(code_spans(error_row[2])) == set(ERROR_CODES)
