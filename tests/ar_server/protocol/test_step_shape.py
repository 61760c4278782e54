"""One step shape from the scene engine to the client: the engine's overlay views and the wire overlays are
the same classes by name and field, and every step of every shipped scene crosses the wire unchanged."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import scenes
from ar_server.protocol import (
    ACTIONS,
    ARROW_DIRECTIONS,
    OVERLAY_TYPES,
    Progress,
    Step,
    copy_overlay,
    decode_server,
    encode_server,
)
from ar_server.protocol.codec import HEX_COLOR
from ar_server.session.convert import step_message
from product_models.catalog import ACTIONS as CATALOG_ACTIONS
from product_models.catalog import default_catalog
from scenes import COLOR_HEX, Engine, Library, ShowStep, load_library
from scenes import Step as SceneStep
from scenes.model import ARROW_DIRECTIONS as SCENE_ARROW_DIRECTIONS
from scenes.view import DEFAULT_COLORS, OVERLAY_VIEW_TYPES

pytestmark = pytest.mark.catalog  # every scene of the library in use, on its product


def _fields(cls: type) -> list[tuple[str, bool, Any]]:
    return [(f.name, f.init, f.default) for f in dataclasses.fields(cls)]


def test_engine_views_and_wire_overlays_have_the_same_kinds_and_fields() -> None:
    assert set(OVERLAY_VIEW_TYPES) == set(OVERLAY_TYPES)
    for kind, view in OVERLAY_VIEW_TYPES.items():
        wire = OVERLAY_TYPES[kind]
        assert view.__name__ == wire.__name__
        assert _fields(view) == _fields(wire), kind
    assert [f.name for f in dataclasses.fields(scenes.Progress)] == [f.name for f in dataclasses.fields(Progress)]


def test_the_value_sets_agree() -> None:
    assert ACTIONS == CATALOG_ACTIONS and ARROW_DIRECTIONS == SCENE_ARROW_DIRECTIONS
    assert all(HEX_COLOR.match(c) for c in [*COLOR_HEX.values(), *DEFAULT_COLORS.values()])


def every_step_shown(library: Library, locale: str) -> list[tuple[SceneStep, ShowStep]]:
    """Each step of each scene, and the engine's view of it, entered straight from a snapshot at that step."""
    catalog = default_catalog()
    out = []
    for scene in library:
        product = catalog.get(scene.product)
        engine = Engine(scene, product, locale)
        engine.start(0.0)
        base = engine.snapshot()
        for sid, step in scene.steps.items():
            at = {**base, "step": sid, "history": [scene.start, sid] if sid != scene.start else [sid],
                  "since": [None] * len(step.when)}
            out.append((step, Engine.restore(scene, product, at).view()))
    return out


@pytest.mark.parametrize("locale", ["en", "de", "es"])
def test_every_shipped_step_crosses_the_wire_unchanged(locale: str) -> None:
    """Regression: overlays went typed -> dict -> typed -> dict and progress 1-based -> 0-based -> 1-based."""
    shown = every_step_shown(load_library(), locale)
    assert any(isinstance(o, scenes.Animate) for _, s in shown for o in s.overlays)
    for step, show in shown:
        decoded = decode_server(encode_server(step_message(show), check=True))
        assert isinstance(decoded, Step)
        assert decoded.overlays == tuple(copy_overlay(o) for o in show.overlays)
        assert [dataclasses.asdict(o) for o in decoded.overlays] == [dataclasses.asdict(o) for o in show.overlays]
        assert decoded.progress == Progress(show.progress.index, show.progress.total)
        assert 1 <= decoded.progress.index <= decoded.progress.total
        assert decoded.accepts_done == show.accepts_done == (step.done_target() is not None), step.id
