"""Between server results: where the product is *now*, from poses that belong to older frames.

Each server result carries the capture time (``ts``) of the frame it was computed from, so the client
knows how old a pose is when it draws. Holding the last pose lags a moving camera by the whole latency
(100-200 ms); the tracker instead extrapolates from the last two results at a damped constant velocity
(rotation as an axis-angle rate, translation linearly), capped to ``MAX_PREDICT_S``, and then eases the
displayed pose toward that prediction so a new result never makes the overlay jump. Pure numpy.

The damping and the cap are small on purpose. A hand-held phone mostly shakes rather than pans, and a
vision pose carries a few pixels of noise, so a velocity from two results is mostly noise: extrapolating it
fully (0.9 of it, up to 0.35 s ahead) put the highlight within 8 px on 85 % of frames of twelve recorded
hand-held runs with the real pipeline's poses, holding the newest pose on 96 %, and 0.2 of it up to 0.1 s
ahead on 96 % (98 % -> 99.7 % with ground-truth poses), while still leading a steady pan a little.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from product_models.camera import Pose

# Tuning.
MAX_PREDICT_S = 0.1  # never extrapolate further than this past the newest result (s)
VELOCITY_DAMPING = 0.2  # trust the measured velocity only a little: it is mostly shake and pose noise
MAX_GAP_S = 0.5  # two results further apart than this give no usable velocity (s)
EASE_TAU_S = 0.04  # time constant of the displayed pose easing toward the prediction (s)
STALE_AFTER_S = 1.0  # no fresh pose for this long: overlays start to fade (s)
FADE_S = 0.5  # ... and are gone this much later (s)


@dataclass(frozen=True)
class PoseSample:
    ts: float  # capture time of the frame the pose belongs to, seconds, client clock
    pose: Pose
    received: float  # when the result arrived, seconds, client clock


def rotation_log(R: np.ndarray) -> np.ndarray:
    """(3,) axis * angle (radians) of rotation matrix ``R`` (3, 3)."""
    cos = max(-1.0, min(1.0, (np.trace(R) - 1.0) / 2.0))
    angle = math.acos(cos)
    if angle < 1e-9:
        return np.zeros(3)
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    if math.pi - angle < 1e-6:  # near 180 degrees the antisymmetric part vanishes; use the diagonal
        axis = np.sqrt(np.maximum((np.diag(R) + 1.0) / 2.0, 0.0))
        axis *= np.sign(w + (w == 0))
        return axis / np.linalg.norm(axis) * angle
    return w / (2.0 * math.sin(angle)) * angle


def rotation_exp(w: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix of axis * angle ``w`` (3,) radians (Rodrigues)."""
    angle = float(np.linalg.norm(w))
    if angle < 1e-12:
        return np.eye(3)
    k = w / angle
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + math.sin(angle) * kx + (1.0 - math.cos(angle)) * (kx @ kx)


def interpolate(a: Pose, b: Pose, s: float) -> Pose:
    """Pose ``s`` of the way from ``a`` to ``b`` (s may exceed 1: extrapolation). Rotation on the
    geodesic (slerp), translation linear."""
    delta = rotation_log(b.R @ a.R.T)
    return Pose(rotation_exp(delta * s) @ a.R, a.t + (b.t - a.t) * s)


class PoseTracker:
    """Keeps the newest server poses and answers "which pose to draw at time ``now``"."""

    def __init__(self, *, predict: bool = True, ease_tau_s: float = EASE_TAU_S) -> None:
        self.predict, self.ease_tau_s = predict, ease_tau_s
        self._samples: list[PoseSample] = []  # newest last; at most two kept
        self._shown: Pose | None = None
        self._shown_at: float | None = None

    def reset(self) -> None:
        """Forget every pose (the product left the view, or a new session started)."""
        self._samples.clear()
        self._shown, self._shown_at = None, None

    def add(self, ts: float, pose: Pose, received: float) -> None:
        """A server result for the frame captured at ``ts``. Results older than the newest are ignored
        (they can arrive out of order after a reconnect)."""
        if self._samples and ts <= self._samples[-1].ts:
            return
        self._samples = [*self._samples[-1:], PoseSample(float(ts), pose, float(received))]

    @property
    def newest(self) -> PoseSample | None:
        return self._samples[-1] if self._samples else None

    def predicted(self, now: float) -> Pose | None:
        """Constant-velocity estimate of the pose of the frame captured at ``now`` (no easing)."""
        if not self._samples:
            return None
        last = self._samples[-1]
        if not self.predict or len(self._samples) < 2:
            return last.pose
        prev = self._samples[0]
        gap = last.ts - prev.ts
        if not (0.0 < gap <= MAX_GAP_S):
            return last.pose
        ahead = min(max(now - last.ts, 0.0), MAX_PREDICT_S)
        return interpolate(prev.pose, last.pose, 1.0 + VELOCITY_DAMPING * ahead / gap)

    def pose_at(self, now: float) -> Pose | None:
        """The pose to draw for the frame captured at ``now``: the prediction, eased so it never jumps.
        ``now`` should not go back; if it does, the easing restarts at the prediction."""
        target = self.predicted(now)
        if target is None:
            return None
        if self._shown is None or self._shown_at is None or now <= self._shown_at or self.ease_tau_s <= 0:
            self._shown, self._shown_at = target, now
            return target
        alpha = 1.0 - math.exp(-(now - self._shown_at) / self.ease_tau_s)
        self._shown = interpolate(self._shown, target, alpha)
        self._shown_at = now
        return self._shown

    def opacity(self, now: float) -> float:
        """1 while the newest pose is fresh, fading to 0 between ``STALE_AFTER_S`` and ``+ FADE_S`` after
        the newest result arrived; 0 with no pose at all."""
        if not self._samples:
            return 0.0
        age = now - self._samples[-1].received
        if age <= STALE_AFTER_S:
            return 1.0
        return max(0.0, 1.0 - (age - STALE_AFTER_S) / FADE_S)
