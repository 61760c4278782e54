"""Reading the ``steps:`` map of a scene (see :mod:`scenes.loader` for the rules)."""

from __future__ import annotations

from typing import Any

from product_models.sourcemap import PathKey
from scenes.model import OUTCOMES, Choice, Expectation, Overlay, Step, Timeout
from scenes.reader import STEP_FIELDS, Reader, type_name

# Fields that make no sense on a step that ends the session.
_NOT_ON_TERMINAL = ("when", "choices", "on_timeout", "done_goto", "expect_s")


def read_steps(r: Reader, value: Any, locale: str) -> tuple[dict[str, Step], set[str], bool]:
    """Parse every step. Returns the parsed steps, every declared step id, and whether all parsed."""
    path: PathKey = ("steps",)
    if not isinstance(value, dict) or not value:
        r.issue(path, f"steps must be a non-empty map of step id -> step, got {type_name(value)}")
        return {}, set(), False
    declared = {k for k in value if isinstance(k, str)}
    steps: dict[str, Step] = {}
    complete = True
    for sid, raw in value.items():
        ok_id = r.ident(sid, (*path, sid), "step id")
        step = read_step(r, str(sid), raw, (*path, sid), locale)
        if ok_id is None or step is None:
            complete = False
        else:
            steps[sid] = step
    return steps, declared, complete


def read_step(r: Reader, sid: str, raw: Any, path: PathKey, locale: str) -> Step | None:
    m = r.fields(raw, path, STEP_FIELDS, f"step {sid!r}")
    if m is None:
        return None
    before = len([i for i in r.issues if i.severity == "error"])
    if "text" not in m:
        r.issue(path, f"step {sid!r} needs 'text': the instruction shown to the customer")
    text = r.i18n(m["text"], (*path, "text"), locale) if "text" in m else None
    outcome = m.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        r.issue((*path, "outcome"), f"unknown outcome {outcome!r}; expected one of: {', '.join(OUTCOMES)}")
    overlays = [r.overlay(v, p, locale) for p, v in r.items(m.get("overlays"), (*path, "overlays"), "overlays")]
    when = [r.expectation(v, p, locale) for p, v in r.items(m.get("when"), (*path, "when"), "when")]
    choices = [r.choice(v, p, locale) for p, v in r.items(m.get("choices"), (*path, "choices"), "choices")]
    seen: set[str] = set()
    for i, c in enumerate(choices):
        if c is not None and c.id in seen:
            r.issue((*path, "choices", i, "id"), f"duplicate choice id {c.id!r} in step {sid!r}")
        if c is not None:
            seen.add(c.id)
    timeout = r.timeout(m["on_timeout"], (*path, "on_timeout"), locale) if "on_timeout" in m else None
    expect_s = r.seconds(m["expect_s"], (*path, "expect_s"), "expect_s", positive=True) if "expect_s" in m else None
    done_goto = r.goto(m["done_goto"], (*path, "done_goto")) if "done_goto" in m else None

    if outcome is not None:
        for key in _NOT_ON_TERMINAL:
            if key in m:
                r.issue((*path, key), f"terminal step {sid!r} (outcome: {outcome}) cannot have {key!r}")
    elif not any(k in m for k in ("when", "choices", "on_timeout", "done_goto")):
        r.issue(path, f"step {sid!r} has no way forward: give it when, choices, on_timeout or done_goto, "
                      "or make it terminal with outcome")
    # Verify, don't ask: a step that shows a physical action must see its result in part states.
    for i, o in enumerate(overlays):
        if o is None or o.kind != "animate":
            continue
        if outcome is not None:
            r.issue((*path, "overlays", i), f"terminal step {sid!r} (outcome: {outcome}) cannot ask for a physical "
                    f"action ({o.action} on {o.part}): nothing would verify it; ask for it in an earlier step")
        elif not m.get("when"):
            r.issue((*path, "overlays", i), f"step {sid!r} asks for a physical action ({o.action} on {o.part}) "
                    "but has no 'when' to verify it from part states")
    errors_now = len([i for i in r.issues if i.severity == "error"])
    if errors_now > before or text is None:
        return None
    return Step(
        id=sid, text=text,
        overlays=tuple(o for o in overlays if isinstance(o, Overlay)),
        when=tuple(e for e in when if isinstance(e, Expectation)),
        choices=tuple(c for c in choices if isinstance(c, Choice)),
        on_timeout=timeout if isinstance(timeout, Timeout) else None,
        expect_s=expect_s, done_goto=done_goto, outcome=outcome,
    )
