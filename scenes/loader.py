"""Reading one scene file into a :class:`~scenes.model.Scene`, collecting *every* problem on the way.

Rules:
- Every finding is an :class:`~scenes.model.Issue` with ``file:line:col`` and the path inside the scene
  (``steps.check_wan.when[1].goto``). Parsing never stops at the first error; a broken piece is skipped
  and the rest is still checked. Malformed YAML, wrong types and files that are not scenes are issues
  too, never tracebacks.
- Names are checked against the catalog: the product, every part, every state, every animate action
  (which must be one the part accepts).
- Cross-references and the step graph are checked in :mod:`scenes.checks` once the file is parsed.
- A :class:`Scene` is returned only when there is no error; warnings do not block it.
"""

from __future__ import annotations

from pathlib import Path

from product_models.catalog import Catalog, default_catalog
from product_models.sourcemap import SourceDoc, SourceError, load_file, load_text
from scenes import checks
from scenes.errors import SceneValidationError
from scenes.model import Issue, Scene, Trigger
from scenes.reader import LOCALE, TOP_OPTIONAL, TOP_REQUIRED, Reader, type_name
from scenes.steps import read_steps


def read_scene(doc: SourceDoc, catalog: Catalog) -> tuple[Scene | None, list[Issue]]:
    """Parse and check one scene document. The scene is ``None`` when any error was found."""
    r = Reader(doc, catalog)
    data = doc.data
    if not isinstance(data, dict) or not any(k in data for k in ("steps", "start", "triggers")):
        got = {None: "an empty file", dict: "a map without start, steps or triggers"}.get(
            type(data) if data is not None else None, type_name(data))
        r.issue((), f"not a scene: expected a map with {', '.join(TOP_REQUIRED)}, got {got}")
        return None, r.issues
    top = r.fields(data, (), (*TOP_REQUIRED, *TOP_OPTIONAL), "scene") or {}
    for key in TOP_REQUIRED:
        if key not in top:
            r.issue((), f"scene is missing the required field {key!r}")
    sid = r.ident(top.get("id"), ("id",), "scene id") if "id" in top else None
    locale = top.get("default_locale", "en")
    if not isinstance(locale, str) or not LOCALE.match(locale):
        r.issue(("default_locale",), f"bad default_locale {locale!r}; expected a tag like en, de, es-MX")
        locale = "en"
    if "product" in top:
        pid = top["product"]
        if not isinstance(pid, str) or pid not in catalog:
            known = ", ".join(sorted(catalog.products))
            r.issue(("product",), f"unknown product {pid!r}; known products: {known}")
        else:
            r.product = catalog.get(pid)
    title = r.i18n(top["title"], ("title",), locale) if "title" in top else None
    triggers: list[Trigger] = []
    for path, raw in r.items(top.get("triggers"), ("triggers",), "triggers"):
        cond = r.condition(raw, path, extra=("reason",))
        if isinstance(raw, dict) and "reason" not in raw:
            r.issue(path, "a trigger needs 'reason': the text telling the customer what was noticed")
        reason = r.i18n(raw["reason"], (*path, "reason"), locale) if isinstance(raw, dict) and "reason" in raw else None
        if cond is not None and reason is not None:
            triggers.append(Trigger(cond, reason))
    steps, declared, complete = read_steps(r, top["steps"], locale) if "steps" in top else ({}, set(), False)
    start = r.goto(top["start"], ("start",)) if "start" in top else None
    locales = checks.check_texts(r, locale)
    gotos_ok = checks.check_gotos(r, declared)
    # Graph checks on a partly parsed scene, or with a dangling goto, would bury the one real mistake
    # under follow-on "unreachable" errors.
    if complete and gotos_ok and start in steps:
        checks.check_graph(r, steps, start)
    if any(i.severity == "error" for i in r.issues):
        return None, r.issues
    assert sid and r.product and title is not None and start
    scene = Scene(sid, r.product.id, title, locale, tuple(triggers), start, steps, doc.file, locales)
    return scene, r.issues


def check_text(text: str, file: str = "<string>", catalog: Catalog | None = None) -> tuple[Scene | None, list[Issue]]:
    """Parse scene YAML ``text``; returns the scene (or None) and every issue found."""
    try:
        doc = load_text(text, file)
    except SourceError as exc:
        return None, [source_issue(exc)]
    return read_scene(doc, catalog or default_catalog())


def check_file(path: str | Path, catalog: Catalog | None = None) -> tuple[Scene | None, list[Issue]]:
    """Read scene file ``path``; returns the scene (or None) and every issue found."""
    try:
        doc = load_file(path)
    except SourceError as exc:
        return None, [source_issue(exc)]
    return read_scene(doc, catalog or default_catalog())


def load_scene(path: str | Path, catalog: Catalog | None = None) -> Scene:
    """Load one scene file. Raises :class:`SceneValidationError` listing every error."""
    scene, issues = check_file(path, catalog)
    if scene is None:
        raise SceneValidationError(issues)
    return scene


def source_issue(exc: SourceError) -> Issue:
    """A YAML-level problem as an issue; a duplicate key under ``steps`` is a duplicate step id."""
    message = exc.message
    if exc.path == "steps" and message.startswith("duplicate key"):
        message = "duplicate step id" + message.removeprefix("duplicate key")
    return Issue(exc.file, exc.line, exc.col, exc.path, "error", message)
