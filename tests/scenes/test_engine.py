from __future__ import annotations

import itertools
import json
import re
from collections import deque

import pytest

from product_models.catalog import Catalog, Product
from scenes import (
    COLOR_HEX,
    Animate,
    Arrow,
    End,
    Engine,
    Escalate,
    Highlight,
    IllegalEventError,
    Label,
    Library,
    Notice,
    Observation,
    PartObservation,
    Progress,
    Scene,
    ShowStep,
    SnapshotError,
    Tick,
    UserEvent,
    negotiate,
    select,
)
from scenes.conditions import holds, leaves

Edge = tuple[str, object]  # ("when", index) | ("choice", id) | ("timeout", None) | ("done", None)


def observe(product: str, **parts: str) -> Observation:
    return Observation(product, {p: PartObservation(s) for p, s in parts.items()})


def engine_for(library: Library, catalog: Catalog, scene_id: str, locale: str = "en") -> Engine:
    scene = library.get(scene_id)
    return Engine(scene, catalog.get(scene.product), locale)


# -- driving the engine along any edge of the step graph ----------------------------------------------


def _states_firing(scene: Scene, product: Product, step_id: str, index: int) -> dict[str, str]:
    """Part states under which `when[index]` holds and no rival entry that would win first holds."""
    when = scene.steps[step_id].when
    parts = sorted({leaf.part for e in when for leaf in leaves(e.condition)})
    target = when[index]
    for combo in itertools.product(*(product.part(p).states for p in parts)):
        states = dict(zip(parts, combo, strict=True))
        if not holds(target.condition, states):
            continue
        rivals = [e for j, e in enumerate(when) if j < index or (j > index and e.hold < target.hold)]
        if not any(holds(e.condition, states) for e in rivals):
            return states
    raise AssertionError(f"no part states make {step_id}.when[{index}] win")


def drive(engine: Engine, edge: Edge, now: float) -> tuple[float, list]:
    """Make the engine take ``edge`` from its current step; returns the new time and all effects."""
    scene, step = engine.scene, engine.scene.steps[engine.step_id or ""]
    kind, arg = edge
    effects: list = []
    if kind == "when":
        states = _states_firing(scene, engine.product, step.id, int(arg))  # type: ignore[arg-type]
        end = now + step.when[int(arg)].hold  # type: ignore[arg-type]
        t = now
        while engine.step_id == step.id and not engine.finished:
            effects += engine.handle(observe(scene.product, **states), t)
            assert t <= end + 1.0, f"{step.id}.when[{arg}] did not fire"
            t += 0.5
        return t, effects
    if kind == "timeout":
        assert step.on_timeout is not None
        t = now + step.on_timeout.after
        effects += engine.handle(Tick(), t)
        return t, effects
    if kind == "choice":
        return now + 1, engine.handle(UserEvent("choose", str(arg)), now + 1)
    return now + 1, engine.handle(UserEvent("done"), now + 1)


def edges(scene: Scene, step_id: str) -> list[tuple[Edge, str]]:
    step = scene.steps[step_id]
    out: list[tuple[Edge, str]] = [(("when", i), e.goto) for i, e in enumerate(step.when)]
    out += [(("choice", c.id), c.goto) for c in step.choices]
    if step.on_timeout is not None and step.on_timeout.goto:
        out.append((("timeout", None), step.on_timeout.goto))
    if step.done_goto:
        out.append((("done", None), step.done_goto))
    return out


SHIPPED = ["router_no_internet", "router_no_wifi", "printer_paper_jam"]
CAUSE_OF_EDGE = {"when": "vision", "timeout": "timeout", "choice": "choice", "done": "done"}


