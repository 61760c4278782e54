"""Action demonstrations: an ``animate`` overlay becomes a ghost of the action in the AR view and a guide
hand in the agent scene, whether the step came over the wire (as docs/PROTOCOL.md shows it) or straight
from the scene engine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgpack
import numpy as np
import pytest

from ar_server.protocol import Animate, decode_server, encode_server
from ar_server.session.convert import step_message
from client_panda3d.agent_scene import AgentView
from client_panda3d.overlays import OverlayBuilder, rgb_of
from client_panda3d.steps import StepView
from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import Product, default_catalog
from product_models.render_engine import engine as render_engine
from scenes import Engine, load_library

pytestmark = pytest.mark.catalog  # every scene of the library in use, on its product

DOC = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"
CAMERA = CameraIntrinsics.from_fov(320, 240)


def ghosts(product: Product, step: StepView) -> list[str]:
    """Names of the demonstration nodes the AR view builds for ``step``, seen from behind the product."""
    builder = OverlayBuilder(product)
    pose = Pose.orbit(180, 25, 0.45)

    def build() -> list[str]:
        root, _ = builder.build(step.overlays, {}, 0.7, 1.0, pose, CAMERA)
        names = [node.getName() for node in root.findAllMatches("**/ghost-*")]
        root.removeNode()
        return names

    return render_engine().call(build)


def demonstrated_steps() -> list[tuple[Product, StepView, StepView]]:
    """(product, over the wire, from the engine) for every shipped step that shows an action."""
    catalog = default_catalog()
    out = []
    for scene in load_library():
        product = catalog.get(scene.product)
        base = Engine(scene, product)
        base.start(0.0)
        for sid, step in scene.steps.items():
            if not any(o.kind == "animate" for o in step.overlays):
                continue
            at = {**base.snapshot(), "step": sid, "history": [sid], "since": [None] * len(step.when)}
            show = Engine.restore(scene, product, at).view()
            wire = StepView.from_protocol(decode_server(encode_server(step_message(show))))
            out.append((product, wire, StepView.from_effect(show)))
    return out


def test_every_shipped_action_is_demonstrated_in_the_ar_view() -> None:
    steps = demonstrated_steps()
    assert {s.demonstration().action for _, s, _ in steps} >= {"plug", "unplug", "press", "hold", "open", "close",
                                                                 "insert", "remove"}
    for product, wire, local in steps:
        assert wire == local
        assert ghosts(product, wire), f"{wire.step_id}: no demonstration drawn for {wire.demonstration()}"


def test_the_documented_step_example_shows_a_demonstration() -> None:
    """A step exactly as docs/PROTOCOL.md shows it draws its action demonstration."""
    blocks = re.findall(r"^```json\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.M | re.S)
    (example,) = [m for m in map(json.loads, blocks) if m["t"] == "step"]
    step = StepView.from_protocol(decode_server(msgpack.packb(example, use_bin_type=True)))
    assert step.demonstration() == Animate("port_wan", "plug", "#26d959")
    assert ghosts(default_catalog().get("router_ax1800"), step) == ["ghost-plug"]


def test_hex_colours_become_rgb() -> None:
    assert rgb_of("#ffb800") == (1.0, 184 / 255, 0.0)


@pytest.mark.parametrize("scene_id", ["router_no_wifi", "router_no_internet"])
def test_agent_scene_demonstrates_the_first_action(scene_id: str) -> None:
    """The guide hand (and, for a plug, the ghost plug) appears: the frame differs from the same step shown
    without its action demonstration, the camera on the same part."""
    scene = next(s for s in load_library() if s.id == scene_id)
    product = default_catalog().get(scene.product)
    (show,) = Engine(scene, product).start(0.0)
    step = StepView.from_effect(show)
    animate = step.demonstration()
    assert animate is not None
    quiet = StepView(step.step_id, step.text, tuple(o for o in step.overlays if o != animate), step.choices,
                     step.progress, step.accepts_done)
    assert quiet.focus_part() == step.focus_part() == animate.part
    frames = []
    for shown in (step, quiet):
        view = AgentView(product, 240, 150)
        frames.append(view.render(product.fault_states(next(iter(product.faults))), shown, 1.0, 2.0).image)
        view.close()
    changed = np.abs(frames[0].astype(int) - frames[1].astype(int)).max(axis=2) > 30
    assert changed.sum() > 100, f"{scene_id}: the demonstration changed only {changed.sum()} pixels"
