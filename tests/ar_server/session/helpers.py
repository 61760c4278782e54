"""Shared by the session tests: a session core opened on a simulated clock, and crafted vision results."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ar_server.metrics import Metrics
from ar_server.protocol import Frame, Hello, Limits
from ar_server.session.core import CoreConfig, SessionCore
from ar_server.session.effects import Infer, SessionEffect
from ar_server.session.events import FrameReceived, HelloReceived, SessionEvent, SessionOpened, VisionResult
from product_models.camera import Pose
from product_models.catalog import default_catalog
from scenes import Engine, Library, load_library
from tests.ar_server.protocol.jpegs import header_jpeg
from vision.types import ImageQuality, Observation, PartState

PRODUCT = "router_ax1800"
SCENE = "router_no_internet"
T0 = 1_800_000_000.0  # the simulated clock's start, wall-clock-like seconds
JPEG = header_jpeg(64, 48)  # the core reads the header only: no image data needed
SHARP = ImageQuality(luma=120.0, sharpness=300.0)
LIBRARY = load_library()
CATALOG = default_catalog()


def read(state: str, size_px: float = 20.0, confidence: float = 0.95) -> PartState:
    return PartState(state, confidence, True, (10.0, 10.0), size_px=size_px)


def unread(reason: str, size_px: float = 20.0) -> PartState:
    return PartState(None, 0.0, reason in ("unsure", "ambiguous_pose"), (10.0, 10.0), reason=reason, size_px=size_px)


def observed(parts: dict[str, PartState], *, product: str | None = PRODUCT, seq: int = 0, ts: float = 0.0,
             camera: tuple[float, float, float] = (0.0, 0.5, 0.2), tracked: bool = False,
             quality: ImageQuality | None = SHARP) -> Observation:
    """A vision result: the product seen from ``camera`` (metres, product frame) with these part states."""
    if product is None:
        return Observation(seq=seq, ts=ts, quality=quality)
    return Observation(seq=seq, ts=ts, product_id=product, product_confidence=0.9, box=(10.0, 10.0, 200.0, 150.0),
                       pose=Pose(np.eye(3), -np.asarray(camera)), parts=parts, tracked=tracked, quality=quality)


FAULT = {"led_power": read("green"), "led_internet": read("red", 6.0), "port_wan": read("empty")}


@dataclass
class Sim:
    """A session core on a simulated clock; ``feed`` keeps every effect in ``effects``."""

    core: SessionCore
    now: float = T0
    seq: int = 0
    effects: list[SessionEffect] = field(default_factory=list)

    def feed(self, event: SessionEvent, *, after: float = 0.0) -> list[SessionEffect]:
        self.now += after
        out = self.core.handle(event, self.now)
        self.effects += out
        return out

    def frame(self, *, after: float = 0.0, ts: float | None = None, seq: int | None = None, jpeg: bytes = JPEG,
              width: int = 0, height: int = 0) -> list[SessionEffect]:
        """A frame from the client; ``ts`` (capture time) defaults to the simulated clock's seconds since T0."""
        self.seq = self.seq + 1 if seq is None else seq
        self.now += after
        capture = self.now - T0 if ts is None else ts
        return self.feed(FrameReceived(Frame(seq=self.seq, ts=capture, jpeg=jpeg, width=width, height=height)))

    def result(self, observation: Observation, *, queue_ms: float = 1.0) -> list[SessionEffect]:
        """The pipeline's answer for the frame in inference."""
        infer = next(e for e in reversed(self.effects) if isinstance(e, Infer))
        seen = replace(observation, seq=infer.frame.seq, ts=infer.frame.ts)
        return self.feed(VisionResult(infer.frame.seq, seen, queue_ms))

    def lockstep(self, observation: Observation | Any, frames: int, fps: float = 8.0) -> list[SessionEffect]:
        """``frames`` frames ``1/fps`` simulated seconds apart, each answered before the next is sent.
        ``observation`` may be a function of the frame number."""
        out: list[SessionEffect] = []
        for i in range(frames):
            sent = self.frame(after=1.0 / fps)
            out += sent
            if any(isinstance(e, Infer) for e in sent):
                out += self.result(observation(i) if callable(observation) else observation)
            if self.core.closed:
                break
        return out


def new_core(*, max_fps: float = 30.0, idle_timeout_s: float = 300.0, archive_interval_s: float | None = None,
             metrics: Metrics | None = None, library: Library | None = None) -> Sim:
    config = CoreConfig(limits=Limits(max_fps=max_fps), idle_timeout_s=idle_timeout_s,
                        archive_interval_s=archive_interval_s)
    scenes = library or LIBRARY
    return Sim(SessionCore(config, catalog=CATALOG, library=lambda: scenes, now=T0, metrics=metrics))


def opened(*, scene: str | None = SCENE, locale: str = "en", resumed: bool = False, engine: Engine | None = None,
           consent_store_frames: bool = False, unknown_product: str | None = None, **config: Any) -> Sim:
    """A core past ``hello`` and ``welcome`` (and its scene's first step, when it has one)."""
    sim = new_core(**config)
    sim.feed(HelloReceived(Hello(token="fl1.x.y", client="bench", locale=locale)))
    if engine is None and scene is not None:
        scene_def = LIBRARY.get(scene)
        engine = Engine(scene_def, CATALOG.get(scene_def.product), locale)
    sim.feed(SessionOpened(session_id="s1", resume="r1", resumed=resumed, locale=locale, camera=None,
                           product_hint=None, consent_store_frames=consent_store_frames, engine=engine,
                           unknown_product=unknown_product))
    return sim


def messages(effects: list[SessionEffect], kind: str | None = None) -> list[Any]:
    """The wire messages among ``effects`` (of type ``kind`` when given), in order."""
    from ar_server.session.effects import Send

    return [e.message for e in effects if isinstance(e, Send) and (kind is None or e.message.t == kind)]
