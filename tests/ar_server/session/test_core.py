"""The session core on a simulated clock: no sockets, no store, no event loop. Events in, effects out."""

from __future__ import annotations

from pathlib import Path

import pytest

from ar_server.errors import SessionStateError
from ar_server.metrics import Metrics
from ar_server.protocol import Bye, Error, Event, Hello, Notice
from ar_server.session.core import HELLO_TIMEOUT_S
from ar_server.session.effects import (
    ArchiveFrame,
    Close,
    EndSession,
    EnterStep,
    Infer,
    OpenEscalation,
    OpenSession,
    RecordEvent,
    RememberObservation,
    SaveSnapshot,
    SceneStarted,
    Send,
)
from ar_server.session.events import (
    ByeReceived,
    Disconnected,
    Failed,
    FrameNotStored,
    GoingAway,
    HelloReceived,
    InferenceFailed,
    MessageRefused,
    OpenRefused,
    SessionOpened,
    TakenOver,
    Tick,
    UserEventReceived,
    VisionResult,
)
from scenes import Library
from scenes.i18n import ENGINE_LOCALES, MESSAGES
from tests.ar_server.protocol.jpegs import header_jpeg
from tests.ar_server.session.helpers import (
    FAULT,
    JPEG,
    T0,
    messages,
    new_core,
    observed,
    opened,
    read,
    unread,
)
from vision.errors import CameraError, FrameError, FrameFault, VisionError
from vision.tracking import REDETECT_EVERY, TRACK_MAX_GAP_S

HELLO = Hello(token="fl1.x.y", client="bench")


def snapshot(sim: object) -> dict[str, object]:
    """The core's observable state, to show that an illegal event changed none of it."""
    core = sim.core  # type: ignore[attr-defined]
    return {"state": core.state, "step": None if core.engine is None else core.engine.snapshot(),
            "in_flight": core._in_flight, "seq": core._last_seq, "now": core._now, "outcome": core.outcome}


# ---------------------------------------------------------------- opening


def test_hello_asks_for_the_session_then_welcome_and_first_step_recorded_before_sent() -> None:
    sim = new_core()
    assert sim.feed(HelloReceived(HELLO)) == [OpenSession(HELLO)] and sim.core.state == "opening"
    sim = opened()
    welcome, step = messages(sim.effects)
    assert (welcome.t, welcome.session, welcome.resume, welcome.resumed, welcome.server_time) == (
        "welcome", "s1", "r1", False, T0)
    assert step.t == "step" and step.step == "check_wan"
    enter = next(i for i, e in enumerate(sim.effects) if isinstance(e, EnterStep))
    shown = next(i for i, e in enumerate(sim.effects) if isinstance(e, Send) and e.message.t == "step")
    assert enter < shown and sim.effects[enter].step == "check_wan" and sim.effects[enter].left is None


def test_a_resume_shows_the_current_step_without_entering_it_again() -> None:
    first = opened()
    first.feed(UserEventReceived(Event("done", step="check_wan")))
    again = opened(resumed=True, engine=first.core.engine)
    assert [m.t for m in messages(again.effects)] == ["welcome", "step"]
    assert messages(again.effects)[0].resumed and messages(again.effects, "step")[0].step == "wait_link"
    assert not any(isinstance(e, EnterStep) for e in again.effects)


def test_an_unknown_product_hint_is_reported_after_welcome() -> None:
    sim = opened(unknown_product="toaster")
    error = messages(sim.effects, "error")[0]
    assert (error.code, error.field, error.fatal) == ("unknown_product", "product", False)
    assert [m.t for m in messages(sim.effects)] == ["welcome", "error", "step"]


def test_a_refused_hello_sends_its_error_and_closes() -> None:
    sim = new_core()
    sim.feed(HelloReceived(HELLO))
    error = Error("unauthorized", "token expired: 3 s ago", fatal=True, field="token", reason="token_expired")
    assert sim.feed(OpenRefused(error)) == [Send(error), Close(1008)] and sim.core.closed


