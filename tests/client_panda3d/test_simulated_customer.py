"""The simulated customer on a twin, without rendering: what it does, when, and the clumsy slips."""

from __future__ import annotations

from ar_server.protocol import Animate, Highlight
from client_panda3d.simulated_customer import SimulatedCustomer
from product_models.camera import CameraIntrinsics
from product_models.catalog import default_catalog
from product_models.twin import Twin
from product_models.virtual_camera import HandheldCamera

PLUG_WAN = (Highlight("port_wan", "#ffb800"), Animate("port_wan", "plug", "#26d959"))


def customer(clumsy: float, seed: int = 5) -> SimulatedCustomer:
    product = default_catalog().get("router_ax1800")
    twin = Twin(product, fault="wan_unplugged", now=0.0)
    return SimulatedCustomer(twin, HandheldCamera(product, CameraIntrinsics.from_fov(320, 240), seed=seed),
                             seed=seed, clumsy=clumsy)


def test_customer_does_the_animated_action_after_a_human_delay() -> None:
    c = customer(0.0)
    c.on_step("check_wan", PLUG_WAN, 0.0)
    c.update(1.0)
    assert c.twin.states(1.0)["port_wan"] == "empty" and not c.log
    for i in range(2, 60):
        c.update(i / 10.0 + 1.0)
    assert c.twin.states(7.0)["port_wan"] == "plugged"
    assert [(a.action, a.part, a.happened) for a in c.log] == [("plug", "port_wan", True)]
    assert 2.0 <= c.log[0].at <= 4.5


def test_clumsy_slip_happens_when_due_and_never_runs_the_twin_ahead_of_the_clock() -> None:
    """Regression: the wrong-part action was done at once with a future time, so the next frame's earlier
    time made the twin raise "time went back"."""
    c = customer(1.0)
    c.on_step("check_wan", PLUG_WAN, 0.0)
    assert not c.log  # nothing happens before its time
    for i in range(1, 200):
        c.update(i / 10.0)
    notes = [a.note for a in c.log]
    assert notes[0] == "clumsy: wrong part" and c.log[0].part != "port_wan"
    assert c.log[-1].part == "port_wan" and c.log[-1].happened
    assert c.log[0].at < c.log[-1].at


def test_a_hint_to_turn_the_device_walks_the_camera_round_to_the_part_it_names() -> None:
    """Before any scene runs, the server may ask to see a part that faces away (the WAN port on the router's
    back): a person walks round until it faces the camera. Busy with a step's action, they stay put; a hint
    that names no part, or one not on this product, or that is not about where to stand, moves nobody."""
    c = customer(0.0)
    wan = c.twin.product.part("port_wan")

    def facing(t: float) -> float:  # cosine between the port's normal and the direction to the camera
        pose = c.handheld.pose_at(t)
        eye = -pose.R.T @ pose.t
        to_eye = eye - wan.anchor
        return float(wan.normal @ to_eye / (to_eye @ to_eye) ** 0.5)

    assert facing(0.5) < 0  # the walk starts in front: the port faces away
    for code, part in (("hold_steady", "port_wan"), ("turn_device", None), ("turn_device", "no_such_part")):
        c.on_notice(code, part, 1.0)
        assert c.handheld.aimed_part is None
    c.on_notice("turn_device", "port_wan", 1.0)
    assert c.handheld.aimed_part == "port_wan"
    assert facing(8.0) > 0.5
    busy = customer(0.0)
    busy.on_step("check_wan", (Highlight("led_internet", "#ffb800"), Animate("button_wifi", "press", "#26d959")),
                 0.0)
    busy.on_notice("turn_device", "port_wan", 0.5)
    assert busy.handheld.aimed_part == "button_wifi"
