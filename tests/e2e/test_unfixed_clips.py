"""An unfixed device, filmed under every robustness condition, never verifies the step that waits for its fix.

Each clip goes the way of a live session (``ar_server/session/live.py``, ``_frames`` to ``_observed``): detect,
then track under ``vision.tracking.TrackPolicy``, the real pipeline on the shipped weights,
the session's ``TemporalSmoother`` and ``StepVerifier``, ``scene_observation``, and the ``Engine`` of the shipped
scene that handles the fault. The engine's clock is the frames' capture time; a ``Tick`` between frames, and
ticks for the step's longest hold after the last frame, let a timed hold complete as the server's ticks do.

Clips are the robustness evaluation's (``fixlens vision robustness``): the handheld camera path of
:func:`vision.training.conditions.clip_scene`, facing the part the step is about, and the frames, degradations
and JPEG encoding of :func:`vision.training.robustness.clip_frames`, from its held-out seed.

The device is never fixed, so the engine must stay on the step that waits for the fix and the session must not
end resolved. Three things keep that from passing vacuously: under every condition some clip must show the
device to the pipeline in at least ``MIN_SEEN`` frames; the ``HARD`` clips are ones where smoothed states
alone moved the step on, so the test fails if verification is bypassed; and the controls film the *fixed*
device under ``as_rendered``, where the verifier must confirm the fix and the same step must move on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ar_server.session.convert import scene_observation
from product_models.catalog import default_catalog
from scenes import Effect, End, Engine, Observation, PartObservation, ShowStep, Tick, UserEvent, load_library
from scenes.conditions import holds, leaves
from vision.pipeline import Pipeline
from vision.smoothing import TemporalSmoother
from vision.tracking import Tracker
from vision.training import conditions as cn
from vision.training.robustness import CLIP_FPS, CLIP_FRAMES, ROBUSTNESS_SEED, clip_frames, training_seed
from vision.types import FrameInput, PartState
from vision.verification import StepVerifier

pytestmark = pytest.mark.slow

CATALOG = default_catalog()
LIBRARY = load_library(catalog=CATALOG)
SEED = ROBUSTNESS_SEED  # held out: no training run draws from it
# A clip the pipeline finds the device in fewer frames than this shows too little to prove anything: half the
# clip, twice the five reads the verifier needs (vision.verification, rule 3c).
MIN_SEEN = 10
WALK_STEP_S = 0.25  # how often the customer's earlier, already verified states reach the engine
TICK_S = 0.25  # the server's tick interval after the last frame

# A button press, or part states the engine saw (verified) while the customer did an earlier step.
Move = UserEvent | Mapping[str, str]
OPEN_COVER: Mapping[str, str] = {"cover_front": "open"}
CLEAR_PAPER: Mapping[str, str] = {"paper_jam": "clear"}
CLOSE_COVER: Mapping[str, str] = {"cover_front": "closed"}
OPEN_TRAY: Mapping[str, str] = {"tray_paper": "open"}
LOAD_PAPER: Mapping[str, str] = {"tray_media": "loaded"}


@dataclass(frozen=True)
class Unfixed:
    """A device that still shows its fault, and the step of a shipped scene that waits for the fix."""

    name: str
    scene: str
    fault: str | None  # the catalog fault the device shows (None: healthy but for ``done``)
    done: Mapping[str, str]  # states the customer's earlier steps left (a cover they opened)
    step: str  # the step that waits for the fix
    part: str  # the part the clip is filmed for: the camera faces it, and leans in when it is small
    fixed: Mapping[str, str]  # the states after the fix, which the control films
    path: tuple[Move, ...] = ()  # how the customer reached ``step``
    control_moves_on: bool = True  # whether a clip filmed for ``part`` shows all the step needs

    @property
    def product(self) -> str:
        return LIBRARY.get(self.scene).product

    def states(self, *, fixed: bool) -> dict[str, str]:
        product = CATALOG.get(self.product)
        base = product.fault_states(self.fault) if self.fault else product.healthy_states()
        return {**base, **self.done, **(self.fixed if fixed else {})}


CASES = {c.name: c for c in (
    Unfixed("wan_unplugged", "router_no_internet", "wan_unplugged", {}, "check_wan", "port_wan",
            {"port_wan": "plugged", "led_internet": "green"}),
    # The customer pressed Done without plugging the cable in: only the internet light can move the step on.
    Unfixed("wan_unplugged_done_pressed", "router_no_internet", "wan_unplugged", {}, "wait_link", "led_internet",
            {"port_wan": "plugged", "led_internet": "green"}, (UserEvent("done"),)),
    Unfixed("wifi_off", "router_no_wifi", "wifi_off", {}, "press_wifi", "led_wifi", {"led_wifi": "green"}),
    Unfixed("paper_jam", "printer_paper_jam", "paper_jam", OPEN_COVER, "remove_paper", "paper_jam",
            {"paper_jam": "clear"}, (OPEN_COVER,)),
    Unfixed("cover_open", "printer_paper_jam", "cover_open", {}, "close_cover", "cover_front",
            {"cover_front": "closed", "led_status": "green"}, (OPEN_COVER, CLEAR_PAPER)),
    # The twin shows amber while the tray is out (product.yaml). The step also needs the status light green,
    # and a clip filmed at the tray (front) cannot read that 5 mm light on top: its control checks the tray.
    Unfixed("tray_open", "printer_paper_jam", None, {"tray_paper": "open", "led_status": "amber"}, "close_tray",
            "tray_paper", {"tray_paper": "closed", "led_status": "green"},
            (OPEN_COVER, CLEAR_PAPER, CLOSE_COVER, OPEN_TRAY, LOAD_PAPER), control_moves_on=False),
    Unfixed("tray_empty", "printer_paper_jam", "tray_empty", OPEN_TRAY, "check_paper", "tray_media",
            {"tray_media": "loaded"}, (OPEN_COVER, CLEAR_PAPER, CLOSE_COVER, OPEN_TRAY)),
)}

# (condition, case, clip index under SEED): one router and one printer case under every condition, the next
# case in each product's cycle, at index 200 + 2 * row + slot + 32 * k for the first k whose clip the shipped
# pipeline found the device in (MIN_SEEN frames) when the table was made; where a case had none in six, the next
# case in the cycle (and where no case had, a larger k: plain_surface's printer). `fixlens vision robustness`
# uses indices 0-13.
PLAN: list[tuple[str, str, int]] = [
    ("as_rendered", "wan_unplugged", 200), ("as_rendered", "paper_jam", 201),
    ("warm_cast", "wan_unplugged_done_pressed", 202), ("warm_cast", "cover_open", 235),
    ("cool_cast", "wifi_off", 204), ("cool_cast", "cover_open", 205),
    ("mild_cast", "wan_unplugged", 206), ("mild_cast", "tray_empty", 239),
    ("real_photo_background", "wan_unplugged_done_pressed", 240), ("real_photo_background", "paper_jam", 241),
    ("hand", "wifi_off", 210), ("hand", "cover_open", 211),
    ("low_light", "wan_unplugged", 212), ("low_light", "tray_open", 213),
    ("glare", "wan_unplugged_done_pressed", 214), ("glare", "tray_empty", 215),
    ("small_device", "wifi_off", 216), ("small_device", "paper_jam", 249),
    ("led_bloom", "wan_unplugged", 218), ("led_bloom", "cover_open", 219),
    ("motion_blur", "wan_unplugged_done_pressed", 220), ("motion_blur", "tray_open", 221),
    ("defocus", "wifi_off", 222), ("defocus", "tray_empty", 223),
    ("plain_surface", "wan_unplugged", 224), ("plain_surface", "paper_jam", 641),
    ("portrait", "wan_unplugged_done_pressed", 226), ("portrait", "cover_open", 227),
    ("wide_fov", "wifi_off", 228), ("wide_fov", "tray_open", 229),
    ("jpeg_low", "wan_unplugged", 230), ("jpeg_low", "tray_empty", 231),
]
# Clips on which, when they were chosen, an engine fed the smoothed states (unverified) left the step and the
# verifier held it: with verification bypassed, these fail.
HARD: list[tuple[str, str, int]] = [
    ("hand", "wan_unplugged", 216), ("hand", "wifi_off", 217), ("glare", "wan_unplugged", 206),
    ("glare", "tray_open", 200), ("glare", "tray_open", 211), ("cool_cast", "tray_open", 206),
    # Known false verifications until the detector was fine-tuned on relabelled data (model card): held now.
    ("hand", "wan_unplugged", 218), ("hand", "tray_open", 207),
    # Verified when the unlit Wi-Fi LED was read green in nine frames in a row under the hand, with the
    # smoothing folding the sure 'off' reads after them into a green blink: held since the round-8 networks.
    ("hand", "wifi_off", 225),
]
CONTROL_INDEX = 300


@dataclass
class Replay:
    """What one clip did to a session."""

    case: Unfixed
    condition: str
    index: int
    moved: list[tuple[float, str]] = field(default_factory=list)  # (seconds into the clip, step entered)
    outcome: str | None = None
    seen: int = 0  # frames where the pipeline found the product and its pose
    verified_fixed: int = 0  # frames where the verifier reported the filmed part in its fixed state
    unverified_moved: list[tuple[float, str]] = field(default_factory=list)  # the same, fed the smoothed states
    reads: list[str] = field(default_factory=list)  # per frame: the part raw > smoothed > verified [others]

    def explain(self) -> str:
        return (f"{self.case.name} under {self.condition} (clip {self.index}): step {self.case.step!r} left for "
                f"{self.moved}, outcome {self.outcome} (fed smoothed states, unverified: left for "
                f"{self.unverified_moved}); "
                f"product seen in {self.seen}/{len(self.reads)} frames; "
                f"{self.case.part} per frame (raw > smoothed > verified [the step's other parts, verified]): "
                f"{' | '.join(self.reads)}")


def _short(state: PartState | None, *, size: bool = False) -> str:
    if state is None or state.state is None:
        return "-" if state is None or state.reason is None else state.reason
    return f"{state.state}{state.confidence:.2f}" + (f"@{state.size_px:.0f}px" if size else "")


def walk(engine: Engine, path: tuple[Move, ...], now: float) -> float:
    """Take ``engine`` along ``path`` (the customer's earlier steps); returns the clock after the last move."""
    for move in path:
        before = engine.step_id
        if isinstance(move, UserEvent):
            engine.handle(move, now)
        else:
            seen = Observation(engine.product.id, {p: PartObservation(s) for p, s in move.items()})
            for _ in range(round(10.0 / WALK_STEP_S)):  # longer than any hold in the library
                now += WALK_STEP_S
                engine.handle(seen, now)
                if engine.step_id != before:
                    break
        assert engine.step_id != before, f"{move} did not move the engine on from {before!r}"
    return now


def replay(pipeline: Pipeline, renderer: Any, photos: list[np.ndarray], case: Unfixed, condition: str,
           index: int, *, fixed: bool = False) -> Replay:
    """Film ``case`` (fixed or not) under ``condition`` as clip ``index`` and run it through a live session's
    frame path into the engine of ``case.scene``, standing on ``case.step``."""
    scene, product = LIBRARY.get(case.scene), CATALOG.get(case.product)
    # A second engine gets the smoothed states, as it would without verification: where it moves on and the
    # real one does not, the verifier is what held the step.
    engine, unverified = Engine(scene, product), Engine(scene, product)
    engine.start(0.0)
    unverified.start(0.0)
    start = walk(engine, case.path, 0.0) + 1.0  # the camera turns to the part a second after the step shows
    walk(unverified, case.path, 0.0)
    assert engine.step_id == case.step, f"the path of {case.name} ends on {engine.step_id!r}, not {case.step!r}"
    cond, states = cn.CONDITIONS[condition], case.states(fixed=fixed)
    clip = cn.clip_scene(cond, product, case.part, states[case.part], SEED, index, CLIP_FRAMES, CLIP_FPS, photos)
    # The whole fault (the WAN port and its light), not only the filmed part.
    clip = cn.Clip(clip.product, clip.part, states, clip.camera, clip.lighting, clip.background, clip.poses)
    run = Replay(case, condition, index)
    others = sorted({leaf.part for w in scene.steps[case.step].when for leaf in leaves(w.condition)} - {case.part})

    def feed(event: Observation | Tick, now: float, smoothed_event: Observation | Tick | None = None) -> None:
        if not engine.finished:
            effects: list[Effect] = engine.handle(event, now)
            run.moved += [(round(now - start, 3), e.step_id) for e in effects if isinstance(e, ShowStep)]
            run.outcome = next((e.outcome for e in effects if isinstance(e, End)), run.outcome)
        if not unverified.finished:
            effects = unverified.handle(smoothed_event or event, now)
            run.unverified_moved += [(round(now - start, 3), e.step_id) for e in effects if isinstance(e, ShowStep)]

    # ar_server/session/live.py, LiveSession._frames, _follow and _observed, on the frames' clock.
    smoother, verifier = TemporalSmoother(), StepVerifier()
    tracker, smoothed_product = Tracker(), None
    now = start
    for frame in clip_frames(renderer, cond, clip, SEED, index, CLIP_FPS):
        now = start + frame.ts
        obs = pipeline.process(FrameInput(frame.jpeg, frame.index, frame.ts, clip.camera,
                                          track=tracker.track_for(frame.ts)))
        tracker.follow(obs, frame.ts)
        if obs.product_id is not None and obs.product_id != smoothed_product:
            smoother.reset()
            verifier.reset()
            smoothed_product = obs.product_id
        smoothed = smoother.update(now * 1000.0, obs.parts if obs.product_id is not None else {})
        verified = verifier.update(now * 1000.0, obs, smoothed)
        run.seen += obs.product_id == product.id and obs.pose is not None
        got = verified.get(case.part) if smoothed_product == product.id else None
        run.verified_fixed += got is not None and got.state == case.fixed[case.part]
        also = [f"{p}={_short(verified[p])}" for p in others if p in verified and verified[p].state is not None]
        run.reads.append(f"{_short(obs.parts.get(case.part), size=True)}>{_short(smoothed.get(case.part))}>"
                         f"{_short(verified.get(case.part))}" + (f" [{' '.join(also)}]" if also else ""))
        feed(scene_observation(obs.product_id, verified, CATALOG), now,
             scene_observation(obs.product_id, smoothed, CATALOG))
        feed(Tick(), now + 0.5 / CLIP_FPS)
    # No frames after the clip, but the server keeps ticking: a hold that began on the last frames completes.
    tail = now + max(w.hold for w in scene.steps[case.step].when) + 2 * TICK_S
    while now < tail:
        now += TICK_S
        feed(Tick(), now)
    return run


# ---- fixtures -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pipeline(weights: Path) -> Pipeline:
    return Pipeline(weights, backend="onnx")


@pytest.fixture(scope="module")
def renderer() -> Iterator[Any]:
    from product_models.render import Renderer

    with Renderer(640, 480) as r:
        yield r


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    """The real photos behind ``real_photo_background`` clips, RGB, as the robustness run loads them."""
    from vision.training.photos import real_photos

    return [np.ascontiguousarray(img[:, :, ::-1]) for _, img in real_photos()]


# ---- the plan -----------------------------------------------------------------------------------------

def test_the_plan_covers_every_condition_both_products_every_case_and_held_out_seeds() -> None:
    assert {condition for condition, _, _ in PLAN} == set(cn.CONDITIONS)
    assert {case for _, case, _ in PLAN} == set(CASES)
    for condition in cn.CONDITIONS:
        assert sorted(CASES[c].product for n, c, _ in PLAN if n == condition) == sorted(CATALOG.products)
    assert not training_seed(SEED) and 7000 <= SEED < 8000
    assert len(set(PLAN + HARD)) == len(PLAN + HARD)
    for condition in cn.CONDITIONS:  # both products are filmed under every condition
        assert {CASES[c].product for n, c, _ in _unfixed_clips(condition)} == set(CATALOG.products), condition


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_on_the_true_states_only_the_fix_moves_the_step_on(case: Unfixed) -> None:
    """A perfect reader of the unfixed device leaves the step where it is; of the fixed one, moves it on."""
    when = LIBRARY.get(case.scene).steps[case.step].when
    assert not any(holds(w.condition, case.states(fixed=False)) for w in when)
    assert any(holds(w.condition, case.states(fixed=True)) for w in when)


# ---- the clips ----------------------------------------------------------------------------------------

def _unfixed_clips(condition: str) -> list[tuple[str, str, int]]:
    """``condition``'s rows of PLAN and HARD."""
    return [row for row in [*PLAN, *HARD] if row[0] == condition]


@pytest.mark.parametrize("condition", list(cn.CONDITIONS))
def test_an_unfixed_device_never_verifies_the_step_that_waits_for_the_fix(
        condition: str, pipeline: Pipeline, renderer: Any, photos: list[np.ndarray]) -> None:
    runs = [replay(pipeline, renderer, photos, CASES[case], condition, index)
            for _, case, index in _unfixed_clips(condition)]
    wrong = [run.explain() for run in runs if run.moved or run.outcome is not None]
    assert not wrong, "\n".join(wrong)
    assert max(run.seen for run in runs) >= MIN_SEEN, (
        f"no clip under {condition} shows the device in {MIN_SEEN} frames, so it tests nothing; add one that "
        "does:\n" + "\n".join(run.explain() for run in runs))


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_control_the_fixed_device_is_verified_and_moves_the_same_step_on(
        case: Unfixed, pipeline: Pipeline, renderer: Any, photos: list[np.ndarray]) -> None:
    run = replay(pipeline, renderer, photos, case, "as_rendered", CONTROL_INDEX, fixed=True)
    assert run.verified_fixed > 0, run.explain()
    if case.control_moves_on:
        targets = {w.goto for w in LIBRARY.get(case.scene).steps[case.step].when}
        assert run.moved and run.moved[0][1] in targets, run.explain()