@pytest.mark.parametrize("scene_id", SHIPPED)
def test_every_step_and_edge_is_reachable_by_driving_the_engine(library: Library, catalog: Catalog,
                                                                 scene_id: str) -> None:
    scene = library.get(scene_id)
    paths: dict[str, list[Edge]] = {scene.start: []}
    queue = deque([scene.start])
    all_edges: list[tuple[str, Edge, str]] = []
    while queue:
        sid = queue.popleft()
        for edge, target in edges(scene, sid):
            all_edges.append((sid, edge, target))
            if target not in paths:
                paths[target] = [*paths[sid], edge]
                queue.append(target)
    assert set(paths) == set(scene.steps)
    for sid, target_edge, target in all_edges:
        engine = engine_for(library, catalog, scene_id)
        now = 0.0
        engine.start(now)
        for edge in paths[sid]:
            now, _ = drive(engine, edge, now)
        assert engine.step_id == sid
        now, effects = drive(engine, target_edge, now)
        assert engine.step_id == target, f"{sid} --{target_edge}--> expected {target}, at {engine.step_id}"
        shown = [e for e in effects if isinstance(e, ShowStep)]
        assert shown and shown[-1].step_id == target
        assert shown[-1].cause == CAUSE_OF_EDGE[target_edge[0]]
        assert shown[-1].accepts_done == (scene.steps[target].done_target() is not None)
        assert [o.kind for o in shown[-1].overlays] == [o.kind for o in scene.steps[target].overlays]
        assert all(re.fullmatch("#[0-9a-f]{6}", o.color) for o in shown[-1].overlays)
        if scene.steps[target].outcome:
            assert engine.outcome == scene.steps[target].outcome
            assert isinstance(effects[-1], End)


def test_router_no_internet_reaches_resolved_and_escalate(library: Library, catalog: Catalog) -> None:
    engine = engine_for(library, catalog, "router_no_internet")
    engine.start(0)
    for t in (0, 1, 2):
        engine.handle(observe("router_ax1800", port_wan="plugged", led_internet="red"), t)
    assert engine.step_id == "wait_link"
    effects = engine.handle(Tick(), 40)
    assert engine.step_id == "unplug_power"
    assert effects[0].reason == "the internet light is still not green"


# -- debounce ---------------------------------------------------------------------------------------


def test_flicker_shorter_than_hold_never_advances_but_a_steady_state_does(library: Library,
                                                                           catalog: Catalog) -> None:
    engine = engine_for(library, catalog, "router_no_wifi")  # press_wifi: led_wifi green, hold 2
    engine.start(0)
    t = 0.0
    for i in range(40):  # green and amber alternate every 0.7 s, for 25 s (the step times out at 30 s)
        t = 0.25 + i * 0.7
        state = "green" if i % 2 == 0 else "amber"
        assert not [e for e in engine.handle(observe("router_ax1800", led_wifi=state), t)
                    if isinstance(e, ShowStep)]
        if t > 25 and state == "amber":
            break
    assert engine.step_id == "press_wifi"
    start = t + 0.5
    engine.handle(observe("router_ax1800", led_wifi="green"), start)
    engine.handle(observe("router_ax1800", led_wifi="green"), start + 1.9)
    assert engine.step_id == "press_wifi"
    effects = engine.handle(observe("router_ax1800", led_wifi="green"), start + 2.0)
    assert engine.step_id == "resolved" and effects[-1] == End("resolved")


def test_low_confidence_readings_do_not_count(library: Library, catalog: Catalog) -> None:
    engine = engine_for(library, catalog, "router_no_wifi")
    engine.start(0)
    weak = Observation("router_ax1800", {"led_wifi": PartObservation("green", 0.2)})
    for t in range(1, 10):
        engine.handle(weak, t)
    assert engine.step_id == "press_wifi"


def test_hold_timer_starts_in_the_step(library: Library, catalog: Catalog) -> None:
    """What held before a step was entered does not count toward that step's hold."""
    engine = engine_for(library, catalog, "printer_paper_jam")
    engine.start(0)
    for t in (0, 0.5, 1.0):  # cover open for 1 s: open_cover -> remove_paper
        engine.handle(observe("printer_lx400", cover_front="open", paper_jam="clear"), t)
    assert engine.step_id == "remove_paper"
    engine.handle(observe("printer_lx400", paper_jam="clear"), 1.5)
    assert engine.step_id == "remove_paper"  # needs 1.5 s inside remove_paper
    engine.handle(observe("printer_lx400", paper_jam="clear"), 3.0)
    assert engine.step_id == "close_cover"


