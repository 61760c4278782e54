"""The agent hand-off in two real browser pages against a real ``fixlens serve``: the customer page (its camera
a film of the router's back panel, held in a moving hand, tests/web/fake_camera.py ``HANDOFF``) asks for help
and accepts a person; the console sees the session in its queue, takes it, shows the live picture and the part
states, points at the WAN port and writes. The customer page must draw the mark within 12 px of the port's
true projection in the video frame it shows, in every frame identified, while the hand walks round to the back
panel and while it holds it there, and show the message. Then the agent signs out.

Takes web-console.png (``make docs-images`` writes it into docs/images/).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import pytest

from product_models.camera import CameraIntrinsics
from product_models.catalog import default_catalog
from tests.web.conftest import (
    CHROMIUM,
    FixlensServer,
    chromium_args,
    console_state,
    fixlens_token,
    page_state,
    rest,
    wait_for,
    watch_errors,
)
from tests.web.fake_camera import HANDOFF, load_truth

CUSTOMER_VIEW = {"width": 960, "height": 540}
CONSOLE_VIEW = {"width": 1180, "height": 720}
THUMB = (80, 60)  # the size video frames are compared at to find which film frame the page shows
# The acceptance: every drawn mark within 12 px of the port's true projection in the picture shown. The page
# shows the picture the mark's pose was estimated on (ar_server/web/js/composite.js), so what is left is the
# pose's own error.
MAX_ERROR_PX = 12.0
# About one run in four used to put one walking sample far off (19.2 px seen in CI, its neighbours within
# 2 px). Measured for issue 14: the picture was identified exactly and the mark drawn with the very pose the
# server sent for it; the server's pose for that frame was off. All such answers were tracked frames, whose
# keypoint crop is cut where the previous answer put the product: where the walk shows the back panel
# obliquely (film frames ~113-116), the pose depended on where that crop fell. The pipeline now also runs the
# detector on a tracked frame whose pose fits worse than 90 % of detected poses and keeps the better fit
# (vision.pipeline.TRACK_RECHECK_SHARE), and no sample may exceed MAX_ERROR_PX; each run prints every sample
# with its frame and the server's `seq`, so a failure names the answer.
# Film frames, by what the hand does (tests/web/fake_camera.py HANDOFF): from 6 s it walks round from the
# lights to the back panel, turning tens of degrees a second, and from 10 s it holds the panel, shaking.
WALK = range(6 * HANDOFF.fps, 10 * HANDOFF.fps)
HELD = range(10 * HANDOFF.fps, round(HANDOFF.seconds * HANDOFF.fps))
WALK_FRAMES = 4  # distinct film frames checked while the camera walks, at least
HELD_FRAMES = 8  # ... and while it is held
MIN_SPREAD_PX = 20.0  # ... and the checked frames show the port this far apart: the camera moved between them
SAMPLING_S = 90.0  # the film loops every 24 s: the walk comes round three times (a loaded machine answers slowly)
MAX_UNMARKED_SHARE = 0.1  # frames where the port faces the camera but the mark is missing (pose not found)
# A sample is identified when its picture is this close to a film frame (mean squared luma difference, 0-255
# scale, means removed, the page's contrast fitted to the film's) and the next closest frame is at least
# MIN_MATCH_MARGIN times as far. The page shows the film's luma expanded from video to full range (x1.16, no
# other change), and the capture shrinks it with Chromium's high-quality filter, which averages as OpenCV's
# INTER_AREA does, so the own frame lies near 0.2 and the next closest several times further (each run prints
# both). Compared without the contrast fit and with the default filter, the own frame lay 50-110 away and
# neighbouring frames of a slow stretch could come closer, giving a neighbour's truth.
MAX_MATCH_DISTANCE = 2.0
MIN_MATCH_MARGIN = 3.0

CAPTURE = """() => {
  const picture = document.getElementById('picture');
  const shown = picture.hidden ? document.getElementById('camera') : picture;
  const canvas = document.createElement('canvas');
  canvas.width = 80; canvas.height = 60;
  const g = canvas.getContext('2d', { willReadFrequently: true });
  g.imageSmoothingQuality = 'high'; // averages like INTER_AREA; the default samples, and aliases
  g.drawImage(shown, 0, 0, 80, 60);
  const d = g.getImageData(0, 0, 80, 60).data;
  const luma = [];
  for (let i = 0; i < 80 * 60; i++) luma.push(0.299 * d[4 * i] + 0.587 * d[4 * i + 1] + 0.114 * d[4 * i + 2]);
  const page = window.fixlensPage;
  return { luma, point: page.pointDrawn, seq: page.shown ? page.shown.seq : null };
}"""


class Match(NamedTuple):
    """Which film frame a captured picture is, how close it came, and how close the next closest frame."""

    frame: int
    distance: float
    runner_up: float

    @property
    def sure(self) -> bool:
        return self.distance <= MAX_MATCH_DISTANCE and self.runner_up > MIN_MATCH_MARGIN * self.distance


class Sample(NamedTuple):
    """One identified picture with the agent's mark on it; `seq` is the server's answer it shows."""

    frame: int
    u: float  # the port's true projection, video pixels
    v: float
    match: float
    runner_up: float
    seq: int | None
    error: float  # drawn mark to true projection, pixels


def film_thumbnails(path: Path) -> np.ndarray:
    """(frames, 60, 80) float32: the luma of every film frame, mean removed, at the comparison size."""
    width, height = HANDOFF.width, HANDOFF.height
    frame_bytes = width * height * 3 // 2
    data = path.read_bytes()
    start = data.index(b"\n") + 1
    thumbs = []
    while start < len(data):
        assert data[start:start + 6] == b"FRAME\n", start
        y = np.frombuffer(data, np.uint8, width * height, start + 6).reshape(height, width)
        thumbs.append(cv2.resize(y, THUMB, interpolation=cv2.INTER_AREA).astype(np.float32))
        start += 6 + frame_bytes
    out = np.stack(thumbs)
    return out - out.mean(axis=(1, 2), keepdims=True)


def identify(thumbs: np.ndarray, luma: np.ndarray) -> Match:
    """The film frame whose thumbnail (``film_thumbnails``) best matches ``luma`` ((60, 80), 0-255) once the
    page's contrast is scaled to each frame's."""
    films = thumbs.reshape(len(thumbs), -1)
    picture = luma.reshape(-1).astype(np.float64) - luma.mean()
    power = float(picture @ picture)
    if power == 0.0:  # a flat picture (a black screen) matches every frame alike
        return Match(0, math.inf, math.inf)
    gains = films @ picture / power  # (frames,): the least-squares contrast factor, page to each film frame
    distance = ((films - gains[:, None] * picture) ** 2).mean(axis=1)
    best, second = np.argsort(distance)[:2]
    return Match(int(best), float(distance[best]), float(distance[second]))


def true_port(pose: tuple[list[float], list[float]]) -> tuple[float, float, bool]:
    """The WAN port's anchor in video pixels for a film pose, and whether its face looks at the camera."""
    port = default_catalog().get("router_ax1800").part("port_wan")
    rotation, translation = np.asarray(pose[0]).reshape(3, 3), np.asarray(pose[1])
    x, y, z = rotation @ np.asarray(port.anchor) + translation
    camera = CameraIntrinsics.from_fov(HANDOFF.width, HANDOFF.height)
    eye = -rotation.T @ translation
    facing = float(np.dot(port.face_frame()[2], eye - np.asarray(port.anchor))) > 0
    return camera.fx * x / z + camera.cx, camera.fy * y / z + camera.cy, facing