@pytest.mark.parametrize("event, what", [
    (UserEventReceived(Event("done")), "event"),
    (ByeReceived(Bye()), "bye"),
], ids=["event", "bye"])
def test_anything_before_hello_is_fatal(event: object, what: str) -> None:
    sim = new_core()
    out = sim.feed(event)  # type: ignore[arg-type]
    assert out == [Send(Error("hello_required", f"the first message must be hello, got {what}", fatal=True)),
                   Close(1008)]


def test_a_frame_before_hello_is_fatal_and_names_its_seq() -> None:
    sim = new_core()
    error = messages(sim.frame(seq=7), "error")[0]
    assert (error.code, error.seq, error.fatal) == ("hello_required", 7, True) and sim.core.closed


def test_a_refused_message_is_fatal_before_hello_only() -> None:
    before = new_core()
    out = before.feed(MessageRefused("bad_field", "expected a str, got int", "token"))
    assert out == [Send(Error("bad_field", "expected a str, got int", fatal=True, field="token")), Close(1008)]
    after = opened()
    out = after.feed(MessageRefused("bad_jpeg", "not a JPEG", "jpeg", seq=4))
    assert out == [Send(Error("bad_jpeg", "not a JPEG", field="jpeg", seq=4))] and after.core.state == "open"


def test_a_second_hello_is_refused_but_not_fatal() -> None:
    sim = opened()
    error = messages(sim.feed(HelloReceived(HELLO)), "error")[0]
    assert (error.code, error.fatal) == ("duplicate_hello", False) and sim.core.state == "open"


# ---------------------------------------------------------------- illegal events change nothing


@pytest.mark.parametrize("state, event", [
    ("awaiting_hello", SessionOpened("s", "r", False, "en", None, None, False, None)),
    ("awaiting_hello", VisionResult(1, observed({}), 0.0)),
    ("awaiting_hello", TakenOver()),
    ("opening", HelloReceived(HELLO)),
    ("open", OpenRefused(Error("unauthorized", "x", fatal=True))),
    ("open", VisionResult(1, observed({}), 0.0)),  # no frame is in inference
    ("open", InferenceFailed(1, "overloaded", "full")),
    ("closed", Tick()),
    ("closed", Disconnected()),
], ids=lambda v: v if isinstance(v, str) else type(v).__name__)
def test_an_illegal_event_raises_and_changes_nothing(state: str, event: object) -> None:
    sim = {"awaiting_hello": new_core, "opening": new_core, "open": opened, "closed": opened}[state]()
    if state == "opening":
        sim.feed(HelloReceived(HELLO))
    if state == "closed":
        sim.feed(GoingAway())
    assert sim.core.state == state
    before = snapshot(sim)
    with pytest.raises(SessionStateError) as info:
        sim.core.handle(event, T0 + 100.0)  # type: ignore[arg-type]
    assert info.value.code == "illegal_event" and snapshot(sim) == before


def test_a_result_for_another_frame_than_the_one_in_inference_is_illegal() -> None:
    sim = opened()
    sim.frame()
    before = snapshot(sim)
    with pytest.raises(SessionStateError):
        sim.core.handle(VisionResult(99, observed({}), 0.0), T0 + 1.0)
    assert snapshot(sim) == before


# ---------------------------------------------------------------- frames and the rate gate


def test_one_frame_in_inference_and_the_newest_waits() -> None:
    metrics = Metrics()
    sim = opened(metrics=metrics)
    first = sim.frame(after=0.1)
    assert [type(e) for e in first] == [Infer] and first[0].frame.seq == 1 and first[0].frame.jpeg == JPEG
    assert sim.frame(after=0.1) == [] and sim.frame(after=0.1) == []  # 2 waits, then 3 replaces it
    assert metrics.frames_dropped.get(reason="superseded") == 1
    out = sim.result(observed({}, product=None))
    obs = messages(out, "obs")[0]
    assert obs.seq == 1 and [e.frame.seq for e in out if isinstance(e, Infer)] == [3]
    last = sim.result(observed({}, product=None))
    assert messages(last, "obs")[0].seq == 3 and not any(isinstance(e, Infer) for e in last)


def test_seq_must_increase_and_the_error_names_the_frame() -> None:
    sim = opened()
    sim.frame(seq=50)
    error = messages(sim.frame(seq=49, after=0.1), "error")[0]
    assert (error.code, error.field, error.seq, error.fatal) == ("bad_field", "seq", 49, False)
    assert "expected more than 50, got 49" in error.message


