"""The virtual agent scene: standalone headless run, and the attached polling client."""

from __future__ import annotations

import asyncio
import json

import cv2
import numpy as np
import pytest
from aiohttp import web

from client_panda3d.agent_run import fetch_session, observed_states, run_attached, run_standalone
from client_panda3d.errors import ClientError
from client_panda3d.pose_filter import interpolate, rotation_exp, rotation_log
from product_models.camera import Pose


def test_standalone_headless_resolves_and_writes_frames(tmp_path) -> None:
    log = run_standalone("router_no_internet", None, width=240, height=150, fps=4.0, locale="de", out=tmp_path,
                         max_seconds=40.0)
    assert log.outcome == "resolved"
    assert [a["action"] for a in log.actions][:1] == ["plug"]
    pngs = sorted((tmp_path / "frames").glob("*.png"))
    assert len(pngs) == log.frames >= 10
    assert (tmp_path / "agent.mp4").stat().st_size > 1000
    first = cv2.imread(str(pngs[1]))
    assert first.shape == (150, 240, 3)
    assert json.loads((tmp_path / "transcript.json").read_text())["outcome"] == "resolved"


async def test_attached_mode_mirrors_the_polled_session(aiohttp_server, tmp_path) -> None:
    """Test double of the agent REST route: the record moves from one step to the end."""
    calls: list[str] = []

    async def session(request: web.Request) -> web.Response:
        calls.append(request.headers.get("Authorization", ""))
        if request.match_info["sid"] != "s1":
            return web.json_response({"error": "not_found"}, status=404)
        n = len(calls)
        record = {"id": "s1", "scene": "router_no_internet", "current_step": "check_wan",
                  "parts": {"port_wan": {"state": "empty", "conf": 0.9, "visible": True}}}
        if n >= 3:
            record.update(current_step="resolved", parts={"port_wan": {"state": "plugged"}}, outcome="resolved")
        return web.json_response(record)

    app = web.Application()
    app.router.add_get("/v1/sessions/{sid}", session)
    server = await aiohttp_server(app)
    base = str(server.make_url("/")).rstrip("/")
    log = await asyncio.to_thread(run_attached, None, "s1", base, "agent-token", width=160, height=100, fps=10.0,
                                  locale="en", out=tmp_path, max_seconds=10.0)
    assert log.outcome == "resolved" and [s["step"] for s in log.steps] == ["check_wan", "resolved"]
    assert calls[0] == "Bearer agent-token"
    with pytest.raises(ClientError, match="HTTP 404"):
        await asyncio.to_thread(fetch_session, base, "nope", "t")


@pytest.mark.parametrize("record, expected", [
    ({"states": {"port_wan": "plugged"}}, {"port_wan": "plugged"}),
    ({"parts": {"port_wan": {"state": "empty"}, "led_power": {"state": None}}}, {"port_wan": "empty"}),
    ({"last_observation": {"parts": {"tray_paper": {"state": "open"}}}}, {"tray_paper": "open"}),
    ({}, {}),
])
def test_observed_states_from_a_session_record(record, expected) -> None:
    assert observed_states(record) == expected


def test_rotation_log_exp_and_interpolation_round_trip() -> None:
    w = np.array([0.3, -0.2, 0.5])
    assert np.allclose(rotation_log(rotation_exp(w)), w)
    a, b = Pose.orbit(0, 20, 0.5), Pose.orbit(30, 35, 0.6)
    mid = interpolate(a, b, 1.0)
    assert np.allclose(mid.R, b.R) and np.allclose(mid.t, b.t)
