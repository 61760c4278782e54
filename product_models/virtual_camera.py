"""A phone held by a person, looking at a product: a smooth random walk of camera poses, and a virtual
camera that renders a :class:`~product_models.twin.Twin` through it.

The walk, in the product frame (yaw 0 = in front, 90 = on the right, 180 = behind; pitch > 0 = above):

- a *centre* (yaw, pitch) that ``aim(part)`` moves smoothly, at most ``turn_speed_deg_s``, toward a
  viewpoint from which the part faces the camera (``Part.normal``): the back panel for the WAN port;
- around it, a smooth wander of yaw offset, pitch, distance and roll: each a critically damped spring
  driven by white noise (an integrated Ornstein-Uhlenbeck process), so velocity, not only position, is
  continuous; hard limits keep every value inside its range (yaw as an offset from the centre, pitch and
  distance absolute);
- a small high-frequency hand shake (a few sines at 7-13 Hz, amplitude ``shake_px`` pixels).

The walk advances on a fixed grid of ``step_s`` and ``pose_at`` interpolates between grid points, so a
pose depends only on the seed, the time and the ``aim`` calls, not on how often it is sampled.
``pose_at``/``aim`` must be called with non-decreasing times (earlier raises ``ValueError``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import Product

if TYPE_CHECKING:
    from product_models.twin import Twin

# Tuning: how a person moves a phone around a device on a desk.
WANDER_PERIOD_S = 4.0  # natural period of the drift
TURN_SPEED_DEG_S = 90.0  # fastest the person walks around the device when asked to look elsewhere
CENTRE_GAIN = 2.0  # 1/s: how firmly the centre homes in on its target
CENTRE_ACCEL_TAU_S = 0.3  # s: the centre's speed changes this smoothly (no jerks when aim() is called)
LOOK_TAU_S = 0.5  # s: the look-at point follows the aimed part this smoothly
LOOK_BLEND = 0.5  # look halfway between the product's centre and the aimed part: both stay in view
SHAKE_HZ = (7.0, 13.0)
LEAN_MIN_PX = 6.0  # a person leans in until an LED they were asked to watch is about this big on screen
LEAN_TAU_S = 0.8  # s: leaning in and back is this smooth


@dataclass(frozen=True)
class HandheldSample:
    """One camera pose and the walk values that made it."""

    t: float  # seconds
    pose: Pose
    yaw_deg: float  # absolute yaw around the product
    centre_yaw_deg: float  # the walk's centre yaw (what ``aim`` moves)
    pitch_deg: float
    distance: float  # metres from the look-at point
    roll_deg: float
    target: np.ndarray  # (3,) metres, product frame: the look-at point


@dataclass
class _Grid:
    t: float
    walk: np.ndarray  # (4, 2): [yaw offset, pitch offset, distance, roll] x [position, velocity], unitless
    centre: np.ndarray  # (2, 2): [yaw, pitch] x [position, velocity], degrees and deg/s
    target: np.ndarray  # (3,) look-at point, metres
    lean: float = 0.0  # 0..1: blend from the normal distance range to the leaning-in range


class HandheldCamera:
    """Deterministic handheld camera walk around ``product`` (see the module docstring)."""

    def __init__(self, product: Product, camera: CameraIntrinsics, seed: int = 0, *,
                 distance_range: tuple[float, float] | None = None,
                 yaw_range: tuple[float, float] = (-35.0, 35.0),
                 pitch_range: tuple[float, float] = (10.0, 65.0),
                 roll_range: tuple[float, float] = (-6.0, 6.0),
                 shake_px: float = 1.5, start_yaw_deg: float = 0.0, look_at: str | None = None,
                 turn_speed_deg_s: float = TURN_SPEED_DEG_S, step_s: float = 1.0 / 120.0,
                 start_t: float = 0.0) -> None:
        """``distance_range`` (metres) defaults to where the product fills about 35-70 % of the image width;
        ``yaw_range`` is degrees off the centre yaw; ``pitch_range`` and ``roll_range`` are degrees."""
        camera.validate()
        self.product, self.camera = product, camera
        self.centre_point = np.array([0.0, 0.0, product.size_m[2] / 2.0])
        if distance_range is None:
            radius = 0.5 * math.hypot(*product.size_m)
            half_fov = math.atan((camera.width / 2.0) / camera.fx)
            distance_range = (radius / math.tan(0.7 * half_fov), radius / math.tan(0.35 * half_fov))
        for name, (lo, hi), limit in (("distance_range", distance_range, 100.0), ("yaw_range", yaw_range, 180.0),
                                      ("pitch_range", pitch_range, 89.0), ("roll_range", roll_range, 45.0)):
            if not (math.isfinite(lo) and math.isfinite(hi) and -limit <= lo <= hi <= limit):
                raise ValueError(f"{name} must be (low, high) with low <= high within +-{limit}, got {(lo, hi)}")
        if distance_range[0] <= 0:
            raise ValueError(f"distance_range must be > 0 metres, got {distance_range}")
        if not (0 <= shake_px <= 50) or not (turn_speed_deg_s > 0) or not (0 < step_s <= 0.1):
            raise ValueError("need 0 <= shake_px <= 50, turn_speed_deg_s > 0 and 0 < step_s <= 0.1")
        self.distance_range, self.yaw_range = distance_range, yaw_range
        self.pitch_range, self.roll_range = pitch_range, roll_range
        self.shake_px, self.turn_speed_deg_s, self.step_s = shake_px, turn_speed_deg_s, step_s
        self._rng = np.random.default_rng(seed)
        # Hand shake: per camera axis, 3 sines with random frequencies and phases; fixed for the run.
        self._shake_hz = self._rng.uniform(*SHAKE_HZ, size=(2, 3))
        self._shake_phase = self._rng.uniform(0, 2 * math.pi, size=(2, 3))
        self._aim_part: str | None = None
        self._lean_goal: float = 0.0
        self._lean_range: tuple[float, float] | None = None
        self._centre_target = np.array([start_yaw_deg, 0.5 * (pitch_range[0] + pitch_range[1])])
        self._look_goal = self.centre_point.copy()
        if look_at is not None:  # aimed from the start: begin there instead of walking over
            self._set_aim(look_at, start_yaw_deg)
        walk = np.zeros((4, 2))
        walk[:, 0] = self._rng.uniform(-0.5, 0.5, size=4)  # start somewhere inside the ranges, at rest
        start = _Grid(float(start_t), walk, np.stack([self._centre_target, np.zeros(2)], axis=1),
                      self._look_goal.copy())
        self._prev, self._next = start, self._step(start)
        self._last_t = float(start_t)

    # ------------------------------------------------------------------------------------------------

    @property
    def aimed_part(self) -> str | None:
        return self._aim_part

    def aim(self, part_name: str | None, t: float) -> None:
        """From time ``t`` on, move smoothly to a viewpoint where ``part_name`` faces the camera and keep
        it in view (None: back to the product's centre). Unknown parts raise ``CatalogError``."""
        self._check_time(t)
        self._advance_to(t)
        if part_name is None:
            self._aim_part, self._look_goal = None, self.centre_point.copy()
            self._lean_goal = 0.0
        else:
            self._set_aim(part_name, float(self._next.centre[0, 0]))

    def pose_at(self, t: float) -> Pose:
        """The camera pose (product -> camera) at time ``t`` seconds."""
        return self.sample_at(t).pose

    def sample_at(self, t: float) -> HandheldSample:
        """The pose at ``t`` with the walk values behind it."""
        self._check_time(t)
        self._advance_to(t)
        a = (t - self._prev.t) / self.step_s
        walk = (1 - a) * self._prev.walk[:, 0] + a * self._next.walk[:, 0]
        centre = (1 - a) * self._prev.centre[:, 0] + a * self._next.centre[:, 0]
        target = (1 - a) * self._prev.target + a * self._next.target
        (ylo, yhi), (plo, phi) = self.yaw_range, self.pitch_range
        (dlo, dhi), (rlo, rhi) = self.distance_range, self.roll_range
        yaw = centre[0] + _lerp(ylo, yhi, walk[0])
        # Pitch wanders half its range around the centre pitch, then the absolute limits apply.
        pitch = float(np.clip(centre[1] + 0.25 * (phi - plo) * walk[1], plo, phi))
        distance = _lerp(dlo, dhi, walk[2])
        lean = (1 - a) * self._prev.lean + a * self._next.lean
        if lean > 0.0 and self._lean_range is not None:
            distance = (1 - lean) * distance + lean * _lerp(*self._lean_range, walk[2])
        roll = _lerp(rlo, rhi, walk[3])
        pose = Pose.orbit(yaw, pitch, distance, target=tuple(target), roll_deg=roll)
        if self.shake_px > 0:
            amp = self.shake_px / self.camera.fx / math.sqrt(3.0)  # radians per sine: total rms ~ shake_px
            ang = amp * np.sin(2 * math.pi * self._shake_hz * t + self._shake_phase).sum(axis=1)
            pose = Pose(_small_rotation(ang[0], ang[1]) @ pose.R, _small_rotation(ang[0], ang[1]) @ pose.t)
        return HandheldSample(t, pose, yaw, float(centre[0]), pitch, distance, roll, target)

    # ------------------------------------------------------------------------------------------------

    def _check_time(self, t: float) -> None:
        if not math.isfinite(t) or t < self._last_t:
            raise ValueError(f"time must not go back: got t={t}, the camera is at {self._last_t}")
        self._last_t = float(t)

    def _set_aim(self, part_name: str, current_yaw: float) -> None:
        part = self.product.part(part_name)
        nx, ny, nz = part.normal
        plo, phi = self.pitch_range
        if math.hypot(nx, ny) > 0.5:  # a side face: stand in front of it, a little above
            yaw = math.degrees(math.atan2(nx, -ny))
            pitch = float(np.clip(20.0, plo + 0.1 * (phi - plo), phi))
        else:  # top (or bottom) face: stay on this side, look steeply down (or as low as allowed)
            yaw = current_yaw
            pitch = phi - 0.1 * (phi - plo) if nz > 0 else plo
        yaw = current_yaw + ((yaw - current_yaw + 180.0) % 360.0 - 180.0)  # the shorter way round
        self._centre_target = np.array([yaw, pitch])
        self._aim_part = part_name
        self._look_goal = self.centre_point + LOOK_BLEND * (np.asarray(part.anchor) - self.centre_point)
        # To read a small LED, a person steps closer (but not so close the device leaves the picture).
        self._lean_goal, self._lean_range = 0.0, None
        if part.kind == "led":
            near = self.camera.fx * min(part.size_mm) / 1000.0 / LEAN_MIN_PX
            dlo, dhi = self.distance_range
            if near < dhi:
                hi = max(near, 0.75 * dlo)
                self._lean_goal, self._lean_range = 1.0, (0.8 * hi, hi)

    def _advance_to(self, t: float) -> None:
        while self._next.t < t:
            self._prev, self._next = self._next, self._step(self._next)

    def _step(self, g: _Grid) -> _Grid:
        dt = self.step_s
        omega = 2 * math.pi / WANDER_PERIOD_S
        # Critically damped spring with noise: stationary std of position = sigma / sqrt(4 omega^3) = 0.4.
        sigma = 0.4 * math.sqrt(4 * omega**3)
        walk = g.walk.copy()
        noise = self._rng.standard_normal(4)
        walk[:, 1] += (-2 * omega * walk[:, 1] - omega**2 * walk[:, 0]) * dt + sigma * math.sqrt(dt) * noise
        walk[:, 0] += walk[:, 1] * dt
        out = np.abs(walk[:, 0]) > 1.0
        walk[out, 0] = np.sign(walk[out, 0])  # a hand cannot go past the limits: stop and bounce back gently
        walk[out, 1] = -0.3 * walk[out, 1]
        centre = g.centre.copy()
        wanted = np.clip(CENTRE_GAIN * (self._centre_target - centre[:, 0]),
                         -self.turn_speed_deg_s, self.turn_speed_deg_s)
        centre[:, 1] += (wanted - centre[:, 1]) * min(1.0, dt / CENTRE_ACCEL_TAU_S)
        centre[:, 0] += centre[:, 1] * dt
        target = g.target + (self._look_goal - g.target) * min(1.0, dt / LOOK_TAU_S)
        lean = g.lean + (self._lean_goal - g.lean) * min(1.0, dt / LEAN_TAU_S)
        return _Grid(g.t + dt, walk, centre, target, lean)


class VirtualCamera:
    """Renders what a handheld phone sees of a twin: ``capture(now)`` -> (RGB image, ground truth)."""

    def __init__(self, twin: Twin, handheld: HandheldCamera, renderer: Any | None = None, *,
                 lighting: Any = None, background: Any = "room") -> None:
        """``renderer`` is a :class:`product_models.render.Renderer` (one of the camera's size is made on
        first use when None). ``background``: (h, w, 3) uint8 RGB, None for the renderer's plain grey, or
        "room" (default) for a seeded procedural room (:func:`product_models.backdrop.room_backdrop`)."""
        if handheld.product is not twin.product and handheld.product.id != twin.product.id:
            raise ValueError(f"the camera walks around {handheld.product.id!r} but the twin is "
                             f"{twin.product.id!r}")
        self.twin, self.handheld, self.renderer = twin, handheld, renderer
        if isinstance(background, str):
            if background != "room":
                raise ValueError(f"background must be an image, None or 'room', got {background!r}")
            from product_models.backdrop import room_backdrop

            background = room_backdrop(handheld.camera.width, handheld.camera.height, seed=7)
        self.lighting, self.background = lighting, background

    def capture(self, now: float) -> tuple[np.ndarray, Any]:
        """Render the twin's visible states at ``now`` from the handheld pose at ``now``.

        Returns ``image``: (height, width, 3) uint8 RGB and the renderer's ground truth for that frame.
        """
        if self.renderer is None:
            from product_models.render import Renderer  # Panda3D is heavy; only capture needs it

            self.renderer = Renderer(self.handheld.camera.width, self.handheld.camera.height)
        states = self.twin.states(now)
        pose = self.handheld.pose_at(now)
        result = self.renderer.render(self.twin.product, states, pose, self.handheld.camera,
                                      lighting=self.lighting, background=self.background)
        return result.image, result.truth


def _lerp(lo: float, hi: float, unit: float) -> float:
    """Map ``unit`` in [-1, 1] onto [lo, hi]."""
    return float(0.5 * (lo + hi) + 0.5 * (hi - lo) * unit)


def _small_rotation(about_x: float, about_y: float) -> np.ndarray:
    """(3, 3) rotation by ``about_x`` then ``about_y`` radians (camera axes)."""
    cx, sx, cy, sy = math.cos(about_x), math.sin(about_x), math.cos(about_y), math.sin(about_y)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    return ry @ rx
