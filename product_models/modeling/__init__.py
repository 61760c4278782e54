"""Procedural 3D models of the catalog products, written as glTF binaries (``model.glb``).

Node names equal catalog part names. Extra nodes: ``body`` (the housing and everything printed on it) and,
for ports, a child ``cable_<port>`` holding the plug and cable, which the renderer shows when the port is
``plugged``. ``fixlens products build`` regenerates every model; the output is byte-identical for the
same code, so the committed files can be checked against it.

The names in ``__all__`` are the modelling kit's public API for building a ``model.glb`` in Python, without
Blender: :class:`Node` and :class:`Material`, the mesh primitives (:func:`box`, :func:`slab`, :func:`rect`,
:func:`disc`, :func:`cylinder`, or a :class:`Mesh` of your own polygons), :func:`on_face` to place things
relative to a part's anchor, and :func:`write_glb`. docs/catalog.md ("Building a model without Blender")
has a worked example; ``fixlens products check`` verifies the result.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from product_models.catalog import Catalog, Product, default_catalog
from product_models.errors import CatalogError
from product_models.modeling import printer, router
from product_models.modeling.gltf import Material, Node, read_glb_json, write_glb
from product_models.modeling.kit import DECAL_LIFT, on_face
from product_models.modeling.mesh import Mesh, box, cylinder, disc, rect, slab

__all__ = [
    "BUILDERS",
    "DECAL_LIFT",
    "MODEL_FILE",
    "Material",
    "Mesh",
    "Node",
    "box",
    "build_all",
    "build_model",
    "cylinder",
    "disc",
    "on_face",
    "read_glb_json",
    "rect",
    "slab",
    "write_glb",
]

MODEL_FILE = "model.glb"
BUILDERS: dict[str, Callable[[Product], tuple[Node, list[Material]]]] = {
    "router_ax1800": router.build,
    "printer_lx400": printer.build,
}


def build_model(product: Product) -> bytes:
    """The ``model.glb`` bytes of ``product``. Raises CatalogError when no procedural builder exists."""
    try:
        builder = BUILDERS[product.id]
    except KeyError:
        raise CatalogError(f"product {product.id!r} has no procedural model builder; "
                           f"ship a {MODEL_FILE} made with a CAD or 3D tool instead") from None
    root, mats = builder(product)
    names = {n.name for n in root.walk()}
    missing = [p.name for p in product.parts if p.name not in names]
    if missing:
        raise CatalogError(f"the model builder of {product.id!r} made no node for part(s): {', '.join(missing)}")
    return write_glb(root, mats)


def build_all(out_dir: str | Path | None = None, catalog: Catalog | None = None) -> list[Path]:
    """Write every procedural model. ``out_dir`` None writes into the catalog folders, else ``<out_dir>/<id>/``."""
    catalog = catalog or default_catalog()
    written = []
    for product in catalog:
        if product.id not in BUILDERS:
            continue
        folder = product.folder if out_dir is None else Path(out_dir) / product.id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MODEL_FILE
        path.write_bytes(build_model(product))
        written.append(path)
    return written
