"""The ``twin:`` section of ``product.yaml``: a small declarative rule format, parsed and validated.

A twin section declares hidden variables, the hidden values each fault starts with, and rules::

    twin:
      vars:                                   # hidden variables: allowed values and the healthy value
        session: {values: [up, stuck], initial: up}
      faults:                                 # per fault (named in ``faults:``): hidden values it sets
        internet_down: {vars: {session: stuck}}
      rules:                                  # for each trigger the FIRST rule whose ``if`` holds fires
        - name: plug_wan_running              # optional; used in results and errors
          on: {action: plug, part: port_wan}  # or {action: hold, part: ..., min_seconds: 10}, or {event: e}
          if: {port_wan: empty, led_power: green}   # part states / vars; a list means "any of"
          then:                               # effects, applied in order
            - set: {port_wan: plugged}        # part -> state (stops a blink on that part)
            - set_var: {session: up}          # var -> value
            - blink: {part: led_internet, state: amber, hz: 2}  # visible state alternates with off
            - emit: wan_up                    # fire the first matching ``on: {event: wan_up}`` rule
            - {after: 4, emit: wan_result}    # any effect may be delayed by ``after`` seconds
        - on: {action: remove, part: paper_jam}
          if: {cover_front: closed}
          refuse: The jammed paper is behind the front cover; open it first.

A ``removable`` part (a drive, a cartridge, a battery) needs no rules of its own: after the section's rules,
``insert`` sets it ``present`` when it is ``absent``, and ``remove`` sets it ``absent`` when it is ``present``
(rules named ``<part>:insert`` and ``<part>:remove``). A rule of the section for the same action and part is
tried first, so it can add effects (a battery that powers the device on) or ``refuse`` (a bay behind a cover).

Every name is checked against the product: unknown parts, states, actions, vars, values, faults and
events are refused with ``file:line:col`` and the field path. This module is data only (no clock); the
runtime lives in :mod:`product_models.twin`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from product_models.catalog import ACTIONS, FieldReader, type_name
from product_models.errors import CatalogError
from product_models.sourcemap import PathKey, SourceDoc

EffectOp = Literal["set", "set_var", "blink", "emit"]
EFFECT_OPS: tuple[EffectOp, ...] = ("set", "set_var", "blink", "emit")
MAX_DELAY_S = 3600.0
MAX_BLINK_HZ = 20.0
MAX_HOLD_S = 600.0


class TwinError(CatalogError):
    """Bad twin data, or an action the twin cannot take (unknown part, action or fault; time going back)."""


@dataclass(frozen=True)
class VarSpec:
    name: str
    values: tuple[str, ...]
    initial: str  # the value of a healthy device


@dataclass(frozen=True)
class Trigger:
    """What fires a rule: a person's action on a part, or an event emitted by another rule."""

    action: str | None = None
    part: str | None = None
    min_seconds: float = 0.0  # for ``hold``: the shortest hold that counts
    event: str | None = None


@dataclass(frozen=True)
class Effect:
    op: EffectOp
    after: float = 0.0  # seconds after the rule fires; 0 applies at once
    values: tuple[tuple[str, str], ...] = ()  # set / set_var: (part or var, state or value) pairs
    part: str | None = None  # blink
    state: str | None = None  # blink: the lit state; the visible state alternates with "off"
    hz: float = 0.0  # blink: full on/off cycles per second
    event: str | None = None  # emit

    @property
    def names(self) -> tuple[str, ...]:
        """Parts and vars this effect writes."""
        if self.op == "blink":
            return (self.part or "",)
        return tuple(name for name, _ in self.values)


@dataclass(frozen=True)
class Rule:
    name: str
    trigger: Trigger
    condition: tuple[tuple[str, frozenset[str]], ...]  # all must hold: name -> allowed states/values
    effects: tuple[Effect, ...]
    refuse: str | None  # set instead of effects: the action is physically impossible, and why
    touches: frozenset[str]  # every part/var the effects write; a new firing cancels timers that share one
    where: str  # file:line:col of the rule


