"""Pinhole camera model and product pose, in OpenCV's conventions. Pure numpy.

Conventions, shared by the renderer, the twin's virtual camera and vision:
- Camera frame: x right, y down, z forward (OpenCV). Pixel (0, 0) is the *centre* of the top-left pixel,
  so a point at pixel (u, v) lies in column round(u), row round(v).
- ``Pose`` maps product-frame points (metres) into the camera frame: ``X_cam = R @ X_product + t``.
- ``CameraIntrinsics`` has no distortion: the renderer and the default phone model are distortion-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_HFOV_DEG = 63.0  # a typical phone main camera in 4:3 video mode; used when a client sends none


@dataclass(frozen=True)
class CameraIntrinsics:
    fx: float  # pixels
    fy: float  # pixels
    cx: float  # pixels
    cy: float  # pixels
    width: int  # pixels
    height: int  # pixels

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float = DEFAULT_HFOV_DEG) -> CameraIntrinsics:
        """Square pixels, principal point at the image centre, horizontal field of view ``hfov_deg``."""
        if not (0 < hfov_deg < 179):
            raise ValueError(f"hfov_deg must be in (0, 179), got {hfov_deg}")
        f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(f, f, (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height))

    @property
    def matrix(self) -> np.ndarray:
        """(3, 3) float64 K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def validate(self) -> None:
        """Raise ValueError naming the bad field if any value is not finite and positive where needed."""
        for name in ("fx", "fy", "cx", "cy"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"camera intrinsics field {name!r} must be finite, got {value}")
        for name in ("fx", "fy"):
            if getattr(self, name) <= 0:
                raise ValueError(f"camera intrinsics field {name!r} must be > 0, got {getattr(self, name)}")
        if not (0 < self.width <= 16384 and 0 < self.height <= 16384):
            raise ValueError(f"camera size must be within 1..16384 pixels, got {self.width}x{self.height}")


@dataclass(frozen=True)
class Pose:
    """Rigid transform product -> camera. ``R``: (3, 3) float64 rotation; ``t``: (3,) float64 metres."""

    R: np.ndarray
    t: np.ndarray

    @classmethod
    def look_at(cls, eye: np.ndarray | tuple[float, float, float],
                target: np.ndarray | tuple[float, float, float] = (0.0, 0.0, 0.0),
                up: np.ndarray | tuple[float, float, float] = (0.0, 0.0, 1.0), roll_deg: float = 0.0) -> Pose:
        """A camera at ``eye`` (product frame, metres) looking at ``target``, ``up`` pointing up on screen."""
        eye_v = np.asarray(eye, dtype=float)
        z = np.asarray(target, dtype=float) - eye_v
        z /= np.linalg.norm(z)
        x = np.cross(z, np.asarray(up, dtype=float))
        if np.linalg.norm(x) < 1e-9:  # looking straight along `up`: pick any sideways axis
            x = np.cross(z, np.array([0.0, 1.0, 0.0]))
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        R = np.stack([x, y, z])  # rows: camera axes in product coordinates
        if roll_deg:
            c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
            R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ R
        return cls(R, -R @ eye_v)

    @classmethod
    def orbit(cls, yaw_deg: float, pitch_deg: float, distance: float,
              target: tuple[float, float, float] = (0.0, 0.0, 0.0), roll_deg: float = 0.0) -> Pose:
        """Camera on a sphere around ``target``. yaw 0 = in front (on -y), yaw 90 = on the right (+x);
        pitch > 0 looks down from above. ``distance`` in metres."""
        yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
        offset = np.array([math.sin(yaw) * math.cos(pitch), -math.cos(yaw) * math.cos(pitch), math.sin(pitch)])
        eye = np.asarray(target, dtype=float) + distance * offset
        return cls.look_at(eye, target, roll_deg=roll_deg)

    @property
    def camera_position(self) -> np.ndarray:
        """(3,) metres: the camera centre in the product frame."""
        return -self.R.T @ self.t

    def transform(self, points: np.ndarray) -> np.ndarray:
        """(n, 3) product-frame metres -> (n, 3) camera-frame metres."""
        return np.asarray(points, dtype=float) @ self.R.T + self.t

    def as_matrix(self) -> np.ndarray:
        """(4, 4) float64 product -> camera."""
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = self.R, self.t
        return m


def project(points: np.ndarray, pose: Pose, camera: CameraIntrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Project product-frame points. Returns ``uv``: (n, 2) float64 pixels and ``depth``: (n,) metres
    along the optical axis (<= 0 means behind the camera; its uv is then meaningless)."""
    pc = pose.transform(np.atleast_2d(points))
    z = pc[:, 2]
    safe = np.where(np.abs(z) < 1e-12, 1e-12, z)
    u = camera.fx * pc[:, 0] / safe + camera.cx
    v = camera.fy * pc[:, 1] / safe + camera.cy
    return np.stack([u, v], axis=1), z
