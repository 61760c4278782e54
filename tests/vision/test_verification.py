"""Step verification (vision.verification): each clause of the rule has a test that fails without it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from product_models.camera import Pose
from vision.errors import VisionError
from vision.smoothing import TemporalSmoother
from vision.types import Observation, PartState
from vision.verification import StepVerifier, VerificationConfig

FRAME_MS = 100.0  # a 10 fps stream
PART = "led_internet"


def camera_at(position: tuple[float, float, float]) -> Pose:
    """A pose whose camera centre is ``position`` (product frame, metres); its rotation does not matter here."""
    return Pose(np.eye(3), -np.asarray(position, dtype=float))


def walking(i: int) -> tuple[float, float, float]:
    """A hand that drifts 1 cm per frame sideways, 0.5 m from the product."""
    return (0.01 * i, 0.5, 0.2)


def still(i: int) -> tuple[float, float, float]:
    return (0.0, 0.5, 0.2)


def frame(i: int, read: PartState | None, *, camera: tuple[float, float, float] | None = None,
          tracked: bool = False, product: str | None = "router_ax1800") -> Observation:
    """Frame ``i``; ``read`` None = the part is not in the frame's results; ``product`` None = nothing in view."""
    if product is None:
        return Observation(seq=i, ts=i * FRAME_MS / 1000)
    parts = {} if read is None else {PART: read}
    return Observation(seq=i, ts=i * FRAME_MS / 1000, product_id=product, product_confidence=0.9,
                       pose=camera_at(camera or walking(i)), parts=parts, tracked=tracked)


def seen(state: str | None, confidence: float = 0.95, size_px: float = 8.0, reason: str | None = None) -> PartState:
    return PartState(state, confidence if state else 0.0, state is not None, (100.0, 80.0), reason=reason,
                     size_px=size_px)


def feed(verifier: StepVerifier, frames: list[Observation], smoothed: list[dict[str, PartState]] | None = None
         ) -> list[str | None]:
    """The verified state of PART after each frame (frame i at i * FRAME_MS)."""
    out = []
    for k, obs in enumerate(frames):
        result = verifier.update(obs.seq * FRAME_MS, obs, None if smoothed is None else smoothed[k])
        out.append(result[PART].state if PART in result else None)
    return out


def steady(state: str, n: int, start: int = 0, **kw: object) -> list[Observation]:
    return [frame(start + i, seen(state, **kw)) for i in range(n)]  # type: ignore[arg-type]


def test_sure_steady_reads_from_a_moving_camera_verify_after_a_second() -> None:
    out = feed(StepVerifier(), steady("green", 14))
    # Reads at 0..1000 ms: five reads are there at 400 ms, the span reaches 1000 ms at frame 10.
    assert out == [None] * 10 + ["green"] * 4


def test_verified_state_reports_the_mean_confidence_and_the_frames_view() -> None:
    verifier = StepVerifier()
    for obs in steady("green", 11, confidence=0.9):
        result = verifier.update(obs.seq * FRAME_MS, obs)
    assert result[PART].state == "green" and result[PART].confidence == pytest.approx(0.9)
    assert result[PART].visible and result[PART].uv == (100.0, 80.0) and result[PART].size_px == 8.0


def test_clause_a_small_parts_build_no_evidence() -> None:
    assert feed(StepVerifier(), steady("green", 30, size_px=4.5)) == [None] * 30


def test_clause_b_unsure_reads_build_no_evidence() -> None:
    assert feed(StepVerifier(), steady("green", 30, confidence=0.75)) == [None] * 30


def test_clause_c_needs_enough_reads() -> None:
    """Four reads over 1.2 s (unknown frames between) are not enough; the fifth verifies."""
    frames = []
    for i in range(14):
        frames.append(frame(i, seen("green") if i in (0, 4, 8, 12, 13) else seen(None, reason="unsure")))
    out = feed(StepVerifier(), frames)
    assert out[12] is None and out[13] == "green"


def test_clause_c_needs_the_reads_to_span_a_second() -> None:
    """Ten sure reads in 0.9 s are not enough: a bad stretch is short, a real state lasts."""
    config = VerificationConfig()
    out = feed(StepVerifier(), steady("green", 10))
    assert out == [None] * 10 and (10 - 1) * FRAME_MS < config.min_span_ms


def test_clause_d_one_viewpoint_of_detector_frames_is_not_enough() -> None:
    frames = [frame(i, seen("green"), camera=still(i)) for i in range(30)]
    assert feed(StepVerifier(), frames) == [None] * 30