@dataclass(frozen=True)
class TwinSpec:
    vars: dict[str, VarSpec]
    fault_vars: dict[str, dict[str, str]]  # fault -> var -> value, for faults that set hidden vars
    rules: tuple[Rule, ...]

    def action_rules(self, action: str, part: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.trigger.action == action and r.trigger.part == part)

    def event_rules(self, event: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.trigger.event == event)


class _TwinReader(FieldReader):
    def fail(self, path: PathKey, message: str) -> TwinError:
        err = self.doc.error(path, message)
        return TwinError(str(err), file=err.file, line=err.line, col=err.col, path=err.path)


def parse_twin(product: Any) -> TwinSpec:
    """Validate ``product.twin_section`` against the product's parts, states, actions and faults.

    ``product`` is a :class:`product_models.catalog.Product`. Raises :class:`TwinError` whose message
    is ``file:line:col: what was wrong (at twin.field.path)``.
    """
    doc = product.doc if product.doc is not None else SourceDoc(str(product.source), None)
    r = _TwinReader(doc)
    raw = product.twin_section
    if raw is None:
        raise r.fail((), f"product {product.id!r} has no 'twin:' section, so it has no digital twin")
    top = r.map(raw, ("twin",), {"rules"}, {"vars", "faults"})
    parts = {p.name: p for p in product.parts}

    variables: dict[str, VarSpec] = {}
    raw_vars = top.get("vars") or {}
    if not isinstance(raw_vars, dict):
        raise r.fail(("twin", "vars"), f"expected a map of var name -> {{values, initial}}, got {type_name(raw_vars)}")
    for vname, vraw in raw_vars.items():
        vpath: PathKey = ("twin", "vars", vname)
        r.ident(vname, vpath, "var name")
        if vname in parts:
            raise r.fail(vpath, f"var {vname!r} has the name of a part; pick another name")
        m = r.map(vraw, vpath, {"values", "initial"})
        values = r.name_list(m["values"], (*vpath, "values"), "value")
        if len(values) < 2:
            raise r.fail((*vpath, "values"), "a var needs at least two values")
        if m["initial"] not in values:
            raise r.fail((*vpath, "initial"), f"initial value {m['initial']!r} is not one of {list(values)}")
        variables[vname] = VarSpec(vname, values, m["initial"])

    def check_value(name: Any, value: Any, path: PathKey, *, want: Literal["part", "var", "any"]) -> None:
        """``name`` must be a stateful part / declared var, and ``value`` one of its states / values."""
        if name in parts and want != "var":
            if not parts[name].states:
                raise r.fail(path, f"part {name!r} has no states")
            if value not in parts[name].states:
                raise r.fail(path, f"part {name!r} has no state {value!r}; expected one of: "
                             + ", ".join(parts[name].states))
        elif name in variables and want != "part":
            if value not in variables[name].values:
                raise r.fail(path, f"var {name!r} has no value {value!r}; expected one of: "
                             + ", ".join(variables[name].values))
        elif want == "var":
            raise r.fail(path, f"unknown var {name!r}; declared vars: {', '.join(variables) or '(none)'}")
        else:
            extra = " or var" if want == "any" else ""
            raise r.fail(path, f"unknown part{extra} {name!r}; known parts: {', '.join(parts)}")

    fault_vars: dict[str, dict[str, str]] = {}
    raw_faults = top.get("faults") or {}
    if not isinstance(raw_faults, dict):
        raise r.fail(("twin", "faults"), f"expected a map of fault -> {{vars}}, got {type_name(raw_faults)}")
    for fname, fraw in raw_faults.items():
        fpath: PathKey = ("twin", "faults", fname)
        if fname not in product.faults:
            raise r.fail(fpath, f"unknown fault {fname!r}; the product's faults are: {', '.join(product.faults)}")
        m = r.map(fraw, fpath, {"vars"})
        if not isinstance(m["vars"], dict) or not m["vars"]:
            raise r.fail((*fpath, "vars"), "expected a non-empty map of var -> value")
        for vname, value in m["vars"].items():
            check_value(vname, value, (*fpath, "vars", vname), want="var")
        fault_vars[fname] = dict(m["vars"])

    if not isinstance(top["rules"], list) or not top["rules"]:
        raise r.fail(("twin", "rules"), "expected a non-empty list of rules")
    rules = [_parse_rule(r, i, rule_raw, parts, check_value) for i, rule_raw in enumerate(top["rules"])]

    names = [rule.name for rule in rules]
    for i, n in enumerate(names):
        if n in names[:i]:
            raise r.fail(("twin", "rules", i, "name"), f"duplicate rule name {n!r}")
    handled = {rule.trigger.event for rule in rules if rule.trigger.event}
    emitted: set[str] = set()
    for i, rule in enumerate(rules):
        for j, eff in enumerate(rule.effects):
            if eff.op == "emit":
                emitted.add(eff.event or "")
                if eff.event not in handled:
                    raise r.fail(("twin", "rules", i, "then", j, "emit"),
                                 f"no rule handles event {eff.event!r} (add a rule with on: {{event: {eff.event}}})")
    for i, rule in enumerate(rules):
        if rule.trigger.event and rule.trigger.event not in emitted:
            raise r.fail(("twin", "rules", i, "on", "event"), f"event {rule.trigger.event!r} is never emitted")
    return TwinSpec(variables, fault_vars, tuple(rules) + _removable_rules(product, doc))


