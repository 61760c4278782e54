"""The product catalog: typed, validated ``product.yaml`` data.

Coordinate frame of every product (metres, right-handed, the same as Panda3D's Z-up world):
origin at the centre of the product's footprint on the surface it stands on, +x to the right as seen
from the front, +y away from the viewer who faces the front (so the front face looks toward -y), +z up.

This module is data only: it imports no Panda3D, OpenCV or torch, so the scene validator, the server
and the vision code can all share it cheaply.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

import numpy as np

from product_models.errors import CatalogError
from product_models.sourcemap import PathKey, SourceDoc, SourceError, load_file

CATALOG_DIR = Path(__file__).parent / "catalog"  # the shipped catalog
CATALOG_ENV = "FIXLENS_CATALOG_DIR"  # the same variable the server's ``catalog_dir`` reads


def catalog_dir() -> Path:
    """The catalog every command uses unless told otherwise: ``$FIXLENS_CATALOG_DIR`` when set (a support
    organisation's own products, or a test's temporary catalog), else the shipped one."""
    override = os.environ.get(CATALOG_ENV, "")
    return Path(override) if override else CATALOG_DIR

PartKind = Literal["led", "port", "button", "pinhole", "tray", "cover", "cable", "label", "antenna",
                   "paper", "display", "switch", "removable"]
PART_KINDS: tuple[str, ...] = get_args(PartKind)

Facing = Literal["front", "back", "left", "right", "top", "bottom"]
FACING_NORMALS: dict[str, tuple[float, float, float]] = {
    "front": (0.0, -1.0, 0.0), "back": (0.0, 1.0, 0.0),
    "left": (-1.0, 0.0, 0.0), "right": (1.0, 0.0, 0.0),
    "top": (0.0, 0.0, 1.0), "bottom": (0.0, 0.0, -1.0),
}


class FaceFrame(NamedTuple):
    """(3,) unit vectors of a face, product frame, as a viewer facing it sees them. right x up = normal
    (right-handed), so nothing drawn on the face or cut from it is mirrored."""

    right: np.ndarray
    up: np.ndarray
    normal: np.ndarray  # outward


# (right, up) of each facing. Side faces stand up (+z is up). A viewer above the product, its front toward
# them, sees +x to the right and the back (+y) at the top. A viewer below it sees +x to the right too, so
# the front (-y) is at the top: up = -y keeps right x up on the outward normal, -z, as the model builder's
# faces (modeling.mesh.rect) and the renderer's ground truth (render_truth.part_samples) need.
_FACE_AXES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "front": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)), "back": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "left": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)), "right": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "top": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)), "bottom": ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
}


def face_frame(facing: str) -> FaceFrame:
    """The frame of the product face ``facing`` (one of :data:`FACING_NORMALS`): the one definition that
    the model builder, the renderer's ground truth, the part patches and the overlays share."""
    right, up = _FACE_AXES[facing]
    return FaceFrame(np.array(right, float), np.array(up, float), np.array(FACING_NORMALS[facing], float))

# Physical actions a person performs on a part; the twin and the scenes' `animate` overlays use these.
Action = Literal["press", "hold", "insert", "remove", "open", "close", "plug", "unplug"]
ACTIONS: tuple[str, ...] = get_args(Action)

# Kinds whose states and actions follow from what the part is, whatever the product. A removable component
# (a drive in a bay, an ink cartridge, a battery) is either in its place or not, and a person can only put it
# in or take it out; the product still chooses which of the two states is healthy. Other kinds name their
# own states (an LED's colours) and accept any action.
KIND_STATES: dict[str, tuple[str, ...]] = {"removable": ("present", "absent")}
KIND_ACTIONS: dict[str, tuple[str, ...]] = {"removable": ("insert", "remove")}
REMOVED_STATE = "absent"  # a removable part in this state is out of the product: nothing of it is drawn

_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
DEFAULT_LOCALE = "en"
MAX_PARTS = 256

I18nText = dict[str, str]


