"""Per-session intake (newest-frame slot, rate gate) and the conversions at the session's edges."""

from __future__ import annotations

from ar_server.protocol import Arrow, Frame
from ar_server.session import FrameSlot, PendingFrame, RateGate
from ar_server.session.convert import scene_observation, step_message
from product_models.catalog import default_catalog
from scenes import Arrow as ArrowView
from scenes import ChoiceView, Progress, ShowStep
from vision.types import PartState


def test_newest_frame_replaces_an_unprocessed_one() -> None:
    slot = FrameSlot()
    assert slot.take() is None
    f1, f2, f3 = (PendingFrame(Frame(seq=i, ts=float(i), jpeg=b"\xff\xd8"), float(i)) for i in (1, 2, 3))
    assert not slot.put(f1)
    assert slot.put(f2)  # f1 was never taken: superseded
    assert slot.take() == f2 and slot.take() is None
    assert slot.superseded == 1
    assert not slot.put(f3) and slot.take() == f3


def test_rate_gate_admits_max_fps_and_flags_abuse_once_per_second() -> None:
    gate = RateGate(10.0)
    admitted = sum(gate.admit(i / 100.0) for i in range(100))  # 100 frames in one second at 10 fps allowed
    assert 10 <= admitted <= 16  # the rate plus half a second of burst
    assert gate.abusive(0.99) and not gate.abusive(1.0)  # warned once...
    steady = RateGate(10.0)
    assert all(steady.admit(i / 10.0) for i in range(50)) and not steady.abusive(5.0)


def test_scene_observation_keeps_only_catalog_parts_and_states() -> None:
    catalog = default_catalog()
    parts = {"led_internet": PartState("red", 1.4, True), "led_power": PartState("purple", 0.9, True),
             "warp_core": PartState("on", 0.9, True), "port_wan": PartState(None, 0.0, False)}
    seen = scene_observation("router_ax1800", parts, catalog)
    assert seen.product == "router_ax1800"
    assert {k: (v.state, v.confidence) for k, v in seen.parts.items()} == {"led_internet": ("red", 1.0)}
    assert scene_observation("toaster", parts, catalog).product is None


def test_step_message_copies_progress_overlays_and_done_as_they_are() -> None:
    show = ShowStep("plug", "Plug it in", (ArrowView("port_wan", "in", "#ffb800"),),
                    (ChoiceView("still_red", "Still red"),), Progress(1, 3), accepts_done=True, cause="vision")
    step = step_message(show)
    assert step.progress is not None and (step.progress.index, step.progress.total) == (1, 3)
    assert step.overlays == (Arrow("port_wan", "in", "#ffb800"),) and step.choices[0].text == "Still red"
    assert step.accepts_done


def test_rate_gate_keeps_only_the_last_second_of_arrivals() -> None:
    """Regression: arrival times were trimmed only when a frame was dropped, so a client that kept to the
    rate grew the list by one entry per frame for the whole session."""
    gate = RateGate(10.0)
    assert all(gate.admit(i / 10.0) for i in range(3000))
    assert len(gate._window) <= 11
