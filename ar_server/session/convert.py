"""Conversions at the session's edges: vision results -> wire ``obs`` and engine observations; engine
effects -> wire messages. Pure functions; library objects stop here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ar_server.protocol import Choice, Obs, PartObs, PoseData, Progress, Step, Timing, copy_overlay
from product_models.catalog import Catalog
from scenes import Observation as SceneObservation
from scenes import PartObservation, ShowStep

# Engine outcomes -> protocol `end.outcome` values.
OUTCOMES: dict[str, str] = {"resolved": "resolved", "escalate": "escalated", "unresolved": "unresolved"}
_STAGES = ("decode", "detect", "pose", "states")


def _clamp01(value: float) -> float:
    return min(1.0, max(0.0, float(value))) if np.isfinite(value) else 0.0


def stage_ms(timing_ms: Mapping[str, float], stage: str) -> float:
    """A stage's milliseconds from a pipeline's timing map, which may name it ``decode`` or ``decode_ms``."""
    value = timing_ms.get(f"{stage}_ms", timing_ms.get(stage, 0.0))
    return max(0.0, float(value)) if np.isfinite(value) else 0.0


def wire_obs(vision_obs: Any, parts: Mapping[str, Any], *, queue_ms: float, total_ms: float) -> Obs:
    """The ``obs`` message for one processed frame; ``parts`` are the smoothed part states."""
    pose = None
    if vision_obs.pose is not None:
        rot = np.asarray(vision_obs.pose.R, dtype=float).reshape(9)
        trans = np.asarray(vision_obs.pose.t, dtype=float).reshape(3)
        if np.all(np.isfinite(rot)) and np.all(np.isfinite(trans)):
            pose = PoseData(R=tuple(float(v) for v in rot), t=(float(trans[0]), float(trans[1]), float(trans[2])))
    timing = vision_obs.timing_ms or {}
    return Obs(
        seq=int(vision_obs.seq), ts=float(vision_obs.ts), product=vision_obs.product_id,
        product_conf=_clamp01(vision_obs.product_confidence) if vision_obs.product_id else 0.0, pose=pose,
        parts={name: PartObs(state=p.state, conf=_clamp01(p.confidence), visible=bool(p.visible))
               for name, p in sorted(parts.items())},
        timing=Timing(**{f"{s}_ms": stage_ms(timing, s) for s in _STAGES}, queue_ms=max(0.0, queue_ms),
                      total_ms=max(0.0, total_ms)))


def scene_observation(product_id: str | None, parts: Mapping[str, Any], catalog: Catalog) -> SceneObservation:
    """What the engine gets: only parts and states the catalog knows, confidence clamped to 0..1.

    The engine refuses an observation naming an unknown part or state (its rule 2); vision output is
    filtered here rather than trusted, so a detector quirk costs one reading, not the session.
    """
    if product_id is None or product_id not in catalog:
        return SceneObservation(None)
    product = catalog.get(product_id)
    readings: dict[str, PartObservation] = {}
    for name, part in parts.items():
        if part.state is None or not product.has_part(name) or part.state not in product.part(name).states:
            continue
        readings[name] = PartObservation(part.state, _clamp01(part.confidence))
    return SceneObservation(product_id, readings)


def step_message(show: ShowStep) -> Step:
    """The wire ``step`` for an engine ``ShowStep``: the same overlays, progress and Done flag, field for
    field (``reason``, ``outcome`` and ``cause`` stay on the server)."""
    return Step(step=show.step_id, text=show.text, overlays=tuple(copy_overlay(o) for o in show.overlays),
                choices=tuple(Choice(id=c.id, text=c.label) for c in show.choices),
                progress=Progress(index=show.progress.index, total=show.progress.total),
                accepts_done=show.accepts_done)


def observation_summary(obs: Obs) -> dict[str, Any]:
    """A JSON-able record of an ``obs`` (for agents over REST and the store)."""
    return {"seq": obs.seq, "ts": obs.ts, "product": obs.product, "product_conf": obs.product_conf,
            "pose": None if obs.pose is None else {"R": list(obs.pose.R), "t": list(obs.pose.t)},
            "parts": {k: {"state": p.state, "conf": p.conf, "visible": p.visible} for k, p in obs.parts.items()}}
