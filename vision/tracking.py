"""Detect, then track: when a session's next frame may skip the detector and follow the last pose.

Rules (:class:`TrackPolicy`):
1. A frame whose predecessor had a verified pose carries a :class:`~vision.types.Track` (where the product
   was), and the pipeline looks there instead of running the detector.
2. Every ``redetect_every``-th frame runs the detector even so: another product may have come into view, or
   the detector may find a better box than the one the track drifted to.
3. A track older than ``max_gap_s`` (by capture time, or from a frame that seems to come before it) is
   dropped: the camera may have moved far.

:class:`Tracker` holds one session's state under that policy; it does no I/O and takes the time from its
caller, so the server's sessions, the robustness clips and the tests run the same loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from vision.types import Observation, Track

REDETECT_EVERY = 8  # a tracked session still runs the detector on every 8th frame (another product, a better box)
TRACK_MAX_GAP_S = 0.5  # a track older than this (by capture time) is dropped: the camera may have moved far


@dataclass(frozen=True)
class TrackPolicy:
    redetect_every: int = REDETECT_EVERY
    max_gap_s: float = TRACK_MAX_GAP_S

    def use_track(self, tracked_in_row: int, gap_s: float) -> bool:
        """Whether a frame ``gap_s`` seconds (capture time) after the tracked one may follow the track, when
        the ``tracked_in_row`` frames before it were all tracked."""
        return tracked_in_row < self.redetect_every - 1 and 0.0 <= gap_s <= self.max_gap_s


def track_from(obs: Observation) -> Track | None:
    """The :class:`Track` for the frame after ``obs`` (None when ``obs`` has no verified product)."""
    if obs.product_id is None or obs.pose is None or obs.box is None:
        return None
    return Track(obs.product_id, obs.box, obs.product_confidence)


class Tracker:
    """One session's detect-then-track state: :meth:`track_for` before a frame, :meth:`follow` after it."""

    def __init__(self, policy: TrackPolicy | None = None) -> None:
        self.policy = policy or TrackPolicy()
        self._track: Track | None = None
        self._track_ts = 0.0  # capture time of the frame the track comes from
        self._tracked_in_row = 0

    def track_for(self, ts: float) -> Track | None:
        """The track to send with the frame captured at ``ts`` (seconds), or None to run the detector."""
        if self._track is None or not self.policy.use_track(self._tracked_in_row, ts - self._track_ts):
            return None
        return self._track

    def follow(self, obs: Observation, ts: float) -> None:
        """Remember where ``obs`` (the frame captured at ``ts``) saw the product."""
        self._tracked_in_row = self._tracked_in_row + 1 if obs.tracked else 0
        self._track = track_from(obs)
        self._track_ts = ts
