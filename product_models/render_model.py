"""A product's ``model.glb`` loaded into Panda3D, checked against the catalog, and posed into part states.

State appearance rules (by part kind, so a new product needs no code):
- ``led``: ``off`` keeps the model's dark lens; any colour state lights the lens in that colour, unshaded,
  with a soft glow disc around it.
- ``port``: ``plugged`` shows the optional child node ``cable_<port>`` (plug + cable); other states hide it.
- ``paper``, ``cable``: hidden in an absent state (``clear``, ``empty``, ``removed``, ``absent``, ``unplugged``).
- ``removable``: the part's node is shown when ``present`` and hidden when ``absent`` (``Part.is_removed``).
- any part with ``moves`` (trays, covers) and parts ``attached_to`` them follow ``Product.part_transform``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from product_models.catalog import Product
from product_models.errors import CatalogError
from product_models.modeling.gltf import read_glb_json

MODEL_FILE = "model.glb"
LED_COLOURS: dict[str, tuple[float, float, float]] = {
    "green": (0.25, 1.0, 0.35), "amber": (1.0, 0.68, 0.08), "orange": (1.0, 0.5, 0.05),
    "red": (1.0, 0.14, 0.10), "blue": (0.25, 0.5, 1.0), "white": (1.0, 1.0, 1.0), "yellow": (1.0, 0.92, 0.2),
}
ABSENT_STATES = frozenset({"clear", "empty", "removed", "absent", "unplugged"})
GLOW_SCALE = 2.4  # glow disc radius / lens radius
GLOW_ALPHA = 0.55


def _srgb(c: float) -> float:
    c = min(max(c, 0.0), 1.0)
    return c * 12.92 if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055


def validate_glb(path: Path) -> dict:
    """The parsed glTF JSON of ``path``; CatalogError naming the file if it is missing or not glTF 2.0."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read the product model ({exc.strerror})") from None
    try:
        return read_glb_json(data, str(path))
    except ValueError as exc:
        raise CatalogError(str(exc)) from None


