"""The engine's whole mutable state as one small record, and its round trip through a plain dict.

The server stores this dict with the session (JSON or msgpack) and restores it after a reconnect or a
restart, so it holds only plain values: step ids, part names, states and ``now`` timestamps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from scenes.errors import SnapshotError
from scenes.model import I18nText, Scene
from scenes.view import STEP_CAUSES, StepCause

SNAPSHOT_VERSION = 1


@dataclass
class EngineState:
    step: str | None = None  # None until start()
    history: list[str] = field(default_factory=list)  # steps on the current path, current last
    entered_at: float = 0.0  # when the current step was entered
    entries: dict[str, int] = field(default_factory=dict)  # how often each step was entered
    since: list[float | None] = field(default_factory=list)  # per `when` entry: since when it holds
    known: dict[str, tuple[str, float]] = field(default_factory=dict)  # part -> (state, seen at)
    last_seen: float = 0.0  # last time the scene's product was in view
    last_time: float = 0.0  # the latest `now` handled; time never runs backwards inside the engine
    notices: dict[str, float] = field(default_factory=dict)  # rate-limit key -> last time shown
    offered: list[str] = field(default_factory=list)  # "<signal>:<step>" escalation offers made
    outcome: str | None = None  # set once the scene has ended
    reason: I18nText | None = None  # why the current step was entered, as the scene words it
    cause: StepCause = "start"  # what moved the scene into the current step

    def to_dict(self, scene_id: str, locale: str) -> dict[str, Any]:
        return {
            "v": SNAPSHOT_VERSION, "scene": scene_id, "locale": locale, "step": self.step,
            "history": list(self.history), "entered_at": self.entered_at, "entries": dict(self.entries),
            "since": list(self.since), "known": {p: [s, t] for p, (s, t) in self.known.items()},
            "last_seen": self.last_seen, "last_time": self.last_time, "notices": dict(self.notices),
            "offered": list(self.offered), "outcome": self.outcome,
            "reason": dict(self.reason) if self.reason else None, "cause": self.cause,
        }

    @classmethod
    def from_dict(cls, data: Any, scene: Scene) -> tuple[EngineState, str]:
        """Rebuild a state for ``scene``; returns it and the saved locale. Raises :class:`SnapshotError`."""
        if not isinstance(data, dict):
            raise SnapshotError(f"snapshot must be a map, got {type(data).__name__}")
        if data.get("v") != SNAPSHOT_VERSION:
            raise SnapshotError(f"snapshot version {data.get('v')!r} is not supported; expected {SNAPSHOT_VERSION}")
        if data.get("scene") != scene.id:
            raise SnapshotError(f"snapshot is for scene {data.get('scene')!r}, not {scene.id!r}")
        try:
            state = cls(
                step=_opt_step(data["step"], scene), history=[_step(s, scene) for s in data["history"]],
                entered_at=_time(data["entered_at"]),
                entries={_step(k, scene): int(v) for k, v in data["entries"].items()},
                since=[None if t is None else _time(t) for t in data["since"]],
                known={str(p): (str(v[0]), _time(v[1])) for p, v in data["known"].items()},
                last_seen=_time(data["last_seen"]), last_time=_time(data["last_time"]),
                notices={str(k): _time(v) for k, v in data["notices"].items()},
                offered=[str(o) for o in data["offered"]], outcome=data["outcome"],
                reason=None if data["reason"] is None else {str(k): str(v) for k, v in data["reason"].items()},
                # Snapshots saved before causes were kept have none; what they show is re-shown, not moved to.
                cause=data.get("cause", "start"),
            )
            locale = str(data["locale"])
        except SnapshotError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise SnapshotError(f"snapshot is malformed: {type(exc).__name__}: {exc}") from None
        if state.step is not None:
            if not state.history or state.history[-1] != state.step:
                raise SnapshotError("snapshot history must end with the current step")
            if len(state.since) != len(scene.steps[state.step].when):
                raise SnapshotError(f"snapshot has {len(state.since)} hold timers; step {state.step!r} has "
                                    f"{len(scene.steps[state.step].when)} 'when' entries")
        if state.cause not in STEP_CAUSES:
            raise SnapshotError(f"snapshot has unknown cause {state.cause!r}; expected one of: "
                                f"{', '.join(STEP_CAUSES)}")
        if state.outcome not in (None, "resolved", "escalate", "unresolved"):
            raise SnapshotError(f"snapshot has unknown outcome {state.outcome!r}")
        return state, locale


def _step(value: Any, scene: Scene) -> str:
    if value not in scene.steps:
        raise SnapshotError(f"snapshot names step {value!r}, which scene {scene.id!r} does not have")
    return str(value)


def _opt_step(value: Any, scene: Scene) -> str | None:
    return None if value is None else _step(value, scene)


def _time(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SnapshotError(f"snapshot time must be a finite number, got {value!r}")
    return float(value)
