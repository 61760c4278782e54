"""The field readers behind :mod:`scenes.loader`: one method per piece of the scene format.

Each method checks one value, reports problems as issues with the value's path, and returns ``None`` for a
piece it could not read, so the caller can go on and find more problems.
"""

from __future__ import annotations

import math
import re
from typing import Any

from product_models.catalog import ACTIONS, Catalog, Product
from product_models.sourcemap import PathKey, SourceDoc, format_path
from scenes.model import (
    ARROW_DIRECTIONS,
    NAMED_COLORS,
    OVERLAY_KINDS,
    AllOf,
    AnyOf,
    Choice,
    Condition,
    Expectation,
    I18nText,
    Issue,
    Leaf,
    NotOf,
    Overlay,
    Timeout,
)

ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_SECONDS = 24 * 3600.0

TOP_REQUIRED = ("id", "product", "title", "start", "steps")
TOP_OPTIONAL = ("default_locale", "triggers", "description")
STEP_FIELDS = ("text", "overlays", "when", "choices", "on_timeout", "expect_s", "done_goto", "outcome")
CONDITION_HEADS = ("all", "any", "not", "part")
OVERLAY_PARAMS: dict[str, tuple[str, ...]] = {
    "highlight": ("color",),
    "arrow": ("direction", "color"),
    "label": ("text", "color"),
    "animate": ("action", "color"),
}
OVERLAY_REQUIRED: dict[str, tuple[str, ...]] = {"label": ("text",), "animate": ("action",)}


