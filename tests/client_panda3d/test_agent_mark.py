"""An agent's pointing in the Panda3D client: a wider blue ring on the part, anchored with the live pose like
a step's highlight, following the hand-held camera, and gone when the agent stops pointing."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ar_server.protocol import Agent, Highlight
from client_panda3d.app import ClientApp
from client_panda3d.ar_view import ARView
from client_panda3d.overlays import AgentMark
from client_panda3d.steps import Status, StepView
from product_models.camera import CameraIntrinsics
from product_models.catalog import default_catalog
from product_models.render import Renderer
from product_models.twin import Twin
from product_models.virtual_camera import HandheldCamera, VirtualCamera

TOLERANCE_PX = 12.0


def test_the_agent_mark_sits_on_the_part_and_follows_the_camera() -> None:
    product = default_catalog().get("router_ax1800")
    camera = CameraIntrinsics.from_fov(320, 240)
    renderer = Renderer(320, 240)
    vcam = VirtualCamera(Twin(product, fault="wan_unplugged", now=0.0),
                         HandheldCamera(product, camera, seed=5, look_at="port_wan"), renderer)
    view = ARView(product, camera)
    step = StepView("s", "Plug the cable into the WAN port.", (Highlight("port_wan", "#ffb800"),))
    marked = step.with_mark(AgentMark("port_wan", "#3fa9f5", "alex"))
    drawn, truths = [], []
    try:
        for i in range(8):
            image, truth = vcam.capture(i * 0.25)
            shot = view.compose(image, truth.pose, truth.states, marked, Status("connected", True), now=i * 0.25,
                                panel=False)
            assert truth.parts["port_wan"].visible
            uv = np.asarray(shot.anchors_uv["agent:port_wan"])
            drawn.append(uv)
            truths.append(np.asarray(truth.parts["port_wan"].center_uv))
            assert np.linalg.norm(uv - truths[-1]) <= TOLERANCE_PX, (i, uv, truths[-1])
        img = shot.image.astype(int)
        blue = (img[:, :, 2] > 180) & (img[:, :, 0] < 140) & (img[:, :, 1] > 120)
        ys, xs = np.nonzero(blue)
        near = np.hypot(xs - drawn[-1][0], ys - drawn[-1][1]) < 40
        assert near.sum() > 10, near.sum()  # the ring is there, in blue, around the port
        plain = view.compose(image, truth.pose, truth.states, step, Status("connected", True), now=2.0, panel=False)
        assert "agent:port_wan" not in plain.anchors_uv
    finally:
        view.close()
        renderer.close()
    moved = max(np.linalg.norm(a - b) for a in truths for b in truths)
    assert moved > 3.0  # the camera moved, and the mark with it


def test_agent_messages_set_the_mark_and_the_notice_line() -> None:
    """The client's handling of ``agent`` messages, without a server or a window."""
    app = SimpleNamespace(agent_mark=None, locale="en", status=SimpleNamespace(notice=""),
                          transcript=SimpleNamespace(notices=[]))
    ClientApp._agent(app, Agent("joined", "Alex"), 1.0)  # type: ignore[arg-type]
    assert app.status.notice == "Alex from support joined"
    ClientApp._agent(app, Agent("point", "Alex", part="port_wan", color="#3fa9f5"), 2.0)  # type: ignore[arg-type]
    assert app.agent_mark == AgentMark("port_wan", "#3fa9f5", "Alex")
    ClientApp._agent(app, Agent("message", "Alex", text="Blue one."), 3.0)  # type: ignore[arg-type]
    assert app.status.notice == "Alex: Blue one."
    ClientApp._agent(app, Agent("point", "Alex"), 4.0)  # type: ignore[arg-type]
    assert app.agent_mark is None
    assert [n["code"] for n in app.transcript.notices] == ["agent_joined", "agent_point", "agent_message",
                                                           "agent_point"]