def test_clause_d_camera_centres_a_few_centimetres_apart_verify() -> None:
    """Straight toward the product: no change of direction, 4 cm of baseline."""
    frames = [frame(i, seen("green"), camera=(0.0, 0.54 - 0.004 * i, 0.0)) for i in range(11)]
    assert feed(StepVerifier(), frames)[-1] == "green"
    near = [frame(i, seen("green"), camera=(0.0, 0.54 - 0.002 * i, 0.0)) for i in range(30)]  # 2 cm in 1 s...
    assert feed(StepVerifier(), near)[10] is None


def test_clause_d_viewing_directions_a_few_degrees_apart_verify() -> None:
    """0.3 m away, 3.5 degrees round: under 2 cm of baseline, but another direction."""
    def orbit(i: int) -> tuple[float, float, float]:
        a = math.radians(0.35 * i)
        return (0.3 * math.sin(a), 0.3 * math.cos(a), 0.0)

    frames = [frame(i, seen("green"), camera=orbit(i)) for i in range(11)]
    gap = np.linalg.norm(np.subtract(orbit(0), orbit(10)))
    assert gap < VerificationConfig().min_baseline_m
    assert feed(StepVerifier(), frames)[-1] == "green"


def test_clause_d_one_unbroken_track_with_two_detections_verifies() -> None:
    """A still camera, detect then track: the detector re-runs at frame 8; the pose was found twice."""
    frames = [frame(i, seen("green"), camera=still(i), tracked=i % 8 != 0) for i in range(14)]
    out = feed(StepVerifier(), frames)
    assert out[9] is None and out[10] == "green"


def test_clause_d_a_track_with_one_detection_is_not_enough() -> None:
    frames = [frame(i, seen("green"), camera=still(i), tracked=i != 0) for i in range(30)]
    assert feed(StepVerifier(), frames) == [None] * 30


def test_clause_d_a_broken_track_is_not_one_track() -> None:
    """The product was lost for a frame: two detections, but in two tracks."""
    frames = [frame(i, seen("green"), camera=still(i), tracked=i not in (0, 8)) for i in range(16)]
    frames[7] = frame(7, None, product=None)
    assert feed(StepVerifier(), frames) == [None] * 16


def test_clause_e_a_confident_other_state_erases_the_evidence() -> None:
    frames = [*steady("green", 6), frame(6, seen("red", confidence=0.7)), *steady("green", 12, start=7)]
    out = feed(StepVerifier(), frames)
    assert out[10] is None  # without the red read, 0..1000 ms would have verified here
    assert out[16] is None and out[17] == "green"  # fresh evidence: 700..1700 ms


def test_clause_e_an_unsure_other_state_erases_nothing() -> None:
    frames = [*steady("green", 6), frame(6, seen("red", confidence=0.5)), *steady("green", 5, start=7)]
    assert feed(StepVerifier(), frames)[10] == "green"


def test_a_contradiction_drops_a_verified_state_at_once() -> None:
    frames = [*steady("green", 12), frame(12, seen("red", confidence=0.65)), *steady("green", 3, start=13)]
    out = feed(StepVerifier(), frames)
    assert out[11] == "green" and out[12:] == [None] * 4


def test_verified_state_holds_while_unseen_then_expires() -> None:
    frames = steady("green", 11)  # verified at 1000 ms
    frames += [frame(i, None, product=None) for i in range(11, 35)]  # nothing in view from 1100 ms
    out = feed(StepVerifier(), frames)
    assert out[10:] == ["green"] * 21 + [None] * 4  # held for 2000 ms after the last read, then unknown


def test_unreadable_reads_hold_but_do_not_support() -> None:
    frames = steady("green", 11) + [frame(i, seen(None, reason="hand")) for i in range(11, 40)]
    out = feed(StepVerifier(), frames)
    assert out[30] == "green" and out[31] is None