@pytest.mark.parametrize(("jpeg", "declared", "code", "field"), [
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, (0, 0), "bad_jpeg", "jpeg"),
    (b"\xff\xd8", (0, 0), "bad_jpeg", "jpeg"),
    (header_jpeg(60000, 60000), (0, 0), "too_large", "jpeg"),
    (header_jpeg(1921, 100), (0, 0), "too_large", "jpeg"),
    (header_jpeg(10, 1921), (0, 0), "too_large", "jpeg"),
    (header_jpeg(64, 48), (640, 0), "bad_field", "width"),
    (header_jpeg(64, 48), (0, 480), "bad_field", "height"),
], ids=["png", "only SOI", "huge declared", "too wide", "too high", "width mismatch", "height mismatch"])
def test_the_jpeg_header_is_read_once_on_arrival_and_refusals_name_the_frame(
        jpeg: bytes, declared: tuple[int, int], code: str, field: str) -> None:
    sim = opened()
    out = sim.frame(seq=9, jpeg=jpeg, width=declared[0], height=declared[1])
    error = messages(out, "error")[0]
    assert (error.code, error.field, error.seq, error.fatal) == (code, field, 9, False)
    assert not any(isinstance(e, Infer) for e in out) and not sim.core.closed


def test_the_header_read_on_arrival_travels_with_the_frame_to_the_decoder() -> None:
    sim = opened()
    infer = next(e for e in sim.frame(jpeg=header_jpeg(320, 240), width=320, height=240) if isinstance(e, Infer))
    assert infer.frame.header is not None and (infer.frame.header.width, infer.frame.header.height) == (320, 240)


def test_the_rate_gate_runs_on_the_session_clock() -> None:
    """Regression: the gate read time.perf_counter, so lockstep runs (simulated time, frames faster than real
    time) lost frames unless max_fps was raised far above what the client sends."""
    sim = opened(max_fps=30.0)
    out = sim.lockstep(observed({}, product=None), frames=200, fps=10.0)  # 20 simulated seconds, no wall time
    assert len(messages(out, "obs")) == 200 and not messages(out, "error")


def test_frames_far_over_max_fps_are_dropped_and_the_client_is_told_with_the_seq() -> None:
    metrics = Metrics()
    sim = opened(max_fps=10.0, metrics=metrics)
    out = []
    for _ in range(100):  # 100 frames in one second at 10 fps allowed
        out += sim.frame(after=0.01)
    errors = messages(out, "error")
    assert [(e.code, e.fatal) for e in errors] == [("rate_limited", False)] and errors[0].seq is not None
    assert metrics.frames_dropped.get(reason="rate") >= 80


@pytest.mark.parametrize("error, code, field, reason", [
    (FrameError("truncated JPEG"), "bad_jpeg", "jpeg", "vision_error"),
    (CameraError("cx outside the frame"), "bad_field", "camera", "vision_error"),
    (VisionError("something else"), "bad_frame", None, "vision_error"),
    (FrameFault("frame 12: the vision pipeline failed on this frame"), "bad_frame", None, "fault"),
], ids=["frame", "camera", "other", "fault"])
def test_a_vision_error_names_its_frame(error: VisionError, code: str, field: str | None, reason: str) -> None:
    """The client hears what was wrong with its frame; the metric tells a server fault from a bad frame."""
    metrics = Metrics()
    sim = opened(metrics=metrics)
    sim.frame(seq=12)
    out = sim.feed(VisionResult(12, error, 0.5))
    assert messages(out) == [Error(code, str(error), field=field, seq=12)] and sim.core.state == "open"
    assert metrics.frames_dropped.get(reason=reason) == 1
    assert metrics.frames_dropped.get(reason="fault" if reason == "vision_error" else "vision_error") == 0


def test_server_busy_is_said_once_and_the_next_frame_goes_on() -> None:
    sim = opened()
    sim.frame(seq=1)
    sim.frame(seq=2, after=0.1)
    out = sim.feed(InferenceFailed(1, "overloaded", "inference queue is full"))
    assert messages(out) == [Notice("server_busy", "The server is busy; some frames are skipped.")]
    assert [e.frame.seq for e in out if isinstance(e, Infer)] == [2]
    assert messages(sim.feed(InferenceFailed(2, "overloaded", "full"))) == []


