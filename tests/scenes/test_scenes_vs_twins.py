"""Shipped scenes against the digital twins: a simulated customer follows each scene on a twin of the faulty
device, doing exactly what each step's ``animate`` overlay shows, while a camera feeds the twin's visible
states to the engine. Every fault a scene handles must end with a healthy twin (``resolved``), except the
provider outage, which nothing on the device fixes (``escalate``, twin still faulty)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from product_models.catalog import Catalog, Product
from product_models.twin import Twin
from scenes import Animate, End, Engine, Library, Observation, PartObservation, ShowStep, UserEvent, select

CAMERA_DT_S = 0.25  # seconds between observations: each half-cycle of a 2 Hz blink is seen
REACTION_S = 2.0  # a customer starts the action a step shows this long after the step appears
HOLD_S = 12.0  # how long a customer keeps a button held for `hold` (the step texts ask for 10 s)
CHOICE_AFTER_S = 5.0  # with nothing happening, a customer picks the first offered button after this long
LIMIT_S = 900.0  # far past the longest scene path (every timeout taken)

# Fault -> (the scene its symptoms start, how that scene ends, the (action, part) pairs that changed the twin).
EXPECTED: dict[tuple[str, str], tuple[str, str, list[tuple[str, str]]]] = {
    ("router_ax1800", "wan_unplugged"): ("router_no_internet", "resolved", [("plug", "port_wan")]),
    ("router_ax1800", "internet_down"): ("router_no_internet", "resolved",
                                         [("unplug", "port_power"), ("plug", "port_power")]),
    ("router_ax1800", "config_corrupt"): ("router_no_internet", "resolved",
                                          [("unplug", "port_power"), ("plug", "port_power"),
                                           ("hold", "pinhole_reset")]),
    ("router_ax1800", "isp_outage"): ("router_no_internet", "escalate",
                                      [("unplug", "port_power"), ("plug", "port_power"), ("hold", "pinhole_reset")]),
    ("router_ax1800", "wifi_off"): ("router_no_wifi", "resolved", [("press", "button_wifi")]),
    # The tray already holds paper, so the "add paper" step's insert has no effect on this twin.
    ("printer_lx400", "paper_jam"): ("printer_paper_jam", "resolved",
                                     [("open", "cover_front"), ("remove", "paper_jam"), ("close", "cover_front"),
                                      ("open", "tray_paper"), ("close", "tray_paper")]),
}


def seen(product: Product, twin: Twin, now: float) -> Observation:
    """What a perfect camera reports: every stateful part in its visible state."""
    return Observation(product.id, {p: PartObservation(s) for p, s in twin.states(now).items()})


@dataclass
class Walk:
    outcome: str | None = None
    path: list[str] = field(default_factory=list)
    effective: list[tuple[str, str]] = field(default_factory=list)  # actions that fired a twin rule
    refused: list[str] = field(default_factory=list)
    end_time: float = 0.0


def follow(scene_id: str, fault: str, library: Library, catalog: Catalog) -> tuple[Walk, Twin]:
    """Run the scene on a twin showing ``fault``. The customer never presses Done: steps move on by vision."""
    scene = library.get(scene_id)
    product = catalog.get(scene.product)
    twin = Twin(product, fault=fault, now=0.0)
    engine = Engine(scene, product)
    walk = Walk()
    effects = engine.start(0.0)
    entered, now = 0.0, 0.0
    todo: list[Animate] = []  # the current step's animate overlays the customer has not done yet
    while True:
        for effect in effects:
            if isinstance(effect, ShowStep):
                entered = now
                todo = [o for o in effect.overlays if isinstance(o, Animate)]
                walk.path.append(effect.step_id)
            elif isinstance(effect, End):
                walk.outcome, walk.end_time = effect.outcome, now
        if engine.finished or now > LIMIT_S:
            return walk, twin
        now += CAMERA_DT_S
        step = scene.steps[engine.step_id or ""]
        if todo:
            action = todo[0].action
            if now >= entered + REACTION_S + (HOLD_S if action == "hold" else 0.0):
                part = todo.pop(0).part
                result = twin.act(action, part, now, duration=HOLD_S if action == "hold" else None)
                if result.refused:
                    walk.refused.append(f"{step.id}: {action} {part}: {result.refused}")
                elif result.happened:
                    walk.effective.append((action, part))
        elif step.choices and now >= entered + REACTION_S + CHOICE_AFTER_S:
            effects = engine.handle(UserEvent("choose", step.choices[0].id), now)
            continue
        effects = engine.handle(seen(product, twin, now), now)


@pytest.mark.parametrize(("product_id", "fault"), list(EXPECTED), ids=[f"{p}-{f}" for p, f in EXPECTED])
def test_following_the_scene_repairs_the_twin(library: Library, catalog: Catalog, product_id: str,
                                              fault: str) -> None:
    scene_id, outcome, actions = EXPECTED[(product_id, fault)]
    walk, twin = follow(scene_id, fault, library, catalog)
    assert walk.outcome == outcome, f"path {walk.path}"
    assert walk.refused == [], "the scene asks for an action the device cannot do at that point"
    assert walk.effective == actions, f"path {walk.path}"
    if outcome == "resolved":
        assert twin.is_healthy(walk.end_time), f"{twin.states(walk.end_time)} vars={twin.vars}"
    else:
        assert not twin.is_healthy(walk.end_time + 60.0)


def test_every_fault_starts_the_scene_that_handles_it(library: Library, catalog: Catalog) -> None:
    """Observing a twin in each fault selects the expected scene; faults no scene covers select none."""
    for product in catalog:
        for fault in product.faults:
            twin = Twin(product, fault=fault, now=0.0)
            chosen = select(library, seen(product, twin, 0.0))
            expected = EXPECTED.get((product.id, fault))
            assert (chosen.scene.id if chosen else None) == (expected[0] if expected else None), fault
    assert {scene.id for scene in library} == {scene_id for scene_id, _, _ in EXPECTED.values()}


def test_every_action_a_scene_shows_is_modelled_by_the_twin(library: Library, catalog: Catalog) -> None:
    for scene in library:
        spec = Twin.healthy(catalog.get(scene.product)).spec
        for step in scene.steps.values():
            for overlay in step.overlays:
                if overlay.kind == "animate":
                    assert spec.action_rules(overlay.action or "", overlay.part), (scene.id, step.id, overlay)
