from __future__ import annotations

import pytest

from vision.errors import VisionError
from vision.smoothing import SmoothingConfig, TemporalSmoother
from vision.types import PartState

FRAME_MS = 1000.0 / 15.0  # a 15 fps stream


def seen(state: str | None, confidence: float = 0.9) -> PartState:
    return PartState(state, confidence if state else 0.0, True, (10.0, 20.0))


def feed(smoother: TemporalSmoother, states: list[PartState | None], start_ms: float = 0.0,
         part: str = "led") -> list[PartState]:
    """One frame per entry, FRAME_MS apart; None = the part is not in the frame's results at all."""
    out = []
    for i, raw in enumerate(states):
        result = smoother.update(start_ms + i * FRAME_MS, {} if raw is None else {part: raw})
        out.append(result[part])
    return out


def test_new_state_needs_frames_and_time() -> None:
    out = feed(TemporalSmoother(), [seen("green")] * 8)
    # frame i is at i * 66.7 ms; 3 frames are reached at 133 ms, 300 ms only at frame 5
    assert [o.state for o in out] == [None] * 5 + ["green"] * 3
    assert out[-1].confidence == pytest.approx(0.9) and out[-1].uv == (10.0, 20.0)


def test_time_alone_is_not_enough() -> None:
    smoother = TemporalSmoother(SmoothingConfig(min_frames=3, min_ms=0.0))
    assert smoother.update(0.0, {"led": seen("red")})["led"].state is None
    assert smoother.update(1000.0, {"led": seen("red")})["led"].state is None
    assert smoother.update(1001.0, {"led": seen("red")})["led"].state == "red"


def test_hysteresis_alternation_never_leaves_the_stable_state() -> None:
    smoother = TemporalSmoother()
    feed(smoother, [seen("green")] * 8)
    out = feed(smoother, [seen("red"), seen("green")] * 10, start_ms=8 * FRAME_MS)
    assert all(o.state == "green" for o in out)


def test_a_real_change_goes_through() -> None:
    smoother = TemporalSmoother()
    feed(smoother, [seen("green")] * 8)
    out = feed(smoother, [seen("red")] * 8, start_ms=8 * FRAME_MS)
    assert [o.state for o in out] == ["green"] * 5 + ["red"] * 3


def test_low_confidence_does_not_switch() -> None:
    smoother = TemporalSmoother()
    feed(smoother, [seen("green")] * 8)
    out = feed(smoother, [seen("red", 0.45)] * 10, start_ms=8 * FRAME_MS)  # counts, but mean < 0.6
    assert all(o.state == "green" for o in out[:5])
    below = feed(TemporalSmoother(), [seen("red", 0.2)] * 10)  # below min_confidence: a dropout
    assert all(o.state is None for o in below)


def test_dropout_holds_then_forgets() -> None:
    smoother = TemporalSmoother()
    feed(smoother, [seen("green")] * 8)
    hidden = PartState("off", 0.9, False)  # out of view: whatever it says does not count
    out = feed(smoother, [hidden] * 30, start_ms=8 * FRAME_MS)
    last_support = 7 * FRAME_MS
    for i, o in enumerate(out):
        now = (8 + i) * FRAME_MS
        if now - last_support <= 1500.0:
            assert o.state == "green" and not o.visible
        else:
            assert o.state is None and o.confidence == 0.0
    assert out[-1].state is None


def test_part_missing_from_results_counts_as_dropout() -> None:
    smoother = TemporalSmoother()
    feed(smoother, [seen("green")] * 8)
    out = feed(smoother, [None] * 30, start_ms=8 * FRAME_MS)
    assert out[0].state == "green" and not out[0].visible and out[0].uv is None
    assert out[-1].state is None


def _blink(colour: str, hz: float, seconds: float, start_ms: float = 0.0) -> list[tuple[float, PartState]]:
    frames = []
    for i in range(int(seconds * 1000.0 / FRAME_MS)):
        t = start_ms + i * FRAME_MS
        on = (t / 1000.0 * hz) % 1.0 < 0.5
        frames.append((t, seen(colour if on else "off")))
    return frames


@pytest.mark.parametrize("hz", [1.0, 2.0, 3.0])
def test_blinking_led_is_its_colour_with_a_flag(hz: float) -> None:
    smoother = TemporalSmoother()
    results = [smoother.update(t, {"led": raw})["led"] for t, raw in _blink("amber", hz, 4.0)]
    settled = results[len(results) // 4:]
    assert all(r.state == "amber" and r.blinking for r in settled)


def test_steady_colour_is_not_blinking_and_blink_end_goes_off() -> None:
    smoother = TemporalSmoother()
    steady = feed(smoother, [seen("amber")] * 15)
    assert steady[-1].state == "amber" and not steady[-1].blinking
    blink = _blink("amber", 2.0, 2.0, start_ms=15 * FRAME_MS)
    for t, raw in blink:
        smoother.update(t, {"led": raw})
    after = feed(smoother, [seen("off")] * 30, start_ms=blink[-1][0] + FRAME_MS)
    assert after[0].state == "amber" and after[0].blinking
    assert after[-1].state == "off" and not after[-1].blinking


@pytest.mark.parametrize("every", [8, 11, 15])
def test_stray_misread_frames_never_light_an_unlit_led(every: int) -> None:
    # An unpowered device's LED read "green" in one frame now and then (glare, a pose a few pixels off)
    # must never come out green: a step would be verified by a light that never came on.
    raws = [seen("green", 0.95) if i % every == every - 1 else seen("off") for i in range(15 * 20)]
    out = feed(TemporalSmoother(), raws)
    assert {o.state for o in out} <= {None, "off"}


def test_colour_change_is_not_mistaken_for_blinking() -> None:
    smoother = TemporalSmoother()
    feed(smoother, [seen("green")] * 8)
    out = feed(smoother, [seen("off")] * 2 + [seen("red")] * 20, start_ms=8 * FRAME_MS)
    # with green and red both in the window there is no single blinking colour
    assert all(o.state in ("green", "red") for o in out)
    # once the brief `off` has left the 0.7 s window, red is steady
    assert out[-1].state == "red" and not out[-1].blinking


def test_time_must_not_go_backwards() -> None:
    smoother = TemporalSmoother()
    smoother.update(100.0, {})
    with pytest.raises(VisionError, match=r"time went backwards: expected >= 100\.0 ms, got 50\.0 ms"):
        smoother.update(50.0, {})
    smoother.reset()
    smoother.update(50.0, {})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"min_frames": 0}, "min_frames: expected >= 1, got 0"),
    ({"hold_ms": -1.0}, "hold_ms: expected >= 0"),
    ({"min_confidence": 0.8, "enter_confidence": 0.5}, "expected 0 <= min_confidence <= enter_confidence"),
])
def test_bad_config(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(VisionError, match=message):
        SmoothingConfig(**kwargs)
