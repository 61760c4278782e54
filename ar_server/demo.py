"""``fixlens demo``: a guided repair from fault to fix, on a digital twin, rendered headless.

A router's twin starts in a fault (``wan_unplugged`` by default). A simulated customer points a
handheld virtual camera at it; the session watches, picks the matching scene proactively (telling the
customer why), and the scene engine guides the customer step by step. The customer does what each
step's animation shows; the twin reacts with its real delays, and the engine moves on only when the
observed part states say the step was done.

Until the trained detector ships, observations come from the renderer's exact ground truth for the
parts the camera can actually see (a part out of view or facing away is not observed). Output goes
to ``demo-out/``: an MP4 of the session, key frames, a contact sheet and ``transcript.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PRODUCT = "router_ax1800"
DEFAULT_FAULT = "wan_unplugged"
FPS = 10.0  # simulated camera frames per second
MAX_SECONDS = 300.0  # give up (outcome "timeout") after this much simulated time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="run a guided repair end to end on a digital twin (writes demo-out/)",
        description="Start a twin in a fault, let a simulated customer follow the guidance, verify each "
                    "step from the observed part states, and write video, key frames and a transcript.")
    p.add_argument("--product", default=DEFAULT_PRODUCT, help=f"catalog product id (default {DEFAULT_PRODUCT})")
    p.add_argument("--fault", default=DEFAULT_FAULT, help=f"fault the twin starts in (default {DEFAULT_FAULT})")
    p.add_argument("--scene", default=None, help="scene id; default: chosen from what the camera sees")
    p.add_argument("--locale", default="en", help="customer's language, e.g. en, de-AT, es (default en)")
    p.add_argument("--seed", type=int, default=7, help="random seed of the customer and the camera walk")
    p.add_argument("--clumsy", type=float, default=0.0, help="0..1: how often the customer slips")
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (default demo-out/)")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.set_defaults(handler=_cmd_demo)


@dataclass
class Transcript:
    product: str
    fault: str
    locale: str
    scene: str | None = None
    reason: str | None = None
    outcome: str | None = None
    entries: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)

    def add(self, at: float, kind: str, **data: Any) -> None:
        self.entries.append({"at": round(at, 2), "kind": kind, **data})


def _cmd_demo(args: argparse.Namespace) -> int:
    from product_models.errors import CatalogError
    from scenes.errors import SceneError

    try:
        transcript = run_demo(args)
    except (CatalogError, SceneError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    steps = [e for e in transcript.entries if e["kind"] == "step"]
    print(f"scene {transcript.scene} started because {transcript.reason}")
    for e in steps:
        print(f"  {e['at']:6.1f}s  {e['step']:<16} {e['text']}")
    print(f"outcome: {transcript.outcome} after {transcript.timing['simulated_s']:.1f} s simulated "
          f"({transcript.timing['wall_s']:.1f} s wall, {transcript.timing['frames']} frames)")
    print(f"wrote {args.out}/demo.mp4, {args.out}/contact_sheet.png, {args.out}/transcript.json")
    return 0 if transcript.outcome in ("resolved", "escalate") else 1


def run_demo(args: argparse.Namespace) -> Transcript:
    """Run the session; returns the transcript (also written to ``args.out``)."""
    import cv2
    import numpy as np

    from client_panda3d.ar_view import ARView
    from client_panda3d.simulated_customer import SimulatedCustomer
    from client_panda3d.steps import Status, StepView
    from product_models.camera import CameraIntrinsics
    from product_models.catalog import default_catalog
    from product_models.render import Renderer
    from product_models.twin import Twin
    from product_models.virtual_camera import HandheldCamera, VirtualCamera
    from scenes import (
        End,
        Engine,
        Escalate,
        Notice,
        Observation,
        PartObservation,
        ShowStep,
        UserEvent,
        find_scene,
        load_library,
        select,
    )

    wall0 = time.perf_counter()
    product = default_catalog().get(args.product)
    twin = Twin(product, fault=args.fault, now=0.0)
    camera = CameraIntrinsics.from_fov(args.width, args.height)
    handheld = HandheldCamera(product, camera, seed=args.seed)
    customer = SimulatedCustomer(twin, handheld, seed=args.seed, clumsy=args.clumsy)
    renderer = Renderer(args.width, args.height)
    vcam = VirtualCamera(twin, handheld, renderer)
    view = ARView(product, camera, args.locale)
    status = Status("connected")
    library = load_library()
    out: Path = args.out
    (out / "keyframes").mkdir(parents=True, exist_ok=True)
    for old in (out / "keyframes").glob("*.png"):
        old.unlink()
    video = cv2.VideoWriter(str(out / "demo.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (args.width, args.height))
    transcript = Transcript(product.id, args.fault, args.locale)
    engine: Engine | None = None
    step: ShowStep | None = None
    keyframes: list[tuple[str, np.ndarray]] = []
    frames = 0
    now = 0.0
    try:
        while now <= MAX_SECONDS:
            customer.update(now)
            image, truth = vcam.capture(now)
            frames += 1
            seen = {name: PartObservation(pt.state, 1.0) for name, pt in truth.parts.items()
                    if pt.visible and pt.state is not None}
            obs = Observation(product.id if truth.product_box is not None else None, seen)
            effects: list[Any] = []
            if engine is None:
                if args.scene is not None:
                    scene, reason, why = find_scene(args.scene), None, "the scene was requested"
                else:
                    selection = select(library, obs, args.locale)
                    scene, reason, why = (None, None, "") if selection is None else (
                        selection.scene, selection.trigger.reason, selection.reason)
                if scene is not None:
                    engine = Engine(scene, product, args.locale, reason=reason)
                    transcript.scene, transcript.reason = scene.id, why
                    transcript.add(now, "start", scene=scene.id, reason=transcript.reason)
                    effects = engine.start(now)
            else:
                effects = engine.handle(obs, now)
                choice = customer.take_choice(now)
                if choice is not None and transcript.outcome is None:
                    transcript.add(now, "choose", choice=choice)
                    effects += engine.handle(UserEvent("choose", choice), now)
            for effect in effects:
                if isinstance(effect, ShowStep):
                    step = effect
                    customer.on_step(effect.step_id, effect.overlays, now, [c.id for c in effect.choices])
                    transcript.add(now, "step", step=effect.step_id, text=effect.text,
                                   progress=f"{effect.progress.index}/{effect.progress.total}")
                elif isinstance(effect, Notice):
                    status.notice = effect.text
                    transcript.add(now, "notice", code=effect.code, text=effect.text)
                elif isinstance(effect, Escalate):
                    transcript.add(now, "escalate", reason=effect.reason, offer=effect.offer, text=effect.text)
                elif isinstance(effect, End):
                    transcript.outcome = effect.outcome
                    transcript.add(now, "end", outcome=effect.outcome)
            in_view = truth.product_box is not None
            status.product_in_view = in_view
            if any(isinstance(e, ShowStep) for e in effects):
                status.notice = ""
            # The ground-truth pose stands in for the server's result, as the observations do.
            composed = view.compose(image, truth.pose if in_view else None, truth.states,
                                    StepView.from_effect(step) if step else None, status, now=now).image
            video.write(cv2.cvtColor(composed, cv2.COLOR_RGB2BGR))
            if any(isinstance(e, ShowStep | End) for e in effects):
                keyframes.append((f"{now:05.1f}s {step.step_id if step else ''}", composed))
            if transcript.outcome is not None:
                break
            now = round(now + 1.0 / FPS, 6)
    finally:
        video.release()
        view.close()
        renderer.close()
    if transcript.outcome is None:
        transcript.outcome = "timeout"
    transcript.actions = [a.__dict__ for a in customer.log]
    transcript.timing = {"simulated_s": now, "wall_s": round(time.perf_counter() - wall0, 2), "frames": frames}
    for i, (_caption, img) in enumerate(keyframes):
        cv2.imwrite(str(out / "keyframes" / f"{i:02d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(out / "contact_sheet.png"), cv2.cvtColor(_sheet(keyframes, cv2, np), cv2.COLOR_RGB2BGR))
    (out / "transcript.json").write_text(json.dumps(transcript.__dict__, indent=2, ensure_ascii=False) + "\n")
    return transcript


def _sheet(keyframes, cv2, np):
    """Key frames at half size in a grid of 3 columns, each captioned."""
    if not keyframes:
        return np.full((120, 320, 3), 255, np.uint8)
    tiles = []
    for caption, img in keyframes:
        tile = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
        tile = np.vstack([tile, np.full((22, tile.shape[1], 3), 255, np.uint8)])
        cv2.putText(tile, caption, (6, tile.shape[0] - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    cols = 3
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (-len(tiles) % cols)
    rows = [np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)]
    return np.vstack(rows)