def test_an_occluded_read_erases_evidence_not_yet_verified() -> None:
    """Regression (issue 11, seed 7301's hand clip): a finger beside the empty WAN port read "plugged" in most
    frames and "hand" in a few. Each "hand" read starts the evidence again, so the step verifies only on a
    second of reads after the hand has left."""
    hand = seen(None, reason="hand")
    frames = [frame(i, hand if i in (4, 9) else seen("plugged")) for i in range(14)] + steady("plugged", 12, start=14)
    out = feed(StepVerifier(), frames)
    assert out[:20] == [None] * 20  # 5-8, 10-19: never a second of evidence since the last hand
    assert out[20] == "plugged"  # 1000 ms after the first read past the last hand (frame 10)
    covered = [frame(i, seen(None, reason="covered") if i == 6 else seen("plugged")) for i in range(12)]
    assert feed(StepVerifier(), covered)[10] is None  # without the covered read, 0..1000 ms verifies
    unsure = [frame(i, seen(None, reason="unsure") if i == 6 else seen("plugged")) for i in range(12)]
    assert feed(StepVerifier(), unsure)[10] == "plugged"  # only occluders erase


def test_frames_without_the_product_keep_the_evidence() -> None:
    """Six reads, the product out of view for 0.9 s, then one read: together they verify."""
    frames = steady("green", 6) + [frame(i, None, product=None) for i in range(6, 15)] + steady("green", 1, start=15)
    assert feed(StepVerifier(), frames)[-1] == "green"


def test_evidence_older_than_the_window_ages_out() -> None:
    frames = steady("green", 6) + [frame(i, None, product=None) for i in range(6, 36)] + steady("green", 4, start=36)
    assert feed(StepVerifier(), frames)[-1] is None


def test_blinking_led_verifies_its_colour_via_the_smoothed_state() -> None:
    """An LED blinking green (2 frames lit, 2 dark) verifies as green, never as off; without the smoothed
    state its dark frames contradict it."""
    frames = [frame(i, seen("green" if i % 4 < 2 else "off")) for i in range(40)]
    smoother = TemporalSmoother()
    smoothed = [smoother.update(obs.seq * FRAME_MS, obs.parts) for obs in frames]
    assert smoothed[-1][PART].blinking
    folded = feed(StepVerifier(), frames, smoothed)
    assert "green" in folded and "off" not in folded and folded[-1] == "green"
    assert set(feed(StepVerifier(), frames)) == {None}


def test_steady_green_needs_no_smoothed_state() -> None:
    assert feed(StepVerifier(), steady("green", 11), [{}] * 11)[-1] == "green"


def test_another_product_starts_over() -> None:
    verifier = StepVerifier()
    feed(verifier, steady("green", 11))
    out = verifier.update(1100.0, frame(11, None, product="printer_lx400"))
    assert out == {}


def test_bad_stretch_on_an_unfixed_device_is_not_verified() -> None:
    """Regression (issue 11): on an unfixed router at 8 fps, a finger over the empty WAN port read "plugged"
    for six frames; smoothing passed it and the scene moved on. Verification must not."""
    verifier, smoother = StepVerifier(), TemporalSmoother()
    reads = ["empty"] * 6 + ["plugged"] * 6 + [None] * 2 + ["empty"] * 6
    smoothed_states, verified_states = [], []
    for i, state in enumerate(reads):
        raw = seen(state, 0.9 if state else 0.0, 20.0, None if state else "hand")
        obs = Observation(seq=i, ts=i / 8, product_id="router_ax1800", pose=camera_at(walking(i)),
                          parts={"port_wan": raw}, tracked=i % 8 != 0)
        smoothed = smoother.update(i * 125.0, obs.parts)
        smoothed_states.append(smoothed["port_wan"].state)
        verified_states.append(verifier.update(i * 125.0, obs, smoothed)["port_wan"].state)
    assert "plugged" in smoothed_states  # what reached the scene engine before
    assert "plugged" not in verified_states


def test_time_must_not_go_back() -> None:
    verifier = StepVerifier()
    verifier.update(1000.0, frame(10, seen("green")))
    with pytest.raises(VisionError, match="went backwards"):
        verifier.update(900.0, frame(9, seen("green")))


@pytest.mark.parametrize("kwargs, says", [
    ({"min_reads": 0}, "min_reads"),
    ({"min_detections": 0}, "min_detections"),
    ({"hold_ms": -1.0}, "hold_ms"),
    ({"min_span_ms": 4000.0}, "min_span_ms"),
    ({"min_confidence": 1.5}, "min_confidence"),
    ({"contradict_confidence": -0.1}, "contradict_confidence"),
])
def test_bad_config_says_what_was_expected(kwargs: dict[str, float], says: str) -> None:
    with pytest.raises(VisionError, match=says):
        VerificationConfig(**kwargs)  # type: ignore[arg-type]
