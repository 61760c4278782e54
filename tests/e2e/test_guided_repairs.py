"""A simulated customer repairs each shipped scene's fault, guided through the real server, with every step
verified by the real detector: frames -> detector -> part states -> scene engine -> step, no Done presses."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixlens.demo import run_guided
from tests.e2e.conftest import FRAME_SIZE, explain

FPS = 10.0  # simulated camera frames per second
SCENES = [  # product, fault, the scene the server must pick from what it sees, seed
    ("router_ax1800", "wan_unplugged", "router_no_internet", 3),
    ("router_ax1800", "wifi_off", "router_no_wifi", 3),
    # Its trigger needs the power socket on the back: the server asks the customer to turn the router first.
    ("router_ax1800", "unpowered", "router_no_power", 3),
    ("printer_lx400", "paper_jam", "printer_paper_jam", 3),
]


@pytest.mark.parametrize("product, fault, scene, seed", SCENES, ids=[s[2] for s in SCENES])
def test_customer_resolves_the_fault_and_vision_verifies_every_step(product: str, fault: str, scene: str,
                                                                    seed: int, weights: Path,
                                                                    tmp_path: Path) -> None:
    run = run_guided(f"twin:{product}?fault={fault}&seed={seed}", width=FRAME_SIZE[0], height=FRAME_SIZE[1],
                     fps=FPS, weights_dir=weights, max_seconds=90.0, data_dir=tmp_path)
    t = run.transcript
    why = explain(t)
    assert t["scene"] == scene, why  # chosen proactively from the part states the detector read
    assert t["outcome"] == "resolved", why
    assert not [e for e in t["events"] if e["kind"] == "done"], why
    left = [v for v in t["verified"] if v["verified_at"] is not None]
    assert left, why
    assert all(v["how"] == "vision" for v in left), why  # each step change came from an observation
    assert t["verified"][-1]["step_id"] == "resolved" and t["steps"][-1]["step"] == "resolved", why
    assert t["timing"]["results_timed_out"] == 0 and not t["errors"], why
    if scene == "router_no_power":  # the front shows only dark lights: the socket on the back was asked for
        codes = [(n["code"], n.get("part")) for n in t["notices"]]
        assert ("turn_device", "port_power") in codes, why
        assert codes.index(("turn_device", "port_power")) < [c for c, _ in codes].index("scene_started"), why


def test_clumsy_customer_on_an_outage_is_escalated_with_context(weights: Path, tmp_path: Path) -> None:
    """The provider's line is down: nothing on the device helps. A clumsy customer (wrong parts first, looking
    away) goes through the restart and the factory reset, and the scene hands over to an agent."""
    run = run_guided("twin:router_ax1800?fault=isp_outage&seed=5&clumsy=1", width=FRAME_SIZE[0],
                     height=FRAME_SIZE[1], fps=3.0, weights_dir=weights, max_seconds=400.0, data_dir=tmp_path)
    t = run.transcript
    why = explain(t)
    assert t["scene"] == "router_no_internet", why
    assert t["outcome"] == "escalated", why
    steps = [s["step"] for s in t["steps"]]
    assert steps[-1] == "escalate", why
    for branch in ("unplug_power", "wait_internet", "hold_reset"):  # the restart, then the reset
        assert branch in steps, why
    assert any(a["note"].startswith("clumsy") for a in t["actions"]), why
    assert not [e for e in t["events"] if e["kind"] == "done"], why
    choices = [(e["step"], e["choice"]) for e in t["events"] if e["kind"] == "choose"]
    assert choices == [("offer_reset", "reset")], why  # a decision the scene asks for, not a Done press
    handover = [e for e in t["escalations"] if not e["context"]["offer"]]
    assert handover, why  # recorded for an agent, with the steps the customer went through
    assert "hold_reset" in [h["step"] for h in handover[-1]["context"]["history"]], why
