"""``fixlens products check``: does a product's ``model.glb`` agree with its ``product.yaml``?

Every product gets the same checks, whoever built its model (the procedural builders, Blender, CAD):

- the glb parses, is self-contained, has finite vertices, in-range indices and materials;
- every part has exactly one node of its name in the default scene, with geometry; part nodes carrying
  moving parts are not nested inside other part nodes (the renderer would move them twice);
- each part's anchor lies inside (or on) the bounds of its node's geometry, within ``ANCHOR_TOL_M``;
- the body (geometry outside the part nodes) matches ``size_mm`` and stands centred on the origin;
- every keypoint lies on the model's surface, within ``KEYPOINT_EPS_M``;
- hinges sit on their part, and every motion moves it;
- every state of every part renders with the real renderer, and states that the renderer's appearance rules
  draw differently change the part's pixels (a removable part: ``present`` against ``absent``).

Checks return :class:`Finding` values; nothing here raises for a bad model. The module imports no renderer at
import time: rendering (Panda3D) loads only when ``render=True``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from product_models.catalog import CATALOG_DIR, REMOVED_STATE, Product, load_product
from product_models.errors import CatalogError
from product_models.glb_geometry import ModelGeometry, distance_to_triangles, outside_by, points_of, read_model
from product_models.render_truth import KEYPOINT_EPS_M
from product_models.sourcemap import PathKey, format_path

MODEL_FILE = "model.glb"

# --- tolerances (metres) -----------------------------------------------------------------------------------
# An anchor is a point on the part's surface. A flat part (an LED lens disc, a port face) has no thickness
# along its normal and may float 0.2-0.6 mm proud of the housing, and positions pass through float32. 2 mm
# allows for that and stays below the size of every small part but a pinhole, which is about 2 px at phone
# distance: a part modelled in the wrong place is off by its own size or more.
ANCHOR_TOL_M = 0.002
# size_mm is given in whole millimetres and printed decals stand a fraction of a millimetre proud, so 2 mm
# plus 1 % (feet, bevels on a large CAD housing) passes real models; a unit slip (mm as m, inches) is off by
# 10x-1000x and a wrong size_mm by its own error.
SIZE_TOL_M = 0.002
SIZE_TOL_REL = 0.01
# A hinge lies on an edge of its part; 5 mm leaves room for the gap between a cover and its frame.
HINGE_TOL_M = 0.005
MIN_MOTION_M = 0.001  # a motion that moves no point of the part this far does nothing visible

FindingCode = Literal[
    "yaml-invalid", "glb-missing", "glb-unreadable", "node-missing", "node-duplicate", "node-empty",
    "node-nested", "bad-vertices", "material-missing", "anchor-outside", "size-mismatch", "off-centre",
    "keypoint-off-model", "hinge-off-part", "motion-none", "state-no-colour", "state-no-cable",
    "state-unchanged", "part-unseen", "render-failed",
]
Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One thing wrong with a product. ``field`` is a ``product.yaml`` path (``parts[3].anchor``) at
    ``line``; ``node`` a glTF node name in ``model``. Either or both may be set."""

    product: str
    code: FindingCode
    message: str
    source: Path  # the product.yaml
    model: Path  # the model.glb
    field: str | None = None
    line: int | None = None
    node: str | None = None
    expected: str = ""
    got: str = ""
    severity: Severity = "error"

    def location(self) -> str:
        where = []
        if self.field is not None:
            where.append(f"{self.source}:{self.line or 1} {self.field}")
        if self.node is not None:
            where.append(f"{self.model} node {self.node!r}")
        return " / ".join(where) or str(self.model)

    def __str__(self) -> str:
        text = f"{self.location()}: {self.severity} [{self.code}] {self.message}"
        if self.expected or self.got:
            text += f" (expected {self.expected}, got {self.got})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"product": self.product, "code": self.code, "severity": self.severity, "message": self.message,
                "file": str(self.source if self.field is not None else self.model), "line": self.line,
                "field": self.field, "node": self.node, "model": str(self.model), "expected": self.expected,
                "got": self.got}


