"""Rest-pose geometry of any ``model.glb``, read with numpy alone: every node of the default scene with its
own triangles in the product frame, grouped the way the renderer treats part nodes.

A self-contained glTF 2.0 binary is read: the GLB's BIN chunk, float positions (any byteStride), node
``matrix`` or translation/rotation/scale, triangle primitives. Sparse accessors, external buffers and
quantized positions raise ValueError naming the accessor; nothing here needs Panda3D.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from product_models.catalog import Product
from product_models.modeling.gltf import read_glb_json

_COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_TRIANGLES = 4


@dataclass
class ModelNode:
    """One glTF node of the default scene. ``points``: (n, 3) product-frame metres of its own mesh (finite
    vertices only); ``triangles``: (m, 3, 3) of them. ``problems``: what was wrong with its mesh."""

    index: int
    name: str
    parent: int | None
    children: list[int]
    points: np.ndarray
    triangles: np.ndarray
    problems: list[tuple[str, str, str, str]]  # (finding code, message, expected, got)


def _accessor(doc: dict, binary: bytes, index: int) -> np.ndarray:
    """(count, width) array of accessor ``index``; ValueError naming it when it does not fit its buffer."""
    acc = doc["accessors"][index]
    dtype = np.dtype(_COMPONENTS[acc["componentType"]]).newbyteorder("<")
    width, count = _WIDTHS[acc["type"]], int(acc["count"])
    if "sparse" in acc or "bufferView" not in acc:
        raise ValueError(f"accessor {index} is sparse or has no bufferView (not supported)")
    view = doc["bufferViews"][acc["bufferView"]]
    if view.get("buffer", 0) != 0 or "uri" in doc["buffers"][view.get("buffer", 0)]:
        raise ValueError(f"accessor {index} reads an external buffer; a model.glb must be self-contained")
    start = int(view.get("byteOffset", 0)) + int(acc.get("byteOffset", 0))
    stride = int(view.get("byteStride") or dtype.itemsize * width)
    end = start + stride * max(count - 1, 0) + dtype.itemsize * width
    if count and (end > int(view.get("byteOffset", 0)) + int(view["byteLength"]) or end > len(binary)):
        raise ValueError(f"accessor {index} runs past the end of its buffer view")
    if not count:
        return np.zeros((0, width), dtype)
    return np.ndarray((count, width), dtype, buffer=binary, offset=start, strides=(stride, dtype.itemsize)).copy()


def _local_matrix(node: dict) -> np.ndarray:
    """(4, 4) column-vector transform of a glTF node (``matrix``, or translation x rotation x scale)."""
    if "matrix" in node:
        return np.asarray(node["matrix"], dtype=float).reshape(4, 4).T  # glTF stores column-major
    x, y, z, w = node.get("rotation", (0.0, 0.0, 0.0, 1.0))
    rot = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                    [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                    [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    m = np.eye(4)
    m[:3, :3] = rot * np.asarray(node.get("scale", (1.0, 1.0, 1.0)), dtype=float)
    m[:3, 3] = node.get("translation", (0.0, 0.0, 0.0))
    return m


def _mesh_geometry(doc: dict, binary: bytes, mesh_index: int, world: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str, str, str]]]:
    points, triangles, problems = [], [], []
    n_materials = len(doc.get("materials", []))
    # glTF is +y up; the product frame is +z up: product (x, y, z) = glTF (x, -z, y).
    to_product = np.array([[1.0, 0, 0, 0], [0, 0, -1.0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]]) @ world
    for k, prim in enumerate(doc["meshes"][mesh_index].get("primitives", [])):
        material = prim.get("material")
        if material is not None and not 0 <= material < n_materials:
            problems.append(("material-missing", f"primitive {k} uses a material the file does not have",
                             f"a material index below {n_materials}", str(material)))
        pos = _accessor(doc, binary, prim["attributes"]["POSITION"])
        if pos.dtype != np.float32 or pos.shape[1] != 3:
            raise ValueError(f"mesh {mesh_index} primitive {k}: POSITION must be float VEC3")
        pos = pos.astype(float) @ to_product[:3, :3].T + to_product[:3, 3]
        finite = np.isfinite(pos).all(axis=1)
        if not finite.all():
            problems.append(("bad-vertices", f"primitive {k} has NaN or infinite vertex positions",
                             "finite positions", f"{int((~finite).sum())} of {len(pos)} not finite"))
        points.append(pos[finite])
        if prim.get("mode", _TRIANGLES) != _TRIANGLES:
            continue
        idx = (_accessor(doc, binary, prim["indices"]).ravel().astype(np.int64) if "indices" in prim
               else np.arange(len(pos)))
        if len(idx) and (idx.max() >= len(pos) or idx.min() < 0):
            problems.append(("bad-vertices", f"primitive {k} has indices past its vertices",
                             f"indices below {len(pos)}", f"index {int(idx.max())}"))
            continue
        tri = idx[: len(idx) // 3 * 3].reshape(-1, 3)
        tri = tri[finite[tri].all(axis=1)]
        triangles.append(pos[tri])
    return (np.concatenate(points) if points else np.zeros((0, 3)),
            np.concatenate(triangles) if triangles else np.zeros((0, 3, 3)), problems)


def read_model(path: Path) -> dict[str, list[ModelNode]]:
    """Every node of the default scene of ``path`` by name (a name may repeat). ValueError when the file is
    not a usable glTF binary; per-mesh problems go into :attr:`ModelNode.problems`."""
    data = path.read_bytes()
    doc = read_glb_json(data, str(path))
    json_len = struct.unpack_from("<I", data, 12)[0]
    binary = b""
    at = 20 + json_len
    if at + 8 <= len(data):
        bin_len, bin_type = struct.unpack_from("<II", data, at)
        if bin_type == 0x004E4942:
            binary = data[at + 8: at + 8 + bin_len]
    try:
        scenes = doc.get("scenes") or [{"nodes": list(range(len(doc["nodes"])))}]
        roots = scenes[int(doc.get("scene", 0))].get("nodes", [])
        out: dict[str, list[ModelNode]] = {}
        seen: set[int] = set()
        stack = [(int(r), None, np.eye(4)) for r in reversed(roots)]
        while stack:
            index, parent, parent_world = stack.pop()
            if index in seen:
                raise ValueError(f"node {index} appears twice in the scene graph")
            seen.add(index)
            raw = doc["nodes"][index]
            world = parent_world @ _local_matrix(raw)
            if "mesh" in raw:
                points, triangles, problems = _mesh_geometry(doc, binary, int(raw["mesh"]), world)
            else:
                points, triangles, problems = np.zeros((0, 3)), np.zeros((0, 3, 3)), []
            children = [int(c) for c in raw.get("children", [])]
            node = ModelNode(index, str(raw.get("name", f"#{index}")), parent, children, points, triangles, problems)
            out.setdefault(node.name, []).append(node)
            stack += [(c, index, world) for c in reversed(children)]
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"{path}: malformed glTF structure ({type(exc).__name__}: {exc})") from None
    return out


class ModelGeometry:
    """Rest-pose geometry of one model, grouped the way the renderer treats it."""

    def __init__(self, product: Product, nodes: dict[str, list[ModelNode]]) -> None:
        self.nodes = nodes
        self.by_index = {n.index: n for group in nodes.values() for n in group}
        self.part_roots = {p.name: nodes[p.name][0].index for p in product.parts if p.name in nodes}

    def subtree(self, index: int, skip: set[int] = frozenset()) -> list[ModelNode]:
        out, stack = [], [index]
        while stack:
            node = self.by_index[stack.pop()]
            if node.index in skip:
                continue
            out.append(node)
            stack += node.children
        return out

    def part_nodes(self, part: str) -> list[ModelNode]:
        """The part's own geometry: its subtree without ``cable_<part>`` (shown only when plugged) and
        without other parts nested in it."""
        root = self.part_roots[part]
        skip = {n.index for n in self.nodes.get(f"cable_{part}", [])}
        skip |= {i for name, i in self.part_roots.items() if name != part}
        return self.subtree(root, skip)

    def body_points(self) -> np.ndarray:
        inside = {n.index for root in self.part_roots.values() for n in self.subtree(root)}
        chunks = [n.points for n in self.by_index.values() if n.index not in inside]
        return np.concatenate(chunks) if chunks else np.zeros((0, 3))

    def all_triangles(self) -> np.ndarray:
        chunks = [n.triangles for n in self.by_index.values()]
        return np.concatenate(chunks) if chunks else np.zeros((0, 3, 3))


def points_of(nodes: list[ModelNode]) -> np.ndarray:
    return np.concatenate([n.points for n in nodes]) if nodes else np.zeros((0, 3))


def outside_by(point: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Metres from ``point`` (3,) to the box ``lo``..``hi``; 0 inside."""
    return float(np.linalg.norm(np.maximum(0.0, np.maximum(lo - point, point - hi))))


def distance_to_triangles(point: np.ndarray, triangles: np.ndarray) -> float:
    """Metres from ``point`` (3,) to the nearest of ``triangles`` (n, 3, 3); inf when there are none."""
    if not len(triangles):
        return math.inf
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    normal = np.cross(b - a, c - a)
    length = np.linalg.norm(normal, axis=1)
    ok = length > 1e-15
    unit = normal / np.where(ok, length, 1.0)[:, None]
    height = np.einsum("nk,nk->n", point - a, unit)
    foot = point - height[:, None] * unit
    inside = ok.copy()
    for p, q in ((a, b), (b, c), (c, a)):
        inside &= np.einsum("nk,nk->n", np.cross(q - p, foot - p), normal) >= 0
    best = np.where(inside, np.abs(height), np.inf)
    for p, q in ((a, b), (b, c), (c, a)):
        edge = q - p
        t = np.clip(np.einsum("nk,nk->n", point - p, edge) / np.maximum(np.einsum("nk,nk->n", edge, edge), 1e-30),
                    0.0, 1.0)
        best = np.minimum(best, np.linalg.norm(point - (p + t[:, None] * edge), axis=1))
    return float(best.min())
