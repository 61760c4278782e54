"""YAML loading for people's files and for scenes sent over the network: positions, and refusals with budgets."""

from __future__ import annotations

import pytest

from product_models import sourcemap
from product_models.sourcemap import MAX_ALIAS_VALUES, MAX_ALIASES, MAX_DEPTH, SourceError, load_text


def _alias_bomb(levels: int, fan: int) -> str:
    """Each level a list of ``fan`` aliases of the level below: ``fan ** levels`` values once expanded."""
    lines = ["a0: &a0 [" + ", ".join(["x"] * fan) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_positions_point_at_each_value() -> None:
    doc = load_text("steps:\n  check:\n    text: hi\n    led: off\n", "s.yaml")
    assert doc.data == {"steps": {"check": {"text": "hi", "led": "off"}}}
    assert doc.where(("steps", "check", "led")) == "s.yaml:4:10"


def test_a_few_aliases_are_plain_data() -> None:
    doc = load_text("base: &b {x: 1}\nuse: *b\n")
    assert doc.data == {"base": {"x": 1}, "use": {"x": 1}}


@pytest.mark.parametrize(("text", "message"), [
    # Nested aliases, 6 levels of 10 (487 bytes): a million values. Once took 12.6 s and 666 MB.
    (_alias_bomb(6, 10), f"aliases expand to more than {MAX_ALIAS_VALUES} values"),
    (_alias_bomb(1, MAX_ALIASES + 1), f"more than {MAX_ALIASES} aliases"),
    ("[" * 20_000 + "]" * 20_000, f"nesting deeper than {MAX_DEPTH} levels"),
    ("a:\n" + "".join("  " * i + f"- k{i}:\n" for i in range(1, 200)), f"nesting deeper than {MAX_DEPTH} levels"),
    ("&a [*a]", f"nesting deeper than {MAX_DEPTH} levels"),  # recursive data
    ("!!python/object/apply:os.system {args: [echo]}", "unsupported YAML tag"),
    ("steps: !!python/object/apply:os.system [echo]", "unsupported YAML tag"),
    ("steps: !!set {a: null}", "unsupported YAML tag"),
    ("v: !!binary aGk=", "unsupported YAML tag"),
    ("a: 1\na: 2\n", "duplicate key 'a'"),
    ("a: [1, 2\n", "malformed YAML"),
])
def test_hostile_yaml_is_refused_quickly_with_a_position(text: str, message: str) -> None:
    """Alias expansion (once 12.6 s and 666 MB), deep nesting (once an uncaught RecursionError) and tags on
    maps (once accepted, the tag ignored) are refused by a budget, not by running out of time or memory."""
    with pytest.raises(SourceError, match=message) as err:
        load_text(text, "scene.yaml")
    assert str(err.value).startswith("scene.yaml:")


def test_files_over_the_byte_limit_are_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sourcemap, "MAX_BYTES", 100)
    with pytest.raises(SourceError, match="larger than 100 bytes"):
        load_text("a: " + "x" * 200)
