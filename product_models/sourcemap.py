"""YAML loading that remembers where every value came from.

Catalog files and scenes are written by people, so every error must point at a file, line and column.
PyYAML drops positions once it builds Python objects; here we compose the node tree ourselves and keep a
map from *path* (a tuple of keys and list indices) to its source position.

Rules:
- Booleans are only ``true``/``false`` (YAML 1.2): ``off``, ``on``, ``yes``, ``no`` stay text, because
  ``led_power: off`` names a state.
- Only plain YAML data (maps, lists, strings, numbers, booleans, null). Tags (on scalars, maps and
  lists), anchors that build recursive data, and duplicate keys are refused: a duplicate key silently
  overwriting another is the classic authoring bug.
- Map keys must be strings or integers.
- Budgets, because scenes arrive over the network (``PUT /v1/scenes``): files over ``MAX_BYTES`` are
  refused before parsing; nesting deeper than ``MAX_DEPTH`` and more than ``MAX_ALIASES`` aliases are
  refused from the event stream, before any tree is built (PyYAML's composer recurses once per level, so
  a deep document would otherwise end in ``RecursionError``); and aliases may expand to at most
  ``MAX_ALIAS_VALUES`` values in all (nested aliases multiply: 6 levels of 10 make a million). Values
  written out in full are bounded by ``MAX_BYTES``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 64  # the deepest shipped file nests 9 levels
MAX_ALIASES = 100  # no shipped file uses one; a few are harmless
MAX_ALIAS_VALUES = 50_000  # about 60 times the largest shipped file (856 values)

PathKey = tuple[str | int, ...]


class SourceError(ValueError):
    """A YAML source could not be read. ``str()`` is ``file:line:col: message``."""

    def __init__(self, file: str, line: int, col: int, message: str, path: str = "") -> None:
        self.file, self.line, self.col, self.message, self.path = file, line, col, message, path
        where = f"{file}:{line}:{col}"
        super().__init__(f"{where}: {message}" + (f" (at {path})" if path else ""))


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    col: int  # 1-based


@dataclass
class SourceDoc:
    """Plain data loaded from YAML, plus where each piece came from."""

    file: str
    data: Any
    positions: dict[PathKey, Position] = field(default_factory=dict)

    def position(self, path: PathKey) -> Position:
        """Position of ``path``, or of its nearest ancestor that has one."""
        p = tuple(path)
        while p not in self.positions and p:
            p = p[:-1]
        return self.positions.get(p, Position(1, 1))

    def where(self, path: PathKey) -> str:
        pos = self.position(path)
        return f"{self.file}:{pos.line}:{pos.col}"

    def error(self, path: PathKey, message: str) -> SourceError:
        pos = self.position(path)
        return SourceError(self.file, pos.line, pos.col, message, format_path(path))


def format_path(path: PathKey) -> str:
    """``("steps", "check_wan", "when", 1, "goto")`` -> ``steps.check_wan.when[1].goto``."""
    out = ""
    for key in path:
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out += ("." if out else "") + str(key)
    return out


def load_text(text: str, file: str = "<string>") -> SourceDoc:
    """Parse YAML text into a :class:`SourceDoc`. Raises :class:`SourceError`."""
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        raise SourceError(file, 1, 1, f"file is larger than {MAX_BYTES} bytes")
    try:
        _check_events(text, file)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "malformed YAML"
        raise SourceError(file, line, col, f"malformed YAML: {problem}") from None
    except yaml.YAMLError as exc:  # reader errors (bad bytes) carry no mark
        raise SourceError(file, 1, 1, f"malformed YAML: {exc}") from None
    doc = SourceDoc(file=file, data=None)
    if node is None:
        return doc
    loader = yaml.SafeLoader("")
    try:
        doc.data = _convert(node, (), doc, 0, _Build(loader))
    finally:
        loader.dispose()
    return doc


def _check_events(text: str, file: str) -> None:
    """Depth and alias budgets on the parser's event stream, which is built without recursion."""
    depth = aliases = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                raise SourceError(file, mark.line + 1, mark.column + 1, f"nesting deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                mark = event.start_mark
                raise SourceError(file, mark.line + 1, mark.column + 1, f"more than {MAX_ALIASES} aliases")


def load_file(path: str | Path) -> SourceDoc:
    """Read and parse a YAML file. Raises :class:`SourceError` naming the file."""
    p = Path(path)
    name = str(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise SourceError(name, 1, 1, f"cannot read file: {exc.strerror or exc}") from None
    if size > MAX_BYTES:
        raise SourceError(name, 1, 1, f"file is {size} bytes; the limit is {MAX_BYTES}")
    try:
        raw = p.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(name, 1, 1, f"file is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise SourceError(name, 1, 1, f"cannot read file: {exc.strerror or exc}") from None
    return load_text(text, name)


_COLLECTION_TAGS = {yaml.MappingNode: "tag:yaml.org,2002:map", yaml.SequenceNode: "tag:yaml.org,2002:seq"}


@dataclass
class _Build:
    """One document's conversion: the scalar constructor (made once: it is slow to make), the collections
    built so far (a node met again is an alias) and the values built through aliases, against
    ``MAX_ALIAS_VALUES``."""

    loader: yaml.SafeLoader
    seen: set[int] = field(default_factory=set)
    alias_values: int = 0


def _convert(node: yaml.Node, path: PathKey, doc: SourceDoc, depth: int, build: _Build,
             aliased: bool = False) -> Any:
    """``aliased``: ``node`` is reached through an alias (it, or a collection above it, was met before)."""
    doc.positions[path] = Position(node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.CollectionNode):
        aliased = aliased or id(node) in build.seen
        build.seen.add(id(node))
    if aliased:
        build.alias_values += 1
        if build.alias_values > MAX_ALIAS_VALUES:
            raise doc.error(path, f"aliases expand to more than {MAX_ALIAS_VALUES} values")
    if depth > MAX_DEPTH:  # an alias that points at its own ancestor (recursive data) ends here
        raise doc.error(path, f"nesting deeper than {MAX_DEPTH} levels")
    expected = _COLLECTION_TAGS.get(type(node))
    if expected is not None and node.tag != expected:
        raise doc.error(path, f"unsupported YAML tag {node.tag}")
    if isinstance(node, yaml.MappingNode):
        out: dict[str | int, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                pos = key_node.start_mark
                raise SourceError(doc.file, pos.line + 1, pos.column + 1, "map keys must be plain text")
            key = _scalar(key_node, doc, path, build.loader)
            if isinstance(key, bool) or not isinstance(key, str | int):
                key = str(key_node.value)
            if key in out:
                pos = key_node.start_mark
                raise SourceError(doc.file, pos.line + 1, pos.column + 1, f"duplicate key {key!r}",
                                  format_path(path))
            out[key] = _convert(value_node, (*path, key), doc, depth + 1, build, aliased)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), doc, depth + 1, build, aliased) for i, item in enumerate(node.value)]
    return _scalar(node, doc, path, build.loader)


def _scalar(node: yaml.Node, doc: SourceDoc, path: PathKey, loader: yaml.SafeLoader) -> Any:
    tag = node.tag
    allowed = {
        "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
    }
    if tag not in allowed:
        pos = node.start_mark
        raise SourceError(doc.file, pos.line + 1, pos.column + 1, f"unsupported YAML tag {tag}",
                          format_path(path))
    if tag == "tag:yaml.org,2002:bool" and node.value.lower() not in ("true", "false"):
        # YAML 1.1 reads on/off/yes/no as booleans; authors writing `led: off` mean the word (YAML 1.2).
        return node.value
    return loader.construct_object(node, deep=True)


def iter_paths(doc: SourceDoc) -> Iterator[PathKey]:
    """Every path that has a recorded position (for tools and tests)."""
    return iter(doc.positions)