def test_a_failed_inference_batch_is_an_internal_error_about_its_frame() -> None:
    """Regression: an inference failure other than overload stopped the session's frame task silently."""
    sim = opened()
    sim.frame(seq=3)
    out = sim.feed(InferenceFailed(3, "internal", "inference failed: RuntimeError"))
    error = messages(out, "error")[0]
    assert (error.code, error.seq, error.fatal) == ("internal", 3, True)
    assert isinstance(out[-2], SaveSnapshot) and out[-1] == Close(1011) and sim.core.closed


# ---------------------------------------------------------------- detect, then track


def test_the_track_follows_a_pose_and_drops_after_a_gap() -> None:
    sim = opened(scene=None)
    seen = observed(FAULT)
    tracks = []
    for _ in range(3):
        infer = sim.frame(after=0.1)[0]
        tracks.append(infer.frame.track)
        sim.result(seen)
    assert tracks[0] is None and tracks[1] is not None and tracks[1].product_id == "router_ax1800"
    late = sim.frame(after=0.1, ts=sim.now - T0 + TRACK_MAX_GAP_S + 0.2)[0]  # captured long after the last
    assert late.frame.track is None
    sim.result(observed({}, product=None))
    assert sim.frame(after=0.1)[0].frame.track is None  # no product, no track


def test_a_tracked_run_still_detects_every_redetect_every_th_frame() -> None:
    sim = opened(scene=None)
    detected = []
    for _ in range(3 * REDETECT_EVERY):
        infer = sim.frame(after=0.1)[0]
        detected.append(infer.frame.track is None)
        sim.result(observed(FAULT, tracked=infer.frame.track is not None))
    assert detected[0] and all(any(detected[i:i + REDETECT_EVERY]) for i in range(len(detected) - REDETECT_EVERY))
    assert detected.count(True) <= 4


# ---------------------------------------------------------------- vision moves the scene


def test_no_scene_starts_the_one_the_camera_explains_and_says_why() -> None:
    sim = opened(scene=None)
    out = sim.lockstep(observed(FAULT), frames=8)
    started = [e for e in out if isinstance(e, SceneStarted)]
    assert started == [SceneStarted("router_no_internet", "router_ax1800", started[0].reason)]
    notice = messages(out, "notice")[0]
    assert notice.code == "scene_started" and notice.text.startswith("No internet: ")
    assert messages(out, "step")[0].step == "check_wan"


def test_before_a_scene_a_trigger_part_facing_away_asks_to_turn_the_device() -> None:
    """Power and Wi-Fi lights green, the internet light off: no trigger holds, but "no internet" is still open
    on the WAN port, which faces away. The customer is asked to turn the device (once per 12 s), recorded like
    any hint, and once the empty port is seen, the scene starts."""
    sim = opened(scene=None, locale="de")
    front = {"led_power": read("green"), "led_internet": read("off", 6.0), "led_wifi": read("green"),
             "port_wan": unread("facing_away")}
    out = sim.lockstep(observed(front), frames=40)
    notices = messages(out, "notice")
    assert [n.code for n in notices] == ["turn_device"] and sim.core.engine is None
    assert "WAN-Anschluss (Internet)" in notices[0].text and notices[0].text.startswith("Drehen Sie das Gerät")
    assert notices[0].part == "port_wan"  # so that a client can show where to look
    assert RecordEvent("notice", {"code": "turn_device", "part": "port_wan"}) in out
    out = sim.lockstep(observed({**front, "port_wan": read("empty")}, camera=(0.0, -0.5, 0.2)), frames=8)
    assert [e.scene for e in out if isinstance(e, SceneStarted)] == ["router_no_internet"]


LAN_SCENE = """
id: router_lan_down
product: router_ax1800
default_locale: en
title: {en: No internet on the LAN, de: Kein Internet im LAN, es: Sin internet en la LAN}
triggers:
  - all: [{part: led_power, is: green}, {part: led_internet, is: red}, {part: port_lan1, is: empty}]
    reason: {en: the LAN cable is out, de: das LAN-Kabel ist ab, es: el cable LAN está fuera}
start: done
steps:
  done:
    outcome: resolved
    text: {en: Done., de: Fertig., es: Listo.}
"""