class _Report:
    """Collects findings for one product, turning YAML paths into lines."""

    def __init__(self, product: Product, model: Path) -> None:
        self.product, self.model = product, model
        self.findings: list[Finding] = []

    def add(self, code: FindingCode, message: str, *, field: PathKey | None = None, node: str | None = None,
            expected: str = "", got: str = "", severity: Severity = "error") -> None:
        line = None
        if field is not None and self.product.doc is not None:
            line = self.product.doc.position(field).line
        self.findings.append(Finding(self.product.id, code, message, self.product.source, self.model,
                                     format_path(field) if field is not None else None, line, node, expected,
                                     got, severity))


def _mm(value: float) -> str:
    return f"{value * 1000:.1f} mm"


def _vec_mm(v: np.ndarray | Sequence[float]) -> str:
    return "[" + ", ".join(f"{x * 1000:.1f}" for x in v) + "] mm"


# ------------------------------------------------------------------------------------------------------------
# Geometry checks


def _check_nodes(product: Product, geometry: ModelGeometry, report: _Report) -> None:
    names = sorted(geometry.nodes)
    for node in geometry.by_index.values():
        for code, message, expected, got in node.problems:
            report.add(cast(FindingCode, code), message, node=node.name, expected=expected, got=got)
    for i, part in enumerate(product.parts):
        group = geometry.nodes.get(part.name, [])
        if not group:
            close = difflib.get_close_matches(part.name, names, n=3)
            report.add("node-missing", f"part {part.name!r} has no node of that name in the default scene",
                       field=("parts", i, "name"), node=part.name, expected=f"a node named {part.name!r}",
                       got="closest: " + ", ".join(close) if close else f"{len(names)} other node name(s)")
            continue
        if len(group) > 1:
            report.add("node-duplicate", f"{len(group)} nodes are named {part.name!r}; the renderer poses only the "
                       "first", field=("parts", i, "name"), node=part.name, expected="1 node", got=f"{len(group)}")
        walk = group[0].parent
        while walk is not None:
            outer = geometry.by_index[walk]
            if outer.name in geometry.part_roots and product.part(outer.name).moves:
                report.add("node-nested", f"part node {part.name!r} sits inside the moving part {outer.name!r}, "
                           "so the renderer would move it twice; make it a child of the root (use attached_to)",
                           field=("parts", i, "name"), node=part.name, expected="a direct child of the root",
                           got=f"a descendant of {outer.name!r}")
                break
            walk = outer.parent
        points = points_of(geometry.part_nodes(part.name))
        if not len(points):
            report.add("node-empty", f"part node {part.name!r} has no geometry (outside cable_{part.name})",
                       field=("parts", i, "name"), node=part.name, expected="a mesh", got="none")
            continue
        lo, hi = points.min(axis=0), points.max(axis=0)
        off = outside_by(np.asarray(part.anchor), lo, hi)
        if off > ANCHOR_TOL_M:
            report.add("anchor-outside", f"the anchor of {part.name!r} lies outside its node's geometry "
                       f"{_vec_mm(lo)} .. {_vec_mm(hi)}", field=("parts", i, "anchor"), node=part.name,
                       expected=f"within {_mm(ANCHOR_TOL_M)} of those bounds", got=f"{_mm(off)} outside")


def _check_size(product: Product, geometry: ModelGeometry, report: _Report) -> None:
    body = geometry.body_points()
    if not len(body):
        report.add("size-mismatch", "the model has no body: no geometry outside the part nodes",
                   field=("size_mm",), expected="a housing node such as 'body'", got="none")
        return
    lo, hi = body.min(axis=0), body.max(axis=0)
    size = np.asarray(product.size_m)
    tol = SIZE_TOL_M + SIZE_TOL_REL * size
    if np.any(np.abs((hi - lo) - size) > tol):
        report.add("size-mismatch", "the body's bounding box (geometry outside the part nodes) differs from "
                   "size_mm", field=("size_mm",), expected=f"{_vec_mm(size)} within {_vec_mm(tol)}",
                   got=_vec_mm(hi - lo))
    centre = (lo + hi) / 2
    if abs(centre[0]) > tol[0] or abs(centre[1]) > tol[1] or abs(lo[2]) > tol[2]:
        report.add("off-centre", "the body must stand on z = 0 with its footprint centred on the origin",
                   field=("size_mm",), expected="footprint centre [0.0, 0.0] mm, bottom 0.0 mm",
                   got=f"footprint centre {_vec_mm(centre[:2])}, bottom {_mm(lo[2])}")