def type_name(value: Any) -> str:
    return {dict: "a map", list: "a list", str: "text", bool: "a boolean", type(None): "nothing",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


class Reader:
    """Parses one scene document; problems go to ``issues`` and the broken piece becomes ``None``."""

    def __init__(self, doc: SourceDoc, catalog: Catalog) -> None:
        self.doc = doc
        self.catalog = catalog
        self.issues: list[Issue] = []
        self.product: Product | None = None
        self.texts: list[tuple[PathKey, I18nText]] = []  # every i18n map, for the locale checks
        self.gotos: list[tuple[PathKey, str]] = []  # every step reference, for the graph checks

    # -- reporting ---------------------------------------------------------------------------------
    def issue(self, path: PathKey, message: str, severity: str = "error") -> None:
        pos = self.doc.position(path)
        self.issues.append(Issue(self.doc.file, pos.line, pos.col, format_path(path), severity, message))

    # -- generic shapes ----------------------------------------------------------------------------
    def fields(self, value: Any, path: PathKey, allowed: tuple[str, ...], what: str) -> dict | None:
        if not isinstance(value, dict):
            self.issue(path, f"{what} must be a map, got {type_name(value)}")
            return None
        for key in value:
            if key not in allowed:
                self.issue((*path, key), f"unknown field {key!r} in {what}; allowed fields: {', '.join(allowed)}")
        return value

    def ident(self, value: Any, path: PathKey, what: str) -> str | None:
        if not isinstance(value, str) or not ID.match(value):
            self.issue(path, f"{what} must be lower_snake_case text (a-z, 0-9, _), got {value!r}")
            return None
        return value

    def seconds(self, value: Any, path: PathKey, what: str, *, positive: bool) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.issue(path, f"{what} must be a number of seconds, got {type_name(value)} {value!r}")
            return None
        if value < 0 or (positive and value == 0) or value > MAX_SECONDS:
            bound = "greater than 0" if positive else "0 or more"
            self.issue(path, f"{what} must be {bound} and at most {MAX_SECONDS:g} seconds, got {value}")
            return None
        return float(value)

    def i18n(self, value: Any, path: PathKey, default_locale: str) -> I18nText | None:
        if isinstance(value, str):
            value = {default_locale: value}
        elif not isinstance(value, dict) or not value:
            self.issue(path, f"expected text or a map of locale -> text, got {type_name(value)}")
            return None
        out: I18nText = {}
        for loc, text in value.items():
            if not isinstance(loc, str) or not LOCALE.match(loc):
                self.issue((*path, loc), f"bad locale {loc!r}; expected a tag like en, de, es-MX")
            elif not isinstance(text, str) or not text.strip():
                self.issue((*path, loc), f"expected non-empty text, got {type_name(text)}")
            else:
                out[loc] = text
        self.texts.append((path, out))
        return out

    def goto(self, value: Any, path: PathKey) -> str | None:
        target = self.ident(value, path, "goto")
        if target is not None:
            self.gotos.append((path, target))
        return target

    # -- catalog names -----------------------------------------------------------------------------
    def part(self, value: Any, path: PathKey, *, stateful: bool) -> str | None:
        name = self.ident(value, path, "part")
        if name is None or self.product is None:
            return name
        if not self.product.has_part(name):
            known = ", ".join(p.name for p in self.product.parts)
            self.issue(path, f"unknown part {name!r} of product {self.product.id!r}; known parts: {known}")
            return None
        if stateful and not self.product.part(name).states:
            self.issue(path, f"part {name!r} has no observable states, so a condition cannot test it")
            return None
        return name

    def state(self, part: str | None, value: Any, path: PathKey) -> str | None:
        if not isinstance(value, str):
            self.issue(path, f"a state must be text, got {type_name(value)} {value!r}")
            return None
        if part is not None and self.product is not None:
            states = self.product.part(part).states
            if value not in states:
                self.issue(path, f"unknown state {value!r} of part {part!r}; expected one of: {', '.join(states)}")
                return None
        return value

    # -- conditions ---------------------------------------------------------------------------------
    def condition(self, value: Any, path: PathKey, extra: tuple[str, ...] = ()) -> Condition | None:
        """Parse a condition map; ``extra`` names sibling fields allowed beside it (goto, hold, ...)."""
        if not isinstance(value, dict):
            self.issue(path, f"a condition must be a map, got {type_name(value)}")
            return None
        heads = [k for k in CONDITION_HEADS if k in value]
        allowed = (*CONDITION_HEADS, "is", "in", *extra)
        for key in value:
            if key not in allowed:
                self.issue((*path, key), f"unknown field {key!r} in condition; allowed fields: {', '.join(allowed)}")
        if len(heads) != 1:
            found = f"found {', '.join(heads)}" if heads else "found none"
            self.issue(path, f"a condition needs exactly one of part (with is/in), all, any or not; {found}")
            return None
        head = heads[0]
        if head != "part" and ("is" in value or "in" in value):
            self.issue(path, f"'is'/'in' belong to a part test, not beside {head!r}")
            return None
        if head == "part":
            return self.leaf(value, path)
        if head == "not":
            inner = self.condition(value["not"], (*path, "not"))
            return None if inner is None else NotOf(inner)
        items = value[head]
        if not isinstance(items, list) or not items:
            self.issue((*path, head), f"{head!r} needs a non-empty list of conditions, got {type_name(items)}")
            return None
        parsed = [self.condition(c, (*path, head, i)) for i, c in enumerate(items)]
        if any(c is None for c in parsed):
            return None
        kinds = AllOf if head == "all" else AnyOf
        return kinds(tuple(c for c in parsed if c is not None))

    def leaf(self, value: dict, path: PathKey) -> Leaf | None:
        part = self.part(value["part"], (*path, "part"), stateful=True)
        has_is, has_in = "is" in value, "in" in value
        if has_is == has_in:
            self.issue(path, "a part test needs exactly one of 'is: <state>' or 'in: [<state>, ...]'")
            return None
        if has_is:
            state = self.state(part, value["is"], (*path, "is"))
            return None if part is None or state is None else Leaf(part, frozenset([state]))
        raw = value["in"]
        if not isinstance(raw, list) or not raw:
            self.issue((*path, "in"), f"'in' needs a non-empty list of states, got {type_name(raw)}")
            return None
        states = [self.state(part, s, (*path, "in", i)) for i, s in enumerate(raw)]
        if part is None or any(s is None for s in states):
            return None
        return Leaf(part, frozenset(s for s in states if s is not None))

    # -- scene pieces -------------------------------------------------------------------------------
    def overlay(self, value: Any, path: PathKey, locale: str) -> Overlay | None:
        if not isinstance(value, dict):
            self.issue(path, f"an overlay must be a map, got {type_name(value)}")
            return None
        kind = value.get("kind")
        if kind not in OVERLAY_KINDS:
            self.issue((*path, "kind"), f"unknown overlay kind {kind!r}; expected one of: {', '.join(OVERLAY_KINDS)}")
            return None
        m = self.fields(value, path, ("kind", "part", *OVERLAY_PARAMS[kind]), f"{kind} overlay")
        if m is None:
            return None
        for req in ("part", *OVERLAY_REQUIRED.get(kind, ())):
            if req not in m:
                self.issue(path, f"{kind} overlay needs {req!r}")
        part = self.part(m["part"], (*path, "part"), stateful=False) if "part" in m else None
        color = m.get("color")
        if color is not None and not (isinstance(color, str) and (color in NAMED_COLORS or COLOR.match(color))):
            self.issue((*path, "color"), f"bad colour {color!r}; expected #rrggbb or one of: {', '.join(NAMED_COLORS)}")
        direction = m.get("direction")
        if direction is not None and direction not in ARROW_DIRECTIONS:
            self.issue((*path, "direction"),
                       f"bad arrow direction {direction!r}; expected one of: {', '.join(ARROW_DIRECTIONS)}")
        text = self.i18n(m["text"], (*path, "text"), locale) if "text" in m else None
        action = m.get("action")
        if "action" in m:
            if action not in ACTIONS:
                self.issue((*path, "action"), f"unknown action {action!r}; expected one of: {', '.join(ACTIONS)}")
                action = None
            elif part is not None and self.product is not None and action not in self.product.part(part).actions:
                accepts = ", ".join(self.product.part(part).actions) or "none"
                self.issue((*path, "action"), f"part {part!r} does not accept action {action!r}; it accepts: {accepts}")
                action = None
        if part is None:
            return None
        return Overlay(kind, part, color if isinstance(color, str) else None,
                       direction if isinstance(direction, str) else None, text, action)

    def expectation(self, value: Any, path: PathKey, locale: str) -> Expectation | None:
        cond = self.condition(value, path, extra=("goto", "hold", "reason"))
        if not isinstance(value, dict):
            return None
        if "goto" not in value:
            self.issue(path, "an expectation needs 'goto': the step to go to when the condition holds")
            return None
        target = self.goto(value["goto"], (*path, "goto"))
        hold = self.seconds(value.get("hold", 0), (*path, "hold"), "hold", positive=False)
        reason = self.i18n(value["reason"], (*path, "reason"), locale) if "reason" in value else None
        if cond is None or target is None or hold is None:
            return None
        return Expectation(cond, target, hold, reason)

    def choice(self, value: Any, path: PathKey, locale: str) -> Choice | None:
        m = self.fields(value, path, ("id", "label", "goto"), "choice")
        if m is None:
            return None
        missing = [k for k in ("id", "label", "goto") if k not in m]
        if missing:
            self.issue(path, f"a choice needs {', '.join(missing)}")
            return None
        cid = self.ident(m["id"], (*path, "id"), "choice id")
        label = self.i18n(m["label"], (*path, "label"), locale)
        target = self.goto(m["goto"], (*path, "goto"))
        if cid is None or label is None or target is None:
            return None
        return Choice(cid, label, target)

    def timeout(self, value: Any, path: PathKey, locale: str) -> Timeout | None:
        m = self.fields(value, path, ("after", "goto", "escalate", "reason"), "on_timeout")
        if m is None:
            return None
        if "after" not in m:
            self.issue(path, "on_timeout needs 'after' (seconds)")
        after = self.seconds(m.get("after"), (*path, "after"), "after", positive=True) if "after" in m else None
        escalate = m.get("escalate", False)
        if not isinstance(escalate, bool):
            self.issue((*path, "escalate"), f"escalate must be true or false, got {escalate!r}")
            return None
        if ("goto" in m) == escalate:
            self.issue(path, "on_timeout needs exactly one of 'goto: <step>' or 'escalate: true'")
            return None
        target = self.goto(m["goto"], (*path, "goto")) if "goto" in m else None
        reason = self.i18n(m["reason"], (*path, "reason"), locale) if "reason" in m else None
        if after is None or (target is None and not escalate):
            return None
        return Timeout(after, target, escalate, reason)

    def items(self, value: Any, path: PathKey, what: str) -> list[tuple[PathKey, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.issue(path, f"{what} must be a list, got {type_name(value)}")
            return []
        return [((*path, i), v) for i, v in enumerate(value)]