# What inserting or removing a removable part does by itself: (action, state before, state after).
_REMOVABLE_EFFECTS: tuple[tuple[str, str, str], ...] = (
    ("insert", "absent", "present"), ("remove", "present", "absent"))


def _removable_rules(product: Any, doc: SourceDoc) -> tuple[Rule, ...]:
    """The physical effect of ``insert`` / ``remove`` on each removable part that accepts them, as rules that
    come after the section's own (which therefore win whenever their ``if`` holds)."""
    out: list[Rule] = []
    for i, part in enumerate(product.parts):
        if part.kind != "removable":
            continue
        for action, before, after in _REMOVABLE_EFFECTS:
            if action in part.actions:
                out.append(Rule(f"{part.name}:{action}", Trigger(action=action, part=part.name),
                                ((part.name, frozenset({before})),), (Effect("set", values=((part.name, after),)),),
                                None, frozenset({part.name}), doc.where(("parts", i))))
    return tuple(out)


def _parse_rule(r: _TwinReader, i: int, raw: Any, parts: dict[str, Any], check_value: Any) -> Rule:
    base: PathKey = ("twin", "rules", i)
    m = r.map(raw, base, {"on"}, {"name", "if", "then", "refuse"})
    name = r.ident(m["name"], (*base, "name"), "rule name") if "name" in m else f"rules[{i}]"
    if ("then" in m) == ("refuse" in m):
        raise r.fail(base, "a rule needs exactly one of 'then' (effects) or 'refuse' (why it is impossible)")

    opath: PathKey = (*base, "on")
    on = r.map(m["on"], opath, set(), {"action", "part", "min_seconds", "event"})
    if "event" in on:
        if on.keys() != {"event"}:
            raise r.fail(opath, "an event trigger has only 'event' (no action, part or min_seconds)")
        trigger = Trigger(event=r.ident(on["event"], (*opath, "event"), "event name"))
        if "refuse" in m:
            raise r.fail((*base, "refuse"), "only a person's action can be refused, not an event")
    else:
        if not {"action", "part"} <= on.keys():
            raise r.fail(opath, "an action trigger needs 'action' and 'part' (or use 'event')")
        action, part = on["action"], on["part"]
        if action not in ACTIONS:
            raise r.fail((*opath, "action"), f"unknown action {action!r}; expected one of: {', '.join(ACTIONS)}")
        if part not in parts:
            raise r.fail((*opath, "part"), f"unknown part {part!r}; known parts: {', '.join(parts)}")
        if action not in parts[part].actions:
            accepted = ", ".join(parts[part].actions) or "(none)"
            raise r.fail((*opath, "action"), f"part {part!r} does not accept action {action!r}; it accepts: {accepted}")
        min_s = 0.0
        if "min_seconds" in on:
            if action != "hold":
                raise r.fail((*opath, "min_seconds"), "min_seconds only applies to the 'hold' action")
            min_s = r.number(on["min_seconds"], (*opath, "min_seconds"), 0.0, MAX_HOLD_S)
        trigger = Trigger(action=action, part=part, min_seconds=min_s)

    condition: list[tuple[str, frozenset[str]]] = []
    if "if" in m:
        if not isinstance(m["if"], dict) or not m["if"]:
            raise r.fail((*base, "if"), "expected a non-empty map of part or var -> state (or a list of states)")
        for cname, want in m["if"].items():
            cpath: PathKey = (*base, "if", cname)
            options = want if isinstance(want, list) else [want]
            if not options:
                raise r.fail(cpath, "expected a state or a non-empty list of states")
            for k, value in enumerate(options):
                check_value(cname, value, (*cpath, k) if isinstance(want, list) else cpath, want="any")
            condition.append((cname, frozenset(options)))

    if "refuse" in m:
        reason = m["refuse"]
        if not isinstance(reason, str) or not reason.strip():
            raise r.fail((*base, "refuse"), "expected a non-empty text saying why the action is impossible")
        return Rule(name, trigger, tuple(condition), (), reason.strip(), frozenset(), r.doc.where(base))

    tpath: PathKey = (*base, "then")
    if not isinstance(m["then"], list) or not m["then"]:
        raise r.fail(tpath, "expected a non-empty list of effects")
    effects = tuple(_parse_effect(r, (*tpath, j), e, parts, check_value) for j, e in enumerate(m["then"]))
    touches = frozenset(n for e in effects for n in e.names)
    return Rule(name, trigger, tuple(condition), effects, None, touches, r.doc.where(base))