def _check_keypoints(product: Product, geometry: ModelGeometry, report: _Report) -> None:
    triangles = geometry.all_triangles()
    for i, keypoint in enumerate(product.keypoints):
        off = distance_to_triangles(np.asarray(keypoint.position), triangles)
        if off > KEYPOINT_EPS_M:
            report.add("keypoint-off-model", f"keypoint {keypoint.name!r} is not on the model's surface",
                       field=("keypoints", i, "position"),
                       expected=f"within {_mm(KEYPOINT_EPS_M)} of a surface",
                       got="no surface at all" if math.isinf(off) else f"{_mm(off)} away")


def _check_motions(product: Product, geometry: ModelGeometry, report: _Report) -> None:
    for i, part in enumerate(product.parts):
        if not part.moves or part.name not in geometry.part_roots:
            continue
        points = points_of(geometry.part_nodes(part.name))
        if not len(points):
            continue
        lo, hi = points.min(axis=0), points.max(axis=0)
        for state, motion in part.moves.items():
            path: PathKey = ("parts", i, "moves", state)
            if motion.degrees:
                off = outside_by(np.asarray(motion.pivot), lo, hi)
                if off > HINGE_TOL_M:
                    report.add("hinge-off-part", f"the hinge of {part.name!r} ({state}) is not on the part",
                               field=(*path, "hinge"), node=part.name,
                               expected=f"within {_mm(HINGE_TOL_M)} of {_vec_mm(lo)} .. {_vec_mm(hi)}",
                               got=f"{_mm(off)} away")
            m = motion.matrix()
            moved = float(np.linalg.norm(points @ m[:3, :3].T + m[:3, 3] - points, axis=1).max())
            if moved < MIN_MOTION_M:
                report.add("motion-none", f"moving {part.name!r} into {state!r} leaves it where it is",
                           field=path, node=part.name, expected=f"a move of at least {_mm(MIN_MOTION_M)}",
                           got=_mm(moved), severity="warning")


# ------------------------------------------------------------------------------------------------------------
# State checks: render each state of a part once, from its facing side, and compare the part's pixels.

RENDER_SIZE = (160, 120)  # pixels; the camera zooms on the part, so small renders keep every part legible
PIXEL_DIFF = 24  # 0..255: a pixel changed when a channel moves this much (renders are deterministic)
# Fewer changed pixels near the part than this and two states look alike. At this zoom the smallest visual
# change of the shipped models (the router's DC plug) moves 41 pixels and an LED lighting up about 270.
MIN_CHANGED_PX = 12
MIN_FIELD_M = 0.06  # the view spans at least this much around the anchor, or 12x the part's size


def _appearance(part_kind: str, moves: dict, state: str) -> tuple:
    """How the renderer's rules (:mod:`product_models.render_model`) say ``state`` looks: states with different
    keys must look different. A port's ``plugged`` counts as different even without its cable node, so a
    model lacking it fails on pixels as well as on the missing node."""
    from product_models.render_model import ABSENT_STATES, LED_COLOURS

    look: object = None
    if part_kind == "led":
        look = "off" if state == "off" else LED_COLOURS.get(state, (1.0, 1.0, 1.0))
    elif part_kind == "port":
        look = state == "plugged"
    elif part_kind in ("paper", "cable"):
        look = state in ABSENT_STATES
    elif part_kind == "removable":
        look = state == REMOVED_STATE
    return (state if state in moves else None, look)


