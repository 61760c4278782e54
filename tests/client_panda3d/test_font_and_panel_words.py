"""The client's bundled UI font (DejaVu Sans in ``client_panda3d/fonts/``, shipped in the wheel), the closing
banner in the session's language, and Done only on a step whose scene gives it a ``done_goto``."""

from __future__ import annotations

import importlib.resources
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ar_server.protocol import End
from client_panda3d import geometry as g
from client_panda3d.app import ClientApp
from client_panda3d.ar_view import ARView
from client_panda3d.errors import ClientError
from client_panda3d.panel import banner_text
from client_panda3d.steps import Status, StepView
from product_models.camera import CameraIntrinsics
from product_models.catalog import default_catalog
from product_models.render_engine import engine
from scenes import Engine, ShowStep, load_library

REPO = Path(__file__).resolve().parents[2]
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "LICENSE")
# German and Spanish steps, plus Greek and Cyrillic: Panda3D's built-in font has none of the last two.
NEEDED = "äöüßñéÄÖÜ¿¡ΩЖ"


def test_the_font_and_its_licence_are_package_data() -> None:
    fonts = importlib.resources.files("client_panda3d") / "fonts"
    for name in FONT_FILES:
        assert (fonts / name).is_file(), name
    licence = (fonts / "LICENSE").read_text(encoding="utf-8")
    assert "Bitstream Vera Fonts Copyright" in licence and "Arev Fonts Copyright" in licence
    assert g.font_path() == Path(str(fonts / "DejaVuSans.ttf")).resolve()
    assert g.font_path(bold=True).name == "DejaVuSans-Bold.ttf"


def test_the_client_extra_needs_no_matplotlib() -> None:
    """The font used to come from matplotlib's data folder; the client must not need it any more."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert not [d for d in extras["client"] if d.startswith("matplotlib")]
    users = [p.name for p in (REPO / "client_panda3d").glob("*.py")
             if re.search(r"^\s*(import|from)\s+matplotlib", p.read_text(encoding="utf-8"), re.M)]
    assert users == []


def test_panda3d_loads_the_font_with_the_glyphs_the_steps_need() -> None:
    from panda3d.core import TextNode

    def glyphs() -> dict[str, dict[str, bool]]:
        out: dict[str, dict[str, bool]] = {}
        for name, font in (("regular", g.ui_font()), ("bold", g.ui_font(bold=True)),
                           ("built-in", TextNode.getDefaultFont())):
            node = TextNode(name)
            node.setFont(font)
            out[name] = {c: node.hasExactCharacter(c) for c in NEEDED + "中"}
        return out

    found = engine().call(glyphs)
    for name in ("regular", "bold"):
        assert [c for c in NEEDED if not found[name][c]] == [], name
        assert not found[name]["中"], name  # a control: DejaVu Sans has no CJK, so the check can fail
    assert not found["built-in"]["Ж"]  # why the client bundles a font


def test_a_missing_font_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(g, "FONT_DIR", tmp_path)
    with pytest.raises(ClientError, match=r"UI font .*DejaVuSans\.ttf is missing.*reinstall fixlens\[client\]"):
        g.font_path()


@pytest.mark.slow
def test_the_wheel_carries_the_font(tmp_path: Path) -> None:
    """A wheel built from this pyproject.toml with the client package only (8 s here, not the whole tree)."""
    source = tmp_path / "source"
    shutil.copytree(REPO / "client_panda3d", source / "client_panda3d",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                          "--wheel-dir", str(tmp_path / "wheels"), str(source)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = (tmp_path / "wheels").glob("fixlens-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"client_panda3d/fonts/{name}" for name in FONT_FILES} <= names


# -- the closing banner --------------------------------------------------------------------------------


def _ended(outcome: str, text: str | None) -> SimpleNamespace:
    """The client's state after an ``end`` message, through ``ClientApp._handle`` (no server, no window)."""
    app = SimpleNamespace(agent_mark=None, status=Status("closed", True), transcript=SimpleNamespace(outcome=None),
                          _ended_at=None, _keyframe_due=None, _key_frame=lambda label, at: None)
    ClientApp._handle(app, End(outcome, text), 5.0)  # type: ignore[arg-type]
    return app


