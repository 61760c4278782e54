"""Triangle meshes built from a few primitives, in the product frame (metres, +z up).

Every primitive writes flat-shaded faces with outward normals and counter-clockwise winding seen from
outside, which is what glTF expects. Geometry is deterministic: the same calls give the same bytes.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from product_models.catalog import face_frame

Vec3 = tuple[float, float, float]


@dataclass
class Mesh:
    """Flat-shaded triangles of one material. ``positions``/``normals``: (n, 3) metres/unit; ``uvs``: (n, 2)."""

    positions: list[Vec3] = field(default_factory=list)
    normals: list[Vec3] = field(default_factory=list)
    uvs: list[tuple[float, float]] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)

    def polygon(self, points: list[Vec3], uvs: list[tuple[float, float]] | None = None) -> None:
        """A planar convex polygon (counter-clockwise seen from its front side), fanned into triangles."""
        pts = np.asarray(points, dtype=float)
        normal = np.cross(pts[1] - pts[0], pts[2] - pts[0])
        for i in range(3, len(pts)):  # the first three may be collinear in a degenerate fan; use the best
            cand = np.cross(pts[1] - pts[0], pts[i] - pts[0])
            if np.linalg.norm(cand) > np.linalg.norm(normal):
                normal = cand
        normal = normal / max(np.linalg.norm(normal), 1e-12)
        base = len(self.positions)
        n = (float(normal[0]), float(normal[1]), float(normal[2]))
        for i, p in enumerate(points):
            self.positions.append((float(p[0]), float(p[1]), float(p[2])))
            self.normals.append(n)
            self.uvs.append(uvs[i] if uvs is not None else (0.0, 0.0))
        for i in range(1, len(points) - 1):
            self.indices += [base, base + i, base + i + 1]

    def extend(self, other: Mesh) -> None:
        base = len(self.positions)
        self.positions += other.positions
        self.normals += other.normals
        self.uvs += other.uvs
        self.indices += [i + base for i in other.indices]

    def transformed(self, matrix: np.ndarray) -> Mesh:
        """A copy moved by a (4, 4) column-vector transform."""
        pos = np.asarray(self.positions, dtype=float).reshape(-1, 3)
        nrm = np.asarray(self.normals, dtype=float).reshape(-1, 3)
        pos = pos @ matrix[:3, :3].T + matrix[:3, 3]
        nrm = nrm @ matrix[:3, :3].T
        return Mesh([tuple(map(float, p)) for p in pos], [tuple(map(float, n)) for n in nrm],
                    list(self.uvs), list(self.indices))

    @property
    def empty(self) -> bool:
        return not self.indices


def box(lo: Vec3, hi: Vec3, bevel: float = 0.0, bevel_bottom: bool = False) -> Mesh:
    """Axis-aligned box from corner ``lo`` to ``hi``; ``bevel`` (metres) chamfers the top edges (and the
    bottom ones too when ``bevel_bottom``) and the vertical edges, so a housing does not look like a brick."""
    x0, y0, z0 = lo
    x1, y1, z1 = hi
    b = min(bevel, (x1 - x0) / 3, (y1 - y0) / 3, (z1 - z0) / 3)
    m = Mesh()
    if b <= 0:
        v = [(x0, y0, z0), (x1, y0, z0), (x1, y1, z0), (x0, y1, z0),
             (x0, y0, z1), (x1, y0, z1), (x1, y1, z1), (x0, y1, z1)]
        for f in ((0, 3, 2, 1), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7)):
            m.polygon([v[i] for i in f])
        return m
    # Octagonal cross-section (vertical edges chamfered) extruded between rings at each height level.
    def ring(z: float, inset: float) -> list[Vec3]:
        c = b + inset * 0.4142  # tan(22.5 deg): keeps the chamfer faces at 45 degrees when inset
        return [(x0 + c, y0 + inset, z), (x1 - c, y0 + inset, z), (x1 - inset, y0 + c, z),
                (x1 - inset, y1 - c, z), (x1 - c, y1 - inset, z), (x0 + c, y1 - inset, z),
                (x0 + inset, y1 - c, z), (x0 + inset, y0 + c, z)]

    levels: list[list[Vec3]] = []
    if bevel_bottom:
        levels.append(ring(z0, b))
        levels.append(ring(z0 + b, 0.0))
    else:
        levels.append(ring(z0, 0.0))
    levels.append(ring(z1 - b, 0.0))
    levels.append(ring(z1, b))
    m.polygon(list(reversed(levels[0])))  # bottom, facing down
    for lower, upper in itertools.pairwise(levels):
        for i in range(8):
            j = (i + 1) % 8
            m.polygon([lower[i], lower[j], upper[j], upper[i]])
    m.polygon(levels[-1])  # top
    return m


def _unit(vector: Vec3) -> np.ndarray:
    a = np.asarray(vector, dtype=float)
    return a / np.linalg.norm(a)


def _ring(center: np.ndarray, axis: np.ndarray, radius: float, segments: int) -> list[Vec3]:
    """``segments`` points on a circle of ``radius`` around ``center`` (3,) in the plane normal to the unit
    vector ``axis`` (3,), counter-clockwise seen from the tip of ``axis``."""
    ref = np.array([0.0, 0.0, 1.0]) if abs(axis[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(axis, ref)
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    return [tuple(center + radius * (math.cos(2 * math.pi * i / segments) * u
                                     + math.sin(2 * math.pi * i / segments) * v)) for i in range(segments)]


def cylinder(center: Vec3, axis: Vec3, radius: float, length: float, segments: int = 16,
             caps: bool = True) -> Mesh:
    """A prism of ``segments`` sides around ``axis`` from ``center`` to ``center + axis * length``."""
    a = _unit(axis)
    c0 = np.asarray(center, dtype=float)
    r0 = _ring(c0, a, radius, segments)
    r1 = _ring(c0 + a * length, a, radius, segments)
    m = Mesh()
    for i in range(segments):
        j = (i + 1) % segments
        m.polygon([r0[i], r0[j], r1[j], r1[i]])
    if caps:
        m.polygon(list(reversed(r0)))
        m.polygon(r1)
    return m


def disc(center: Vec3, normal: Vec3, radius: float, segments: int = 20) -> Mesh:
    """A flat disc facing ``normal``."""
    n = _unit(normal)
    pts = _ring(np.asarray(center, dtype=float), n, radius, segments)
    m = Mesh()
    m.polygon(pts)
    if np.dot(np.asarray(m.normals[0]), n) < 0:
        m = Mesh()
        m.polygon(list(reversed(pts)))
    return m


def rect(center: Vec3, facing: str, width: float, height: float, lift: float = 0.0,
         uv: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)) -> Mesh:
    """A rectangle on a product face, ``lift`` metres proud of ``center`` along the face normal.
    ``uv`` = (u0, v0, u1, v1): texture coordinates of the bottom-left and top-right corners."""
    r, u, n = face_frame(facing)
    c = np.asarray(center, dtype=float) + n * lift
    hw, hh = width / 2, height / 2
    pts = [c - r * hw - u * hh, c + r * hw - u * hh, c + r * hw + u * hh, c - r * hw + u * hh]
    u0, v0, u1, v1 = uv
    m = Mesh()
    m.polygon([tuple(p) for p in pts], [(u0, v0), (u1, v0), (u1, v1), (u0, v1)])
    return m


def slab(center: Vec3, facing: str, width: float, height: float, depth: float, bevel: float = 0.0) -> Mesh:
    """A box on a product face: ``width`` x ``height`` on the face, sticking out ``depth`` along the normal
    from ``center`` (negative ``depth`` sinks it in)."""
    r, u, n = face_frame(facing)
    c = np.asarray(center, dtype=float)
    corners = [c + sr * r * width / 2 + su * u * height / 2 + sn * n * depth
               for sr in (-1, 1) for su in (-1, 1) for sn in (0, 1)]
    arr = np.array(corners)
    return box(tuple(arr.min(0)), tuple(arr.max(0)), bevel)
