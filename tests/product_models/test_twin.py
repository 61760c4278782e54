"""The digital twins: every product's twin section validates and starts healthy (derived from the catalog in use);
the shipped router's and printer's repairs are scripted step by step, with every declared delay."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from product_models import CATALOG_DIR, CatalogError, Product, default_catalog, load_product
from product_models.twin import Twin, TwinError, parse_twin

pytestmark = pytest.mark.catalog

ROUTER_YAML = CATALOG_DIR / "router_ax1800" / "product.yaml"  # the shipped file, whatever the catalog in use
EPS = 0.01  # "just before" a delay ends

# Repair scripts of the shipped products: (time, "act", action, part, duration) / (time, "see", {part: visible state}) /
# (time, "healthy", bool) / (time, "refused" | "no effect", action, part).
# Times are seconds; checks bracket every delay.
Step = tuple[Any, ...]
REPAIRS: dict[tuple[str, str], list[Step]] = {
    ("router_ax1800", "wan_unplugged"): [
        (0.0, "see", {"led_internet": "red", "port_wan": "empty"}),
        (1.0, "act", "plug", "port_wan", None),
        (1.0, "see", {"led_internet": "amber", "port_wan": "plugged"}),
        (1.25, "see", {"led_internet": "off"}),  # blinking at 2 Hz
        (5.0 - EPS, "healthy", False),
        (5.0, "see", {"led_internet": "green"}),
        (5.0, "healthy", True),
    ],
    ("router_ax1800", "internet_down"): [
        (1.0, "act", "unplug", "port_power", None),
        (1.0, "see", {"led_power": "off", "led_internet": "off", "led_wifi": "off", "led_lan1": "off"}),
        (3.0, "act", "plug", "port_power", None),
        (3.0, "see", {"led_power": "amber", "led_wifi": "off"}),
        (6.0 - EPS, "see", {"led_power": "off", "led_wifi": "off"}),  # still blinking: dark half
        (6.0, "see", {"led_power": "green", "led_wifi": "green", "led_lan1": "green", "led_lan2": "off",
                      "led_internet": "amber"}),
        (10.0 - EPS, "healthy", False),
        (10.0, "see", {"led_internet": "green"}),
        (10.0, "healthy", True),
    ],
    ("router_ax1800", "config_corrupt"): [
        (1.0, "act", "press", "button_power", None),  # a restart does not repair the settings
        (2.0, "act", "press", "button_power", None),
        (9.0, "see", {"led_power": "green", "led_internet": "red"}),
        (12.0, "act", "hold", "pinhole_reset", 10.0),
        (12.0, "see", {"led_power": "amber", "led_internet": "off", "led_wifi": "off", "led_lan1": "off"}),
        (14.0 - EPS, "see", {"led_power": "amber"}),
        (14.0 + 0.3, "see", {"led_power": "off"}),  # the boot blink has begun
        (17.0 - EPS, "healthy", False),
        (17.0, "see", {"led_power": "green", "led_wifi": "green"}),
        (21.0 - EPS, "healthy", False),
        (21.0, "see", {"led_internet": "green"}),
        (21.0, "healthy", True),
    ],
    ("router_ax1800", "wifi_off"): [
        (0.0, "see", {"led_wifi": "off"}),
        (1.0, "act", "press", "button_wifi", None),
        (1.0, "see", {"led_wifi": "green"}),
        (1.0, "healthy", True),
    ],
    ("router_ax1800", "unpowered"): [
        (1.0, "no effect", "press", "button_wifi"),  # nothing happens without power
        (1.0, "see", {"led_wifi": "off"}),
        (2.0, "act", "plug", "port_power", None),
        (5.0 - EPS, "see", {"led_lan1": "off"}),
        (5.0, "see", {"led_power": "green", "led_wifi": "green", "led_lan1": "green"}),
        (9.0 - EPS, "healthy", False),
        (9.0, "healthy", True),
    ],
    ("printer_lx400", "paper_jam"): [
        (1.0, "refused", "remove", "paper_jam"),
        (2.0, "act", "open", "cover_front", None),
        (2.0, "see", {"led_status": "amber", "led_jam": "amber", "cover_front": "open"}),
        (3.0, "act", "remove", "paper_jam", None),
        (3.0, "see", {"paper_jam": "clear", "led_jam": "amber", "led_status": "amber"}),
        (4.0, "act", "close", "cover_front", None),
        (4.0, "see", {"led_jam": "off", "led_status": "green"}),
        (4.25, "see", {"led_status": "off"}),
        (6.0 - EPS, "healthy", False),
        (6.0, "healthy", True),
    ],
    ("printer_lx400", "tray_empty"): [
        (1.0, "refused", "insert", "tray_media"),
        (2.0, "act", "open", "tray_paper", None),
        (3.0, "act", "insert", "tray_media", None),
        (3.0, "see", {"tray_media": "loaded", "led_status": "amber"}),
        (4.0, "act", "close", "tray_paper", None),
        (6.0 - EPS, "healthy", False),
        (6.0, "healthy", True),
    ],
    ("printer_lx400", "cover_open"): [
        (1.0, "act", "close", "cover_front", None),
        (3.0 - EPS, "healthy", False),
        (3.0, "see", {"led_status": "green", "cover_front": "closed"}),
        (3.0, "healthy", True),
    ],
}


def _run(twin: Twin, steps: list[Step]) -> None:
    for step in steps:
        t, kind = step[0], step[1]
        if kind == "act":
            result = twin.act(step[2], step[3], now=t, duration=step[4])
            assert result.happened, f"{step}: {result}"
        elif kind == "refused":
            before = twin.underlying_states(t)
            result = twin.act(step[2], step[3], now=t)
            assert result.refused and not result.happened and not result.changes
            assert twin.underlying_states(t) == before
        elif kind == "no effect":
            result = twin.act(step[2], step[3], now=t)
            assert result.rule is None and not result.changes
        elif kind == "see":
            seen = twin.states(t)
            assert {k: seen[k] for k in step[2]} == step[2], f"at t={t}"
        else:
            assert twin.is_healthy(t) is step[2], f"at t={t}: {twin.states(t)} vars={twin.vars}"


def _shipped(product_id: str) -> Product:
    """A shipped product of the catalog in use; a catalog without it skips the test about it."""
    if product_id not in default_catalog():
        pytest.skip(f"the catalog in use has no {product_id}")
    return default_catalog().get(product_id)


@pytest.mark.parametrize(("product_id", "fault"), list(REPAIRS), ids=[f"{p}-{f}" for p, f in REPAIRS])
def test_fault_is_repaired_by_natural_actions_with_declared_delays(product_id: str, fault: str) -> None:
    product = _shipped(product_id)
    twin = Twin(product, fault=fault, now=0.0)
    assert twin.states(0.0) == product.fault_states(fault)
    assert not twin.is_healthy(0.0)
    _run(twin, REPAIRS[(product_id, fault)])


def test_every_fault_of_a_scripted_product_but_isp_outage_has_a_repair_script() -> None:
    """Products of other catalogs are repaired by their scenes instead (tests/scenes/test_scenes_vs_twins.py)."""
    scripted = {p for p, _ in REPAIRS}
    listed = {(p.id, f) for p in default_catalog() if p.id in scripted for f in p.faults if f != "isp_outage"}
    assert listed == {key for key in REPAIRS if key[0] in default_catalog()}


@pytest.mark.parametrize("product_id", [p.id for p in default_catalog()])
def test_every_fault_starts_a_twin_showing_its_states(product_id: str) -> None:
    product = default_catalog().get(product_id)
    if product.twin_section is None:
        pytest.skip(f"{product_id} has no twin: section")
    for fault in product.faults:
        twin = Twin(product, fault=fault, now=0.0)
        assert twin.states(0.0) == product.fault_states(fault), fault
        assert not twin.is_healthy(0.0), f"{product_id}.{fault} looks healthy"


def test_isp_outage_survives_restart_and_factory_reset() -> None:
    twin = Twin(_shipped("router_ax1800"), fault="isp_outage")
    twin.act("unplug", "port_power", now=1.0)
    twin.act("plug", "port_power", now=2.0)
    assert twin.states(30.0)["led_internet"] == "red"
    twin.act("hold", "pinhole_reset", now=31.0, duration=12.0)
    assert twin.states(60.0)["led_internet"] == "red"
    assert twin.vars["isp"] == "down" and not twin.is_healthy(60.0)


def test_healthy_twins_start_healthy_and_stay_so() -> None:
    for product in default_catalog():
        if product.twin_section is None:
            continue
        twin = Twin.healthy(product)
        assert twin.states(0.0) == product.healthy_states()
        assert twin.is_healthy(100.0) and twin.next_timer_at() is None


def test_blink_alternates_lit_and_off_at_its_frequency() -> None:
    twin = Twin(_shipped("router_ax1800"), fault="wan_unplugged")
    twin.act("plug", "port_wan", now=1.0)
    assert twin.blinking(1.0) == {"led_internet": 2.0}
    seen = [twin.states(1.0 + k * 0.25)["led_internet"] for k in range(8)]
    assert seen == ["amber", "off"] * 4
    assert twin.underlying_states(2.9)["led_internet"] == "amber"


@pytest.mark.parametrize(("duration", "fires"), [(0.0, False), (5.0, False), (9.99, False), (10.0, True), (30.0, True)])
def test_reset_needs_a_ten_second_hold(duration: float, fires: bool) -> None:
    product = _shipped("router_ax1800")
    twin = Twin(product, fault="config_corrupt")
    result = twin.act("hold", "pinhole_reset", now=20.0, duration=duration)
    assert result.happened is fires
    if not fires:
        assert result.rule is None and result.changes == ()
        assert twin.states(60.0) == product.fault_states("config_corrupt")
        assert twin.vars["config"] == "corrupt"
    else:
        assert twin.is_healthy(60.0)


def test_unplugging_cancels_pending_timers() -> None:
    """Unplugging during a boot or a connection must not let the old 'turn green' timer fire."""
    router = _shipped("router_ax1800")
    twin = Twin(router, fault="wan_unplugged")
    twin.act("plug", "port_wan", now=1.0)
    twin.act("unplug", "port_wan", now=2.0)
    assert twin.states(10.0)["led_internet"] == "red" and twin.next_timer_at() is None
    twin = Twin(router, fault="unpowered")
    twin.act("plug", "port_power", now=1.0)
    twin.act("unplug", "port_power", now=2.0)
    assert set(twin.states(10.0).values()) <= {"off", "empty", "plugged"}
    assert twin.states(10.0)["led_power"] == "off"


def test_wifi_button_toggles_the_radio() -> None:
    twin = Twin.healthy(_shipped("router_ax1800"))
    for k, expected in enumerate(["off", "green", "off"]):
        twin.act("press", "button_wifi", now=1.0 + k)
        assert twin.states(1.0 + k)["led_wifi"] == expected
    assert twin.vars["radio"] == "off"


def test_act_reports_changes_including_due_timers_in_order() -> None:
    twin = Twin(_shipped("router_ax1800"), fault="wan_unplugged")
    twin.act("plug", "port_wan", now=1.0)
    result = twin.act("press", "button_wifi", now=6.0)
    assert [(c.at, c.name, c.new) for c in result.changes] == [(5.0, "led_internet", "green"),
                                                                (6.0, "radio", "off"), (6.0, "led_wifi", "off")]


BAD_ACTS = [
    (("press", "led_disco"), "no part 'led_disco'"),
    (("kick", "port_wan"), "unknown action 'kick' on router_ax1800.port_wan"),
    (("press", "port_wan"), "part router_ax1800.port_wan does not accept action 'press'; it accepts: plug, unplug"),
    (("open", "led_power"), "part router_ax1800.led_power does not accept action 'open'"),
    (("hold", "pinhole_reset"), "hold on router_ax1800.pinhole_reset needs duration"),
    (("hold", "pinhole_reset", -1.0), "needs duration >= 0"),
    (("plug", "port_wan", 2.0), "plug on router_ax1800.port_wan takes no duration"),
]


@pytest.mark.parametrize(("call", "message"), BAD_ACTS)
def test_bad_actions_raise_naming_part_and_action(call: tuple[Any, ...], message: str) -> None:
    twin = Twin(_shipped("router_ax1800"), fault="wan_unplugged")
    before = twin.states(0.0)
    with pytest.raises(TwinError, match=re.escape(message)):
        twin.act(call[0], call[1], now=1.0, duration=call[2] if len(call) > 2 else None)
    assert twin.states(1.0) == before


def test_unknown_fault_and_time_going_back_raise() -> None:
    router = _shipped("router_ax1800")
    with pytest.raises(TwinError, match="no fault 'gremlins'; known faults: config_corrupt"):
        Twin(router, fault="gremlins")
    twin = Twin(router, now=5.0)
    with pytest.raises(TwinError, match="time went back"):
        twin.act("press", "button_wifi", now=4.0)
    with pytest.raises(CatalogError, match="time must be a finite number"):
        twin.advance(float("nan"))


# (text to replace in the router's product.yaml, replacement, where the error must point (a substring of the
#  replacement), field path pattern, message)
BAD_SECTIONS = [
    ("set: {port_wan: plugged}\n        - emit", "set: {port_wax: plugged}\n        - emit", "plugged}",
     r"twin\.rules\[\d+\]\.then\[0\]\.set\.port_wax", "unknown part 'port_wax'"),
    ("set: {led_internet: green}", "set: {led_internet: grene}", "grene",
     r"twin\.rules\[\d+\]\.then\[0\]\.set\.led_internet", "part 'led_internet' has no state 'grene'"),
    ("on: {action: plug, part: port_wan}", "on: {action: plugg, part: port_wan}", "plugg",
     r"twin\.rules\[\d+\]\.on\.action", "unknown action 'plugg'"),
    ("on: {action: press, part: button_wifi}", "on: {action: open, part: button_wifi}", "open",
     r"twin\.rules\[\d+\]\.on\.action", "part 'button_wifi' does not accept action 'open'"),
    ("on: {action: plug, part: port_wan}", "on: {action: plug, part: port_wam}", "port_wam",
     r"twin\.rules\[\d+\]\.on\.part", "unknown part 'port_wam'"),
    ("set_var: {radio: off}", "set_var: {radioo: off}", "off}",
     r"twin\.rules\[\d+\]\.then\[0\]\.set_var\.radioo", "unknown var 'radioo'"),
    ("internet_down: {vars: {session: stuck}}", "internet_down: {vars: {session: stale}}", "stale",
     r"twin\.faults\.internet_down\.vars\.session", "var 'session' has no value 'stale'"),
    ("wifi_off: {vars: {radio: off}}", "wifi_of: {vars: {radio: off}}", "{vars: {radio: off}}",
     r"twin\.faults\.wifi_of", "unknown fault 'wifi_of'"),
    ("- emit: lan2_up", "- emit: lan3_up", "lan3_up",
     r"twin\.rules\[\d+\]\.then\[\d\]\.emit", "no rule handles event 'lan3_up'"),
    ("- {after: 4, emit: wan_result}", "- {after: 4, emit: wan_result, colour: red}", "red",
     r"twin\.rules\[\d+\]\.then\[1\]\.colour", "unknown field 'colour'"),
    ("state: amber, hz: 2}", "state: amber, hz: 0}", "0}",
     r"twin\.rules\[\d+\]\.then\[1\]\.blink\.hz", "hz must be > 0"),
    ("blink: {part: led_internet,", "blink: {part: port_wan,", "port_wan",
     r"twin\.rules\[\d+\]\.then\[0\]\.blink\.part", "part 'port_wan' has no 'off' state"),
    ("on: {action: press, part: button_wifi}", "on: {action: press, part: button_wifi, min_seconds: 2}", "2}",
     r"twin\.rules\[\d+\]\.on\.min_seconds", "min_seconds only applies to the 'hold' action"),
    ("if: {radio: on}", "if: {radar: on}", "on}",
     r"twin\.rules\[\d+\]\.if\.radar", "unknown part or var 'radar'"),
    ("if: {port_wan: plugged, session: up", "if: {port_wan: [plugged, loose], session: up", "loose",
     r"twin\.rules\[\d+\]\.if\.port_wan\[1\]", "part 'port_wan' has no state 'loose'"),
    ("{after: 3, emit: booted}", "{after: -3, emit: booted}", "-3",
     r"twin\.rules\[\d+\]\.then\[3\]\.after", "out of range"),
    ("power: {values: [on, off], initial: on}", "power: {values: [on, off], initial: dim}", "dim",
     r"twin\.vars\.power\.initial", "initial value 'dim' is not one of"),
]


@pytest.mark.parametrize(("old", "new", "points_at", "path", "message"), BAD_SECTIONS,
                         ids=[case[4].split("'")[0].strip() + "-" + str(i) for i, case in enumerate(BAD_SECTIONS)])
def test_bad_twin_section_errors_name_file_line_col_and_field(tmp_path: Path, old: str, new: str, points_at: str,
                                                             path: str, message: str) -> None:
    text = ROUTER_YAML.read_text(encoding="utf-8")
    twin_at = text.index("\ntwin:")
    assert old in text[twin_at:], old
    text = text[:twin_at] + text[twin_at:].replace(old, new, 1)
    folder = tmp_path / "router_ax1800"
    folder.mkdir()
    target = folder / "product.yaml"
    target.write_text(text, encoding="utf-8")
    product = load_product(target)  # the catalog loader leaves the twin section to the twin
    offset = text.index(new, twin_at) + new.index(points_at)
    line = text.count("\n", 0, offset) + 1
    col = offset - text.rfind("\n", 0, offset)
    with pytest.raises(TwinError) as info:
        Twin(product)
    err = info.value
    assert (err.file, err.line, err.col) == (str(target), line, col), str(err)
    assert err.path is not None and re.fullmatch(path, err.path), err.path
    assert message in str(err)
    assert str(err).startswith(f"{target}:{line}:{col}: ")


def test_product_without_twin_section_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "router_ax1800"
    folder.mkdir()
    text = ROUTER_YAML.read_text(encoding="utf-8")
    (folder / "product.yaml").write_text(text[:text.index("\ntwin:")] + "\n", encoding="utf-8")
    with pytest.raises(TwinError, match="has no 'twin:' section"):
        parse_twin(load_product(folder / "product.yaml"))


def test_twin_sections_validate() -> None:
    for product in default_catalog():
        if product.twin_section is None:
            continue
        spec = parse_twin(product)
        assert spec.rules
        for fault in spec.fault_vars:
            assert fault in product.faults



def test_events_emitting_each_other_forever_are_stopped(tmp_path: Path) -> None:
    folder = tmp_path / "router_ax1800"
    folder.mkdir()
    text = ROUTER_YAML.read_text(encoding="utf-8")
    loop = ("  rules:\n    - {name: loop_start, on: {action: press, part: pinhole_reset}, then: [{emit: ping}]}\n"
            "    - {name: ping, on: {event: ping}, then: [{emit: pong}]}\n"
            "    - {name: pong, on: {event: pong}, then: [{emit: ping}]}\n")
    (folder / "product.yaml").write_text(text.replace("  rules:\n", loop, 1), encoding="utf-8")
    twin = Twin.healthy(load_product(folder / "product.yaml"))
    with pytest.raises(TwinError, match="nests more than 16 levels; the twin rules emit events in a loop"):
        twin.act("press", "pinhole_reset", now=1.0)