@pytest.mark.parametrize("locale, outcome, title", [
    ("es", "escalated", "Un agente de soporte continúa"),
    ("de-AT", "escalated", "Ein Support-Mitarbeiter übernimmt"),
    ("en", "escalated", "A support agent takes over"),
    ("es", "resolved", "¡Arreglado!"),
    ("de", "timeout", "Die Sitzung ist beendet"),
    ("es", "from_a_newer_server", "La sesión ha terminado"),
    ("fr", "resolved", "Fixed!"),
])
def test_the_end_banner_is_in_the_session_language(locale: str, outcome: str, title: str) -> None:
    """Regression: the scene's end arrives without text, and the banner said the wire ident ("escalated")."""
    app = _ended(outcome, None)
    assert app.transcript.outcome == outcome
    assert banner_text(app.status, locale) == title


def test_the_end_banner_is_drawn_with_the_closing_text_under_it() -> None:
    app = _ended("escalated", "Le llamaremos en unos minutos.")
    view = ARView(None, CameraIntrinsics.from_fov(320, 240), locale="es")
    try:
        shot = view.compose(np.zeros((240, 320, 3), np.uint8), None, {}, None, app.status, now=5.0)
    finally:
        view.close()
    assert shot.layout is not None
    assert shot.layout.banner == "Un agente de soporte continúa\nLe llamaremos en unos minutos."
    top = shot.image[:80].astype(int)
    plate = (top[:, :, 0] > 200) & (top[:, :, 1] > 150) & (top[:, :, 2] < 80)  # the amber plate (RGB)
    assert plate.sum() > 2000, plate.sum()


# -- Done ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scene_id, step_id, done", [
    ("router_no_internet", "offer_reset", False),  # choices only: Done would have started a factory reset
    ("router_no_internet", "check_wan", True),  # done_goto
    ("router_no_internet", "wait_internet", False),  # moves on by vision alone
])
def test_the_panel_shows_done_only_where_the_scene_has_a_done_goto(scene_id: str, step_id: str,
                                                                   done: bool) -> None:
    """Regression: a choice step without done_goto showed Done beside its choices (Done took the first)."""
    scene = load_library().get(scene_id)
    run = Engine(scene, default_catalog().get(scene.product), "de")
    run.start(0.0)
    (show,) = [e for e in run.jump_to(step_id, 1.0) if isinstance(e, ShowStep)]
    view = ARView(None, CameraIntrinsics.from_fov(640, 480), locale="de")
    try:
        shot = view.compose(np.zeros((480, 640, 3), np.uint8), None, {}, StepView.from_effect(show),
                            Status("connected", True), now=1.0)
    finally:
        view.close()
    actions = {b.action for b in shot.buttons}
    assert ("done" in actions) is done, actions
    assert {f"choose:{c.id}" for c in scene.steps[step_id].choices} <= actions


@pytest.mark.parametrize("accepts_done, sent", [(True, [("done", None)]), (False, [])])
def test_enter_sends_done_only_where_the_step_has_a_done_button(accepts_done: bool, sent: list) -> None:
    """Enter is the keyboard's Done: on a step without the button the server would only refuse it."""
    from client_panda3d.app import InputState

    events: list = []
    step = StepView("offer_reset", "text", accepts_done=accepts_done)
    app = SimpleNamespace(input=InputState(), shot=None, step=step,
                          _event=lambda now, kind, choice=None: events.append((kind, choice)))
    app.input.on_key(13)
    assert ClientApp._handle_input(app, 1.0) is None  # type: ignore[arg-type]
    assert events == sent