class LoadedModel:
    """One product's scene graph plus, per geometry node, rest-pose triangles for exact occlusion tests."""

    def __init__(self, product: Product, path: Path | None = None) -> None:
        self.product = product
        self.path = path or (product.folder / MODEL_FILE)
        doc = validate_glb(self.path)
        names = {n.get("name") for n in doc.get("nodes", []) if isinstance(n, dict)}
        missing = [p.name for p in product.parts if p.name not in names]
        if missing:
            raise CatalogError(f"{self.path}: model has no node for part(s): {', '.join(missing)} "
                               f"(node names must equal the part names of {product.id!r})")
        import gltf
        from panda3d.core import NodePath

        try:
            self.root = NodePath(gltf.load_model(str(self.path)))
        except Exception as exc:  # the glTF loader raises many kinds; all mean an unusable file
            raise CatalogError(f"{self.path}: cannot load the product model: {exc}") from None
        self.parts: dict[str, NodePath] = {}
        for part in product.parts:
            node = self.root.find(f"**/{part.name}")
            if node.isEmpty():
                raise CatalogError(f"{self.path}: model has no node for part(s): {part.name}")
            self.parts[part.name] = node
        self.rest = {name: node.getMat(self.root) for name, node in self.parts.items()}
        self.cables = {p.name: self.parts[p.name].find(f"**/cable_{p.name}") for p in product.parts
                       if p.kind == "port"}
        self.cables = {k: v for k, v in self.cables.items() if not v.isEmpty()}
        self._shade_for_fixed_function()
        self.glows = {p.name: self._make_glow(p.name) for p in product.parts if p.kind == "led"}
        self.triangles = self._collect_triangles()
        self.states: dict[str, str] = {}

    # -- set-up ---------------------------------------------------------------------------------------
    def _shade_for_fixed_function(self) -> None:
        """Turn glTF PBR factors into fixed-function materials both headless pipes honour alike.

        Factors are linear; the framebuffer is not sRGB, so colours are encoded to sRGB here, and the
        label textures are marked plain RGB so they are not decoded a second time.
        """
        from panda3d.core import Material, MaterialAttrib, Texture, TextureAttrib

        for gn in self.root.findAllMatches("**/+GeomNode"):
            node = gn.node()
            for i in range(node.getNumGeoms()):
                state = node.getGeomState(i)
                attrib = state.getAttrib(MaterialAttrib)
                if attrib is not None and attrib.getMaterial() is not None:
                    src = attrib.getMaterial()
                    base = src.getBaseColor() if src.hasBaseColor() else src.getDiffuse()
                    metallic = src.getMetallic() if src.hasMetallic() else 0.0
                    rough = src.getRoughness() if src.hasRoughness() else 0.7
                    rgb = [_srgb(base[k]) * (1.0 - 0.35 * metallic) for k in range(3)]
                    mat = Material(src.getName())
                    mat.setDiffuse((*rgb, base[3]))
                    mat.setAmbient((*rgb, base[3]))
                    spec = 0.05 + 0.35 * (1.0 - rough) + 0.3 * metallic
                    mat.setSpecular((spec, spec, spec, 1.0))
                    mat.setShininess(4.0 + 60.0 * (1.0 - rough))
                    emission = src.getEmission() if src.hasEmission() else None
                    if emission is not None and any(emission[k] > 0 for k in range(3)):
                        mat.setEmission((*[_srgb(emission[k]) for k in range(3)], 1.0))
                    state = state.setAttrib(MaterialAttrib.make(mat))
                tex_attrib = state.getAttrib(TextureAttrib)
                if tex_attrib is not None:
                    for s in range(tex_attrib.getNumOnStages()):
                        tex = tex_attrib.getOnTexture(tex_attrib.getOnStage(s))
                        if tex.getFormat() == Texture.F_srgb:
                            tex.setFormat(Texture.F_rgb)
                        elif tex.getFormat() == Texture.F_srgb_alpha:
                            tex.setFormat(Texture.F_rgba)
                node.setGeomState(i, state)

    def _make_glow(self, name: str):
        """A soft disc (alpha fading outward) around an LED lens, hidden until the LED lights."""
        from panda3d.core import (
            ColorAttrib,
            Geom,
            GeomNode,
            GeomTriangles,
            GeomVertexData,
            GeomVertexFormat,
            GeomVertexWriter,
            TransparencyAttrib,
        )

        part = self.product.part(name)
        n = np.asarray(part.normal, dtype=float)
        ref = np.array([0.0, 0.0, 1.0]) if abs(n[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
        u = np.cross(n, ref)
        u /= np.linalg.norm(u)
        v = np.cross(n, u)
        centre = np.asarray(part.anchor, dtype=float) + n * 0.0004
        radius = GLOW_SCALE * part.size_mm[0] / 2000.0
        vdata = GeomVertexData("glow", GeomVertexFormat.getV3c4(), Geom.UH_static)
        pos, col = GeomVertexWriter(vdata, "vertex"), GeomVertexWriter(vdata, "color")
        segments = 24
        pos.addData3(*centre)
        col.addData4(1, 1, 1, GLOW_ALPHA)
        for i in range(segments):
            a = 2 * math.pi * i / segments
            p = centre + radius * (math.cos(a) * u + math.sin(a) * v)
            pos.addData3(*p)
            col.addData4(1, 1, 1, 0)
        tris = GeomTriangles(Geom.UH_static)
        for i in range(segments):
            a, b = 1 + i, 1 + (i + 1) % segments
            # Both windings, so the glow shows whatever the facing convention.
            tris.addVertices(0, a, b)
            tris.addVertices(0, b, a)
        geom = Geom(vdata)
        geom.addPrimitive(tris)
        gnode = GeomNode(f"glow_{name}")
        gnode.addGeom(geom)
        # Place in the rest frame of the model root, then keep it under the LED so it moves with it.
        glow = self.root.attachNewNode(gnode)
        glow.wrtReparentTo(self.parts[name])
        glow.setAttrib(ColorAttrib.makeVertex(), 100)
        glow.setTransparency(TransparencyAttrib.MAlpha, 100)
        glow.setDepthWrite(False, 100)
        glow.setLightOff(100)
        glow.setMaterialOff(100)
        glow.setTextureOff(100)
        glow.setBin("fixed", 10)
        glow.hide()
        return glow

    def _collect_triangles(self) -> list[tuple[str | None, object, np.ndarray]]:
        """(owner part or None for the body, GeomNode path, (n, 3, 3) rest-pose triangles in metres)."""
        from panda3d.core import GeomVertexReader

        out = []
        part_names = set(self.parts)
        for gn in self.root.findAllMatches("**/+GeomNode"):
            if gn.getName().startswith("glow_"):
                continue
            owner = None
            walk = gn
            while not walk.isEmpty() and walk != self.root:
                if walk.getName() in part_names and walk == self.parts[walk.getName()]:
                    owner = walk.getName()
                    break
                walk = walk.getParent()
            net = _mat(gn.getMat(self.root))
            node = gn.node()
            tris = []
            for i in range(node.getNumGeoms()):
                geom = node.getGeom(i).decompose()
                reader = GeomVertexReader(geom.getVertexData(), "vertex")
                verts = []
                while not reader.isAtEnd():
                    verts.append(tuple(reader.getData3()))
                if not verts:
                    continue
                pos = np.asarray(verts, dtype=float)
                pos = pos @ net[:3, :3] + net[3, :3]
                for p in range(geom.getNumPrimitives()):
                    prim = geom.getPrimitive(p).decompose()
                    idx = [prim.getVertex(k) for k in range(prim.getNumVertices())]
                    if len(idx) >= 3:
                        tris.append(pos[np.asarray(idx[: len(idx) // 3 * 3]).reshape(-1, 3)])
            if tris:
                out.append((owner, gn, np.concatenate(tris)))
        return out

    # -- states ---------------------------------------------------------------------------------------
    def apply(self, states: dict[str, str]) -> dict[str, str]:
        """Pose and colour the model for ``states`` (missing parts take their healthy state).
        Returns the full state map. Raises CatalogError for an unknown part or state."""
        from panda3d.core import LMatrix4

        full = self.product.healthy_states()
        for part, state in states.items():
            self.product.check_state(part, state)
        full.update(states)
        for part in self.product.parts:
            node = self.parts[part.name]
            t = self.product.part_transform(part.name, full)
            node.setMat(self.root, self.rest[part.name] * LMatrix4(*t.T.ravel().tolist()))
            state = full.get(part.name)
            if state is None:
                continue
            if part.kind == "led":
                self._set_led(part.name, state)
            elif part.kind == "port" and part.name in self.cables:
                self.cables[part.name].show() if state == "plugged" else self.cables[part.name].hide()
            elif part.kind in ("paper", "cable"):
                node.hide() if state in ABSENT_STATES else node.show()
            elif part.kind == "removable":
                node.hide() if part.is_removed(state) else node.show()
        self.states = full
        return full

    def _set_led(self, name: str, state: str) -> None:
        node, glow = self.parts[name], self.glows[name]
        if state == "off":
            node.clearLight()
            node.clearMaterial()
            node.clearTexture()
            node.clearColor()
            glow.hide()
            return
        rgb = LED_COLOURS.get(state, (1.0, 1.0, 1.0))
        node.setLightOff(10)
        node.setMaterialOff(10)
        node.setTextureOff(10)
        node.setColor(*rgb, 1.0, 10)
        glow.setColorScale(*rgb, 1.0)
        glow.show()

    def posed_triangles_with_owners(self, part_index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
        """(n, 3, 3) triangles of everything shown in the current states (product frame, metres) and (n,)
        int owner ids: ``part_index[owner part]``, or -1 for the body."""
        chunks, owners = [], []
        for owner, gn, tris in self.triangles:
            if gn.isHidden():
                continue
            if owner is None:
                chunks.append(tris)
                owners.append(np.full(len(tris), -1))
                continue
            t = self.product.part_transform(owner, self.states)
            chunks.append(tris @ t[:3, :3].T + t[:3, 3])
            owners.append(np.full(len(tris), part_index.get(owner, -1)))
        if not chunks:
            return np.zeros((0, 3, 3)), np.zeros(0, dtype=int)
        return np.concatenate(chunks), np.concatenate(owners)


def _mat(m) -> np.ndarray:
    """Panda3D LMatrix4 -> (4, 4) float64, same row-vector layout."""
    return np.array([[m.getCell(r, c) for c in range(4)] for r in range(4)], dtype=float)
