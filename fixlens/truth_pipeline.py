"""A stand-in vision pipeline for tests and the load bench while detector weights do not exist yet.

``TruthTablePipeline`` is honest about what it is: it decodes every JPEG for real (``vision.decode``, so a
bad frame fails as it would in production, and decode costs what it costs), then reads the product, pose
and part states from a table of frames the caller rendered itself (``render_frames``), keyed by the
SHA-256 of the JPEG bytes. A frame not in the table is "no product in view". It never looks at pixels to
recognise anything; the real ``vision.pipeline.Pipeline`` replaces it wherever it is available.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NAME = "truth-table (real JPEG decode, part states from render ground truth; no detector)"


@dataclass(frozen=True)
class RenderedFrame:
    jpeg: bytes
    product: str
    states: dict[str, str]  # what the twin showed
    truth: Any  # product_models.render.GroundTruth


class TruthTablePipeline:
    """``process_batch`` as in ``vision.pipeline.Pipeline``; see the module docstring for what it does."""

    name = NAME

    def __init__(self, frames: Iterable[RenderedFrame] = (), *, confidence: float = 0.9) -> None:
        self.confidence = confidence
        self._table: dict[str, RenderedFrame] = {}
        self._lock = threading.Lock()
        self.batches: list[int] = []  # size of every batch processed (tests look at batching)
        self.add(frames)

    def add(self, frames: Iterable[RenderedFrame]) -> None:
        with self._lock:
            for frame in frames:
                self._table[hashlib.sha256(frame.jpeg).hexdigest()] = frame

    def process_batch(self, frames: Sequence[Any]) -> list[Any]:
        self.batches.append(len(frames))
        return [self._one(f) for f in frames]

    def _one(self, frame: Any) -> Any:
        from vision.decode import DecodeLimits, decode_jpeg
        from vision.errors import VisionError
        from vision.types import Observation, PartState

        started = time.perf_counter()
        decode_ms = getattr(frame, "decode_ms", 0.0)
        if getattr(frame, "image", None) is None:  # the server decodes before inference; other callers do not
            try:
                decode_jpeg(frame.jpeg, DecodeLimits(max_bytes=64 * 1024 * 1024))
            except VisionError as exc:
                return exc
            decode_ms = (time.perf_counter() - started) * 1000.0
        with self._lock:
            known = self._table.get(hashlib.sha256(frame.jpeg).hexdigest())
        timing = {"decode_ms": decode_ms, "detect_ms": 0.0, "pose_ms": 0.0, "states_ms": 0.0}
        if known is None:
            return Observation(seq=frame.seq, ts=frame.ts, timing_ms=timing)
        sizes = _sizes_px(known)
        parts = {name: PartState(truth.state, self.confidence if truth.visible else 0.0, truth.visible,
                                 size_px=sizes[name])
                 for name, truth in known.truth.parts.items() if truth.state is not None}
        return Observation(seq=frame.seq, ts=frame.ts, product_id=known.product,
                           product_confidence=self.confidence, pose=known.truth.pose, parts=parts, timing_ms=timing)


def _sizes_px(frame: RenderedFrame) -> dict[str, float]:
    """Each part's larger side in pixels, seen face-on at its depth: what the real pipeline reports as
    ``size_px`` (step verification needs it)."""
    from product_models.catalog import default_catalog

    product = default_catalog().get(frame.product)
    truth = frame.truth
    fx = float(truth.camera[0, 0])
    out = {}
    for part in product.parts:
        depth = float(truth.pose.transform(product.anchor_at(part.name, frame.states)[None, :])[0, 2])
        out[part.name] = max(part.size_mm) / 1000.0 * fx / depth if depth > 0 else 0.0
    return out


def render_frames(product_id: str, states_list: Sequence[Mapping[str, str]], *, width: int = 320,
                  height: int = 240, yaws: Sequence[float] = (180.0,), pitch: float = 20.0, distance: float = 0.55,
                  quality: int = 85) -> list[list[RenderedFrame]]:
    """For each state map (unnamed parts healthy), JPEG renders of the product from each yaw (degrees).

    Yaw 180 looks at the back, where the router's ports and LEDs are. Uses the offscreen Panda3D renderer.
    """
    from product_models.backdrop import room_backdrop
    from product_models.camera import CameraIntrinsics, Pose
    from product_models.catalog import default_catalog
    from product_models.render import Renderer
    from vision.decode import encode_jpeg

    product = default_catalog().get(product_id)
    camera = CameraIntrinsics.from_fov(width, height, 60.0)
    renderer = Renderer(width, height)
    backdrop = room_backdrop(width, height, seed=7)  # the twin camera's room: a device seen in a place
    out: list[list[RenderedFrame]] = []
    for states in states_list:
        full = {**product.healthy_states(), **states}
        row = []
        for yaw in yaws:
            result = renderer.render(product, full, Pose.orbit(yaw, pitch, distance), camera, background=backdrop)
            jpeg = encode_jpeg(result.image[:, :, ::-1].copy(), quality)  # renderer gives RGB, encoder wants BGR
            row.append(RenderedFrame(jpeg, product_id, full, result.truth))
        out.append(row)
    return out