@dataclass(frozen=True)
class Motion:
    """How a part moves when it enters a state: a slide, or a turn about a hinge line."""

    translate: tuple[float, float, float] = (0.0, 0.0, 0.0)  # (3,) metres, product frame
    pivot: tuple[float, float, float] = (0.0, 0.0, 0.0)  # (3,) metres: a point on the hinge line
    axis: tuple[float, float, float] = (1.0, 0.0, 0.0)  # (3,) unit hinge direction
    degrees: float = 0.0  # right-handed turn about ``axis``

    def matrix(self) -> np.ndarray:
        """(4, 4) float64 transform in the product frame (column vectors: p' = M @ p)."""
        m = np.eye(4)
        if self.degrees:
            a = np.asarray(self.axis, dtype=float)
            a = a / np.linalg.norm(a)
            th = math.radians(self.degrees)
            k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
            r = np.eye(3) + math.sin(th) * k + (1 - math.cos(th)) * (k @ k)
            piv = np.asarray(self.pivot, dtype=float)
            m[:3, :3] = r
            m[:3, 3] = piv - r @ piv
        m[:3, 3] += np.asarray(self.translate, dtype=float)
        return m


# A face seen more than this far off its normal is edge-on: nothing on it can be read, and both the
# renderer's ground truth and the vision pipeline count it as turned away.
EDGE_ON_DEG = 80.0
TWO_SIDED_KINDS = frozenset({"cover", "paper"})  # thin sheets: an opened cover is seen by its inner face


@dataclass(frozen=True)
class Part:
    name: str
    kind: str
    anchor: tuple[float, float, float]  # (3,) metres, product frame: the point overlays point at
    facing: str  # which face of the product the part sits on; sets its outward normal
    states: tuple[str, ...]  # observable states; empty for parts with nothing to observe (buttons)
    healthy: str | None  # the state of a working device; None when ``states`` is empty
    label: I18nText  # what the device prints beside the part, per locale
    size_mm: tuple[float, float]  # (2,) visible width x height of the part on its face, millimetres
    actions: tuple[str, ...]  # physical actions this part accepts
    moves: dict[str, Motion] = field(default_factory=dict)  # state -> how the part moves into it
    attached_to: str | None = None  # a moving part this one rides on (paper in a tray)

    @property
    def normal(self) -> tuple[float, float, float]:
        return FACING_NORMALS[self.facing]

    def is_removed(self, state: str | None) -> bool:
        """Whether ``state`` takes the part out of the product (a removable part that is absent): the renderer
        then draws nothing of it, and the ground truth counts its empty place as seen where it faces the camera."""
        return self.kind == "removable" and state == REMOVED_STATE

    def face_frame(self) -> FaceFrame:
        """The part's face at rest. An antenna stands up from its face, so its frame is the one a viewer in
        front of the product sees it in."""
        return face_frame("front" if self.kind == "antenna" else self.facing)


@dataclass(frozen=True)
class Keypoint:
    name: str
    position: tuple[float, float, float]  # (3,) metres, product frame


@dataclass(frozen=True)
class Fault:
    name: str
    description: I18nText
    states: dict[str, str]  # part -> state that shows this fault