# -- illegal events ------------------------------------------------------------------------------------


def _at_press_wifi(library: Library, catalog: Catalog) -> Engine:
    engine = engine_for(library, catalog, "router_no_wifi")
    engine.start(0)
    engine.handle(observe("router_ax1800", led_wifi="green"), 1)  # a hold timer is running
    return engine


ILLEGAL = [
    ("choose_unknown", UserEvent("choose", "retry"), "has no choice 'retry'"),
    ("done_without_target", UserEvent("done"), "has no Done button"),
    ("back_at_first_step", UserEvent("back"), "no earlier step"),
    ("unknown_user_kind", UserEvent("dance"), "unknown user event 'dance'"),
    ("choice_without_choose", UserEvent("help", "x"), "goes with 'choose'"),
    ("unknown_part", observe("router_ax1800", led_dsl="green"), "unknown part/state"),
    ("unknown_state", observe("router_ax1800", led_wifi="purple"), "unknown part/state"),
    ("bad_confidence", Observation("router_ax1800", {"led_wifi": PartObservation("green", 1.5)}), "within 0..1"),
    ("not_an_event", "tick", "unknown event"),
]


@pytest.mark.parametrize(("event", "fragment"), [c[1:] for c in ILLEGAL], ids=[c[0] for c in ILLEGAL])
def test_illegal_event_raises_and_changes_nothing(library: Library, catalog: Catalog, event: object,
                                                  fragment: str) -> None:
    engine = _at_press_wifi(library, catalog)
    before = engine.snapshot()
    with pytest.raises(IllegalEventError, match=fragment):
        engine.handle(event, 2)  # type: ignore[arg-type]
    assert engine.snapshot() == before


def test_events_before_start_and_after_end_are_illegal(library: Library, catalog: Catalog) -> None:
    engine = engine_for(library, catalog, "router_no_wifi")
    with pytest.raises(IllegalEventError, match="start"):
        engine.handle(Tick(), 0)
    engine.start(0)
    with pytest.raises(IllegalEventError, match="already started"):
        engine.start(1)
    engine.handle(Tick(), 31)
    engine.handle(UserEvent("choose", "agent"), 32)
    assert engine.outcome == "escalate"
    before = engine.snapshot()
    for event in (Tick(), UserEvent("back"), observe("router_ax1800", led_wifi="green")):
        with pytest.raises(IllegalEventError, match="already ended"):
            engine.handle(event, 40)
    assert engine.snapshot() == before


# -- back, done, struggle, notices -------------------------------------------------------------------------


def test_back_walks_the_history(library: Library, catalog: Catalog) -> None:
    engine = engine_for(library, catalog, "router_no_wifi")
    engine.start(0)
    engine.handle(Tick(), 30)
    assert engine.history == ("press_wifi", "still_off")
    (shown,) = engine.handle(UserEvent("back"), 31)
    assert shown.step_id == "press_wifi" and engine.history == ("press_wifi",)
    assert shown.cause == "back" and shown.progress == Progress(1, 2)
    with pytest.raises(IllegalEventError):
        engine.handle(UserEvent("back"), 32)


def test_done_goes_to_done_goto_and_a_choice_step_without_one_refuses_it(library: Library, catalog: Catalog) -> None:
    engine = engine_for(library, catalog, "router_no_internet")
    engine.start(0)
    engine.handle(UserEvent("done"), 1)
    assert engine.step_id == "wait_link"  # check_wan's done_goto
    wifi = engine_for(library, catalog, "router_no_wifi")
    wifi.start(0)
    (still_off,) = [e for e in wifi.handle(Tick(), 30) if isinstance(e, ShowStep)]
    assert still_off.step_id == "still_off" and not still_off.accepts_done
    with pytest.raises(IllegalEventError, match=r"'still_off' has no Done button; choose one of: retry, agent"):
        wifi.handle(UserEvent("done"), 31)
    assert wifi.step_id == "still_off"