@pytest.mark.slow
def test_an_agent_takes_the_session_and_points_at_the_wan_port_on_the_customers_picture(
        playwright: Any, fixlens_server: FixlensServer, handoff_camera_video: Path, tmp_path: Path,
        screenshots: Path) -> None:
    link = rest(fixlens_server, "POST", "/v1/sessions", fixlens_token("customer", "handoff-customer"))
    session = link["session"]
    thumbs = film_thumbnails(handoff_camera_video)
    truth = load_truth(handoff_camera_video)
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args(handoff_camera_video))
    try:
        customer = browser.new_context(viewport=CUSTOMER_VIEW, locale="en-GB").new_page()
        watch_errors(customer)
        customer.goto(fixlens_server.url + link["url"])
        wait_for(customer, lambda s: s.get("step") == "check_wan", 90, "the first step")
        customer.click("#help")
        customer.wait_for_selector("#talk:not([hidden])", timeout=20_000)
        customer.click("#talk")
        wait_for(customer, lambda s: "agent_queued" in s.get("notices", []), 20, "the agent queue")

        console = browser.new_context(viewport=CONSOLE_VIEW, locale="en-GB").new_page()
        watch_errors(console)
        console.goto(fixlens_server.url + "/console")
        console.fill("#token", fixlens_token("agent", "Alex"))
        console.click("#signin button[type=submit]")
        console.wait_for_selector(f"#queue li[data-session='{session}'] button.take", timeout=20_000)
        console.click(f"#queue li[data-session='{session}'] button.take")
        wait_for(console, lambda s: s.get("control") and s.get("frames", 0) >= 3, 30, "the live picture",
                 console_state)
        console.wait_for_selector("#parts tr[data-part='port_wan']", timeout=30_000)
        wait_for(customer, lambda s: s.get("agent") == "Alex", 10, "the agent's arrival")
        assert "Alex" in customer.inner_text("#agent-status")

        console.select_option("#point-part", "port_wan")
        console.click("#point")
        wait_for(customer, lambda s: s.get("pointing") == "port_wan" and s.get("pointDrawn"), 20, "the mark")
        console.fill("#say-text", "The WAN port is the one I am pointing at.")
        console.click("#say button[type=submit]")
        customer.wait_for_selector(".agent-message:has-text('pointing at')", timeout=10_000)

        checked: list[Sample] = []
        unmarked: list[int] = []  # film frames where the port faced the camera and no mark was drawn
        unsure: list[Match] = []  # pictures not identified for certain, left out
        deadline = time.monotonic() + SAMPLING_S
        while time.monotonic() < deadline:
            shot = customer.evaluate(CAPTURE)
            point = shot["point"]
            match = identify(thumbs, np.asarray(shot["luma"], np.float32).reshape(THUMB[1], THUMB[0]))
            index = match.frame
            u, v, facing = true_port(truth[index])
            inside = 0 <= u < HANDOFF.width and 0 <= v < HANDOFF.height
            if not match.sure:
                unsure.append(match)
            elif facing and inside:
                if point is None:
                    unmarked.append(index)
                else:
                    checked.append(Sample(index, round(u, 1), round(v, 1), round(match.distance, 2),
                                          round(match.runner_up, 2), shot["seq"],
                                          round(math.hypot(point["u"] - u, point["v"] - v), 1)))
            frames = {s.frame for s in checked}
            # On a loaded machine the walk's frames checked so far may sit close together: sample on until
            # they are far enough apart to show that the mark followed the camera.
            if (len(frames & set(WALK)) >= WALK_FRAMES and len(frames & set(HELD)) >= HELD_FRAMES
                    and _spread(checked) >= MIN_SPREAD_PX):
                break
            customer.wait_for_timeout(100)
        console.wait_for_timeout(300)
        console.screenshot(path=str(screenshots / "web-console.png"))
        customer.screenshot(path=str(tmp_path / "customer-with-agent.png"))  # kept with the test's files
        final, console_final = page_state(customer), console_state(console)

        console.click("#signout")
        console.wait_for_selector("#signin:not([hidden])", timeout=5_000)
        signed_out = wait_for(console, lambda s: s.get("channel") == "closed", 5, "the channel to close",
                              console_state)
        stored_token = console.evaluate("sessionStorage.getItem('fixlens.agentToken')")
        desk_hidden = console.is_hidden("#desk")
        wait_for(customer, lambda s: s.get("agent") is None, 10, "the agent to leave the customer")
    finally:
        browser.close()

    errors = [s.error for s in checked]
    frames = {s.frame for s in checked}
    why = (f"samples {checked}; unmarked frames {unmarked}; not identified for certain {unsure}; page {final}; "
           f"console {console_final}")
    assert len(frames & set(WALK)) >= WALK_FRAMES and len(frames & set(HELD)) >= HELD_FRAMES, why
    assert max(errors) <= MAX_ERROR_PX, why  # every identified frame, moving or held
    assert len(unmarked) <= MAX_UNMARKED_SHARE * (len(checked) + len(unmarked)), why
    assert _spread(checked) >= MIN_SPREAD_PX, why  # the camera moved, and the mark followed it
    assert final["agentMessages"] == ["The WAN port is the one I am pointing at."], why
    assert console_final["acted"][:2] == ["point", "message"], why
    assert not customer.errors and not console.errors, (customer.errors, console.errors)
    record = rest(fixlens_server, "GET", f"/v1/sessions/{session}", fixlens_token("agent", "Alex"))
    kinds = [(a["agent"], a["kind"]) for a in record["agent_actions"]]
    assert kinds[:4] == [("Alex", "take"), ("Alex", "join"), ("Alex", "point"), ("Alex", "message")], kinds
    # Signed out: the token is gone from the tab, the channel is closed, the sign-in form is back, and the
    # server saw the agent leave.
    assert stored_token is None and desk_hidden and signed_out["state"] == "signed_out", signed_out
    assert signed_out["session"] is None and signed_out["agent"] is None, signed_out
    assert kinds[-1] == ("Alex", "leave"), kinds
    walk = [s.error for s in checked if s.frame in WALK]
    held = [s.error for s in checked if s.frame in HELD]
    print(f"\nhand-off: {len(checked)} marks on {len(frames)} film frames checked against the film's truth; error px "
          f"walking (max {max(walk)}) {walk}, held (max {max(held)}) {held}; unmarked {len(unmarked)}; spread "
          f"{_spread(checked):.1f} px; match distance max {max(s.match for s in checked)}, runner-up / match min "
          f"{min(s.runner_up / max(s.match, 1e-6) for s in checked):.1f}; not identified for certain {len(unsure)}; "
          f"the customer page is at {tmp_path / 'customer-with-agent.png'}")


