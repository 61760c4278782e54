"""Whole-scene checks that need everything parsed first: locales, goto targets and the step graph."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from scenes.model import Step

if TYPE_CHECKING:
    from scenes.reader import Reader


def check_texts(r: Reader, default_locale: str) -> frozenset[str]:
    """Default-locale text is required (error); a locale used elsewhere but missing here is a warning."""
    locales = frozenset(loc for _, text in r.texts for loc in text)
    for path, text in r.texts:
        if not text:
            continue  # already reported as broken
        if default_locale not in text:
            r.issue(path, f"text is missing the default locale {default_locale!r}")
        for loc in sorted(locales - text.keys() - {default_locale}):
            r.issue(path, f"missing {loc!r} translation (the scene uses {loc!r} elsewhere)", "warning")
    return locales | {default_locale}


def check_gotos(r: Reader, declared: set[str]) -> bool:
    """Every goto names a declared step; returns whether all did."""
    ok = True
    known = ", ".join(sorted(declared)) or "(none)"
    for path, target in r.gotos:
        if target not in declared:
            what = "start" if path == ("start",) else "goto"
            r.issue(path, f"{what} names unknown step {target!r}; known steps: {known}")
            ok = False
    return ok


def ends(step: Step) -> bool:
    """A step that ends the session: an outcome, or a timeout that hands over to a person."""
    return step.terminal or (step.on_timeout is not None and step.on_timeout.escalate)


def check_graph(r: Reader, steps: dict[str, Step], start: str) -> None:
    """Every step is reachable from ``start`` and every reachable step can reach a terminal step."""
    reachable = {start}
    queue = deque([start])
    while queue:
        for target in steps[queue.popleft()].targets():
            if target in steps and target not in reachable:
                reachable.add(target)
                queue.append(target)
    for sid in steps:
        if sid not in reachable:
            r.issue(("steps", sid), f"step {sid!r} is unreachable from start step {start!r}")
    finishing = set(_backwards_bfs(steps, [sid for sid, s in steps.items() if ends(s)]))
    for sid in steps:
        if sid in reachable and sid not in finishing:
            r.issue(("steps", sid), f"step {sid!r} has no path to any terminal step (a step with an outcome)")


def distances_to_end(steps: dict[str, Step], outcome: str | None = "resolved") -> dict[str, int]:
    """Fewest transitions from each step to a step that ends the session with ``outcome`` (for progress
    estimates: "step 2 of 5" counts the steps left if the repair goes well, not the quickest way to give
    up). Steps that cannot reach that outcome get their distance to any end; ``outcome=None``: any end."""
    if outcome is not None:
        happy = distances_to_end(
            {sid: s for sid, s in steps.items() if not ends(s) or s.outcome == outcome}, None)
        rest = distances_to_end(steps, None)
        return {sid: happy.get(sid, d) for sid, d in rest.items()}
    return _backwards_bfs(steps, [sid for sid, s in steps.items() if ends(s)])


def _backwards_bfs(steps: dict[str, Step], ends_at: list[str]) -> dict[str, int]:
    """Fewest transitions from each step that can reach one of ``ends_at`` to the nearest of them: one
    breadth-first walk over the reversed edges, linear in the scene's size (a scene of thousands of steps is
    checked on every PUT and every server start)."""
    before: dict[str, list[str]] = {}
    for sid, s in steps.items():
        for target in s.targets():
            if target in steps:
                before.setdefault(target, []).append(sid)
    dist = dict.fromkeys(ends_at, 0)
    queue = deque(ends_at)
    while queue:
        sid = queue.popleft()
        for earlier in before.get(sid, ()):
            if earlier not in dist:
                dist[earlier] = dist[sid] + 1
                queue.append(earlier)
    return dist