def _with_lan_scene(tmp_path: Path) -> Library:
    import shutil

    from scenes import library_dir, load_library

    for scene in library_dir().glob("*.yaml"):
        shutil.copy(scene, tmp_path / scene.name)
    (tmp_path / "router_lan_down.yaml").write_text(LAN_SCENE, encoding="utf-8")
    return load_library(tmp_path)


def test_a_scene_that_holds_waits_for_the_parts_of_a_more_specific_one(tmp_path: Path) -> None:
    """The internet light is red: "no internet" holds, but "LAN down" also needs the LAN 1 port, on the back.
    The start waits while the customer is asked to show it; once the empty port is seen, the more specific
    scene starts. Never seen, the scene that holds starts after OPEN_TRIGGER_WAIT_S."""
    from ar_server.session.core import OPEN_TRIGGER_WAIT_S

    library = _with_lan_scene(tmp_path)
    front = {"led_power": read("green"), "led_internet": read("red", 6.0), "port_lan1": unread("facing_away")}
    sim = opened(scene=None, library=library)
    out = sim.lockstep(observed(front), frames=24)  # 3 s
    assert sim.core.engine is None and ("turn_device", "port_lan1") in [(n.code, n.part) for n in messages(out)
                                                                        if n.t == "notice"]
    out = sim.lockstep(observed({**front, "port_lan1": read("empty")}), frames=8)
    assert [e.scene for e in out if isinstance(e, SceneStarted)] == ["router_lan_down"]
    never = opened(scene=None, library=library)
    out = never.lockstep(observed(front), frames=int(OPEN_TRIGGER_WAIT_S * 8) + 8)
    assert [e.scene for e in out if isinstance(e, SceneStarted)] == ["router_no_internet"]


def test_the_engine_gets_verified_states_and_the_client_smoothed_ones() -> None:
    """Regression (issue 11): a bad read that smoothing passes (here "plugged" from one still viewpoint, no
    tracking) used to move the scene on. Now the client still sees it, but the step waits for verification."""
    sim = opened()
    still = observed({"port_wan": read("plugged"), "led_internet": read("red", 6.0)})
    out = sim.lockstep(still, frames=32)  # 4 s: smoothing (0.3 s) plus the step's hold (1.5 s) would have passed
    assert messages(out, "obs")[-1].parts["port_wan"].state == "plugged"
    assert messages(out, "step") == []

    def drifting(i: int) -> object:  # the customer's hand drifts 1 cm a frame: two viewpoints
        return observed({"port_wan": read("plugged"), "led_internet": read("red", 6.0)}, camera=(0.01 * i, 0.5, 0.2))

    out = sim.lockstep(drifting, frames=24)
    assert [m.step for m in messages(out, "step")] == ["wait_link"]
    enter = next(e for e in out if isinstance(e, EnterStep))
    assert (enter.left, enter.how, enter.step) == ("check_wan", "vision", "wait_link")


def test_a_hand_over_the_port_gets_a_localized_notice_once_and_it_is_recorded() -> None:
    sim = opened(locale="de")
    out = sim.lockstep(observed({"port_wan": unread("hand"), "led_internet": read("red", 6.0)}), frames=24)
    notices = messages(out, "notice")
    assert [n.code for n in notices] == ["hand_covering"]  # after 1.5 s; not again within 12 s
    assert notices[0].text.startswith("Ihre Hand verdeckt dieses Teil: WAN-Anschluss (Internet).")
    assert RecordEvent("notice", {"code": "hand_covering", "part": "port_wan"}) in out


@pytest.mark.parametrize("quality, code", [
    ({"luma": 20.0, "sharpness": 300.0}, "more_light"),
    ({"luma": 120.0, "sharpness": 5.0}, "hold_steady"),
], ids=["dark", "blurred"])
def test_each_frame_quality_hint_is_sent(quality: dict[str, float], code: str) -> None:
    from vision.types import ImageQuality

    sim = opened()
    parts = {"port_wan": unread("unsure"), "led_internet": unread("unsure")}
    out = sim.lockstep(observed(parts, quality=ImageQuality(**quality)), frames=16)
    assert [n.code for n in messages(out, "notice")] == [code]


