"""A small, deterministic glTF 2.0 binary (``.glb``) writer for procedural product models.

The models are authored in the product frame (metres, +z up); glTF is +y up, so every position and normal is
written as ``(x, z, -y)``. A glTF loader that converts back to Z-up (panda3d-gltf does) recovers the
product frame exactly. Output is byte-identical for identical input: JSON keys are sorted, floats pass
through float32 once, and nothing time- or machine-dependent is stored.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

import numpy as np

from product_models.modeling.mesh import Mesh

GLB_MAGIC = b"glTF"
_JSON_CHUNK = 0x4E4F534A
_BIN_CHUNK = 0x004E4942
_FLOAT, _USHORT, _UINT = 5126, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


@dataclass(frozen=True)
class Material:
    """PBR metallic-roughness material. Colours are linear RGB(A) in [0, 1]."""

    name: str
    base_color: tuple[float, float, float, float]
    metallic: float = 0.0
    roughness: float = 0.7
    emissive: tuple[float, float, float] = (0.0, 0.0, 0.0)
    texture_png: bytes | None = None  # baseColorTexture (label text); sampled with TEXCOORD_0
    blend: bool = False  # alphaMode BLEND instead of OPAQUE


@dataclass
class Node:
    """A named glTF node. Geometry is given in the product frame; ``meshes`` pairs material names with meshes."""

    name: str
    meshes: list[tuple[str, Mesh]] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)

    def add(self, material: str, mesh: Mesh) -> None:
        """Append ``mesh`` to this node, merging it into an existing primitive of the same material."""
        for mat, existing in self.meshes:
            if mat == material:
                existing.extend(mesh)
                return
        fresh = Mesh()
        fresh.extend(mesh)
        self.meshes.append((material, fresh))

    def child(self, name: str) -> Node:
        node = Node(name)
        self.children.append(node)
        return node

    def walk(self) -> list[Node]:
        out = [self]
        for c in self.children:
            out += c.walk()
        return out


class _Buffer:
    def __init__(self) -> None:
        self.data = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add(self, array: np.ndarray, target: int, component: int, kind: str, bounds: bool = False) -> int:
        while len(self.data) % 4:
            self.data.append(0)
        raw = array.tobytes()
        self.views.append({"buffer": 0, "byteOffset": len(self.data), "byteLength": len(raw), "target": target})
        self.data += raw
        acc: dict = {"bufferView": len(self.views) - 1, "componentType": component, "count": int(array.shape[0]),
                     "type": kind}
        if bounds:
            acc["min"] = [float(v) for v in array.min(axis=0)]
            acc["max"] = [float(v) for v in array.max(axis=0)]
        self.accessors.append(acc)
        return len(self.accessors) - 1

    def add_image(self, png: bytes) -> int:
        while len(self.data) % 4:
            self.data.append(0)
        self.views.append({"buffer": 0, "byteOffset": len(self.data), "byteLength": len(png)})
        self.data += png
        return len(self.views) - 1


def _to_yup(points: list[tuple[float, float, float]]) -> np.ndarray:
    a = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return np.stack([a[:, 0], a[:, 2], -a[:, 1]], axis=1).astype(np.float32)


def write_glb(root: Node, materials: list[Material]) -> bytes:
    """Serialise the node tree under ``root`` (the scene's single root node) with ``materials``."""
    mat_index = {m.name: i for i, m in enumerate(materials)}
    buf = _Buffer()
    gl_materials: list[dict] = []
    images: list[dict] = []
    textures: list[dict] = []
    for m in materials:
        pbr: dict = {"baseColorFactor": [float(c) for c in m.base_color], "metallicFactor": float(m.metallic),
                     "roughnessFactor": float(m.roughness)}
        if m.texture_png is not None:
            images.append({"bufferView": buf.add_image(m.texture_png), "mimeType": "image/png"})
            textures.append({"source": len(images) - 1, "sampler": 0})
            pbr["baseColorTexture"] = {"index": len(textures) - 1}
        entry: dict = {"name": m.name, "pbrMetallicRoughness": pbr, "alphaMode": "BLEND" if m.blend else "OPAQUE"}
        if any(m.emissive):
            entry["emissiveFactor"] = [float(c) for c in m.emissive]
        gl_materials.append(entry)

    nodes: list[dict] = []
    meshes: list[dict] = []

    def emit(node: Node) -> int:
        index = len(nodes)
        entry: dict = {"name": node.name}
        nodes.append(entry)
        prims = []
        for mat_name, mesh in node.meshes:
            if mesh.empty:
                continue
            if mat_name not in mat_index:
                raise ValueError(f"node {node.name!r} uses unknown material {mat_name!r}")
            attrs = {"POSITION": buf.add(_to_yup(mesh.positions), _ARRAY_BUFFER, _FLOAT, "VEC3", bounds=True),
                     "NORMAL": buf.add(_to_yup(mesh.normals), _ARRAY_BUFFER, _FLOAT, "VEC3")}
            if materials[mat_index[mat_name]].texture_png is not None:
                uv = np.asarray(mesh.uvs, dtype=np.float64)
                uv[:, 1] = 1.0 - uv[:, 1]  # glTF's v runs down the image
                attrs["TEXCOORD_0"] = buf.add(uv.astype(np.float32), _ARRAY_BUFFER, _FLOAT, "VEC2")
            idx = np.asarray(mesh.indices, dtype=np.uint32)
            itype = _USHORT if len(mesh.positions) < 65536 else _UINT
            idx = idx.astype(np.uint16 if itype == _USHORT else np.uint32)
            prims.append({"attributes": attrs, "indices": buf.add(idx, _ELEMENT_ARRAY_BUFFER, itype, "SCALAR"),
                          "material": mat_index[mat_name], "mode": 4})
        if prims:
            meshes.append({"name": node.name, "primitives": prims})
            entry["mesh"] = len(meshes) - 1
        kids = [emit(c) for c in node.children]
        if kids:
            entry["children"] = kids
        return index

    emit(root)
    while len(buf.data) % 4:
        buf.data.append(0)
    doc: dict = {
        "asset": {"version": "2.0", "generator": "fixlens product_models.modeling"},
        "scene": 0, "scenes": [{"name": root.name, "nodes": [0]}],
        "nodes": nodes, "meshes": meshes, "materials": gl_materials,
        "accessors": buf.accessors, "bufferViews": buf.views, "buffers": [{"byteLength": len(buf.data)}],
    }
    if images:
        doc["images"] = images
        doc["textures"] = textures
        doc["samplers"] = [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}]
    js = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")
    js += b" " * (-len(js) % 4)
    total = 12 + 8 + len(js) + 8 + len(buf.data)
    return b"".join([
        struct.pack("<4sII", GLB_MAGIC, 2, total),
        struct.pack("<II", len(js), _JSON_CHUNK), js,
        struct.pack("<II", len(buf.data), _BIN_CHUNK), bytes(buf.data),
    ])


def read_glb_json(data: bytes, source: str) -> dict:
    """Parse a ``.glb`` header and JSON chunk; raise ValueError naming ``source`` when it is not glTF 2.0."""
    if len(data) < 20 or data[:4] != GLB_MAGIC:
        raise ValueError(f"{source}: not a glTF binary file (expected magic 'glTF')")
    _, version, length = struct.unpack_from("<4sII", data, 0)
    if version != 2:
        raise ValueError(f"{source}: glTF version {version} is not supported (expected 2)")
    if length != len(data):
        raise ValueError(f"{source}: truncated or padded glb (header says {length} bytes, file has {len(data)})")
    chunk_len, chunk_type = struct.unpack_from("<II", data, 12)
    if chunk_type != _JSON_CHUNK or 20 + chunk_len > len(data):
        raise ValueError(f"{source}: first glb chunk is not a valid JSON chunk")
    try:
        doc = json.loads(data[20:20 + chunk_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{source}: glb JSON chunk does not parse: {exc}") from None
    if not isinstance(doc, dict) or "nodes" not in doc:
        raise ValueError(f"{source}: glb has no nodes")
    return doc