@dataclass(frozen=True)
class Product:
    id: str
    name: I18nText
    size_mm: tuple[float, float, float]  # (3,) width (x), depth (y), height (z), millimetres
    parts: tuple[Part, ...]
    keypoints: tuple[Keypoint, ...]
    faults: dict[str, Fault]
    source: Path
    twin_section: Any = None  # raw ``twin:`` data; product_models.twin validates it
    doc: SourceDoc | None = field(default=None, compare=False, repr=False)

    @cached_property
    def _parts_by_name(self) -> dict[str, Part]:
        return {p.name: p for p in self.parts}

    @property
    def folder(self) -> Path:
        return self.source.parent

    @property
    def size_m(self) -> tuple[float, float, float]:
        w, d, h = self.size_mm
        return (w / 1000.0, d / 1000.0, h / 1000.0)

    def part(self, name: str) -> Part:
        try:
            return self._parts_by_name[name]
        except KeyError:
            known = ", ".join(sorted(self._parts_by_name))
            raise CatalogError(f"product {self.id!r} has no part {name!r}; known parts: {known}") from None

    def has_part(self, name: str) -> bool:
        return name in self._parts_by_name

    def check_state(self, part: str, state: str) -> None:
        """Raise :class:`CatalogError` unless ``state`` is one of ``part``'s states."""
        p = self.part(part)
        if state not in p.states:
            allowed = ", ".join(p.states) or "(none: this part has no observable state)"
            raise CatalogError(f"part {self.id}.{part} has no state {state!r}; expected one of: {allowed}")

    def healthy_states(self) -> dict[str, str]:
        return {p.name: p.healthy for p in self.parts if p.healthy is not None}

    def fault_states(self, fault: str) -> dict[str, str]:
        """Full part states of a device showing ``fault``: healthy states overridden by the fault's."""
        if fault not in self.faults:
            raise CatalogError(f"product {self.id!r} has no fault {fault!r}; known faults: "
                               + ", ".join(sorted(self.faults)))
        return {**self.healthy_states(), **self.faults[fault].states}

    def stateful_parts(self) -> tuple[Part, ...]:
        return tuple(p for p in self.parts if p.states)

    def part_transform(self, name: str, states: dict[str, str]) -> np.ndarray:
        """(4, 4) transform that carries ``name``'s geometry from its rest pose to where ``states`` put it.

        Follows ``attached_to`` chains, so paper in an open tray moves with the tray.
        """
        m = np.eye(4)
        part = self.part(name)
        seen: set[str] = set()
        while part is not None and part.name not in seen:
            seen.add(part.name)
            motion = part.moves.get(states.get(part.name, part.healthy or ""))
            if motion is not None:
                m = motion.matrix() @ m
            part = self.part(part.attached_to) if part.attached_to else None
        return m

    def face_frame(self, name: str, states: dict[str, str]) -> FaceFrame:
        """Part ``name``'s :meth:`Part.face_frame`, turned with it to where ``states`` put it."""
        rot = self.part_transform(name, states)[:3, :3]
        right, up, normal = self.part(name).face_frame()
        return FaceFrame(rot @ right, rot @ up, rot @ normal)

    def anchor_at(self, name: str, states: dict[str, str]) -> np.ndarray:
        """(3,) metres: the part's anchor once ``states`` have moved it."""
        p = np.array([*self.part(name).anchor, 1.0])
        return (self.part_transform(name, states) @ p)[:3]


def localized(text: I18nText, locale: str, default: str = DEFAULT_LOCALE) -> str:
    """Pick ``text`` for ``locale`` with fallback de-AT -> de -> default."""
    tag = locale
    while tag:
        if tag in text:
            return text[tag]
        tag = tag.rpartition("-")[0]
    return text.get(default) or next(iter(text.values()), "")


# ----------------------------------------------------------------------------------------------------
# Loading


