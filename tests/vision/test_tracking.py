"""Detect, then track: the policy and one session's tracker, driven directly with observations and times."""

from __future__ import annotations

import pytest

from product_models.camera import Pose
from vision.tracking import REDETECT_EVERY, TRACK_MAX_GAP_S, Tracker, TrackPolicy, track_from
from vision.types import Observation, Track

POSE = Pose.orbit(165.0, 30.0, 0.45)


def _seen(seq: int, *, tracked: bool) -> Observation:
    return Observation(seq, 0.0, "router_ax1800", 0.9, (10.0, 20.0, 110.0, 90.0), POSE, 1.0, tracked=tracked)


@pytest.mark.parametrize(("tracked_in_row", "gap_s", "use"), [
    (0, 0.1, True),
    (REDETECT_EVERY - 2, 0.1, True),
    (REDETECT_EVERY - 1, 0.1, False),  # every REDETECT_EVERY-th frame runs the detector
    (0, TRACK_MAX_GAP_S, True),
    (0, TRACK_MAX_GAP_S + 0.01, False),  # too old: the camera may have moved far
    (0, -0.01, False),  # a frame captured before the tracked one (the client clock went back)
])
def test_policy(tracked_in_row: int, gap_s: float, use: bool) -> None:
    assert TrackPolicy().use_track(tracked_in_row, gap_s) is use


def test_track_from_needs_a_verified_product() -> None:
    assert track_from(_seen(1, tracked=False)) == Track("router_ax1800", (10.0, 20.0, 110.0, 90.0), 0.9)
    assert track_from(Observation(2, 0.0)) is None


def test_a_tracker_detects_again_every_nth_frame_and_after_a_gap() -> None:
    tracker = Tracker()
    assert tracker.track_for(0.0) is None  # nothing seen yet: detect
    tracker.follow(_seen(0, tracked=False), 0.0)
    sent = []
    for i in range(1, 2 * REDETECT_EVERY):
        ts = i * 0.1
        track = tracker.track_for(ts)
        sent.append(track is not None)
        tracker.follow(_seen(i, tracked=track is not None), ts)
    assert sent[:REDETECT_EVERY - 1] == [True] * (REDETECT_EVERY - 1) and not sent[REDETECT_EVERY - 1]
    assert tracker.track_for(2 * REDETECT_EVERY * 0.1 + TRACK_MAX_GAP_S + 0.1) is None
    tracker.follow(Observation(99, 0.0), 5.0)  # the product is lost: no track
    assert tracker.track_for(5.1) is None


def test_a_tracker_follows_its_policy() -> None:
    tracker = Tracker(TrackPolicy(redetect_every=1))
    tracker.follow(_seen(0, tracked=False), 0.0)
    assert tracker.track_for(0.1) is None  # redetect every frame: never track
