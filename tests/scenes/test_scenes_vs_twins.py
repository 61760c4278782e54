"""Scenes against the digital twins: a simulated customer follows each scene on a twin of the faulty device,
doing exactly what each step's ``animate`` overlay shows, while a camera feeds the twin's visible states to the
engine. Every fault whose symptoms start a scene must end with a healthy twin (``resolved``), except a fault
that nothing on the device fixes, such as the router's provider outage (``escalate``, twin still faulty).

The generic tests derive every case from the catalog and the scene library in use ($FIXLENS_CATALOG_DIR,
$FIXLENS_SCENE_DIR), so a new product with a twin and its scenes is checked without editing this file. The
table of the shipped products pins the exact repair path each of their scenes takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from product_models.catalog import Catalog, Product, default_catalog
from product_models.twin import Twin, TwinSpec
from scenes import (
    Animate,
    End,
    Engine,
    Library,
    Observation,
    PartObservation,
    ShowStep,
    UserEvent,
    load_library,
    select,
)

pytestmark = pytest.mark.catalog

CAMERA_DT_S = 0.25  # seconds between observations: each half-cycle of a 2 Hz blink is seen
REACTION_S = 2.0  # a customer starts the action a step shows this long after the step appears
HOLD_S = 12.0  # how long a customer keeps a button held for `hold` (the step texts ask for 10 s)
CHOICE_AFTER_S = 5.0  # with nothing happening, a customer picks the first offered button after this long
LIMIT_S = 900.0  # far past the longest scene path (every timeout taken)

# Shipped products: fault -> (the scene its symptoms start, how that scene ends, the (action, part) pairs that
# changed the twin).
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
    ("router_ax1800", "unpowered"): ("router_no_power", "resolved", [("plug", "port_power")]),
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


def fixable_on_device(spec: TwinSpec, fault: str) -> bool:
    """Whether some rule can bring back every hidden var the fault spoils (docs/catalog.md: a fault that nothing
    on the device fixes keeps a hidden var that no rule clears)."""
    restored = {pair for rule in spec.rules for effect in rule.effects if effect.op == "set_var"
                for pair in effect.values}
    return all(value == spec.vars[var].initial or (var, spec.vars[var].initial) in restored
               for var, value in spec.fault_vars.get(fault, {}).items())


def handled_faults() -> list[tuple[str, str, str]]:
    """(product, fault, scene) for every fault whose symptoms start a scene, from the catalog and library in use."""
    library = load_library()
    cases = []
    for product in default_catalog():
        for fault in product.faults:
            chosen = select(library, seen(product, Twin(product, fault=fault, now=0.0), 0.0))
            if chosen is not None:
                cases.append((product.id, fault, chosen.scene.id))
    return cases


HANDLED = handled_faults()


@pytest.mark.parametrize(("product_id", "fault", "scene_id"), HANDLED, ids=[f"{p}-{f}" for p, f, _ in HANDLED])
def test_the_scene_a_fault_starts_repairs_the_twin(library: Library, catalog: Catalog, product_id: str, fault: str,
                                                   scene_id: str) -> None:
    walk, twin = follow(scene_id, fault, library, catalog)
    assert walk.refused == [], "the scene asks for an action the device cannot do at that point"
    if fixable_on_device(twin.spec, fault):
        assert walk.outcome == "resolved", f"path {walk.path}"
        assert twin.is_healthy(walk.end_time), f"{twin.states(walk.end_time)} vars={twin.vars}"
    else:
        assert walk.outcome == "escalate", f"path {walk.path}"
        assert not twin.is_healthy(walk.end_time + 60.0)
    if (product_id, fault) in EXPECTED:
        assert (scene_id, walk.outcome, walk.effective) == EXPECTED[(product_id, fault)], f"path {walk.path}"


def test_every_scene_is_started_by_a_fault_of_its_product(library: Library, catalog: Catalog) -> None:
    """A scene that no fault's symptoms select is never exercised against a twin."""
    started = set()
    for product in catalog:
        for fault in product.faults:
            chosen = select(library, seen(product, Twin(product, fault=fault, now=0.0), 0.0))
            if chosen is not None:
                assert chosen.scene.product == product.id, fault
                started.add(chosen.scene.id)
    assert {scene.id for scene in library} == started


def test_shipped_faults_start_their_scenes(library: Library, catalog: Catalog) -> None:
    """The faults of the table select their scenes (a scene added for another fault changes none of them)."""
    for (product_id, fault), expected in EXPECTED.items():
        product = catalog.get(product_id)
        chosen = select(library, seen(product, Twin(product, fault=fault, now=0.0), 0.0))
        assert (chosen.scene.id if chosen else None) == expected[0], fault


def test_every_action_a_scene_shows_is_modelled_by_the_twin(library: Library, catalog: Catalog) -> None:
    for scene in library:
        spec = Twin.healthy(catalog.get(scene.product)).spec
        for step in scene.steps.values():
            for overlay in step.overlays:
                if overlay.kind == "animate":
                    assert spec.action_rules(overlay.action or "", overlay.part), (scene.id, step.id, overlay)
