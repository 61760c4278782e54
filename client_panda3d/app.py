"""The AR client's render loop: source -> server (via :class:`ClientSession`) -> composed AR view.

One loop per frame, Panda3D-samples style: input handlers (keys, mouse) only record what happened in
:class:`InputState`; the frame step reads it, drains the session's inbox, updates the pose tracker and
the step, composes the view, and writes it (headless) or shows it (window).

Two clocks. By default the loop runs in real time at ``fps``. Given a :class:`SimulatedClock` it runs in
*lockstep*: each frame is sent and its result awaited (up to ``result_timeout_s`` of real time), then the
clock moves on by ``1 / fps``. A twin source, its simulated customer and (when the caller passes the same
clock to ``ar_server.app.create_app``) the server's scene engine all live on that clock, so a scene whose
steps take minutes of simulated time runs as fast as frames come back from the server.
"""

from __future__ import annotations

import json
import math
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ar_server.protocol import Agent, End, Error, Notice, Obs, Step, Welcome
from client_panda3d.ar_view import ARView, Shot
from client_panda3d.overlays import AGENT_COLOR, AgentMark
from client_panda3d.panel import words
from client_panda3d.pose_filter import PoseTracker
from client_panda3d.recording import Recorder
from client_panda3d.session import ClientSession, ConnectionChange
from client_panda3d.sources import Source
from client_panda3d.steps import Status, StepView
from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import Product

KEY_ACTIONS = {13: "done", 10: "done", 8: "back", 127: "back", ord("h"): "help", ord("H"): "help", 27: "quit"}
END_LINGER_S = 1.5  # keep showing the closing frame this long after `end`
KEYFRAME_DELAY_S = 2.0  # a step's key frame is taken this long after it appears: the camera has turned to it
MAX_TRUTH_FRAMES = 256  # ground truth kept for frames whose result has not come back yet


def reading(obs: Obs, truth: Any, now: float, product: Product | None = None,
            camera: CameraIntrinsics | None = None) -> dict[str, Any]:
    """One result next to the twin's ground truth for its frame: ``parts`` maps each part to
    ``[read state, true state, truly visible]`` (read state None: not recognised); ``pose_px`` is the median
    distance (pixels) between the product's keypoints projected with the server's pose and their true image
    positions (None without a pose, or when the product or camera is not known)."""
    import numpy as np

    from product_models.camera import project

    parts = {name: [obs.parts[name].state if name in obs.parts else None, pt.state, bool(pt.visible)]
             for name, pt in truth.parts.items() if pt.state is not None}
    pose_px = None
    if obs.pose is not None and product is not None and camera is not None and product.id == truth.product:
        pose = Pose(np.array(obs.pose.R, float).reshape(3, 3), np.array(obs.pose.t, float))
        uv, depth = project(np.array([k.position for k in product.keypoints], float), pose, camera)
        ok = np.asarray(truth.keypoint_visible, bool) & (depth > 0)
        if ok.any():
            pose_px = round(float(np.median(np.linalg.norm(uv[ok] - truth.keypoints[ok], axis=1))), 2)
    return {"at": round(now, 3), "ts": obs.ts, "product": obs.product, "true_product": truth.product,
            "in_view": truth.product_box is not None, "pose": obs.pose is not None, "pose_px": pose_px,
            "parts": parts}


class SimulatedClock:
    """Simulated time for lockstep runs: ``t`` seconds since the start, advanced only by ``advance``.
    Calling it gives ``epoch + t`` (wall-clock-like seconds, what the server's ``clock`` expects)."""

    def __init__(self, epoch: float | None = None) -> None:
        self.epoch = time.time() if epoch is None else float(epoch)
        self.t = 0.0

    def __call__(self) -> float:
        return self.epoch + self.t

    def advance(self, seconds: float) -> None:
        self.t = round(self.t + seconds, 6)


@dataclass
class InputState:
    """What the person did since the last frame; handlers append, the frame step consumes."""

    actions: list[str] = field(default_factory=list)  # done | back | help | quit | choice:<n> | choose:<id>
    clicks: list[tuple[float, float]] = field(default_factory=list)  # pixels

    def on_key(self, key: int) -> None:
        if key in KEY_ACTIONS:
            self.actions.append(KEY_ACTIONS[key])
        elif ord("1") <= key <= ord("9"):
            self.actions.append(f"choice:{key - ord('1')}")

    def on_click(self, x: float, y: float) -> None:
        self.clicks.append((x, y))


@dataclass
class Transcript:
    server: str
    source: str
    locale: str
    session: str | None = None
    outcome: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    timing: dict[str, Any] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__, indent=2, ensure_ascii=False) + "\n")


