"""``fixlens scenes ...`` end to end, on the catalog and scene library in use ($FIXLENS_CATALOG_DIR,
$FIXLENS_SCENE_DIR); the simulate and graph cases about one scene use the shipped router's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fixlens.cli import main
from product_models.catalog import default_catalog
from scenes import LIBRARY_DIR, library_dir, load_library, scene_files

pytestmark = pytest.mark.catalog

EXAMPLES = LIBRARY_DIR / "examples"


def test_validate_library_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenes", "validate", str(library_dir())]) == 0
    assert f"{len(scene_files(library_dir()))} scene(s) valid, 0 error(s), 0 warning(s)" in capsys.readouterr().err


def test_validate_points_at_a_dangling_goto(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (LIBRARY_DIR / "router_no_internet.yaml").read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines, 1) if line.strip() == "goto: wait_link")
    lines[number - 1] = lines[number - 1].replace("goto: wait_link", "goto: wait_lnik")
    bad = tmp_path / "router_no_internet.yaml"
    bad.write_text("".join(lines), encoding="utf-8")
    assert main(["scenes", "validate", str(bad)]) == 1
    out = capsys.readouterr().out
    col = lines[number - 1].index("wait_lnik") + 1
    assert f"{bad}:{number}:{col}: error: goto names unknown step 'wait_lnik'" in out
    assert "(at steps.check_wan.when[1].goto)" in out


def test_validate_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text("id: x\nproduct: toaster\ntitle: X\nstart: a\nsteps:\n  a: {text: A, outcome: resolved}\n",
                   encoding="utf-8")
    assert main(["scenes", "validate", "--json", str(bad), str(tmp_path / "missing.yaml")]) == 1
    issues = json.loads(capsys.readouterr().out)
    assert issues[0] == {"file": str(bad), "line": 2, "col": 10, "path": "product", "severity": "error",
                         "message": "unknown product 'toaster'; known products: "
                                    + ", ".join(sorted(default_catalog().products))}
    assert issues[1]["file"].endswith("missing.yaml") and "no such file" in issues[1]["message"]


def test_validate_prints_warnings_but_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = (LIBRARY_DIR / "router_no_wifi.yaml").read_text(encoding="utf-8")
    (tmp_path / "w.yaml").write_text(src.replace("  es: Sin Wi-Fi\n", ""), encoding="utf-8")
    assert main(["scenes", "validate", str(tmp_path)]) == 0
    assert "warning: missing 'es' translation" in capsys.readouterr().out


@pytest.mark.parametrize(("events", "outcome"), [
    ("router_no_internet.resolved.events.yaml", "end: resolved"),
    ("router_no_internet.escalate.events.yaml", "end: escalate"),
])
def test_simulate_reaches_the_outcome(events: str, outcome: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenes", "simulate", "router_no_internet", "--events", str(EXAMPLES / events)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("scene router_no_internet (router_ax1800), locale en")
    assert outcome in out


def test_simulate_escalate_path_takes_every_fix_attempt(capsys: pytest.CaptureFixture[str]) -> None:
    events = EXAMPLES / "router_no_internet.escalate.events.yaml"
    assert main(["scenes", "simulate", str(LIBRARY_DIR / "router_no_internet.yaml"), "--events", str(events),
                 "--locale", "de-AT"]) == 0
    out = capsys.readouterr().out
    order = ["step unplug_power", "step wait_off", "step plug_power", "step wait_internet", "step offer_reset",
             "step hold_reset", "step wait_reset_internet", "notice wrong_product", "end: escalate"]
    for marker in order:
        assert marker in out
    assert out.index("step unplug_power") < out.index("step hold_reset") < out.index("end: escalate")
    assert "Ein Support-Mitarbeiter übernimmt ab hier." in out


def test_simulate_reports_bad_events_with_position(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "bad.events.yaml"
    events.write_text("- {at: 0, observe: {led_power: green}}\n- {at: 1, observe: {led_dsl: red}}\n"
                      "- {at: 0.5, user: choose}\n", encoding="utf-8")
    assert main(["scenes", "simulate", "router_no_internet", "--events", str(events)]) == 1
    err = capsys.readouterr().err
    assert f"{events}:2:30: error: unknown part 'led_dsl'" in err  # points at the value
    assert f"{events}:3:8: error: events must be in time order" in err
    assert "'choose' needs 'choice: <id>'" in err


def test_simulate_unknown_scene(capsys: pytest.CaptureFixture[str]) -> None:
    events = EXAMPLES / "router_no_internet.resolved.events.yaml"
    assert main(["scenes", "simulate", "router_no_nothing", "--events", str(events)]) == 1
    assert "unknown scene 'router_no_nothing'" in capsys.readouterr().err


def test_graph_writes_dot(tmp_path: Path) -> None:
    out = tmp_path / "g.dot"
    assert main(["scenes", "graph", "router_no_internet", "-o", str(out)]) == 0
    dot = out.read_text(encoding="utf-8")
    assert dot.startswith('digraph "router_no_internet" {')
    assert '"check_wan" -> "wait_link" [label="port_wan=plugged (hold 1.5s)"];' in dot
    assert '"offer_reset" -> "hold_reset" [label="choice: Reset the router", style=bold];' in dot


@pytest.mark.parametrize("scene_id", [scene.id for scene in load_library()])
def test_graph_of_every_library_scene(tmp_path: Path, scene_id: str) -> None:
    out = tmp_path / "g.dot"
    assert main(["scenes", "graph", scene_id, "-o", str(out)]) == 0
    dot = out.read_text(encoding="utf-8")
    scene = load_library().get(scene_id)
    assert dot.startswith(f'digraph "{scene_id}" {{')
    for step in scene.steps:
        assert f'"{step}"' in dot


def test_graph_svg_needs_graphviz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g.svg"
    code = main(["scenes", "graph", "router_no_wifi", "-o", str(out)])
    if shutil.which("dot") is None:
        assert code == 1 and "needs Graphviz's 'dot' program" in capsys.readouterr().err
    else:
        assert code == 0 and out.read_text(encoding="utf-8").lstrip().startswith("<")


def test_schema_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenes", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"].startswith("http://json-schema.org/draft-07")
    assert set(schema["required"]) == {"id", "product", "title", "start", "steps"}


@pytest.mark.parametrize("command", [[], ["validate"], ["simulate"], ["graph"], ["schema"]])
def test_every_subcommand_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["scenes", *command, "--help"])
    assert exited.value.code == 0
    assert "usage: fixlens scenes" in capsys.readouterr().out
