"""Drivers of the virtual agent scene: standalone (own twin + scene engine) and attached (server polling)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client_panda3d.agent_scene import DEMO_S, AgentView
from client_panda3d.errors import ClientError
from client_panda3d.recording import Recorder
from client_panda3d.steps import StepView

POLL_S = 0.5


@dataclass
class AgentTranscript:
    scene: str
    mode: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    outcome: str | None = None
    frames: int = 0


def step_from_scene(scene: Any, step_id: str, locale: str) -> StepView:
    """The StepView of ``scene``'s step ``step_id`` in ``locale`` (what the engine would show)."""
    from ar_server.protocol import copy_overlay
    from scenes.i18n import negotiate, pick
    from scenes.view import overlay_view

    loc = negotiate(locale, scene.locales, scene.default_locale)
    step = scene.steps[step_id]
    overlays = [copy_overlay(overlay_view(o, loc, scene.default_locale)) for o in step.overlays]
    return StepView(step.id, pick(step.text, loc, scene.default_locale), tuple(overlays),
                    tuple((c.id, pick(c.label, loc, scene.default_locale)) for c in step.choices))


def run_standalone(scene_id: str, fault: str | None, *, width: int, height: int, fps: float, locale: str,
                   out: Path | None, max_seconds: float, window: bool = False) -> AgentTranscript:
    """Step the scene on a twin: show each step, let the hand demonstrate for ``DEMO_S``, then act."""
    from product_models.catalog import default_catalog
    from product_models.twin import Twin
    from scenes import End, Engine, Observation, PartObservation, ShowStep, UserEvent, find_scene

    scene = find_scene(scene_id)
    product = default_catalog().get(scene.product)
    twin = Twin(product, fault=fault or _fault_for(scene, product), now=0.0)
    engine = Engine(scene, product, locale)
    view = AgentView(product, width, height, locale)
    rec = Recorder(out, fps, "agent.mp4") if out is not None else None
    log = AgentTranscript(scene.id, "standalone")
    step: StepView | None = None
    shown_at, acted = 0.0, True
    now = 0.0
    effects = engine.start(now)
    try:
        while now <= max_seconds:
            twin.advance(now)
            for e in effects:
                if isinstance(e, ShowStep):
                    step, shown_at, acted = StepView.from_effect(e), now, False
                    log.steps.append({"at": round(now, 2), "step": e.step_id, "text": e.text})
                elif isinstance(e, End):
                    log.outcome = e.outcome
            frame = view.render(twin.states(now), step, now, now - shown_at)
            log.frames += 1
            if rec is not None:
                rec.write(frame.image)
            if window and _show(frame.image):
                break
            if log.outcome is not None:
                break
            effects = []
            if step is not None and not acted and now - shown_at >= DEMO_S:
                acted = True
                animate = step.demonstration()
                if animate is not None:
                    action, part = animate.action, animate.part
                    result = twin.act(action, part, now, duration=10.5 if action == "hold" else None)
                    log.actions.append({"at": round(now, 2), "action": action, "part": part,
                                        "happened": result.happened})
                elif step.choices:
                    effects += engine.handle(UserEvent("choose", step.choices[0][0]), now)
            obs = Observation(product.id, {k: PartObservation(v, 1.0) for k, v in twin.states(now).items()})
            effects += engine.handle(obs, now)
            now = round(now + 1.0 / fps, 6)
    finally:
        view.close()
        if rec is not None:
            rec.close()
    log.outcome = log.outcome or "timeout"
    if out is not None:
        (out / "transcript.json").write_text(json.dumps(log.__dict__, indent=2, ensure_ascii=False) + "\n")
    return log


def _fault_for(scene: Any, product: Any) -> str | None:
    """The first product fault whose observed states make the library pick ``scene``."""
    from scenes import Observation, PartObservation, select

    for name, f in product.faults.items():
        states = {**product.healthy_states(), **f.states}
        obs = Observation(product.id, {k: PartObservation(v, 1.0) for k, v in states.items()})
        chosen = select([scene], obs)
        if chosen is not None:
            return name
    return None


def fetch_session(server: str, session_id: str, token: str, timeout: float = 5.0) -> dict[str, Any]:
    """``GET {server}/v1/sessions/{id}`` as JSON; ClientError naming the URL on any failure."""
    base = server.replace("ws://", "http://", 1).replace("wss://", "https://", 1).rstrip("/")
    url = f"{base}/v1/sessions/{session_id}"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data = json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise ClientError(f"GET {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ClientError(f"GET {url}: {exc}") from None
    if not isinstance(data, dict):
        raise ClientError(f"GET {url}: expected a JSON object, got {type(data).__name__}")
    return data


def observed_states(record: dict[str, Any]) -> dict[str, str]:
    """Part states from a session record: ``states`` {part: state}, or ``parts`` {part: {state}}."""
    if isinstance(record.get("states"), dict):
        return {str(k): str(v) for k, v in record["states"].items() if isinstance(v, str)}
    parts = record.get("parts") or (record.get("last_observation") or {}).get("parts") or {}
    return {str(k): str(v["state"]) for k, v in parts.items()
            if isinstance(v, dict) and isinstance(v.get("state"), str)}


def run_attached(scene_id: str | None, session_id: str, server: str, token: str, *, width: int, height: int,
                 fps: float, locale: str, out: Path | None, max_seconds: float, window: bool = False
                 ) -> AgentTranscript:
    """Mirror a live session: poll its record, show its current step on its product in the observed states."""
    from product_models.catalog import default_catalog
    from scenes import find_scene

    record = fetch_session(server, session_id, token)
    scene = find_scene(str(record.get("scene") or scene_id or ""))
    product = default_catalog().get(scene.product)
    view = AgentView(product, width, height, locale)
    rec = Recorder(out, fps, "agent.mp4") if out is not None else None
    log = AgentTranscript(scene.id, "attached")
    step, step_id, shown_at, polled = None, None, 0.0, 0.0
    t0 = time.monotonic()
    try:
        while (now := time.monotonic() - t0) <= max_seconds:
            if now - polled >= POLL_S:
                record, polled = fetch_session(server, session_id, token), now
            current = record.get("current_step")
            if current != step_id and isinstance(current, str) and current in scene.steps:
                step, step_id, shown_at = step_from_scene(scene, current, locale), current, now
                log.steps.append({"at": round(now, 2), "step": current, "text": step.text})
            frame = view.render(observed_states(record), step, now, now - shown_at)
            log.frames += 1
            if rec is not None:
                rec.write(frame.image)
            if window and _show(frame.image):
                break
            if record.get("outcome"):
                log.outcome = str(record["outcome"])
                break
            time.sleep(max(0.0, 1.0 / fps - (time.monotonic() - t0 - now)))
    finally:
        view.close()
        if rec is not None:
            rec.close()
    if out is not None:
        (out / "transcript.json").write_text(json.dumps(log.__dict__, indent=2, ensure_ascii=False) + "\n")
    return log


def _show(image: Any) -> bool:
    """Show a frame in a window; True when Esc was pressed."""
    import cv2

    cv2.imshow("fixlens agent scene", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return (cv2.waitKey(1) & 0xFF) == 27