class ClientApp:
    """Runs one AR session (see the module docstring)."""

    def __init__(self, source: Source, session: ClientSession, product: Product | None, camera: CameraIntrinsics, *,
                 fps: float = 15.0, locale: str = "en", out: Path | None = None, window: bool = False,
                 max_seconds: float = 600.0, max_frames: int | None = None, png_every: int = 1,
                 clock: SimulatedClock | None = None, result_timeout_s: float = 3.0) -> None:
        self.source, self.session, self.camera = source, session, camera
        self.clock, self.result_timeout_s = clock, result_timeout_s
        self.fps, self.locale, self.window = fps, locale, window
        self.max_seconds, self.max_frames = max_seconds, max_frames
        self.view = ARView(product, camera, locale)
        self.tracker = PoseTracker()
        self.input = InputState()
        self.status = Status()
        self.step: StepView | None = None
        self.agent_mark: AgentMark | None = None  # where a person from support points, if anywhere
        self.states: dict[str, str] = {}
        self.shot: Shot | None = None
        self.out = out
        self.recorder = Recorder(out, fps, "view.mp4", png_every) if out is not None else None
        self.transcript = Transcript(session.config.server, source.name, locale)
        self._t0 = time.monotonic()
        self._real_t0 = time.perf_counter()
        self._latencies: list[float] = []
        self._compose_s: list[float] = []
        self._ended_at: float | None = None
        self._result_real_ms: list[float] = []  # lockstep: real time from frame offered to its obs
        self._unshown_ts: list[float] = []  # capture ts of results not yet composed into a view frame
        self._overlay_ready_s: list[float] = []  # real time: capture -> first composed frame using its result
        self._keyframe_due: tuple[str, float] | None = None  # (caption, when to take it)
        self.keyframes: list[tuple[str, Any]] = []  # (caption, composed RGB image) at each step change and end
        self.results_timed_out = 0
        # With a twin source (frames carry ground truth): what the server read vs what the twin showed, per
        # result, and how far each drawn anchor lies from the part's true projection, per composed frame.
        self.readings: list[dict[str, Any]] = []
        self.anchor_errors_px: list[float] = []
        self._truth_by_ts: dict[float, Any] = {}

    def now(self) -> float:
        """Seconds since the run began: simulated in lockstep, real otherwise."""
        return self.clock.t if self.clock is not None else time.monotonic() - self._t0

    def run(self) -> Transcript:
        """Run until the session ends (plus a short linger), Esc, or the time/frame limit."""
        self.session.start()
        frames = 0
        try:
            if self.window:
                self._open_window()
            next_at = self.now()
            while True:
                now = self.now()
                frame = self.source.read(now)
                if frame is None:
                    self.transcript.outcome = self.transcript.outcome or "source_ended"
                    break
                self.session.offer_frame(frame.image, frame.ts)
                if frame.truth is not None:
                    self._truth_by_ts[frame.ts] = frame.truth
                    while len(self._truth_by_ts) > MAX_TRUTH_FRAMES:
                        self._truth_by_ts.pop(next(iter(self._truth_by_ts)))
                if self.clock is not None:
                    self._wait_result(frame.ts, now)
                self._drain(now)
                if self._handle_input(now) == "quit":
                    self.transcript.outcome = self.transcript.outcome or "quit"
                    break
                choice = self.source.take_choice(now)
                if choice is not None and self.step is not None:
                    self._event(now, "choose", choice)
                t = time.perf_counter()
                shown = self.step if self.step is None or self.agent_mark is None else \
                    self.step.with_mark(self.agent_mark)
                self.shot = self.view.compose(frame.image, self.tracker.pose_at(frame.ts), self.states, shown,
                                              self.status, now=now, opacity=self.tracker.opacity(now))
                self._compose_s.append(time.perf_counter() - t)
                if frame.truth is not None:
                    self._anchor_errors(frame.truth, self.shot.anchors_uv)
                if self.clock is None and self._unshown_ts:
                    ready = self.now()
                    self._overlay_ready_s.extend(ready - ts for ts in self._unshown_ts)
                    self._unshown_ts.clear()
                if self._keyframe_due is not None and now >= self._keyframe_due[1]:
                    self.keyframes.append((self._keyframe_due[0], self.shot.image))
                    self._keyframe_due = None
                if self.recorder is not None:
                    self.recorder.write(self.shot.image)
                if self.window:
                    self._show(self.shot)
                frames += 1
                if self._ended_at is not None and now - self._ended_at >= END_LINGER_S:
                    break
                if self.session.closed.is_set() and self._ended_at is None:
                    self._ended_at = now  # connection gone without `end`: show it, then stop
                if now >= self.max_seconds or (self.max_frames is not None and frames >= self.max_frames):
                    self.transcript.outcome = self.transcript.outcome or "stopped"
                    break
                if self.clock is not None:
                    self.clock.advance(1.0 / self.fps)
                    continue
                next_at += 1.0 / self.fps
                time.sleep(max(0.0, next_at - self.now()))
        finally:
            self.session.stop()
            self.session.join(5.0)
            self.source.close()
            self.view.close()
            if self.recorder is not None:
                self.recorder.close()
            if self.window:
                import cv2

                cv2.destroyAllWindows()
        self._finish(frames)
        return self.transcript

    # ------------------------------------------------------------------ per-frame steps

    def _wait_result(self, ts: float, now: float) -> None:
        """Lockstep: handle messages until the result for the frame captured at ``ts`` (its ``obs``, or an
        error) is in, the session ends, or ``result_timeout_s`` of real time pass (a dropped frame)."""
        started = time.perf_counter()
        deadline = started + self.result_timeout_s
        while not self.session.closed.is_set() or not self.session.inbox.empty():
            left = deadline - time.perf_counter()
            if left <= 0:
                self.results_timed_out += 1
                return
            try:
                msg = self.session.inbox.get(timeout=min(left, 0.05))
            except queue.Empty:
                continue
            self._handle(msg, now)
            if (isinstance(msg, Obs) and msg.ts >= ts) or isinstance(msg, Error | End):
                if isinstance(msg, Obs):
                    self._result_real_ms.append((time.perf_counter() - started) * 1000.0)
                return

    def _drain(self, now: float) -> None:
        inbox = self.session.inbox
        while not inbox.empty():
            self._handle(inbox.get_nowait(), now)

    def _handle(self, msg: Any, now: float) -> None:
        """Apply one server message (or connection note) to the view state and the transcript."""
        if isinstance(msg, ConnectionChange):
            self.status.connection = msg.state
            if msg.state == "closed" and msg.detail and self.transcript.outcome is None:
                self.transcript.errors.append({"at": round(now, 3), "detail": msg.detail})
        elif isinstance(msg, Welcome):
            self.transcript.session = msg.session
        elif isinstance(msg, Obs):
            self._latencies.append(now - msg.ts)
            self._unshown_ts.append(msg.ts)
            truth = self._truth_by_ts.get(msg.ts)
            if truth is not None:
                self.readings.append(reading(msg, truth, now, self.view.product, self.camera))
            self._follow_product(msg.product)
            self.status.product_in_view = msg.product is not None and msg.pose is not None
            self.states = {k: p.state for k, p in msg.parts.items() if p.state is not None and p.visible}
            if msg.pose is not None:
                import numpy as np

                pose = Pose(np.array(msg.pose.R, float).reshape(3, 3), np.array(msg.pose.t, float))
                self.tracker.add(msg.ts, pose, now)
        elif isinstance(msg, Step):
            self.step = StepView.from_protocol(msg)
            self.status.notice = ""
            self.source.on_step(self.step, now)
            self.transcript.steps.append({"at": round(now, 3), "step": self.step.step_id, "text": self.step.text,
                                          "progress": f"{self.step.progress.index}/{self.step.progress.total}"})
            self._key_frame(f"{now:5.1f}s {self.step.step_id}", now + KEYFRAME_DELAY_S)
        elif isinstance(msg, Notice):
            self.status.notice = msg.text
            self.transcript.notices.append({"at": round(now, 3), "code": msg.code, "text": msg.text,
                                            **({"part": msg.part} if msg.part else {})})
            self.source.on_notice(msg.code, msg.part, now)
        elif isinstance(msg, Agent):
            self._agent(msg, now)
        elif isinstance(msg, End):
            self.agent_mark = None
            self.transcript.outcome = msg.outcome
            self.status.outcome, self.status.notice = msg.outcome, msg.text  # the panel titles it in the locale
            self._ended_at = now
            if self._keyframe_due is not None:  # the closing step arrived with `end`: one frame shows both
                self._keyframe_due = (f"{self._keyframe_due[0]} (end: {msg.outcome})", now)
            else:
                self._key_frame(f"{now:5.1f}s end: {msg.outcome}", now)
        elif isinstance(msg, Error):
            self.transcript.errors.append({"at": round(now, 3), "code": msg.code, "message": msg.message,
                                           "fatal": msg.fatal})
            if msg.fatal:
                self.status.notice = f"{msg.code}: {msg.message}"

    def _agent(self, msg: Agent, now: float) -> None:
        """A person from support: who came or went and what they wrote go on the panel's notice line; their
        pointing becomes a mark on the part (a ``point`` without a part removes it)."""
        if msg.kind == "point":
            self.agent_mark = AgentMark(msg.part, msg.color or AGENT_COLOR, msg.agent) if msg.part else None
        elif msg.kind == "left":
            self.agent_mark = None
        said = words(self.locale)
        text = {"joined": said["agent_joined"].format(name=msg.agent),
                "left": said["agent_left"].format(name=msg.agent),
                "message": f"{msg.agent}: {msg.text or ''}"}.get(msg.kind)
        if text is not None:
            self.status.notice = text
        self.transcript.notices.append({"at": round(now, 3), "code": f"agent_{msg.kind}", "agent": msg.agent,
                                        "text": msg.text, "part": msg.part})

    def _key_frame(self, caption: str, at: float) -> None:
        """Take a key frame at ``at``; one still pending is taken now (from the last composed frame)."""
        if self._keyframe_due is not None and self.shot is not None:
            self.keyframes.append((self._keyframe_due[0], self.shot.image))
        self._keyframe_due = (caption, at)

    def _anchor_errors(self, truth: Any, anchors_uv: dict[str, Any]) -> None:
        import numpy as np

        for part, uv in anchors_uv.items():
            pt = truth.parts.get(part)
            if pt is not None and pt.visible:
                self.anchor_errors_px.append(float(np.hypot(*(np.asarray(uv, float) - pt.center_uv))))

    def _follow_product(self, product_id: str | None) -> None:
        """Place overlays on the product the server recognises (a webcam does not know it up front)."""
        current = self.view.product.id if self.view.product else None
        if product_id is None or product_id == current:
            return
        from product_models.catalog import default_catalog

        catalog = default_catalog()
        if product_id in catalog:
            self.view.set_product(catalog.get(product_id))
            self.tracker.reset()

    def _handle_input(self, now: float) -> str | None:
        actions, self.input.actions = self.input.actions, []
        clicks, self.input.clicks = self.input.clicks, []
        buttons = self.shot.buttons if self.shot else []
        for x, y in clicks:
            hit = next((b for b in buttons if b.contains(x, y)), None)
            if hit is not None:
                actions.append(hit.action)
        for action in actions:
            if action == "quit":
                return "quit"
            if self.step is None:
                continue
            if action.startswith("choice:"):
                index = int(action.split(":")[1])
                if index < len(self.step.choices):
                    self._event(now, "choose", self.step.choices[index][0])
            elif action.startswith("choose:"):
                self._event(now, "choose", action.split(":", 1)[1])
            elif action == "done" and not self.step.accepts_done:
                continue  # Enter on a step without a Done button: the server would only refuse it
            else:
                self._event(now, action)
        return None

    def _event(self, now: float, kind: str, choice: str | None = None) -> None:
        step = self.step.step_id if self.step else None
        self.session.send_event(kind, choice, step)
        self.transcript.events.append({"at": round(now, 3), "kind": kind, "choice": choice, "step": step})

    # ------------------------------------------------------------------ window (a display is available)

    def _open_window(self) -> None:
        import cv2

        cv2.namedWindow("fixlens", cv2.WINDOW_AUTOSIZE)
        cv2.setMouseCallback("fixlens", lambda ev, x, y, *_: self.input.on_click(x, y)
                             if ev == cv2.EVENT_LBUTTONUP else None)

    def _show(self, shot: Shot) -> None:
        import cv2

        cv2.imshow("fixlens", cv2.cvtColor(shot.image, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1)
        if key >= 0:
            self.input.on_key(key & 0xFF)

    def _finish(self, frames: int) -> None:
        lat = sorted(self._latencies)
        comp = sorted(self._compose_s)
        ready = sorted(self._overlay_ready_s)

        def pct(values: list[float], q: float) -> float | None:
            return round(1000 * values[min(len(values) - 1, math.floor(q * len(values)))], 1) if values else None

        wall = time.perf_counter() - self._real_t0
        self.transcript.outcome = self.transcript.outcome or "unknown"
        self.transcript.timing = {
            "wall_s": round(wall, 2), "frames": frames, "results": len(lat),
            "frames_sent": self.session.frames_sent, "view_fps": round(frames / wall, 2) if wall > 0 else None,
            "result_age_p50_ms": pct(lat, 0.5), "result_age_p95_ms": pct(lat, 0.95),
            "compose_p50_ms": pct(comp, 0.5), "compose_p95_ms": pct(comp, 0.95),
            "overlay_ready_p50_ms": pct(ready, 0.5), "overlay_ready_p95_ms": pct(ready, 0.95)}
        if self.anchor_errors_px:
            errors = sorted(self.anchor_errors_px)
            self.transcript.timing.update(
                anchor_frames=len(errors), anchor_median_px=round(errors[len(errors) // 2], 2),
                anchor_within_8px=round(sum(e <= 8.0 for e in errors) / len(errors), 3))
        if self.clock is not None:
            real = sorted(v / 1000.0 for v in self._result_real_ms)
            self.transcript.timing.update(clock="simulated", simulated_s=round(self.clock.t, 2),
                                          result_real_p50_ms=pct(real, 0.5), result_real_p95_ms=pct(real, 0.95),
                                          results_timed_out=self.results_timed_out)
        if self.out is not None:
            self.transcript.write(self.out / "transcript.json")
