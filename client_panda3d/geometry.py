"""Low-poly Panda3D geometry for overlays and the guide hand, built from numpy arrays.

Every function here runs on the render thread (``product_models.render_engine.engine().call``). Shapes are
built in a local frame and placed by the caller; units are metres unless a name says otherwise.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

COLOURS: dict[str, tuple[float, float, float]] = {
    "amber": (1.0, 0.72, 0.0),
    "green": (0.15, 0.85, 0.35),
    "red": (1.0, 0.22, 0.2),
    "white": (0.97, 0.97, 0.97),
    "blue": (0.25, 0.6, 1.0),
}
DEFAULT_COLOUR = "amber"


def colour(name: str | None) -> tuple[float, float, float]:
    """RGB 0..1 for a step colour name; unknown names fall back to amber (the scene validator names the
    allowed ones, so an unknown one comes from a newer server)."""
    return COLOURS.get(name or DEFAULT_COLOUR, COLOURS[DEFAULT_COLOUR])


def mesh(name: str, vertices: np.ndarray, triangles: np.ndarray, normals: np.ndarray | None = None) -> Any:
    """A GeomNode NodePath of ``vertices`` (n, 3) and ``triangles`` (m, 3) int indices (both windings drawn
    by the caller with ``setTwoSided`` when needed)."""
    from panda3d.core import Geom, GeomNode, GeomTriangles, GeomVertexData, GeomVertexFormat, NodePath

    fmt = GeomVertexFormat.getV3n3() if normals is not None else GeomVertexFormat.getV3()
    vdata = GeomVertexData(name, fmt, Geom.UH_static)
    vdata.uncleanSetNumRows(len(vertices))
    if normals is not None:
        data = np.hstack([vertices, normals]).astype(np.float32)
    else:
        data = np.asarray(vertices, dtype=np.float32)
    memoryview(vdata.modifyArray(0)).cast("B").cast("f")[:] = data.ravel()
    tris = GeomTriangles(Geom.UH_static)
    tris.setIndexType(Geom.NT_uint32)
    handle = tris.modifyVertices()
    handle.uncleanSetNumRows(len(triangles) * 3)
    memoryview(handle).cast("B").cast("I")[:] = np.asarray(triangles, dtype=np.uint32).ravel()
    geom = Geom(vdata)
    geom.addPrimitive(tris)
    node = GeomNode(name)
    node.addGeom(geom)
    return NodePath(node)


def ring(name: str, radius: float, width: float, segments: int = 48, sweep: float = 1.0) -> Any:
    """A flat annulus in the local x-y plane around the origin (normal +z); ``sweep`` in 0..1 draws only
    that fraction of the circle (a progress arc), starting at +y and going clockwise seen from +z."""
    sweep = min(max(sweep, 0.0), 1.0)
    n = max(2, int(segments * sweep) + 1)
    angles = math.pi / 2 - np.linspace(0.0, 2 * math.pi * sweep, n)
    inner, outer = radius - width / 2, radius + width / 2
    ring_pts = []
    for a in angles:
        ring_pts += [(inner * math.cos(a), inner * math.sin(a), 0.0), (outer * math.cos(a), outer * math.sin(a), 0.0)]
    tris = []
    for i in range(n - 1):
        a, b, c, d = 2 * i, 2 * i + 1, 2 * i + 2, 2 * i + 3
        tris += [(a, b, d), (a, d, c)]
    return mesh(name, np.array(ring_pts), np.array(tris))


def disc(name: str, radius: float, segments: int = 32) -> Any:
    """A filled disc in the local x-y plane (normal +z)."""
    pts = [(0.0, 0.0, 0.0)] + [(radius * math.cos(a), radius * math.sin(a), 0.0)
                               for a in np.linspace(0, 2 * math.pi, segments, endpoint=False)]
    tris = [(0, 1 + i, 1 + (i + 1) % segments) for i in range(segments)]
    return mesh(name, np.array(pts), np.array(tris))


def prism(name: str, profile: np.ndarray, z0: float, z1: float, radii: tuple[float, float] = (1.0, 1.0)) -> Any:
    """A closed solid along local +z from ``z0`` to ``z1`` whose cross-section is ``profile`` (k, 2), scaled
    by ``radii[0]`` at z0 and ``radii[1]`` at z1 (a cone when one is 0). Flat-shaded with normals."""
    k = len(profile)
    verts, norms, tris = [], [], []

    def quad(p: list[np.ndarray]) -> None:
        nrm = np.cross(p[1] - p[0], p[2] - p[0])
        length = np.linalg.norm(nrm)
        nrm = nrm / length if length > 1e-12 else np.array([0.0, 0.0, 1.0])
        base = len(verts)
        for q in p:
            verts.append(q)
            norms.append(nrm)
        if len(p) == 4:
            tris.extend([(base, base + 1, base + 2), (base, base + 2, base + 3)])
        else:
            tris.append((base, base + 1, base + 2))

    bottom = [np.array([x * radii[0], y * radii[0], z0]) for x, y in profile]
    top = [np.array([x * radii[1], y * radii[1], z1]) for x, y in profile]
    for i in range(k):
        j = (i + 1) % k
        quad([bottom[i], bottom[j], top[j], top[i]])
    c0, c1 = np.array([0.0, 0.0, z0]), np.array([0.0, 0.0, z1])
    for i in range(k):
        j = (i + 1) % k
        quad([c0, bottom[j], bottom[i]])
        quad([c1, top[i], top[j]])
    return mesh(name, np.array(verts), np.array(tris), np.array(norms))


def circle_profile(segments: int = 12) -> np.ndarray:
    """(segments, 2) unit circle, counter-clockwise."""
    a = np.linspace(0, 2 * math.pi, segments, endpoint=False)
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def box(name: str, size: tuple[float, float, float]) -> Any:
    """An axis-aligned box centred on the origin, ``size`` = (x, y, z) metres."""
    sx, sy, sz = size[0] / 2, size[1] / 2, size[2] / 2
    profile = np.array([(-sx, -sy), (sx, -sy), (sx, sy), (-sx, sy)])
    return prism(name, profile, -sz, sz)


def arrow(name: str, length: float, radius: float) -> Any:
    """A 3-D arrow along local +z from 0 to ``length`` with its head at +z."""
    from panda3d.core import NodePath

    root = NodePath(name)
    head = min(length * 0.4, radius * 5)
    prism("shaft", circle_profile(10) * radius, 0.0, length - head).reparentTo(root)
    prism("head", circle_profile(12) * radius * 2.6, length - head, length, radii=(1.0, 0.0)).reparentTo(root)
    return root


def frame_matrix(origin: np.ndarray, z_axis: np.ndarray, up_hint: np.ndarray | None = None) -> Any:
    """LMatrix4 whose local +z is ``z_axis`` (unit) and origin ``origin``, both in the parent frame."""
    from panda3d.core import LMatrix4

    z = np.asarray(z_axis, dtype=float)
    z = z / np.linalg.norm(z)
    hint = np.array([0.0, 0.0, 1.0]) if up_hint is None else np.asarray(up_hint, dtype=float)
    if abs(float(np.dot(hint, z))) > 0.95:
        hint = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(hint, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3], m[3, :3] = x, y, z, origin  # Panda: row-vector, rows are axis images
    return LMatrix4(*m.ravel().tolist())


def matrix4(m: np.ndarray) -> Any:
    """LMatrix4 of a column-vector (4, 4) numpy transform."""
    from panda3d.core import LMatrix4

    return LMatrix4(*np.asarray(m, dtype=float).T.ravel().tolist())


def overlay_style(node: Any, rgb: tuple[float, float, float], alpha: float, sort: int) -> None:
    """Unlit, translucent, drawn over the camera image in a fixed order (later ``sort`` on top)."""
    from panda3d.core import TransparencyAttrib

    node.setColor(rgb[0], rgb[1], rgb[2], alpha)
    node.setLightOff(10)
    node.setTwoSided(True)
    node.setTransparency(TransparencyAttrib.MAlpha)
    node.setDepthWrite(False)
    node.setDepthTest(False)
    node.setBin("fixed", sort)


# DejaVu Sans 2.37 (Bitstream Vera + Arev licence, client_panda3d/fonts/LICENSE), shipped with the package
# because Panda3D's built-in font is ASCII only and German or Spanish steps need ä ö ü ß ñ é (and more).
FONT_DIR = Path(__file__).resolve().parent / "fonts"
FONT_FILES = {"regular": "DejaVuSans.ttf", "bold": "DejaVuSans-Bold.ttf"}

_font_cache: dict[str, Any] = {}


def font_path(bold: bool = False) -> Path:
    """The bundled UI font file (DejaVu Sans, Latin, Greek and Cyrillic). Raises ``ClientError`` when the
    install lacks it, rather than falling back to Panda3D's ASCII-only font and mangling accented text."""
    from client_panda3d.errors import ClientError

    path = FONT_DIR / FONT_FILES["bold" if bold else "regular"]
    if not path.is_file():
        raise ClientError(f"the client's UI font {path} is missing: the fixlens install is incomplete "
                          "(expected client_panda3d/fonts/ as package data; reinstall fixlens[client])")
    return path


def ui_font(bold: bool = False) -> Any:
    """The bundled UI font as a Panda3D ``TextFont`` (loaded once per weight, on the render thread)."""
    from panda3d.core import Filename

    from client_panda3d.errors import ClientError
    from product_models.render_engine import engine

    key = "bold" if bold else "regular"
    if key not in _font_cache:
        path = font_path(bold)
        font = engine().base.loader.loadFont(Filename.fromOsSpecific(str(path)).getFullpath(), pixelsPerUnit=48)
        if font is None or not font.isValid():
            raise ClientError(f"Panda3D could not load the UI font {path} (expected a TrueType file)")
        _font_cache[key] = font
    return _font_cache[key]