def _opened(product: Product, states: dict[str, str], part: str) -> dict[str, str]:
    """``states`` with the movable parts that may hide ``part`` moved into their first moving state: the
    chain it rides on if it has one, else every other movable part."""
    chain, walk = [], product.part(part).attached_to
    while walk is not None and walk not in chain:
        chain.append(walk)
        walk = product.part(walk).attached_to
    out = dict(states)
    for p in product.parts:
        if p.moves and p.name != part and (not chain or p.name in chain):
            out[p.name] = next(iter(p.moves))
    return out


def _part_camera(product: Product, part_name: str, states: dict[str, str]):
    from product_models.camera import CameraIntrinsics, Pose
    from product_models.render_sheet import FACING_VIEW, SMALL_KINDS, default_distance

    part = product.part(part_name)
    yaw, pitch = (20.0, 15.0) if part.kind == "antenna" else FACING_VIEW.get(part.facing, (20.0, 30.0))
    distance = (0.55 if part.kind in SMALL_KINDS else 0.8) * default_distance(product)
    field = max(MIN_FIELD_M, 12 * max(part.size_mm) / 1000.0)
    hfov = min(63.0, max(5.0, math.degrees(2 * math.atan(field / 2 / distance))))
    target = tuple(float(v) for v in product.anchor_at(part_name, states))
    return Pose.orbit(yaw, pitch, distance, target=target), CameraIntrinsics.from_fov(*RENDER_SIZE, hfov)


def _check_states(product: Product, geometry: ModelGeometry, report: _Report, renderer: Any) -> None:
    from product_models.render_model import LED_COLOURS

    for i, part in enumerate(product.parts):
        if not part.states:
            continue
        cable = f"cable_{part.name}"
        has_cable = any(n.name == cable for n in geometry.subtree(geometry.part_roots[part.name]))
        for j, state in enumerate(part.states):
            if part.kind == "led" and state != "off" and state not in LED_COLOURS:
                report.add("state-no-colour", f"LED state {state!r} has no colour, so it renders white",
                           field=("parts", i, "states", j), node=part.name,
                           expected="off or one of: " + ", ".join(LED_COLOURS), got=repr(state))
            if part.kind == "port" and state == "plugged" and not has_cable:
                report.add("state-no-cable", f"{part.name}={state} shows nothing: the model has no plug and cable",
                           field=("parts", i, "states", j), node=cable,
                           expected=f"a child node {cable!r} under {part.name!r}", got="none")
        if not _render_part(product, i, report, renderer):
            return  # the model does not load: one finding says so, the other parts would repeat it


def _render_part(product: Product, index: int, report: _Report, renderer: Any) -> bool:
    """Render every state of part ``index``; add findings. False when the renderer cannot load the model."""
    part = product.part(product.parts[index].name)
    field: PathKey = ("parts", index, "states")
    base = product.healthy_states()
    try:
        pose, camera = _part_camera(product, part.name, base)
        first = renderer.render(product, base, pose, camera, model_path=report.model)
        if not first.truth.parts[part.name].visible and any(p.moves for p in product.parts):
            base = _opened(product, base, part.name)
            pose, camera = _part_camera(product, part.name, base)
        images, boxes = {}, []
        for state in part.states:
            result = renderer.render(product, {**base, part.name: state}, pose, camera, model_path=report.model)
            images[state] = result.image.astype(np.int16)
            if result.truth.parts[part.name].visible and result.truth.parts[part.name].box is not None:
                boxes.append(result.truth.parts[part.name].box)
    except CatalogError as exc:
        report.add("render-failed", f"the renderer cannot show {part.name!r}: {exc}", node=part.name)
        return False
    if not boxes:
        report.add("part-unseen", f"{part.name!r} is hidden or out of view from its facing side in every state, "
                   "even with covers and trays opened", field=("parts", index, "facing"), node=part.name,
                   expected=f"visible from the {part.facing}", got="hidden")
        return True
    stack = np.asarray(boxes)
    lo, hi = stack[:, :2].min(axis=0), stack[:, 2:].max(axis=0)
    pad = np.maximum(6.0, 0.5 * (hi - lo))
    x0, y0 = np.floor(np.maximum(lo - pad, 0)).astype(int)
    x1, y1 = np.ceil(hi + pad).astype(int)
    looks = {s: _appearance(part.kind, part.moves, s) for s in part.states}
    for a_index, a in enumerate(part.states):
        for b in part.states[a_index + 1:]:
            if looks[a] == looks[b]:
                continue
            diff = np.abs(images[a][y0:y1, x0:x1] - images[b][y0:y1, x0:x1]).max(axis=2)
            changed = int((diff > PIXEL_DIFF).sum())
            if changed < MIN_CHANGED_PX:
                report.add("state-unchanged", f"{part.name!r} looks the same in states {a!r} and {b!r}",
                           field=field, node=part.name, expected=f">= {MIN_CHANGED_PX} changed pixels near the part",
                           got=f"{changed}")
    if len(set(looks.values())) == 1 and len(part.states) > 1:
        report.add("state-unchanged", f"the renderer draws every state of a {part.kind!r} part alike, so the "
                   "camera cannot tell them apart", field=field, node=part.name,
                   expected="a kind with an appearance rule (docs/catalog.md)", got=part.kind, severity="warning")
    return True


