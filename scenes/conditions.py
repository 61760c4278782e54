"""Evaluating conditions over observed part states, with three-valued logic.

A leaf whose part is not currently known (not in view, too low confidence, stale) is *unknown*, not
false: ``not {part: led_internet, is: green}`` must not count as true just because the LED is out of
view. ``all``/``any``/``not`` follow Kleene logic, and only a definite ``True`` counts.
"""

from __future__ import annotations

from collections.abc import Mapping

from scenes.model import AllOf, AnyOf, Condition, Leaf, NotOf


def evaluate(condition: Condition, states: Mapping[str, str]) -> bool | None:
    """True/False when decidable from ``states`` (part -> state), None when a needed part is unknown."""
    if isinstance(condition, Leaf):
        state = states.get(condition.part)
        return None if state is None else state in condition.states
    if isinstance(condition, NotOf):
        inner = evaluate(condition.item, states)
        return None if inner is None else not inner
    results = [evaluate(c, states) for c in condition.items]
    if isinstance(condition, AllOf):
        if False in results:
            return False
        return None if None in results else True
    if True in results:
        return True
    return None if None in results else False


def holds(condition: Condition, states: Mapping[str, str]) -> bool:
    return evaluate(condition, states) is True


def leaves(condition: Condition) -> list[Leaf]:
    if isinstance(condition, Leaf):
        return [condition]
    if isinstance(condition, NotOf):
        return leaves(condition.item)
    return [leaf for c in condition.items for leaf in leaves(c)]


def specificity(condition: Condition) -> int:
    """How much a condition pins down: the number of leaf tests (an ``any`` counts its largest branch)."""
    if isinstance(condition, Leaf):
        return 1
    if isinstance(condition, NotOf):
        return specificity(condition.item)
    if isinstance(condition, AnyOf):
        return max((specificity(c) for c in condition.items), default=0)
    return sum(specificity(c) for c in condition.items)


def describe(condition: Condition) -> str:
    """Short text form for transcripts and graphs: ``led_power=green & led_internet in {amber,red}``."""
    if isinstance(condition, Leaf):
        if len(condition.states) == 1:
            return f"{condition.part}={next(iter(condition.states))}"
        return f"{condition.part} in {{{','.join(sorted(condition.states))}}}"
    if isinstance(condition, NotOf):
        return f"not ({describe(condition.item)})"
    joiner = " & " if isinstance(condition, AllOf) else " | "
    parts = [describe(c) if isinstance(c, Leaf) else f"({describe(c)})" for c in condition.items]
    return joiner.join(parts)


__all__ = ["describe", "evaluate", "holds", "leaves", "specificity"]