def test_identify_fits_the_pages_contrast_and_refuses_a_tie() -> None:
    """Issue 14: a picture shown with more contrast than the film matched a neighbouring frame, not its own."""
    rng = np.random.default_rng(14)
    film = rng.uniform(16, 235, size=(5, THUMB[1], THUMB[0])).astype(np.float32)
    # A nearly still stretch: frame 3 is frame 2 with a little more contrast and some noise. Compared as they
    # are, without the contrast fit, the page's picture of frame 2 is closer to frame 3.
    film[3] = 1.1 * (film[2] - 125) + 125 + rng.normal(0, 5, size=film[2].shape)
    thumbs = film - film.mean(axis=(1, 2), keepdims=True)
    shown = np.clip(1.164 * (film[2] - 16), 0, 255)  # frame 2 as the page shows it: video range expanded
    match = identify(thumbs, shown)
    assert match.frame == 2 and match.distance < 0.01 and match.sure, match
    thumbs[4] = thumbs[2]  # two identical frames: either could be the one shown
    assert not identify(thumbs, shown).sure
    assert not identify(thumbs, np.full(THUMB[::-1], 40.0)).sure  # a black screen is no frame


def _spread(checked: list[Sample]) -> float:
    """The farthest apart two checked frames show the port (pixels)."""
    return max((math.hypot(a.u - b.u, a.v - b.v) for a in checked for b in checked), default=0.0)
