"""The server with the real vision pipeline (trained detector on ONNX Runtime) on a real port, fed frames
rendered from a digital twin: recognition, a whole vision-verified session, and bad frames.

Weights come from ``FIXLENS_WEIGHTS_DIR`` or ``vision/weights``; the tests skip when the ONNX detector is not
there. ONNX, not torch: this process renders with Panda3D, and torch must not be imported into it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ar_server.app_keys import STORE
from ar_server.config import Config
from fixlens.truth_pipeline import render_frames
from product_models.catalog import default_catalog
from product_models.twin import Twin
from tests.ar_server.conftest import PRODUCT, StreamClient, TwinFrames, stream_frames


@pytest.fixture(scope="module")
def real_pipeline() -> Any:
    folder = Path(os.environ.get("FIXLENS_WEIGHTS_DIR") or Config().weights_dir)
    if not (folder / "fixlens-pose.onnx").is_file():
        pytest.skip(f"no detector weights: {folder / 'fixlens-pose.onnx'} is missing (set FIXLENS_WEIGHTS_DIR)")
    from vision.pipeline import Pipeline

    return Pipeline(folder, backend="onnx")


@pytest.fixture(scope="module")
def views() -> TwinFrames:
    """The router before and after the WAN cable goes in, from behind on either side at 0.8 m, where the
    detector finds it, in 1280x960 frames so that a 4 mm LED on top still covers the pixels the part reader
    needs (the detector sees the same letterboxed 320 px image at any frame size)."""
    twin = Twin(default_catalog().get(PRODUCT), "wan_unplugged")
    fault = twin.states(0.0)
    twin.act("plug", "port_wan", 1.0)
    fixed = twin.states(120.0)
    rows = render_frames(PRODUCT, [fault, fixed], width=1280, height=960, yaws=(150.0, 210.0), pitch=20.0,
                         distance=0.8)
    return TwinFrames(fault=rows[0], fixed=rows[1])


@pytest.fixture(scope="module")
def whole_views() -> list[Any]:
    """The whole router from 0.8 m, three sides: the product fills about a third of the frame."""
    states = Twin(default_catalog().get(PRODUCT), "wan_unplugged").states(0.0)
    return render_frames(PRODUCT, [states], width=640, height=480, yaws=(30.0, 150.0, 210.0), pitch=20.0,
                         distance=0.8)[0]


@pytest.fixture
def pipeline(real_pipeline: Any) -> Any:
    """Replaces the truth-table double of ``conftest.py``: the ``server`` fixture now runs the real pipeline."""
    return real_pipeline


async def test_observations_name_the_product_and_carry_a_pose(server: Any, connect: Any, authority: Any,
                                                              whole_views: list[Any]) -> None:
    client: StreamClient = await connect(server)
    await client.hello(authority.mint("customer", "cust-real", 600))
    await stream_frames(client, whole_views, seconds=2.0, fps=8.0)
    obs = [m for m in client.received if m.t == "obs"]
    assert len(obs) >= 8
    posed = [o for o in obs if o.product == "router_ax1800" and o.pose is not None]
    assert len(posed) >= 0.8 * len(obs), [(o.product, o.pose is not None) for o in obs]
    assert not [o for o in obs if o.product not in (None, "router_ax1800")]
    # Detect, then track: the detector runs on the first frame and at least every REDETECT_EVERY-th one;
    # the frames between follow the pose and skip it.
    from vision.tracking import REDETECT_EVERY

    detected = [o.timing.detect_ms > 0 for o in obs]
    assert detected[0] and not all(detected)
    assert all(any(detected[i:i + REDETECT_EVERY]) for i in range(len(detected) - REDETECT_EVERY + 1))
    assert {o.seq for o in obs} <= set(range(1, client.seq + 1))


async def test_whole_session_from_hello_to_a_vision_verified_step(server: Any, connect: Any, authority: Any,
                                                                  views: TwinFrames) -> None:
    client: StreamClient = await connect(server)
    welcome = await client.hello(authority.mint("customer", "cust-real", 600))
    started = await stream_frames(client, views.fault, seconds=8, until=lambda m: m.t == "step")
    obs = [(o.product, o.pose is not None, {k: p.state for k, p in o.parts.items()})
           for o in client.received if o.t == "obs"][-3:]
    assert started is not None and started.step == "check_wan", obs
    end = await stream_frames(client, views.fixed, seconds=10, until=lambda m: m.t == "end")
    obs = [(o.product, o.pose is not None, {k: p.state for k, p in o.parts.items()})
           for o in client.received if o.t == "obs"][-3:]
    assert end is not None and end.outcome == "resolved", obs
    history = await server.app[STORE].step_history(welcome.session)
    # check_wan -> resolved, or through wait_link when the cable is read before the LED has turned green
    assert history[0].step_id == "check_wan" and (history[-1].step_id, history[-1].how) == ("resolved", None)
    assert [s.how for s in history[:-1]] == ["vision"] * (len(history) - 1), [(s.step_id, s.how) for s in history]


def _truncated(frames: TwinFrames) -> bytes:
    jpeg = frames.fault[0].jpeg
    return jpeg[: len(jpeg) * 2 // 5]  # headers intact, the scan cut off: only a full decode finds out


@pytest.mark.parametrize("make, code", [
    (lambda frames: b"not a jpeg at all", "bad_jpeg"),
    (lambda frames: b"\xff\xd8\xff\xe0" + b"\x00" * 64, "bad_jpeg"),  # a JPEG header and nothing after it
    (_truncated, "bad_jpeg"),
], ids=["not_jpeg", "header_only", "truncated_scan"])
async def test_bad_frames_get_errors_and_the_session_goes_on(server: Any, connect: Any, authority: Any,
                                                             views: TwinFrames, make: Any,
                                                             code: str) -> None:
    client: StreamClient = await connect(server)
    await client.hello(authority.mint("customer", "cust-real", 600))
    seq = await client.frame(make(views))
    error = await client.expect("error", timeout=10)
    assert error.code == code and not error.fatal and error.seq in (None, seq), error
    good = await client.frame(views.fault[1].jpeg)
    obs = await client.expect("obs", timeout=10, seq=good)
    assert obs.product in (None, "router_ax1800")
