from __future__ import annotations

import jsonschema
import pytest

from product_models.catalog import CATALOG_DIR, Catalog
from product_models.sourcemap import load_file
from scenes import LIBRARY_DIR, check_paths, check_text, library_dir, scene_files
from scenes.schema import scene_schema

pytestmark = pytest.mark.catalog

BASE = """\
id: tiny
product: router_ax1800
title: {en: Tiny, de: Winzig}
triggers:
  - part: led_wifi
    is: 'off'
    reason: {en: wifi off, de: WLAN aus}
start: press
steps:
  press:
    text: {en: Press it, de: Drücken}
    overlays:
      - {kind: animate, part: button_wifi, action: press}
    when:
      - part: led_wifi
        is: green
        hold: 1
        goto: done
  done:
    outcome: resolved
    text: {en: Done, de: Fertig}
"""

EXTRA_ORPHAN = "  orphan:\n    outcome: unresolved\n    text: {en: Lost, de: Verloren}\n"
LOOP = ("  loop:\n    text: {en: Round, de: Runde}\n    choices:\n"
        "      - {id: again, label: {en: Again, de: Nochmal}, goto: loop}\n")

# (case id, old text, new text, message fragment, scene path, marker whose position the issue must point at,
#  severity)
CASES = [
    ("unknown_product", "product: router_ax1800", "product: toaster", "unknown product 'toaster'", "product",
     "toaster", "error"),
    ("unknown_part", "part: led_wifi\n        is: green", "part: led_wlan\n        is: green",
     "unknown part 'led_wlan'", "steps.press.when[0].part", "led_wlan", "error"),
    ("unknown_state", "is: green", "is: purple", "unknown state 'purple' of part 'led_wifi'",
     "steps.press.when[0].is", "purple", "error"),
    ("unknown_goto", "goto: done", "goto: nowhere", "unknown step 'nowhere'", "steps.press.when[0].goto",
     "nowhere", "error"),
    ("unknown_start", "start: press", "start: begin", "start names unknown step 'begin'", "start", "begin", "error"),
    ("unreachable", "    text: {en: Done, de: Fertig}\n", "    text: {en: Done, de: Fertig}\n" + EXTRA_ORPHAN,
     "step 'orphan' is unreachable", "steps.orphan", "outcome: unresolved", "error"),
    ("no_terminal_path", "        goto: done\n", "        goto: done\n    choices:\n"
     "      - {id: spin, label: {en: Spin, de: Drehen}, goto: loop}\n" + LOOP,
     "step 'loop' has no path to any terminal step", "steps.loop", "text: {en: Round", "error"),
    ("duplicate_step", "  done:\n    outcome", "  press:\n    text: x\n  done:\n    outcome",
     "duplicate step id 'press'", "steps", "press:\n    text: x", "error"),
    ("missing_default_text", "text: {en: Press it, de: Drücken}", "text: {de: Drücken}",
     "missing the default locale 'en'", "steps.press.text", "{de: Drücken}", "error"),
    ("missing_translation", "text: {en: Done, de: Fertig}", "text: {en: Done}", "missing 'de' translation",
     "steps.done.text", "{en: Done}", "warning"),
    ("action_not_accepted", "action: press", "action: plug", "part 'button_wifi' does not accept action 'plug'",
     "steps.press.overlays[0].action", "plug}", "error"),
    ("unknown_action", "action: press", "action: twist", "unknown action 'twist'", "steps.press.overlays[0].action",
     "twist", "error"),
    ("unknown_overlay_kind", "kind: animate", "kind: sparkle", "unknown overlay kind 'sparkle'",
     "steps.press.overlays[0].kind", "sparkle", "error"),
    ("wrong_type_hold", "hold: 1", "hold: soon", "hold must be a number of seconds", "steps.press.when[0].hold",
     "soon", "error"),
    ("wrong_type_steps", "steps:\n  press:", "steps: []\nxsteps:\n  press:", "steps must be a non-empty map",
     "steps", "[]", "error"),
    ("unknown_field", "    text: {en: Press it", "    colour: red\n    text: {en: Press it",
     "unknown field 'colour' in step 'press'", "steps.press.colour", "red", "error"),
    ("unverified_action", "    when:\n      - part: led_wifi\n        is: green\n        hold: 1\n        goto: done\n",
     "    done_goto: done\n", "asks for a physical action (press on button_wifi) but has no 'when'",
     "steps.press.overlays[0]", "{kind: animate", "error"),
    ("terminal_action", "    outcome: resolved\n", "    outcome: resolved\n    overlays:\n"
     "      - {kind: animate, part: button_wifi, action: press}\n",
     "terminal step 'done' (outcome: resolved) cannot ask for a physical action (press on button_wifi)",
     "steps.done.overlays[0]", "{kind: animate, part: button_wifi, action: press}\n    text", "error"),
    ("terminal_with_when", "    outcome: resolved\n", "    outcome: resolved\n    done_goto: press\n",
     "terminal step 'done' (outcome: resolved) cannot have 'done_goto'", "steps.done.done_goto", "press\n  ",
     "error"),
    ("trigger_unknown_part", "  - part: led_wifi\n    is: 'off'", "  - part: led_dsl\n    is: 'off'",
     "unknown part 'led_dsl'", "triggers[0].part", "led_dsl", "error"),
    ("condition_two_heads", "      - part: led_wifi\n        is: green\n",
     "      - part: led_wifi\n        is: green\n        any: [{part: led_power, is: green}]\n",
     "exactly one of part (with is/in), all, any or not; found any, part", "steps.press.when[0]",
     "part: led_wifi\n        is: green\n        any", "error"),
    ("malformed_yaml", "title: {en: Tiny, de: Winzig}", "title: {en: Tiny, de: [Winzig}", "malformed YAML", "",
     None, "error"),
    ("not_a_scene", BASE, "- 1\n- 2\n", "not a scene", "", "- 1", "error"),
    ("empty_file", BASE, "", "not a scene", "", None, "error"),
]