def test_a_step_times_out_on_ticks_alone() -> None:
    sim = opened()
    sim.feed(UserEventReceived(Event("done", step="check_wan")))  # -> wait_link, on_timeout after 30 s
    out = []
    for _ in range(62):
        out += sim.feed(Tick(), after=0.5)
    assert [m.step for m in messages(out, "step")] == ["unplug_power"]
    enter = next(e for e in out if isinstance(e, EnterStep))
    assert (enter.left, enter.how) == ("wait_link", "timeout")


def test_a_customer_struggling_is_offered_an_agent() -> None:
    sim = opened()
    out = []
    for _ in range(280):  # check_wan expects 45 s; past three times that the engine offers help
        out += sim.feed(Tick(), after=0.5)
    assert [(n.code, n.text) for n in messages(out, "notice") if n.code.startswith("escalation")] == [
        ("escalation_offer", MESSAGES["offer_overdue"]["en"])]
    assert OpenEscalation("overdue", True, "check_wan", "router_no_internet", "en") in out


def test_no_product_in_view_asks_to_point_the_camera() -> None:
    sim = opened()
    out = sim.lockstep(observed({}, product=None), frames=60)
    assert "point_camera" in [n.code for n in messages(out, "notice")]


# ---------------------------------------------------------------- the customer's events


@pytest.mark.parametrize("locale", ["en", "de", "es"])
def test_a_click_on_a_step_that_is_over_gets_a_localized_stale_step(locale: str) -> None:
    sim = opened(locale=locale)
    out = sim.feed(UserEventReceived(Event("done", step="resolved")))
    assert messages(out) == [Notice("stale_step", MESSAGES["stale_step"][locale])]
    assert sim.core.engine is not None and sim.core.engine.step_id == "check_wan"


def test_help_is_answered_every_time_and_recorded_once_per_step() -> None:
    """Regression: ``escalation_offer`` meant both the server's offer and the answer to the customer's own
    Help (then with an offer's question as text), and a second Help on a step got no answer at all."""
    sim = opened(locale="de")
    first = sim.feed(UserEventReceived(Event("help")))
    assert first == [OpenEscalation("help", True, "check_wan", "router_no_internet", "de"),
                     Send(Notice("help_requested", MESSAGES["help_requested"]["de"]))]
    assert sim.feed(UserEventReceived(Event("help"))) == [Send(Notice("help_requested",
                                                                      MESSAGES["help_requested"]["de"]))]


def test_help_without_a_scene_is_recorded_and_answered() -> None:
    sim = opened(scene=None, locale="es")
    assert sim.feed(UserEventReceived(Event("help"))) == [
        OpenEscalation("help", True, None, None, "es"),
        Send(Notice("help_requested", MESSAGES["help_requested"]["es"]))]
    assert messages(sim.feed(UserEventReceived(Event("done"))))[0].code == "no_scene"


def test_a_choice_the_step_does_not_offer_is_a_bad_field() -> None:
    sim = opened()
    error = messages(sim.feed(UserEventReceived(Event("choose", choice="fly"))), "error")[0]
    assert (error.code, error.field, error.fatal) == ("bad_field", "choice", False)
    assert "no choice 'fly'" in error.message


def test_done_moves_on_and_is_recorded_as_the_users() -> None:
    sim = opened()
    out = sim.feed(UserEventReceived(Event("done", step="check_wan")))
    enter = next(e for e in out if isinstance(e, EnterStep))
    assert (enter.left, enter.how, enter.step) == ("check_wan", "user", "wait_link")
    assert out.index(enter) < out.index(next(e for e in out if isinstance(e, Send)))


def test_the_scene_ends_with_end_and_close_1000() -> None:
    sim = opened()
    sim.feed(UserEventReceived(Event("done", step="check_wan")))
    fixed = {"led_internet": read("green"), "port_wan": read("plugged")}
    out = sim.lockstep(lambda i: observed(fixed, camera=(0.01 * i, 0.5, 0.2)), frames=80)
    assert [m.t for m in messages(out)][-2:] == ["step", "end"] and messages(out, "end")[0].outcome == "resolved"
    ends = [e for e in out if isinstance(e, EndSession)]
    assert [e.outcome for e in ends] == ["resolved"] and out[-1] == Close(1000) and sim.core.outcome == "resolved"