# ------------------------------------------------------------------------------------------------------------
# Entry points


def check_product(product: Product, *, render: bool = True, renderer: Any = None) -> list[Finding]:
    """Every check on ``product`` and the ``model.glb`` beside its ``product.yaml``. ``render`` adds the state
    renders (Panda3D, headless); pass a ``product_models.render.Renderer`` to reuse one."""
    model = product.folder / MODEL_FILE
    report = _Report(product, model)
    if not model.is_file():
        report.add("glb-missing", f"no {MODEL_FILE} beside product.yaml", expected="a glTF 2.0 binary",
                   got="no file")
        return report.findings
    try:
        geometry = ModelGeometry(product, read_model(model))
    except (OSError, ValueError) as exc:
        report.add("glb-unreadable", str(exc), expected="a self-contained glTF 2.0 binary", got="unusable")
        return report.findings
    _check_nodes(product, geometry, report)
    _check_size(product, geometry, report)
    _check_keypoints(product, geometry, report)
    _check_motions(product, geometry, report)
    # Rendering a model whose part nodes are missing or broken only repeats those findings less clearly.
    broken = {"node-missing", "node-duplicate", "node-empty", "bad-vertices", "material-missing"}
    if render and not any(f.code in broken for f in report.findings):
        own = renderer is None
        if own:
            from product_models.render import Renderer

            renderer = Renderer(*RENDER_SIZE)
        try:
            _check_states(product, geometry, report, renderer)
        finally:
            if own:
                renderer.close()
    return report.findings


def check_catalog(root: str | Path | None = None, ids: Sequence[str] = (), *,
                  render: bool = True) -> dict[str, list[Finding]]:
    """Findings per product id for the products ``ids`` (all when empty) of the catalog at ``root`` (default:
    the shipped one). A ``product.yaml`` that does not load is a ``yaml-invalid`` finding. Raises CatalogError
    for a missing catalog folder or an unknown id."""
    folder = Path(root) if root is not None else CATALOG_DIR
    if not folder.is_dir():
        raise CatalogError(f"{folder}: catalog folder does not exist")
    sources = {p.parent.name: p for p in sorted(folder.glob("*/product.yaml"))}
    if not sources:
        raise CatalogError(f"{folder}: no */product.yaml found")
    unknown = [i for i in ids if i not in sources]
    if unknown:
        raise CatalogError(f"unknown product(s) {', '.join(map(repr, unknown))} in {folder}; known products: "
                           + ", ".join(sources))
    renderer = None
    results: dict[str, list[Finding]] = {}
    try:
        for pid in ids or list(sources):
            path = sources[pid]
            try:
                product = load_product(path)
            except CatalogError as exc:
                results[pid] = [Finding(pid, "yaml-invalid", str(exc), path, path.parent / MODEL_FILE,
                                        field=exc.path or "(document)", line=exc.line)]
                continue
            if render and renderer is None:
                from product_models.render import Renderer

                renderer = Renderer(*RENDER_SIZE)
            results[pid] = check_product(product, render=render, renderer=renderer)
    finally:
        if renderer is not None:
            renderer.close()
    return results
