"""Per-session temporal smoothing of part states. Pure: no I/O, no clock; the caller passes time in.

Rules (per part, each frame's raw :class:`PartState` in, a smoothed one out):

1. An observation *counts* when the part is visible, has a state and ``confidence >= min_confidence``.
   Anything else is a *dropout*.
2. Blink folding (LEDs, or any part with an ``off`` state): counting observations of the last
   ``blink_window_ms`` are kept. If they hold ``off`` and exactly one lit state C, seen in at least
   ``blink_min_lit_frames`` frames making up at least ``blink_min_lit_share`` of the window, the frame's
   *effective* state is C with ``blinking=True`` (whether this frame saw C or ``off``). The minimums matter:
   without them one misread frame of an unlit LED would fold a whole window into "lit", and a step could
   be verified by an LED that never came on. An LED blinking at 1-3 Hz
   therefore comes out as a steady C, flagged blinking, instead of flip-flopping. A steady C has no ``off``
   in its window and is not flagged. The cost: an LED that goes from C to off for good is reported off
   ``blink_window_ms`` later (plus the debounce below).
3. Debounce with hysteresis: the stable state changes only when a different effective state has been seen
   in at least ``min_frames`` counting frames AND over at least ``min_ms`` AND with a mean confidence of at
   least ``enter_confidence``. Any counting frame of the stable state restarts the challenger, so A B A B
   never leaves A. Dropouts neither advance nor reset a challenger, but one unseen for ``hold_ms`` is
   dropped.
4. Dropout: a stable state with no supporting frame for ``hold_ms`` becomes unknown (``state=None``,
   confidence 0). Until then it is reported with ``visible=False`` when the part is out of view.
5. Confidence: the stable state's confidence is an exponential average (factor 0.5) of the confidences
   that supported it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from vision.errors import VisionError
from vision.types import PartState


@dataclass(frozen=True)
class SmoothingConfig:
    min_frames: int = 3  # frames a new state must be seen in before it counts
    min_ms: float = 300.0  # ... and for at least this long
    min_confidence: float = 0.3  # an observation below this is a dropout
    enter_confidence: float = 0.6  # mean confidence a new state needs to replace the stable one
    hold_ms: float = 1500.0  # how long a stable state survives without support
    blink_window_ms: float = 700.0  # a lit colour seen this recently, with only `off` besides, is blinking
    blink_min_lit_frames: int = 2  # ... when seen in at least this many frames of the window
    blink_min_lit_share: float = 0.2  # ... making up at least this share of the window's frames
    off_state: str = "off"

    def __post_init__(self) -> None:
        if self.min_frames < 1:
            raise VisionError(f"min_frames: expected >= 1, got {self.min_frames}")
        for name in ("min_ms", "hold_ms", "blink_window_ms"):
            if getattr(self, name) < 0:
                raise VisionError(f"{name}: expected >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.min_confidence <= self.enter_confidence <= 1.0:
            raise VisionError("expected 0 <= min_confidence <= enter_confidence <= 1, got "
                              f"{self.min_confidence} and {self.enter_confidence}")


@dataclass
class _Track:
    stable: str | None = None
    stable_conf: float = 0.0
    blinking: bool = False
    last_support_ms: float = 0.0
    challenger: str | None = None
    challenger_start_ms: float = 0.0
    challenger_last_ms: float = 0.0
    challenger_frames: int = 0
    challenger_conf_sum: float = 0.0
    recent: deque[tuple[float, str, float]] = field(default_factory=deque)  # (ms, state, confidence)


class TemporalSmoother:
    """Smooths one session's part states. Not thread-safe; one per session."""

    def __init__(self, config: SmoothingConfig | None = None) -> None:
        self.config = config or SmoothingConfig()
        self._tracks: dict[str, _Track] = {}
        self._last_ms: float | None = None

    def reset(self) -> None:
        """Forget everything (a new product came into view, or the session restarted)."""
        self._tracks.clear()
        self._last_ms = None

    def update(self, now_ms: float, observed: Mapping[str, PartState]) -> dict[str, PartState]:
        """Fold in one frame's raw states at time ``now_ms`` (monotonic milliseconds). Parts seen before but
        absent from ``observed`` count as dropouts. Returns the smoothed state of every known part."""
        if self._last_ms is not None and now_ms < self._last_ms:
            raise VisionError(f"smoothing time went backwards: expected >= {self._last_ms} ms, got {now_ms} ms")
        self._last_ms = now_ms
        out: dict[str, PartState] = {}
        for name in {*self._tracks, *observed}:
            track = self._tracks.setdefault(name, _Track())
            raw = observed.get(name, PartState(None, 0.0, False))
            self._step(track, now_ms, raw)
            out[name] = PartState(track.stable, track.stable_conf if track.stable else 0.0, raw.visible,
                                  raw.uv, track.blinking and track.stable is not None)
        return out

    def _step(self, track: _Track, now: float, raw: PartState) -> None:
        cfg = self.config
        while track.recent and now - track.recent[0][0] > cfg.blink_window_ms:
            track.recent.popleft()
        counts = raw.visible and raw.state is not None and raw.confidence >= cfg.min_confidence
        if counts:
            assert raw.state is not None
            track.recent.append((now, raw.state, raw.confidence))
            state, conf, blinking = self._effective(track, raw.state, raw.confidence)
            if state == track.stable:
                track.stable_conf = 0.5 * track.stable_conf + 0.5 * conf
                track.blinking = blinking
                track.last_support_ms = now
                track.challenger = None
            else:
                if state != track.challenger or now - track.challenger_last_ms > cfg.hold_ms:
                    track.challenger, track.challenger_start_ms = state, now
                    track.challenger_frames, track.challenger_conf_sum = 0, 0.0
                track.challenger_frames += 1
                track.challenger_conf_sum += conf
                track.challenger_last_ms = now
                mean = track.challenger_conf_sum / track.challenger_frames
                if (track.challenger_frames >= cfg.min_frames and now - track.challenger_start_ms >= cfg.min_ms
                        and mean >= cfg.enter_confidence):
                    track.stable, track.stable_conf, track.blinking = state, mean, blinking
                    track.last_support_ms = now
                    track.challenger = None
        if track.stable is not None and now - track.last_support_ms > cfg.hold_ms:
            track.stable, track.stable_conf, track.blinking = None, 0.0, False

    def _effective(self, track: _Track, state: str, conf: float) -> tuple[str, float, bool]:
        """Rule 2: fold ``off`` / C alternation in the blink window into C, flagged blinking."""
        off = self.config.off_state
        states = {s for _, s, _ in track.recent}
        lit = states - {off}
        if off in states and len(lit) == 1:
            colour = next(iter(lit))
            lit_frames = sum(1 for _, s, _ in track.recent if s == colour)
            if lit_frames < self.config.blink_min_lit_frames or lit_frames < self.config.blink_min_lit_share * len(
                    track.recent):
                return state, conf, False  # one stray lit frame is a misreading, not a blink
            confs = [c for _, s, c in track.recent]
            return colour, sum(confs) / len(confs), True
        return state, conf, False