# ---------------------------------------------------------------- timeouts


def test_hello_timeout() -> None:
    sim = new_core()
    assert sim.feed(Tick(), after=HELLO_TIMEOUT_S - 0.1) == []
    out = sim.feed(Tick(), after=0.1)
    assert out == [Send(Error("hello_required", f"no hello within {HELLO_TIMEOUT_S:g} s", fatal=True)), Close(1008)]
    assert sim.core.closed


def test_no_hello_timeout_while_the_session_opens() -> None:
    sim = new_core()
    sim.feed(HelloReceived(HELLO))
    assert sim.feed(Tick(), after=HELLO_TIMEOUT_S * 3) == [] and sim.core.state == "opening"


def test_idle_timeout_ends_the_session_as_abandoned() -> None:
    sim = opened(idle_timeout_s=60.0)
    assert not messages(sim.feed(Tick(), after=50.0), "error")
    sim.frame()  # a message restarts the wait
    assert not messages(sim.feed(Tick(), after=59.0), "error")
    out = sim.feed(Tick(), after=1.5)
    assert messages(out) == [Error("idle_timeout", "no message for 60 s", fatal=True)]
    assert [type(e) for e in out] == [Send, EndSession, Close] and out[-1] == Close(1008)
    assert out[1].outcome == "abandoned" and out[1].snapshot is not None and sim.core.outcome == "abandoned"


# ---------------------------------------------------------------- leaving without ending


@pytest.mark.parametrize("event, sent, code", [
    (ByeReceived(Bye()), [], 1000),
    (ByeReceived(Bye(reason="")), [], 1000),
    (TakenOver(), [Error("forbidden", "this session was resumed from another connection", fatal=True,
                         reason="taken_over")], 1008),
    (GoingAway(), [], 1001),
    (Disconnected(), [], None),
    (Failed("StoreError"), [Error("internal", "internal server error (StoreError); resume the session to "
                                              "continue", fatal=True)], 1011),
], ids=["bye", "bye without reason", "taken over", "going away", "disconnected", "failed"])
def test_leaving_saves_the_state_and_keeps_the_session(event: object, sent: list[Error], code: int | None) -> None:
    sim = opened()
    out = sim.feed(event)  # type: ignore[arg-type]
    assert messages(out) == sent
    assert isinstance(out[len(sent)], SaveSnapshot) and out[len(sent)].snapshot["step"] == "check_wan"
    assert out[len(sent) + 1:] == ([] if code is None else [Close(code)])
    assert sim.core.closed and sim.core.outcome is None


def test_going_away_before_hello_just_closes() -> None:
    assert new_core().feed(GoingAway()) == [Close(1001)]


# ---------------------------------------------------------------- frames kept for review


def test_frames_are_archived_with_consent_at_most_once_per_interval() -> None:
    sim = opened(scene=None, consent_store_frames=True, archive_interval_s=1.0)
    out = sim.lockstep(observed({}, product=None), frames=24)  # 3 s
    assert [e.seq for e in out if isinstance(e, ArchiveFrame)] == [1, 9, 17]
    assert sum(isinstance(e, RememberObservation) for e in out) == 24
    assert messages(sim.feed(FrameNotStored("face blur unavailable")), "notice") == [
        Notice("frames_not_stored", "Frames are not being stored: face blur unavailable")]
    assert sim.feed(FrameNotStored("face blur unavailable")) == []


def test_no_frame_is_archived_without_consent() -> None:
    sim = opened(scene=None, archive_interval_s=1.0)
    assert not any(isinstance(e, ArchiveFrame) for e in sim.lockstep(observed({}, product=None), frames=24))


@pytest.mark.parametrize("code", ["stale_step", "help_requested"])
def test_the_sessions_own_notices_speak_every_engine_locale(code: str) -> None:
    assert set(MESSAGES[code]) == set(ENGINE_LOCALES)
