"""The customer page against a scripted stream, in real headless Chromium with its fake camera: hello,
frame pacing, the step panel's events, overlays on the pose, notices, consent, resume and the end.

Each message the page sends is decoded by the server's own decoder, so the page speaks the protocol exactly.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest

from ar_server.protocol import (
    Agent,
    Animate,
    Arrow,
    Choice,
    End,
    Error,
    Event,
    Hello,
    Highlight,
    Label,
    Notice,
    Obs,
    PartObs,
    PoseData,
    Progress,
    Step,
    Timing,
)
from product_models.camera import DEFAULT_HFOV_DEG, CameraIntrinsics, Pose
from product_models.catalog import default_catalog
from tests.web.conftest import ServerThread, mint, watch_errors
from tests.web.fake_stream import Connection, FakeStream

VIEWPORT = {"width": 900, "height": 420}
AMBER = "#ffcc00"
CHECK_WAN = Step("check_wan", "Plug the internet cable into the WAN port.",
                 overlays=(Highlight("port_wan", AMBER), Arrow("port_wan", "in", AMBER),
                           Label("port_wan", "WAN port", AMBER), Animate("port_wan", "plug", AMBER)),
                 choices=(Choice("still_red", "It is still red"),), progress=Progress(2, 5), accepts_done=True)
# The camera behind the router, looking down at its back panel: the WAN port faces it.
BEHIND = Pose.look_at((0.03, 0.42, 0.22), (0.03, 0.0, 0.02))


@pytest.fixture
def page(browser: Any, page_server: ServerThread) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT, locale="de-CH")
    page = context.new_page()
    watch_errors(page)
    yield page
    context.close()
    assert not page.errors, page.errors


def open_page(page: Any, server: ServerThread, token: str) -> FakeStream:
    """Open the page from a support link; the link exchange answers with ``token`` (this server has no store)."""
    stream = FakeStream(page)
    link = "page-stream-link-0123456789"

    def exchange(route: Any) -> None:
        assert json.loads(route.request.post_data or "{}") == {"link": link}
        route.fulfill(status=200, content_type="application/json",
                      body=json.dumps({"session": "s1", "token": token, "customer": "c", "expires_at": 0}))

    page.route("**/v1/links/exchange", exchange)
    page.goto(f"{server.url}/#link={link}")
    return stream


def obs_for(frame_seq: int, ts: float, pose: Pose | None) -> Obs:
    wire = None if pose is None else PoseData(tuple(float(v) for v in pose.R.reshape(9)),
                                              tuple(float(v) for v in pose.t))  # type: ignore[arg-type]
    return Obs(frame_seq, ts, "router_ax1800", 0.95, wire,
               {"port_wan": PartObs("empty", 0.9, True), "led_internet": PartObs("red", 0.9, True)}, Timing())


def answer_frames(page: Any, connection: Connection, pose: Pose | None, seconds: float) -> int:
    """Answer each new frame with an obs carrying ``pose`` for ``seconds``; returns how many were answered."""
    answered = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frames = connection.frames
        if len(frames) > answered:
            newest = frames[-1]
            connection.send(obs_for(newest.seq, newest.ts, pose))
            answered = len(frames)
        page.wait_for_timeout(30)
    return answered


def test_hello_names_the_client_locale_camera_and_token(page: Any, page_server: ServerThread) -> None:
    token = mint("customer", "cust-1")
    stream = open_page(page, page_server, token)
    connection = stream.wait_connection(0)
    hello = connection.hello
    assert isinstance(hello, Hello)
    assert (hello.token, hello.client, hello.locale, hello.resume) == (token, "web", "de-CH", None)
    assert not hello.consent_store_frames
    expected = CameraIntrinsics.from_fov(640, 480, DEFAULT_HFOV_DEG)  # the server's own default
    camera = hello.camera
    assert camera is not None and (camera.width, camera.height) == (640, 480)
    assert math.isclose(camera.fx, expected.fx, rel_tol=1e-9) and math.isclose(camera.fy, expected.fy, rel_tol=1e-9)
    assert (camera.cx, camera.cy) == (expected.cx, expected.cy)
    assert page.url == f"{page_server.url}/", "the token must leave the address bar"
    assert page.evaluate("sessionStorage.getItem('fixlens.token')") == token


def test_at_most_two_frames_wait_for_an_answer_and_the_newest_goes_next(page: Any, page_server: ServerThread) -> None:
    stream = open_page(page, page_server, mint("customer", "cust-2"))
    connection = stream.wait_connection(0)
    connection.welcome("resume-1")
    stream.wait(lambda: len(connection.frames) >= 2, what="two frames")
    page.wait_for_timeout(1200)  # unanswered: nothing more may go out (the loss timeout is 2 s)
    assert len(connection.frames) == 2
    first, second = connection.frames
    assert (first.width, first.height) == (640, 480) and second.seq > first.seq and second.ts > first.ts
    connection.send(obs_for(second.seq, second.ts, None))  # answers both (the server dropped the older)
    stream.wait(lambda: len(connection.frames) >= 4, what="frames after an answer")
    answered = answer_frames(page, connection, None, 2.0)
    seqs = [f.seq for f in connection.frames]
    assert seqs == sorted(set(seqs)) and answered >= 10, (seqs, answered)  # the rate follows the answers
    stats = page.evaluate("window.fixlensPage.stats")
    assert stats["maxInFlight"] <= 2, stats


def test_step_panel_shows_the_step_and_sends_its_events(page: Any, page_server: ServerThread) -> None:
    stream = open_page(page, page_server, mint("customer", "cust-3"))
    connection = stream.wait_connection(0)
    connection.welcome("resume-1")
    connection.send(CHECK_WAN)
    page.wait_for_selector("#step-text:has-text('WAN port')")
    assert page.inner_text("#progress-text") == "Schritt 2 von 5"  # the page's words follow the locale
    assert page.get_attribute("#progress", "value") == "2"
    for selector in ("#done", "#back", "#help", "button.choice[data-choice='still_red']"):
        page.click(selector)
    stream.wait(lambda: len([m for m in connection.received if isinstance(m, Event)]) == 4, what="four events")
    events = [(m.kind, m.step, m.choice) for m in connection.received if isinstance(m, Event)]
    assert events == [("done", "check_wan", None), ("back", "check_wan", None), ("help", "check_wan", None),
                      ("choose", "check_wan", "still_red")]
    connection.send(Step("wait_link", "Wait.", progress=Progress(1, 3)))
    page.wait_for_selector("#step-text:has-text('Wait.')")
    assert page.is_hidden("#done") and page.is_hidden("#back")  # no Done unless the step takes it; no Back at 1


def project(pose: Pose, point: np.ndarray) -> tuple[float, float]:
    """Video pixel of product point ``point`` (3,) metres, with the intrinsics the page announces."""
    camera = CameraIntrinsics.from_fov(640, 480)
    x, y, z = pose.transform(np.asarray(point, float)[None, :])[0]
    return camera.fx * x / z + camera.cx, camera.fy * y / z + camera.cy


def stage_point(page: Any, u: float, v: float) -> tuple[float, float]:
    """Page coordinates of video pixel (u, v): the video is drawn with object-fit: contain."""
    box = page.evaluate("(() => { const r = document.getElementById('stage').getBoundingClientRect();"
                        " return [r.left, r.top, r.width, r.height]; })()")
    left, top, width, height = box
    scale = min(width / 640, height / 480)
    return (left + (width - 640 * scale) / 2 + (u + 0.5) * scale,
            top + (height - 480 * scale) / 2 + (v + 0.5) * scale)


def test_overlays_sit_on_the_part_with_the_pose_and_fade_without_one(page: Any, page_server: ServerThread) -> None:
    stream = open_page(page, page_server, mint("customer", "cust-4"))
    connection = stream.wait_connection(0)
    connection.welcome("resume-1")
    connection.send(CHECK_WAN)
    answer_frames(page, connection, BEHIND, 2.5)
    page.wait_for_selector(".label:not([hidden]):has-text('WAN port')")

    port = default_catalog().get("router_ax1800").part("port_wan")
    _, up, normal = port.face_frame()
    anchor = np.asarray(port.anchor)
    radius = max(0.007, 0.5 * max(port.size_mm) / 1000 + 0.004)  # client_panda3d/overlays.py part_frame
    x, y = stage_point(page, *project(BEHIND, anchor))
    shot = page.screenshot(clip={"x": x - 20, "y": y - 20, "width": 40, "height": 40})
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(shot, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(int)
    amber = (rgb[..., 0] > 200) & (rgb[..., 1] > 140) & (rgb[..., 2] < 120)
    assert amber.sum() >= 30, f"no amber ring around the WAN port at ({x:.0f}, {y:.0f}): {amber.sum()} px"
    label_x, label_y = stage_point(page, *project(BEHIND, anchor + up * (radius + 0.012) + normal * 0.006))
    label = page.eval_on_selector(".label:not([hidden])", "e => e.getBoundingClientRect().toJSON()")
    assert abs(label["x"] + label["width"] / 2 - label_x) < 2 and abs(label["bottom"] - label_y) < 2, \
        (label, label_x, label_y)

    page.wait_for_timeout(1800)  # no pose for longer than the 1 s hold plus the 0.5 s fade
    assert page.locator(".label:not([hidden])").count() == 0


def test_a_part_on_the_far_side_is_named_with_turn_the_device(page: Any, page_server: ServerThread) -> None:
    stream = open_page(page, page_server, mint("customer", "cust-5"))
    connection = stream.wait_connection(0)
    connection.welcome("resume-1")
    connection.send(CHECK_WAN)
    answer_frames(page, connection, Pose.look_at((0.0, -0.42, 0.22), (0.0, 0.0, 0.02)), 2.5)
    page.wait_for_selector(".label-behind:not([hidden])")
    assert "Rückseite" in page.inner_text(".label-behind:not([hidden])")  # "... auf der Rückseite, Gerät drehen"
    assert page.locator(".label:not(.label-behind):not([hidden])").count() == 0


def test_notices_show_and_view_hints_show_on_the_picture(page: Any, page_server: ServerThread) -> None:
    stream = open_page(page, page_server, mint("customer", "cust-6"))
    connection = stream.wait_connection(0)
    connection.welcome("resume-1")
    connection.send(Notice("scene_started", "Kein Internet: die Internet-Leuchte ist rot"))
    connection.send(Notice("move_closer", "Gehen Sie näher an den WAN-Anschluss."))
    connection.send(Notice("stale_step", "that was for step a"))
    page.wait_for_selector(".notice:has-text('Kein Internet')")
    page.wait_for_selector("#hint:has-text('näher')")
    assert page.locator(".notice").count() == 1


def test_resume_token_survives_a_drop_and_a_reload_and_stays_out_of_the_url(page: Any,
                                                                          page_server: ServerThread) -> None:
    token = mint("customer", "cust-7")
    stream = open_page(page, page_server, token)
    first = stream.wait_connection(0)
    first.welcome("resume-A")
    first.send(CHECK_WAN)
    page.wait_for_selector("#step-text:has-text('WAN port')")
    first.close(1006)
    second = stream.wait_connection(1, timeout_s=8)
    assert second.hello.resume == "resume-A" and second.hello.token == token
    second.welcome("resume-B")  # the server rotates the token: the newest one counts
    page.reload()
    third = stream.wait_connection(2)
    assert third.hello.resume == "resume-B" and third.hello.token == token
    assert "resume" not in page.url and token not in page.url
    urls = []
    page.on("request", lambda request: urls.append(request.url))
    page.reload()
    stream.wait_connection(3)
    assert urls and not [u for u in urls if token in u or "resume-B" in u]


def test_consent_is_asked_when_the_server_stores_frames_and_given_in_a_new_hello(page: Any,
                                                                                page_server: ServerThread) -> None:
    stream = open_page(page, page_server, mint("customer", "cust-8"))
    first = stream.wait_connection(0)
    assert not first.hello.consent_store_frames
    first.welcome("resume-A", store_frames=True)
    page.wait_for_selector("#consent[open]")
    page.click("#consent-yes")
    second = stream.wait_connection(1)
    assert second.hello.consent_store_frames and second.hello.resume == "resume-A"
    second.welcome("resume-B", store_frames=True)
    page.wait_for_timeout(300)
    assert page.locator("#consent[open]").count() == 0  # asked once per session


def test_no_consent_prompt_when_the_server_stores_nothing(page: Any, page_server: ServerThread) -> None:
    stream = open_page(page, page_server, mint("customer", "cust-9"))
    stream.wait_connection(0).welcome("resume-A")
    page.wait_for_timeout(500)
    assert page.locator("#consent[open]").count() == 0


def test_end_shows_the_outcome_and_stops_streaming(page: Any, page_server: ServerThread) -> None:
    stream = open_page(page, page_server, mint("customer", "cust-10"))
    connection = stream.wait_connection(0)
    connection.welcome("resume-A")
    connection.send(End("resolved", "Sie sind wieder online!"))
    connection.close(1000)
    page.wait_for_selector("#end:not([hidden])")
    assert page.inner_text("#end-title") == "Behoben!" and "wieder online" in page.inner_text("#end-text")
    page.wait_for_timeout(1500)
    assert len(stream.connections) == 1  # an ended session is not reconnected
    assert page.evaluate("sessionStorage.getItem('fixlens.resume')") is None


def test_a_refused_link_stops_and_says_why(page: Any, page_server: ServerThread) -> None:
    stream = open_page(page, page_server, mint("customer", "cust-11"))
    connection = stream.wait_connection(0)
    connection.send(Error("unauthorized", "token expired: expired 30 s ago", fatal=True, field="token"))
    connection.close(1008)
    page.wait_for_selector("#status[data-kind='problem']")
    assert "expired" in page.inner_text("#status")
    page.wait_for_timeout(1500)
    assert len(stream.connections) == 1


def test_without_a_token_the_page_asks_for_the_link(page: Any, page_server: ServerThread) -> None:
    stream = FakeStream(page)
    page.goto(page_server.url + "/")
    page.wait_for_selector("#status[data-kind='problem']")
    assert stream.connections == []


def test_the_browser_enforces_the_pages_policy(page: Any, page_server: ServerThread) -> None:
    """An injected inline script and a request to another origin are refused; the page itself still runs."""
    stream = open_page(page, page_server, mint("customer", "cust-12"))
    stream.wait_connection(0).welcome("resume-A")
    try:
        page.add_script_tag(content="window.injected = 1;")
    except Exception:  # Playwright may report the refusal as an error; either way it must not run
        pass
    assert page.evaluate("window.injected") is None
    outcome = page.evaluate("fetch('http://127.0.0.1:9/steal').then(() => 'sent', () => 'refused')")
    assert outcome == "refused"
    refusals = [e for e in page.errors if "Content Security Policy" in e]
    assert len(refusals) >= 2, page.errors
    page.errors.clear()  # expected here; any other test fails on them
    assert page.evaluate("window.fixlensPage.state") == "connected"


def test_a_turn_the_device_hint_goes_once_the_parts_face_the_camera(page: Any, page_server: ServerThread) -> None:
    stream = open_page(page, page_server, mint("customer", "cust-13"))
    connection = stream.wait_connection(0)
    connection.welcome("resume-A")
    connection.send(CHECK_WAN)
    connection.send(Notice("turn_device", "Drehen Sie das Gerät, bis der WAN-Anschluss zu sehen ist."))
    answer_frames(page, connection, Pose.look_at((0.0, -0.42, 0.22), (0.0, 0.0, 0.02)), 1.0)  # port away
    assert page.is_visible("#hint")
    answer_frames(page, connection, BEHIND, 1.0)  # the customer turned it: the port faces the camera
    assert page.is_hidden("#hint")


def test_a_person_is_offered_after_help_and_their_words_and_pointing_reach_the_page(
        page: Any, page_server: ServerThread) -> None:
    stream = open_page(page, page_server, mint("customer", "cust-13"))
    connection = stream.wait_connection(0)
    connection.welcome("resume-1", agents=True)
    connection.send(CHECK_WAN)
    page.wait_for_selector("#step-text:has-text('WAN port')")
    assert page.is_hidden("#talk")  # offered only after help or the server's offer
    connection.send(Notice("help_requested", "Ein Mitarbeiter wurde um Hilfe gebeten."))
    page.click("#talk")
    stream.wait(lambda: any(isinstance(m, Event) and m.kind == "accept_help" for m in connection.received),
                what="accept_help")
    connection.send(Notice("agent_queued", "Gleich meldet sich eine Person vom Support."))
    connection.send(Agent("joined", "Alex"))
    page.wait_for_selector("#agent-status:has-text('Alex vom Support')")
    assert page.is_hidden("#talk")
    connection.send(Agent("message", "Alex", text="Der WAN-Anschluss ist der blaue."))
    page.wait_for_selector(".agent-message:has-text('der blaue')")
    connection.send(Agent("point", "Alex", part="port_wan", color="#3fa9f5"))
    answer_frames(page, connection, BEHIND, 2.0)
    x, y = stage_point(page, *project(BEHIND, np.asarray(default_catalog().get("router_ax1800").part("port_wan")
                                                         .anchor)))
    shot = page.screenshot(clip={"x": x - 40, "y": y - 40, "width": 80, "height": 80})
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(shot, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(int)
    blue = (rgb[..., 2] > 180) & (rgb[..., 0] < 140) & (rgb[..., 1] > 120)
    assert blue.sum() >= 30, f"no blue ring around the WAN port at ({x:.0f}, {y:.0f}): {blue.sum()} px"
    assert page.evaluate("window.fixlensPage.pointing") == "port_wan"
    connection.send(Agent("point", "Alex"))
    stream.wait(lambda: page.evaluate("window.fixlensPage.pointing") is None, what="pointing stopped")