def _position(text: str, marker: str) -> tuple[int, int]:
    index = text.index(marker)
    assert text.count(marker) == 1, f"marker {marker!r} must be unique"
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def test_base_scene_is_valid() -> None:
    scene, issues = check_text(BASE, "tiny.yaml")
    assert scene is not None and issues == []
    assert scene.locales == {"en", "de"}


@pytest.mark.parametrize(("old", "new", "fragment", "path", "marker", "severity"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_scene_is_reported_with_position(old: str, new: str, fragment: str, path: str, marker: str | None,
                                             severity: str) -> None:
    assert old in BASE
    text = BASE.replace(old, new, 1)
    scene, issues = check_text(text, "bad.yaml")
    hits = [i for i in issues if fragment in i.message]
    assert hits, f"no issue mentions {fragment!r}; got:\n" + "\n".join(map(str, issues))
    issue = hits[0]
    assert issue.severity == severity
    assert issue.path == path
    assert issue.file == "bad.yaml"
    if marker is not None:
        assert (issue.line, issue.col) == _position(text, marker), str(issue)
    assert str(issue).startswith(f"bad.yaml:{issue.line}:{issue.col}: {severity}: ")
    assert (scene is None) == (severity == "error")


def test_all_errors_are_collected_not_just_the_first() -> None:
    text = BASE.replace("goto: done", "goto: nowhere").replace("is: green", "is: purple").replace(
        "product: router_ax1800\n", "product: router_ax1800\ncolour: red\n")
    _, issues = check_text(text, "bad.yaml")
    messages = " | ".join(i.message for i in issues)
    for fragment in ("unknown step 'nowhere'", "unknown state 'purple'", "unknown field 'colour'"):
        assert fragment in messages


def test_unknown_product_does_not_cascade_into_part_errors() -> None:
    _, issues = check_text(BASE.replace("product: router_ax1800", "product: toaster"), "bad.yaml")
    assert [i.path for i in issues] == ["product"]


def test_duplicate_scene_ids_across_a_library(tmp_path) -> None:
    (tmp_path / "a.yaml").write_text(BASE, encoding="utf-8")
    (tmp_path / "b.yaml").write_text("# same id\n" + BASE, encoding="utf-8")
    scenes, issues = check_paths([tmp_path])
    assert [s.source for s in scenes] == [str(tmp_path / "a.yaml")]
    (issue,) = issues
    assert issue.file == str(tmp_path / "b.yaml") and issue.line == 2 and issue.path == "id"
    assert "duplicate scene id 'tiny'" in issue.message


def test_library_in_use_is_valid_without_warnings() -> None:
    """Every scene file of the library in use ($FIXLENS_SCENE_DIR, else the shipped one) loads, and all speak
    the same languages, so no customer meets a scene that falls back to English."""
    files = scene_files(library_dir())
    scenes, issues = check_paths([library_dir()])
    assert issues == []
    assert len(scenes) == len(files) > 0
    assert len({frozenset(s.locales) for s in scenes}) == 1, {s.id: s.locales for s in scenes}
    assert "en" in scenes[0].locales


def test_every_shipped_scene_loads_in_three_languages() -> None:
    scenes, issues = check_paths([LIBRARY_DIR], Catalog.load(CATALOG_DIR))
    assert issues == []
    assert len(scenes) == len(scene_files(LIBRARY_DIR)) >= 1
    assert {"router_no_internet", "printer_paper_jam"} <= {s.id for s in scenes}  # the ones the docs walk through
    for scene in scenes:
        assert scene.locales == {"en", "de", "es"}, scene.id


def test_example_events_files_are_not_scenes() -> None:
    names = [p.name for p in scene_files(LIBRARY_DIR)]
    assert names and all(not n.endswith(".events.yaml") for n in names)
    assert list((LIBRARY_DIR / "examples").glob("*.events.yaml"))


def test_library_scenes_match_the_json_schema() -> None:
    schema = scene_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    for path in scene_files(library_dir()):
        # YAML 1.2 reading (as editors do): `off` is a state name, not a boolean.
        errors = list(validator.iter_errors(load_file(path).data))
        assert errors == [], f"{path}: {errors[0].message}"


def test_schema_rejects_what_the_loader_rejects_by_shape() -> None:
    validator = jsonschema.Draft7Validator(scene_schema())
    bad = load_file(LIBRARY_DIR / "router_no_wifi.yaml").data
    bad["steps"]["press_wifi"]["colour"] = "red"
    assert list(validator.iter_errors(bad))


@pytest.mark.slow  # about 25 s on a busy 2-core machine; it builds its own scene, so the catalog run skips it
def test_scene_checks_are_linear_in_the_number_of_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 6,000-step chain took 27 s to check, on every PUT and every server start: the graph checks walked
    every step once per step. Counted, not timed: each step's targets are asked for a bounded number of times."""
    from scenes.loader import check_text
    from scenes.model import Step

    n = 6000
    lines = ["id: long_chain", "product: router_ax1800", "default_locale: en", "title: {en: Long}", "start: s0",
             "steps:"]
    for i in range(n):
        lines += [f"  s{i}:", f"    text: {{en: Step {i}}}", "    choices:",
                  f"      - {{id: next, label: {{en: Next}}, goto: {'s' + str(i + 1) if i + 1 < n else 'done'}}}"]
    lines += ["  done:", "    outcome: resolved", "    text: {en: Done}"]
    calls = 0
    targets = Step.targets

    def counted(self: Step) -> list[str]:
        nonlocal calls
        calls += 1
        return targets(self)

    monkeypatch.setattr(Step, "targets", counted)
    scene, issues = check_text("\n".join(lines) + "\n", "long_chain.yaml")
    assert scene is not None, issues[:3]
    assert len(scene.steps) == n + 1
    assert calls <= 4 * (n + 1), f"{calls} targets() calls for {n + 1} steps"