def test_help_offers_escalation_once_per_step(library: Library, catalog: Catalog) -> None:
    engine = _at_press_wifi(library, catalog)
    effects = engine.handle(UserEvent("help"), 1.5)
    assert effects == [Escalate("help", True, "Need a hand? A support agent can take over from here.")]
    assert engine.handle(UserEvent("help"), 2) == []
    assert engine.step_id == "press_wifi" and not engine.finished


def test_entering_a_step_three_times_offers_escalation(library: Library, catalog: Catalog) -> None:
    engine = engine_for(library, catalog, "router_no_wifi")
    engine.start(0)
    offers = []
    t = 0.0
    for _ in range(2):
        t += 30
        offers += [e for e in engine.handle(Tick(), t) if isinstance(e, Escalate)]
        t += 1
        offers += [e for e in engine.handle(UserEvent("choose", "retry"), t) if isinstance(e, Escalate)]
    assert [(o.reason, o.offer) for o in offers] == [("repeated", True)]
    assert engine.history.count("press_wifi") == 3 and engine.step_id == "press_wifi"


def test_time_far_past_expect_s_offers_escalation_once(library: Library, catalog: Catalog) -> None:
    engine = engine_for(library, catalog, "printer_paper_jam")  # open_cover: expect_s 30, no timeout
    engine.start(0)
    seen = observe("printer_lx400", cover_front="closed")
    assert not [e for e in engine.handle(seen, 80) if isinstance(e, Escalate)]
    offers = [e for e in engine.handle(seen, 91) if isinstance(e, Escalate)]
    assert [(o.reason, o.offer) for o in offers] == [("overdue", True)]
    assert not [e for e in engine.handle(seen, 120) if isinstance(e, Escalate)]


def test_wrong_product_notice_is_rate_limited(library: Library, catalog: Catalog) -> None:
    engine = engine_for(library, catalog, "router_no_wifi", "de-AT")
    engine.start(0)
    (notice,) = engine.handle(Observation("printer_lx400"), 1)
    assert notice == Notice("wrong_product", "Das ist nicht Ihr AX1800 WLAN-Router. "
                                             "Bitte richten Sie die Kamera auf den AX1800 WLAN-Router.")
    assert engine.handle(Observation("printer_lx400"), 5) == []
    assert [e.code for e in engine.handle(Observation("printer_lx400"), 17)] == ["wrong_product"]


def test_point_the_camera_notice_when_nothing_is_seen(library: Library, catalog: Catalog) -> None:
    engine = engine_for(library, catalog, "router_no_wifi", "es")
    engine.start(0)
    engine.handle(observe("router_ax1800", led_wifi="off"), 3)
    assert engine.handle(Observation(None), 8) == []
    (notice,) = engine.handle(Tick(), 9.5)
    assert notice == Notice("point_camera", "Apunte la cámara al Router Wi-Fi AX1800.")
    assert engine.handle(Tick(), 12) == []


# -- snapshot / restore --------------------------------------------------------------------------------


def test_snapshot_round_trip_continues_identically(library: Library, catalog: Catalog) -> None:
    scene = library.get("router_no_internet")
    product = catalog.get(scene.product)
    engine = Engine(scene, product, "de")
    engine.start(100)
    engine.handle(observe("router_ax1800", port_wan="plugged", led_internet="red"), 101)
    engine.handle(observe("router_ax1800", port_wan="plugged"), 102.6)  # -> wait_link
    engine.handle(UserEvent("help"), 103)
    engine.handle(observe("router_ax1800", led_internet="green"), 104)  # hold timer running
    saved = json.loads(json.dumps(engine.snapshot()))
    assert len(json.dumps(saved)) < 2000
    assert saved["history"] == ["check_wan", "wait_link"] and saved["since"] == [104.0]
    twin = Engine.restore(scene, product, saved)
    assert twin.snapshot() == engine.snapshot() and twin.locale == "de"
    assert twin.view() == engine.view()
    later = [(observe("router_ax1800", led_internet="green"), 105.0), (Tick(), 106.5)]
    for event, t in later:
        assert twin.handle(event, t) == engine.handle(event, t)
    assert twin.outcome == engine.outcome == "resolved"