def _parse_effect(r: _TwinReader, path: PathKey, raw: Any, parts: dict[str, Any], check_value: Any) -> Effect:
    m = r.map(raw, path, set(), {"after", *EFFECT_OPS})
    ops = [op for op in EFFECT_OPS if op in m]
    if len(ops) != 1:
        raise r.fail(path, f"an effect needs exactly one of: {', '.join(EFFECT_OPS)} (plus optional 'after')")
    op = ops[0]
    after = r.number(m["after"], (*path, "after"), 0.0, MAX_DELAY_S) if "after" in m else 0.0
    if "after" in m and after <= 0:
        raise r.fail((*path, "after"), "after must be > 0 seconds (leave it out for an immediate effect)")
    body, bpath = m[op], (*path, op)
    if op in ("set", "set_var"):
        if not isinstance(body, dict) or not body:
            what = "part -> state" if op == "set" else "var -> value"
            raise r.fail(bpath, f"expected a non-empty map of {what}")
        for name, value in body.items():
            check_value(name, value, (*bpath, name), want="part" if op == "set" else "var")
        return Effect(op, after, values=tuple(body.items()))
    if op == "blink":
        b = r.map(body, bpath, {"part", "state", "hz"})
        part = b["part"]
        if part not in parts:
            raise r.fail((*bpath, "part"), f"unknown part {part!r}; known parts: {', '.join(parts)}")
        if "off" not in parts[part].states:
            raise r.fail((*bpath, "part"), f"part {part!r} has no 'off' state, so it cannot blink")
        check_value(part, b["state"], (*bpath, "state"), want="part")
        if b["state"] == "off":
            raise r.fail((*bpath, "state"), "blink needs a lit state (it alternates with 'off')")
        hz = r.number(b["hz"], (*bpath, "hz"), 0.0, MAX_BLINK_HZ)
        if hz <= 0:
            raise r.fail((*bpath, "hz"), "hz must be > 0")
        return Effect(op, after, part=part, state=b["state"], hz=hz)
    return Effect("emit", after, event=r.ident(body, bpath, "event name"))