class FieldReader:
    """Validates one product document; every error carries file:line:col and the field path."""

    def __init__(self, doc: SourceDoc) -> None:
        self.doc = doc

    def fail(self, path: PathKey, message: str) -> CatalogError:
        err = self.doc.error(path, message)
        return CatalogError(str(err), file=err.file, line=err.line, col=err.col, path=err.path)

    def map(self, value: Any, path: PathKey, required: set[str], optional: set[str] = frozenset()) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a map, got {type_name(value)}")
        missing = sorted(required - value.keys())
        if missing:
            raise self.fail(path, f"missing field(s): {', '.join(missing)}")
        unknown = sorted(str(k) for k in value.keys() - required - optional)
        if unknown:
            allowed = ", ".join(sorted(required | optional))
            raise self.fail((*path, unknown[0]), f"unknown field {unknown[0]!r}; allowed fields: {allowed}")
        return value

    def ident(self, value: Any, path: PathKey, what: str) -> str:
        if not isinstance(value, str) or not _ID.match(value):
            raise self.fail(path, f"{what} must be lower_snake_case text (a-z, 0-9, _), got {value!r}")
        return value

    def number(self, value: Any, path: PathKey, lo: float, hi: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(path, f"expected a number, got {type_name(value)} {value!r}")
        if not lo <= value <= hi:
            raise self.fail(path, f"value {value} is out of range [{lo}, {hi}]")
        return float(value)

    def vector(self, value: Any, path: PathKey, n: int, lo: float, hi: float) -> tuple[float, ...]:
        if not isinstance(value, list) or len(value) != n:
            raise self.fail(path, f"expected a list of {n} numbers, got {value!r}")
        return tuple(self.number(v, (*path, i), lo, hi) for i, v in enumerate(value))

    def i18n(self, value: Any, path: PathKey) -> I18nText:
        if isinstance(value, str):
            value = {DEFAULT_LOCALE: value}
        if not isinstance(value, dict) or not value:
            raise self.fail(path, "expected text or a map of locale -> text")
        out: I18nText = {}
        for loc, text in value.items():
            if not isinstance(loc, str) or not _LOCALE.match(loc):
                raise self.fail((*path, loc), f"bad locale {loc!r}; expected a tag like en, de, es-MX")
            if not isinstance(text, str) or not text.strip():
                raise self.fail((*path, loc), "expected non-empty text")
            out[loc] = text
        if DEFAULT_LOCALE not in out:
            raise self.fail(path, f"text is missing the {DEFAULT_LOCALE!r} locale")
        return out

    def name_list(self, value: Any, path: PathKey, what: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list of {what}, got {type_name(value)}")
        names = tuple(self.ident(v, (*path, i), what) for i, v in enumerate(value))
        for i, n in enumerate(names):
            if n in names[:i]:
                raise self.fail((*path, i), f"duplicate {what} {n!r}")
        return names


def type_name(value: Any) -> str:
    return {dict: "a map", list: "a list", str: "text", bool: "a boolean", type(None): "nothing"}.get(
        type(value), type(value).__name__)


def _check_kind_rules(r: FieldReader, base: PathKey, name: str, kind: str, raw: dict,
                      states: tuple[str, ...], actions: tuple[str, ...]) -> None:
    """The states and actions a kind of :data:`KIND_STATES` / :data:`KIND_ACTIONS` allows, and nothing else."""
    if kind in KIND_STATES:
        want = KIND_STATES[kind]
        if not states:
            raise r.fail(base, f"part {name!r} of kind {kind!r} needs states: [{', '.join(want)}] "
                               "(and a healthy one of them)")
        if set(states) != set(want):
            raise r.fail((*base, "states"), f"a {kind!r} part has exactly the states {', '.join(want)}; "
                                            f"got {', '.join(states)}")
    if kind in KIND_ACTIONS:
        for j, a in enumerate(actions):
            if a not in KIND_ACTIONS[kind]:
                raise r.fail((*base, "actions", j), f"a {kind!r} part accepts only the actions "
                                                    f"{', '.join(KIND_ACTIONS[kind])}; got {a!r}")
    # A removable part is drawn where it sits when present and not at all when absent: a motion would only
    # move it out of its bay while "present". Its carrier (a drive caddy in a tray) may still move it.
    if kind == "removable" and raw.get("moves"):
        raise r.fail((*base, "moves"), f"a {kind!r} part has no moves: it is drawn in place when present and "
                                       "not drawn when absent (use attached_to to ride on a moving part)")


def load_product(path: str | Path) -> Product:
    """Load and validate one ``product.yaml``. Raises :class:`CatalogError` with file:line:col."""
    try:
        doc = load_file(path)
    except SourceError as exc:
        raise CatalogError(str(exc), file=exc.file, line=exc.line, col=exc.col) from None
    r = FieldReader(doc)
    top = r.map(doc.data, (), {"id", "name", "size_mm", "parts", "keypoints"},
                {"faults", "twin", "description"})
    pid = r.ident(top["id"], ("id",), "product id")
    folder = Path(path).parent.name
    if folder != pid:
        raise r.fail(("id",), f"product id {pid!r} must equal its folder name {folder!r}")
    size = r.vector(top["size_mm"], ("size_mm",), 3, 1.0, 5000.0)
    half = (size[0] / 2000.0, size[1] / 2000.0, size[2] / 1000.0)
    reach = max(half) * 4  # anchors may sit on antennas or open trays, but not metres away

    if not isinstance(top["parts"], list) or not top["parts"]:
        raise r.fail(("parts",), "expected a non-empty list of parts")
    if len(top["parts"]) > MAX_PARTS:
        raise r.fail(("parts",), f"at most {MAX_PARTS} parts")
    parts: list[Part] = []
    for i, raw in enumerate(top["parts"]):
        base: PathKey = ("parts", i)
        m = r.map(raw, base, {"name", "kind", "anchor", "facing"},
                  {"states", "healthy", "label", "size_mm", "actions", "moves", "attached_to"})
        name = r.ident(m["name"], (*base, "name"), "part name")
        if any(p.name == name for p in parts):
            raise r.fail((*base, "name"), f"duplicate part name {name!r}")
        kind = m["kind"]
        if kind not in PART_KINDS:
            raise r.fail((*base, "kind"), f"unknown part kind {kind!r}; expected one of: {', '.join(PART_KINDS)}")
        facing = m["facing"]
        if facing not in FACING_NORMALS:
            raise r.fail((*base, "facing"), f"unknown facing {facing!r}; expected one of: "
                         + ", ".join(FACING_NORMALS))
        anchor = r.vector(m["anchor"], (*base, "anchor"), 3, -reach, reach)
        states = r.name_list(m.get("states", []), (*base, "states"), "state")
        healthy = m.get("healthy")
        if states:
            if healthy is None:
                raise r.fail(base, f"part {name!r} has states but no 'healthy' state")
            if healthy not in states:
                raise r.fail((*base, "healthy"), f"healthy state {healthy!r} is not one of {list(states)}")
        elif healthy is not None:
            raise r.fail((*base, "healthy"), f"part {name!r} has no states, so it cannot have a healthy state")
        label = r.i18n(m["label"], (*base, "label")) if "label" in m else {}
        part_size = r.vector(m.get("size_mm", [10, 10]), (*base, "size_mm"), 2, 0.5, 5000.0)
        actions = r.name_list(m.get("actions", []), (*base, "actions"), "action")
        for j, a in enumerate(actions):
            if a not in ACTIONS:
                raise r.fail((*base, "actions", j), f"unknown action {a!r}; expected one of: {', '.join(ACTIONS)}")
        moves: dict[str, Motion] = {}
        raw_moves = m.get("moves", {}) or {}
        if not isinstance(raw_moves, dict):
            raise r.fail((*base, "moves"), "expected a map of state -> motion")
        for state, raw_motion in raw_moves.items():
            mpath = (*base, "moves", state)
            if state not in states:
                raise r.fail(mpath, f"moves names state {state!r}, which is not one of {list(states)}")
            mm = r.map(raw_motion, mpath, set(), {"translate", "hinge", "axis", "degrees"})
            if "hinge" in mm or "degrees" in mm or "axis" in mm:
                if not {"hinge", "axis", "degrees"} <= mm.keys():
                    raise r.fail(mpath, "a hinge motion needs hinge (a point), axis and degrees")
                axis = r.vector(mm["axis"], (*mpath, "axis"), 3, -1.0, 1.0)
                if math.hypot(*axis) < 1e-6:
                    raise r.fail((*mpath, "axis"), "axis must not be the zero vector")
                motion = Motion(pivot=r.vector(mm["hinge"], (*mpath, "hinge"), 3, -reach, reach),
                                axis=axis, degrees=r.number(mm["degrees"], (*mpath, "degrees"), -180, 180))
            elif "translate" in mm:
                motion = Motion(translate=r.vector(mm["translate"], (*mpath, "translate"), 3, -reach, reach))
            else:
                raise r.fail(mpath, "a motion needs translate, or hinge + axis + degrees")
            if "translate" in mm and motion.degrees:
                motion = Motion(r.vector(mm["translate"], (*mpath, "translate"), 3, -reach, reach),
                                motion.pivot, motion.axis, motion.degrees)
            moves[state] = motion
        _check_kind_rules(r, base, name, kind, m, states, actions)
        attached = m.get("attached_to")
        if attached is not None:
            r.ident(attached, (*base, "attached_to"), "part name")
        parts.append(Part(name, kind, anchor, facing, states, healthy, label, part_size, actions,
                          moves, attached))

    if not isinstance(top["keypoints"], list) or len(top["keypoints"]) < 4:
        raise r.fail(("keypoints",), "expected a list of at least 4 keypoints (pose needs 4 or more)")
    keypoints: list[Keypoint] = []
    for i, raw in enumerate(top["keypoints"]):
        base = ("keypoints", i)
        m = r.map(raw, base, {"name", "position"})
        kname = r.ident(m["name"], (*base, "name"), "keypoint name")
        if any(k.name == kname for k in keypoints):
            raise r.fail((*base, "name"), f"duplicate keypoint name {kname!r}")
        keypoints.append(Keypoint(kname, r.vector(m["position"], (*base, "position"), 3, -reach, reach)))

    product_parts = {p.name: p for p in parts}
    for i, p in enumerate(parts):
        if p.attached_to is not None:
            if p.attached_to not in product_parts or p.attached_to == p.name:
                raise r.fail(("parts", i, "attached_to"), f"attached_to names unknown part {p.attached_to!r}")
    faults: dict[str, Fault] = {}
    raw_faults = top.get("faults", {}) or {}
    if not isinstance(raw_faults, dict):
        raise r.fail(("faults",), "expected a map of fault name -> fault")
    for fname, raw in raw_faults.items():
        base = ("faults", fname)
        r.ident(fname, base, "fault name")
        m = r.map(raw, base, {"description", "states"})
        desc = r.i18n(m["description"], (*base, "description"))
        if not isinstance(m["states"], dict) or not m["states"]:
            raise r.fail((*base, "states"), "expected a non-empty map of part -> state")
        for part_name, state in m["states"].items():
            if part_name not in product_parts:
                raise r.fail((*base, "states", part_name), f"unknown part {part_name!r}")
            if state not in product_parts[part_name].states:
                raise r.fail((*base, "states", part_name),
                             f"part {part_name!r} has no state {state!r}; expected one of: "
                             + ", ".join(product_parts[part_name].states))
        faults[fname] = Fault(fname, desc, dict(m["states"]))

    return Product(
        id=pid, name=r.i18n(top["name"], ("name",)), size_mm=(size[0], size[1], size[2]),
        parts=tuple(parts), keypoints=tuple(keypoints), faults=faults,
        source=Path(path), twin_section=top.get("twin"), doc=doc,
    )


class Catalog:
    """All products under a catalog folder (``<root>/<product-id>/product.yaml``)."""

    def __init__(self, products: dict[str, Product], root: Path) -> None:
        self.products = products
        self.root = root

    @classmethod
    def load(cls, root: str | Path | None = None) -> Catalog:
        folder = Path(root) if root is not None else catalog_dir()
        if not folder.is_dir():
            raise CatalogError(f"{folder}: catalog folder does not exist")
        products: dict[str, Product] = {}
        for yaml_path in sorted(folder.glob("*/product.yaml")):
            product = load_product(yaml_path)
            products[product.id] = product
        if not products:
            raise CatalogError(f"{folder}: no */product.yaml found")
        return cls(products, folder)

    def get(self, product_id: str) -> Product:
        try:
            return self.products[product_id]
        except KeyError:
            known = ", ".join(sorted(self.products))
            raise CatalogError(f"unknown product {product_id!r}; known products: {known}") from None

    def __contains__(self, product_id: object) -> bool:
        return product_id in self.products

    def __iter__(self):
        return iter(self.products.values())

    def __len__(self) -> int:
        return len(self.products)


_DEFAULT: Catalog | None = None


def default_catalog() -> Catalog:
    """The catalog under :func:`catalog_dir`, loaded once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Catalog.load()
    return _DEFAULT
