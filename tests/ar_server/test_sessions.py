"""Per-session intake (newest-frame slot, rate gate) and the conversions at the session's edges."""

from __future__ import annotations

import asyncio

from ar_server.session import FrameSlot, PendingFrame, RateGate
from ar_server.session.convert import scene_observation, step_message
from product_models.catalog import default_catalog
from scenes import ChoiceView, Progress, ShowStep
from vision.types import PartState


async def test_newest_frame_replaces_an_unprocessed_one() -> None:
    slot = FrameSlot()
    assert not slot.put(PendingFrame("f1", 1.0))
    assert slot.put(PendingFrame("f2", 2.0))  # f1 was never taken: superseded
    assert (await slot.take()).frame == "f2"
    assert slot.superseded == 1
    waiter = asyncio.create_task(slot.take())
    await asyncio.sleep(0)
    assert not waiter.done()
    slot.put(PendingFrame("f3", 3.0))
    assert (await asyncio.wait_for(waiter, 1.0)).frame == "f3"


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


def test_step_message_is_zero_based_and_keeps_overlay_keys() -> None:
    show = ShowStep("plug", "Plug it in", ({"kind": "arrow", "part": "port_wan", "direction": "in"},),
                    (ChoiceView("still_red", "Still red"),), Progress(1, 3))
    step = step_message(show)
    assert step.progress is not None and (step.progress.index, step.progress.total) == (0, 3)
    assert step.overlays[0].params == {"direction": "in"} and step.choices[0].text == "Still red"
