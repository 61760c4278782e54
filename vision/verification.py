"""Step verification: which part states the scene engine may act on. Pure: no I/O, no clock; the caller
passes time in. One :class:`StepVerifier` per session.

Smoothing (``vision.smoothing``) keeps what the customer sees steady and follows a change within 300 ms.
That is too little evidence to tell a customer that a repair step is done: in short clips of an *unfixed*
device, a stretch of bad reads (a finger over an empty port read "plugged", a pose one LED spacing off
reading the neighbour's colour, a cover seen from behind) got through smoothing and the scene moved on. A
false "resolved" is the worst failure the product can have; a slower "done" costs a second. So the engine
sees only states that meet this rule, and it is the only place the rule is written.

The rule, per part. A *read* is the part's raw ``PartState`` in one frame that has a product and a pose.

1. Evidence. A read is evidence for its state S when
   a. the part is visible and the pose shows it at least ``min_size_px`` across (``size_px``), and
   b. its confidence is at least ``min_confidence``.
2. Contradiction. A read of any other state at confidence ``contradict_confidence`` or more, at any size,
   contradicts S: S's evidence is erased and a verified S is dropped at once. Reads that are unknown
   (``state=None``), and reads too unsure to contradict, neither add nor erase, with one exception:
   an *occluded* read (reason ``hand`` or ``covered``: something lies over the part) erases S's evidence
   while S is not yet verified. Evidence must be gathered after the hand has left: a finger lying beside
   an empty port, covering its edge, read "plugged" in most frames and "hand" in a few, and the "plugged"
   reads between them must not add up to a verified step. A verified S is kept (rule 4 holds it).
3. S becomes verified, on a new evidence read, when its evidence of the last ``window_ms`` (all of it
   gathered since the last contradiction, rule 2) has
   c. at least ``min_reads`` reads spanning at least ``min_span_ms``, and
   d. two viewpoints: two of its reads whose camera centres (product frame) are ``min_baseline_m`` apart,
      or whose directions from the product's origin differ by ``min_view_angle_deg``; OR one unbroken
      track: every read in one run of frames that all had the product's pose, with at least
      ``min_detections`` reads from frames where the detector ran (``tracked=False``) and at least one
      from a tracked frame. A track always starts with a detection, so one would prove nothing; two mean
      the pose was found again from scratch during the evidence and still read S.
4. Holding. A verified S stays verified while evidence reads (rule 1) keep coming; it is dropped on a
   contradiction (rule 2) or after ``hold_ms`` without an evidence read. So a scene's ``hold`` can run
   while the hand that just plugged the cable briefly covers the port.
5. Missing product. A frame without the product or its pose adds no evidence and erases none; it ends the
   unbroken track of rule 3d. Evidence older than ``window_ms`` ages out, a verified state after
   ``hold_ms``. Another product in view resets everything (as ``reset()`` does).
6. Blinking. Rules 1-4 work on raw reads, and a blinking LED reads C and ``off`` in turn. A steady C
   verifies as any state does. While the smoothed state (``vision.smoothing``, passed in as ``smoothed``)
   is C flagged ``blinking``, raw ``off`` reads of that part count as the dark half of the blink: they
   neither contradict C nor add evidence for ``off``. The C reads themselves must still meet rules 1-3, so
   a blinking C verifies as C (a scene says "amber" for an LED that blinks amber, as smoothing does) and
   never as ``off``.

The output, per part seen since the last reset: a ``PartState`` whose ``state`` is the verified state
(confidence: the mean confidence of its evidence), or ``state=None`` with confidence 0. ``visible``,
``uv``, ``size_px`` and ``reason`` are the current frame's.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from vision.errors import VisionError
from vision.types import Observation, PartState

OCCLUDED = frozenset({"hand", "covered"})  # unreadable reasons that mean something lies over the part (rule 2)


@dataclass(frozen=True)
class VerificationConfig:
    """The constants of the rule in the module docstring, each with the reason for its value."""

    # 1a. A quarter above the pipeline's 4 px readability floor, where colour and shape are still guesses;
    # a person asked to watch an LED leans in to about 6 px (product_models.virtual_camera.LEAN_MIN_PX).
    min_size_px: float = 5.0
    # 1b. A part seen well is read near-certain; many misreads (a port at a slant, a small LED, a hand)
    # are less sure. Only sure reads build evidence.
    min_confidence: float = 0.8
    # 2. Doubt is cheaper than a false "done": a fairly confident other state (the smoother's enter
    # confidence) erases evidence even when it is not sure enough to build any.
    contradict_confidence: float = 0.6
    # 3c. Five sure reads over a second: longer than the bad stretches seen in clips of unfixed devices
    # (a finger passing, a pose that slipped for a few frames) and short against a scene's own ``hold``.
    min_reads: int = 5
    min_span_ms: float = 1000.0
    # 3c. Evidence older than this ages out: three seconds hold the five reads at 3 frames/s with room
    # for unreadable frames between them, and keep reads from a view the customer has left from counting.
    window_ms: float = 3000.0
    # 3d. A handheld phone drifts a few centimetres a second; 3 cm, or 3 degrees as seen from the product
    # (3 cm at about 0.55 m), changes which pixels each part falls on, so one wrong pose or one glare spot
    # rarely explains reads from both views.
    min_baseline_m: float = 0.03
    min_view_angle_deg: float = 3.0
    # 3d. Detector runs needed in one unbroken track (see the module docstring, rule 3d). The server
    # re-runs the detector on every 8th tracked frame, so two fall within about a second at 8 frames/s.
    min_detections: int = 2
    # 4. A verified state survives this long without an evidence read: a hand over the port for a moment,
    # a frame or two without a pose. Shorter than the engine's 5 s staleness, so vision stays the source.
    hold_ms: float = 2000.0
    off_state: str = "off"  # 6. the dark half of a blinking LED

    def __post_init__(self) -> None:
        if self.min_reads < 1 or self.min_detections < 1:
            raise VisionError(f"min_reads and min_detections: expected >= 1, got {self.min_reads} and "
                              f"{self.min_detections}")
        for name in ("min_size_px", "min_span_ms", "window_ms", "min_baseline_m", "min_view_angle_deg", "hold_ms"):
            if not getattr(self, name) >= 0:
                raise VisionError(f"{name}: expected >= 0, got {getattr(self, name)}")
        if self.min_span_ms > self.window_ms:
            raise VisionError(f"min_span_ms: expected <= window_ms ({self.window_ms}), got {self.min_span_ms}")
        if not 0.0 <= self.contradict_confidence <= 1.0 or not 0.0 <= self.min_confidence <= 1.0:
            raise VisionError("min_confidence and contradict_confidence: expected values in [0, 1], got "
                              f"{self.min_confidence} and {self.contradict_confidence}")


@dataclass(frozen=True)
class _Read:
    ms: float
    confidence: float
    camera: np.ndarray  # (3,) metres: the camera centre in the product frame
    tracked: bool  # the frame followed the previous pose instead of running the detector
    segment: int  # which unbroken run of posed frames it came from


@dataclass
class _Track:
    candidate: str | None = None  # the state the evidence is for
    evidence: deque[_Read] = field(default_factory=deque)
    verified: str | None = None
    verified_confidence: float = 0.0
    last_support_ms: float = 0.0


class StepVerifier:
    """Verifies one session's part states. Not thread-safe; one per session. See the module docstring."""

    def __init__(self, config: VerificationConfig | None = None) -> None:
        self.config = config or VerificationConfig()
        self._tracks: dict[str, _Track] = {}
        self._product: str | None = None
        self._segment = 0
        self._posed_last = False
        self._last_ms: float | None = None

    def reset(self) -> None:
        """Forget everything (another product came into view, or the session restarted)."""
        self._tracks.clear()
        self._product = None
        self._segment += 1
        self._posed_last = False
        self._last_ms = None

    def update(self, now_ms: float, obs: Observation,
               smoothed: Mapping[str, PartState] | None = None) -> dict[str, PartState]:
        """Fold in one frame at ``now_ms`` (monotonic milliseconds). ``smoothed``: the same frame's smoothed
        states, used only for blinking (rule 6). Returns every known part's verified state."""
        if self._last_ms is not None and now_ms < self._last_ms:
            raise VisionError(f"verification time went backwards: expected >= {self._last_ms} ms, got {now_ms} ms")
        self._last_ms = now_ms
        posed = obs.product_id is not None and obs.pose is not None
        if posed and obs.product_id != self._product:
            if self._product is not None:
                self.reset()
                self._last_ms = now_ms
            self._product = obs.product_id
        if posed and not self._posed_last:
            self._segment += 1  # rule 5: a gap ends the unbroken track
        self._posed_last = posed
        out: dict[str, PartState] = {}
        for name in {*self._tracks, *(obs.parts if posed else {})}:
            track = self._tracks.setdefault(name, _Track())
            raw = obs.parts.get(name) if posed else None
            if raw is not None:
                assert obs.pose is not None
                self._read(track, now_ms, raw, obs, (smoothed or {}).get(name))
            if track.verified is not None and now_ms - track.last_support_ms > self.config.hold_ms:
                track.verified, track.verified_confidence = None, 0.0
            out[name] = self._report(track, raw, (smoothed or {}).get(name))
        return out

    # ------------------------------------------------------------------ the rule

    def _read(self, track: _Track, now: float, raw: PartState, obs: Observation, smooth: PartState | None) -> None:
        cfg = self.config
        if raw.state is None and raw.reason in OCCLUDED and track.verified is None:
            track.candidate = None  # rule 2's exception: evidence starts again once the part is clear
            track.evidence.clear()
            return
        if raw.state is None or not raw.visible:
            return  # unknown: neither adds nor erases (rule 2)
        if (raw.state == cfg.off_state and smooth is not None and smooth.blinking
                and smooth.state not in (None, cfg.off_state)):
            return  # the dark half of a blink (rule 6)
        if raw.state != track.candidate:
            if raw.confidence < cfg.contradict_confidence:
                return  # too unsure to contradict
            track.candidate = None  # rule 2
            track.evidence.clear()
            if track.verified is not None and track.verified != raw.state:
                track.verified, track.verified_confidence = None, 0.0
        if raw.size_px < cfg.min_size_px or raw.confidence < cfg.min_confidence:
            return  # not evidence (rule 1)
        assert obs.pose is not None
        track.candidate = raw.state
        track.evidence.append(_Read(now, float(raw.confidence), np.asarray(obs.pose.camera_position, dtype=float),
                                    bool(obs.tracked), self._segment))
        while now - track.evidence[0].ms > cfg.window_ms:
            track.evidence.popleft()
        if track.verified == raw.state:
            track.last_support_ms = now  # rule 4
        elif self._verifies(track.evidence):
            track.verified = raw.state
            track.last_support_ms = now
        if track.verified == raw.state:
            track.verified_confidence = sum(r.confidence for r in track.evidence) / len(track.evidence)

    def _verifies(self, evidence: deque[_Read]) -> bool:
        """Rules 3c and 3d on one state's evidence."""
        cfg = self.config
        if len(evidence) < cfg.min_reads or evidence[-1].ms - evidence[0].ms < cfg.min_span_ms:
            return False
        return self._two_viewpoints(evidence) or self._one_track(evidence)

    def _two_viewpoints(self, evidence: deque[_Read]) -> bool:
        cams = np.stack([r.camera for r in evidence])  # (n, 3) metres
        gaps = np.linalg.norm(cams[:, None, :] - cams[None, :, :], axis=-1)  # (n, n) metres
        if float(gaps.max()) >= self.config.min_baseline_m:
            return True
        norms = np.linalg.norm(cams, axis=1, keepdims=True)
        if not np.all(norms > 0):
            return False
        dirs = cams / norms
        cos = np.clip(dirs @ dirs.T, -1.0, 1.0)
        return math.degrees(float(np.arccos(cos.min()))) >= self.config.min_view_angle_deg

    def _one_track(self, evidence: deque[_Read]) -> bool:
        if len({r.segment for r in evidence}) != 1:
            return False
        detected = sum(1 for r in evidence if not r.tracked)
        return detected >= self.config.min_detections and detected < len(evidence)

    @staticmethod
    def _report(track: _Track, raw: PartState | None, smooth: PartState | None) -> PartState:
        state = track.verified
        blinking = state is not None and smooth is not None and smooth.blinking and smooth.state == state
        if raw is None:
            return PartState(state, track.verified_confidence if state else 0.0, False, blinking=blinking)
        return PartState(state, track.verified_confidence if state else 0.0, raw.visible, raw.uv, blinking,
                         raw.reason, raw.size_px)
