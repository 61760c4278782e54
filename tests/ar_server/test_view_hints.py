"""View hints: why the current step's parts cannot be read. Pure units; the session that sends them is tested
on a simulated clock in ``tests/ar_server/session/test_core.py``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from ar_server.session.view_hints import (
    HINT_CODES,
    ViewHint,
    ViewHintConfig,
    ViewHints,
    hint_text,
    trigger_parts,
    watched_parts,
)
from product_models.camera import Pose
from product_models.catalog import default_catalog
from scenes import load_library
from scenes.i18n import ENGINE_LOCALES, MESSAGES
from vision.types import ImageQuality, Observation, PartState

PRODUCT = "router_ax1800"
WATCHED = ("port_wan", "led_internet")  # router_no_internet, step check_wan
SHARP = ImageQuality(luma=120.0, sharpness=300.0)


def read(state: str, size_px: float = 20.0) -> PartState:
    return PartState(state, 0.95, True, (10.0, 10.0), size_px=size_px)


def unread(reason: str, size_px: float = 20.0) -> PartState:
    return PartState(None, 0.0, reason in ("unsure", "ambiguous_pose"), (10.0, 10.0), reason=reason, size_px=size_px)


def observed(parts: dict[str, PartState], quality: ImageQuality | None = SHARP, *, product: str | None = PRODUCT,
             seq: int = 0, camera: tuple[float, float, float] = (0.0, 0.5, 0.2), tracked: bool = False) -> Observation:
    if product is None:
        return Observation(seq=seq, ts=seq / 8, quality=quality)
    return Observation(seq=seq, ts=seq / 8, product_id=product, product_confidence=0.9,
                       pose=Pose(np.eye(3), -np.asarray(camera)), parts=parts, tracked=tracked, quality=quality)


def run(hints: ViewHints, frames: Sequence[Observation], watched: Sequence[str] = WATCHED, start_s: float = 0.0,
        step_s: float = 0.125) -> list[ViewHint | None]:
    return [hints.update(start_s + i * step_s, watched, obs) for i, obs in enumerate(frames)]


# ---------------------------------------------------------------- pure units


def test_watched_parts_are_the_parts_in_the_steps_conditions_in_order() -> None:
    library = load_library()
    steps = library.get("router_no_internet").steps
    assert watched_parts(steps["check_wan"]) == WATCHED
    assert watched_parts(steps["hold_reset"]) == ("led_power", "led_internet")
    assert watched_parts(steps["resolved"]) == ()


def test_a_hand_over_the_port_is_named_after_it_persists_then_not_again_for_a_while() -> None:
    hints = ViewHints(5.0)
    frames = [observed({"port_wan": unread("hand"), "led_internet": read("red", 6.0)})] * 40
    out = run(hints, frames)
    sent = [(i, h) for i, h in enumerate(out) if h is not None]
    assert sent == [(12, ViewHint("hand_covering", "port_wan"))]  # 1.5 s unread; then nothing for 12 s
    later = hints.update(0.125 * 12 + ViewHintConfig().interval_s, WATCHED, frames[0])
    assert later == ViewHint("hand_covering", "port_wan")


def test_a_read_restarts_the_wait() -> None:
    hand = observed({"port_wan": unread("hand"), "led_internet": read("red", 6.0)})
    seen = observed({"port_wan": read("empty"), "led_internet": read("red", 6.0)})
    assert run(ViewHints(5.0), [hand] * 10 + [seen] + [hand] * 11) == [None] * 22


@pytest.mark.parametrize("port, code", [
    (unread("hand"), "hand_covering"),
    (unread("covered"), "part_covered"),
    (unread("too_small", 3.0), "move_closer"),
    (read("empty", 4.5), "move_closer"),  # read, but too small to verify
    (unread("unsure"), "hold_steady"),
    (unread("unsure", 4.5), "move_closer"),  # unsure because it is small: coming closer helps
    (unread("ambiguous_pose"), "hold_steady"),
    (unread("out_of_frame"), None),
    (unread("not_learnt", 3.0), None),  # no network reads it: neither holding still nor coming closer helps
], ids=["hand", "covered", "too_small", "read_small", "unsure", "unsure_small", "ambiguous_pose", "out_of_frame",
        "not_learnt"])
def test_each_reason_gives_its_hint(port: PartState, code: str | None) -> None:
    out = run(ViewHints(5.0), [observed({"port_wan": port, "led_internet": port})] * 13)
    assert out[-1] == (None if code is None else ViewHint(code, "port_wan"))


@pytest.mark.parametrize("away, code", [
    (unread("facing_away"), "turn_device"),
    (unread("behind_product"), "turn_device"),
    (read("red", 4.5), "move_closer"),
], ids=["facing_away", "behind_product", "small"])
def test_where_to_stand_only_when_no_watched_part_can_be_read(away: PartState, code: str) -> None:
    """While the customer reads the port, the internet light facing away or far off is no reason to move."""
    one_away = observed({"port_wan": read("empty"), "led_internet": away})
    assert run(ViewHints(5.0), [one_away] * 20) == [None] * 20
    all_away = observed({"port_wan": unread("behind_product"), "led_internet": away})
    assert run(ViewHints(5.0), [all_away] * 13)[-1] == ViewHint("turn_device", "port_wan")
    alone = run(ViewHints(5.0), [one_away] * 13, watched=("led_internet",))
    assert alone[-1] == ViewHint(code, "led_internet")


def test_before_a_scene_the_triggers_parts_are_watched_in_library_order() -> None:
    library = load_library()
    scenes = [library.get("router_no_wifi"), library.get("router_no_internet"), library.get("printer_paper_jam")]
    assert trigger_parts(scenes, PRODUCT, {}) == ("led_power", "led_wifi", "led_internet", "port_wan")
    assert trigger_parts(scenes, "printer_lx400", {}) == ("led_jam", "paper_jam")
    assert trigger_parts(scenes, "no_such_product", {}) == ()


def test_before_a_scene_only_what_the_reads_leave_open_is_looked_for() -> None:
    """Only the unknown parts of triggers that the parts read neither satisfy nor rule out are watched: a
    healthy router (every light green) leaves nothing to look for, and with the power light off, the power
    socket is what is missing."""
    library = load_library()
    no_power, no_internet = library.get("router_no_power"), library.get("router_no_internet")
    scenes = [no_internet, no_power]
    healthy = {"led_power": "green", "led_internet": "green", "led_wifi": "green"}
    assert trigger_parts(scenes, PRODUCT, healthy) == ()
    assert trigger_parts(scenes, PRODUCT, {"led_power": "off", "led_internet": "off"}) == ("port_power",)
    # Internet off leaves "no internet" open on the WAN port (its second trigger), not on the first's red light.
    assert trigger_parts(scenes, PRODUCT, {"led_power": "green", "led_internet": "off"}) == ("port_wan",)


def test_before_a_scene_one_trigger_part_facing_away_is_reason_to_turn_the_device() -> None:
    """With no scene running, every trigger part that goes unseen may be the one showing the fault: unlike a
    step's parts (rule 4), it asks the customer to move while the others are read. Never to uncover a part
    inside the device, though: no scene has said to open it."""
    watched = ("led_power", "led_internet", "port_wan", "led_wifi")
    lights = {"led_power": read("green"), "led_internet": read("green"), "led_wifi": read("green")}
    back = observed({**lights, "port_wan": unread("facing_away")})
    hints = ViewHints(5.0)
    out = [hints.update(i * 0.125, watched, back, before_scene=True) for i in range(13)]
    assert out == [None] * 12 + [ViewHint("turn_device", "port_wan")]
    assert run(ViewHints(5.0), [back] * 13, watched=watched) == [None] * 13  # a step's rule 4, for contrast
    # Walking round to the back, the customer is not called to a light on the front until interval_s is over.
    small = observed({**lights, "led_wifi": read("green", 4.5), "port_wan": unread("facing_away")})
    later = [hints.update(1.625 + i * 0.125, watched, small, before_scene=True) for i in range(96)]  # to 13.5 s
    assert later[:-1] == [None] * 95 and later[-1] == ViewHint("turn_device", "port_wan")
    inside = observed({"led_jam": read("off"), "paper_jam": unread("covered")}, product="printer_lx400")
    hints = ViewHints(5.0)
    assert [hints.update(i * 0.125, ("led_jam", "paper_jam"), inside, before_scene=True)
            for i in range(40)] == [None] * 40


def test_dark_and_blurred_frames_say_so_first() -> None:
    hand = {"port_wan": unread("hand"), "led_internet": unread("hand")}
    dark = run(ViewHints(5.0), [observed(hand, ImageQuality(30.0, 300.0))] * 13)
    assert dark[-1] == ViewHint("more_light", "port_wan")
    blurred = run(ViewHints(5.0), [observed(hand, ImageQuality(120.0, 10.0))] * 13)
    assert blurred[-1] == ViewHint("hold_steady", "port_wan")
    nothing = run(ViewHints(5.0), [observed({}, ImageQuality(20.0, 5.0), product=None)] * 13)
    assert nothing[-1] == ViewHint("more_light", None)  # a dark room hides the whole device
    lit = run(ViewHints(5.0), [observed({}, SHARP, product=None)] * 20)
    assert lit == [None] * 20  # the engine's point_camera notice covers this


def test_nothing_to_say_without_watched_parts() -> None:
    assert run(ViewHints(5.0), [observed({"port_wan": unread("hand")})] * 20, watched=()) == [None] * 20


@pytest.mark.parametrize("locale, hint, text", [
    ("en", ViewHint("hand_covering", "port_wan"), "Your hand is covering the WAN (Internet) port."),
    ("de", ViewHint("hand_covering", "port_wan"), "Ihre Hand verdeckt dieses Teil: WAN-Anschluss (Internet)."),
    ("es", ViewHint("part_covered", "led_internet"), "Algo tapa esta parte: luz «Internet»."),
    ("en", ViewHint("move_closer", "led_internet"), "so the Internet light can be read"),
    ("de-AT", ViewHint("turn_device", "port_wan"), "Drehen Sie das Gerät"),
    ("fr", ViewHint("hold_steady", "port_wan"), "Hold the camera still for a moment."),
    ("es", ViewHint("more_light", None), "Está demasiado oscuro"),
])
def test_hint_text_is_localized_and_names_the_part_by_its_label(locale: str, hint: ViewHint, text: str) -> None:
    assert text in hint_text(hint, default_catalog().get(PRODUCT), locale)


def test_every_hint_code_speaks_every_engine_locale() -> None:
    for code in (*HINT_CODES, "led_part"):
        assert set(MESSAGES[code]) == set(ENGINE_LOCALES), code