def test_snapshot_keeps_why_the_step_was_entered(library: Library, catalog: Catalog) -> None:
    engine = engine_for(library, catalog, "router_no_wifi")
    engine.start(0)
    engine.handle(Tick(), 30)  # press_wifi times out -> still_off
    scene = engine.scene
    assert Engine.restore(scene, engine.product, engine.snapshot()).view().cause == "timeout"
    older = {k: v for k, v in engine.snapshot().items() if k != "cause"}  # saved before causes were kept
    assert Engine.restore(scene, engine.product, older).view().step_id == "still_off"


@pytest.mark.parametrize(("change", "fragment"), [
    ({"cause": "magic"}, "unknown cause"),
    ({"scene": "router_no_internet"}, "is for scene"),
    ({"v": 9}, "version"),
    ({"step": "nowhere"}, "does not have"),
    ({"since": []}, "hold timers"),
    ({"entered_at": "soon"}, "finite number"),
    ({"history": ["still_off"]}, "end with the current step"),
])
def test_bad_snapshots_are_refused(library: Library, catalog: Catalog, change: dict, fragment: str) -> None:
    engine = _at_press_wifi(library, catalog)
    scene = library.get("router_no_wifi")
    with pytest.raises(SnapshotError, match=fragment):
        Engine.restore(scene, engine.product, {**engine.snapshot(), **change})


# -- selection and locales --------------------------------------------------------------------------------


def test_select_prefers_the_most_specific_trigger(library: Library) -> None:
    red = observe("router_ax1800", led_power="green", led_internet="red", port_wan="plugged", led_wifi="green")
    chosen = select(library, red)
    assert chosen is not None and chosen.scene.id == "router_no_internet"
    assert chosen.reason == "the internet light is red"
    unplugged = observe("router_ax1800", led_power="green", led_internet="red", port_wan="empty")
    chosen = select(library, unplugged, "de-AT")
    assert chosen is not None and chosen.reason == "das Internetkabel ist nicht eingesteckt"
    wifi = select(library, observe("router_ax1800", led_power="green", led_internet="green", led_wifi="off"))
    assert wifi is not None and wifi.scene.id == "router_no_wifi"
    jam = select(library, observe("printer_lx400", led_jam="amber", paper_jam="jammed"), "es")
    assert jam is not None and jam.reason == "hay una hoja de papel atascada en la impresora"
    assert select(library, observe("router_ax1800", led_power="green", led_internet="green")) is None
    assert select(library, Observation(None)) is None
    weak = Observation("router_ax1800", {"led_power": PartObservation("green", 0.9),
                                         "led_internet": PartObservation("red", 0.1)})
    assert select(library, weak) is None


def test_select_breaks_ties_by_library_order(library: Library) -> None:
    both = observe("router_ax1800", led_power="green", led_internet="red", led_wifi="off")
    chosen = select(library, both)  # both scenes' triggers test two parts; router_no_internet sorts first
    assert chosen is not None and chosen.scene.id == "router_no_internet"
    reordered = Library([library.get("router_no_wifi"), library.get("router_no_internet")])
    chosen = select(reordered, both)
    assert chosen is not None and chosen.scene.id == "router_no_wifi"


def test_locale_negotiation() -> None:
    assert negotiate("de-AT", {"en", "de", "es"}, "en") == "de"
    assert negotiate("es_MX", {"en", "de", "es"}, "en") == "es"
    assert negotiate("fr-CA", {"en", "de"}, "en") == "en"
    assert negotiate(None, {"en"}, "en") == "en"


@pytest.mark.parametrize(("locale", "text"), [
    ("de-AT", "Drücken Sie einmal die WLAN-Taste vorne am Router und schauen Sie dann auf die WLAN-Leuchte oben."),
    ("es", "Pulse una vez el botón Wi-Fi de la parte delantera del router y luego mire la luz de Wi-Fi de arriba."),
    ("fr", "Press the Wi-Fi button on the front of the router once, then look at the Wi-Fi light on top."),
])
def test_engine_speaks_the_negotiated_locale(library: Library, catalog: Catalog, locale: str, text: str) -> None:
    (shown,) = engine_for(library, catalog, "router_no_wifi", locale).start(0)
    assert shown.text == text
    assert shown.progress.index == 1 and 0 < shown.progress.fraction < 1



def test_steps_show_resolved_typed_overlays(library: Library, catalog: Catalog) -> None:
    """Colours go out as #rrggbb, labels in the customer's language, arrows always with a direction."""
    (shown,) = engine_for(library, catalog, "router_no_internet", "de-CH").start(0)
    assert shown.overlays == (Highlight("port_wan", COLOR_HEX["amber"]), Arrow("port_wan", "in", "#ffb800"),
                              Label("port_wan", "WAN-Anschluss", "#ffb800"), Animate("port_wan", "plug", "#26d959"))
    assert shown.cause == "start" and shown.accepts_done and shown.progress == Progress(1, 2)


def test_progress_counts_the_steps_to_a_repair_not_to_giving_up(library: Library) -> None:
    from scenes.checks import distances_to_end

    scene = library.get("router_no_internet")
    happy, any_end = distances_to_end(scene.steps), distances_to_end(scene.steps, None)
    # offering a factory reset is one "call support" away from the end, but four steps from a repair
    assert any_end["offer_reset"] == 1
    assert happy["offer_reset"] == 4
    assert all(happy[sid] >= any_end[sid] for sid in scene.steps)


# -- jump_to: a person from support overrides the scene's rules -------------------------------------------


def test_jump_to_enters_any_step_and_records_it_in_the_history(library: Library, catalog: Catalog) -> None:
    engine = _at_press_wifi(library, catalog)
    (shown,) = engine.jump_to("still_off", 2, reason={"en": "Your agent moved you here."})
    assert shown.step_id == "still_off" and shown.cause == "done" and shown.reason == "Your agent moved you here."
    assert engine.step_id == "still_off" and engine.history == ("press_wifi", "still_off")
    # The hold timer of the step left does not carry over: the new step's rules start afresh.
    assert engine.handle(observe("router_ax1800", led_wifi="green"), 3) == []
    (back,) = engine.handle(UserEvent("back"), 4)
    assert back.step_id == "press_wifi"


def test_jump_to_a_terminal_step_ends_the_scene(library: Library, catalog: Catalog) -> None:
    engine = _at_press_wifi(library, catalog)
    effects = engine.jump_to("resolved", 2)
    assert [type(e) for e in effects] == [ShowStep, End] and effects[-1] == End("resolved")
    assert engine.outcome == "resolved" and engine.history[-1] == "resolved"
    with pytest.raises(IllegalEventError, match="already ended"):
        engine.jump_to("press_wifi", 3)


def test_jump_to_the_same_step_again_counts_as_a_repeat(library: Library, catalog: Catalog) -> None:
    engine = _at_press_wifi(library, catalog)
    engine.jump_to("press_wifi", 2)
    effects = engine.jump_to("press_wifi", 3)  # the third entry: the engine offers a person (rule 8)
    assert any(isinstance(e, Escalate) and e.offer for e in effects)
    assert engine.history == ("press_wifi",) * 3


def test_jump_to_an_unknown_step_or_before_start_raises_and_changes_nothing(library: Library,
                                                                            catalog: Catalog) -> None:
    engine = engine_for(library, catalog, "router_no_wifi")
    with pytest.raises(IllegalEventError, match="start"):
        engine.jump_to("still_off", 0)
    engine.start(0)
    before = engine.snapshot()
    with pytest.raises(IllegalEventError, match=r"has no step 'nowhere'; expected one of: press_wifi, still_off"):
        engine.jump_to("nowhere", 1)
    assert engine.snapshot() == before
