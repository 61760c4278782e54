"""Procedural model of the LX400 laser printer: light-grey housing, control panel top right, fold-down front
cover over a paper path, and a dark paper cassette that slides out below it."""

from __future__ import annotations

from product_models.catalog import Product
from product_models.modeling.gltf import Material, Node
from product_models.modeling.kit import DECAL_LIFT, LABEL_MATERIAL, label_quad, on_face
from product_models.modeling.labels import build_atlas
from product_models.modeling.mesh import Mesh, box, cylinder, disc, rect

INK_DARK = (45, 47, 50)
INK_LIGHT = (225, 227, 230)
BODY_SRGB = (210, 211, 208)
PANEL_SRGB = (40, 42, 45)
TRAY_SRGB = (55, 57, 60)

# Cavity behind the front cover and the cassette bay, metres (product frame).
COVER_BAY_Y = -0.120  # back wall of the space behind the cover
TRAY_BAY_Y = 0.110  # back wall of the cassette bay
TRAY_DEPTH_END = 0.105  # back end of the cassette


def _linear(srgb: tuple[int, int, int]) -> tuple[float, float, float, float]:
    def one(c: int) -> float:
        s = c / 255.0
        return round(s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4, 4)
    return (one(srgb[0]), one(srgb[1]), one(srgb[2]), 1.0)


def materials(atlas_png: bytes) -> list[Material]:
    return [
        Material("body_light", _linear(BODY_SRGB), 0.0, 0.6),
        Material("cover_grey", _linear((196, 198, 196)), 0.0, 0.55),
        Material("panel_dark", _linear(PANEL_SRGB), 0.0, 0.4),
        Material("interior_dark", _linear((22, 22, 24)), 0.0, 0.9),
        Material("tray_dark", _linear(TRAY_SRGB), 0.0, 0.6),
        Material("paper_white", _linear((245, 245, 240)), 0.0, 0.9),
        Material("button_light", _linear((170, 172, 175)), 0.0, 0.4),
        Material("button_green", _linear((60, 140, 80)), 0.0, 0.4),
        Material("led_off", _linear((60, 60, 60)), 0.0, 0.2),
        Material(LABEL_MATERIAL, (1.0, 1.0, 1.0, 1.0), 0.0, 0.8, texture_png=atlas_png),
    ]


def build(product: Product) -> tuple[Node, list[Material]]:
    """The printer's node tree (one node per catalog part) and its materials."""
    atlas, slots = build_atlas([
        ("button_power", "POWER", INK_LIGHT, PANEL_SRGB), ("led_status", "READY", INK_LIGHT, PANEL_SRGB),
        ("led_jam", "JAM", INK_LIGHT, PANEL_SRGB), ("button_resume", "GO", INK_LIGHT, PANEL_SRGB),
        ("brand", "fixlens LX400", INK_DARK, BODY_SRGB), ("cover_front", "PULL TO OPEN", INK_DARK, (196, 198, 196)),
        ("tray_paper", "TRAY 1  A4", INK_LIGHT, TRAY_SRGB),
    ])
    w, d, h = product.size_m
    x0, x1, y0, y1 = -w / 2, w / 2, -d / 2, d / 2
    cover = product.part("cover_front")
    tray = product.part("tray_paper")
    cw, ch = cover.size_mm[0] / 1000, cover.size_mm[1] / 1000
    tw, th = tray.size_mm[0] / 1000, tray.size_mm[1] / 1000
    hinge_z = cover.moves["open"].pivot[2] if "open" in cover.moves else cover.anchor[2] - ch / 2
    bay_x = cw / 2 + 0.005  # cover bay is a little wider than the cover: a visible panel gap
    top_frame_z = cover.anchor[2] + ch / 2 + 0.005
    tray_x = tw / 2 + 0.002
    tray_z0, tray_z1 = tray.anchor[2] - th / 2, tray.anchor[2] + th / 2

    root = Node(product.id)
    body = root.child("body")
    shell = [
        ((x0, y0, 0.0), (x1, y1, tray_z0 - 0.002)),  # plinth
        ((x0, y0, tray_z0 - 0.002), (-tray_x, y1, hinge_z)),  # lower left
        ((tray_x, y0, tray_z0 - 0.002), (x1, y1, hinge_z)),  # lower right
        ((-tray_x, y0, tray_z1 + 0.002), (tray_x, y1, hinge_z)),  # strip above the cassette bay
        ((-tray_x, TRAY_BAY_Y, tray_z0 - 0.002), (tray_x, y1, tray_z1 + 0.002)),  # behind the cassette
        ((x0, y0, hinge_z), (-bay_x, COVER_BAY_Y, top_frame_z)),  # left of the cover bay
        ((bay_x, y0, hinge_z), (x1, COVER_BAY_Y, top_frame_z)),  # right of the cover bay
    ]
    for lo, hi in shell:
        body.add("body_light", box(lo, hi))
    # Upper housing and the top front rail carry the bevelled top edges the eye reads as "printer".
    body.add("body_light", box((x0, COVER_BAY_Y, hinge_z), (x1, y1, h), bevel=0.008))
    body.add("body_light", box((x0, y0, top_frame_z), (x1, COVER_BAY_Y + 0.01, h), bevel=0.008))
    body.add("interior_dark", rect((0.0, COVER_BAY_Y, (hinge_z + top_frame_z) / 2), "front", 2 * bay_x,
                                   top_frame_z - hinge_z, DECAL_LIFT))
    body.add("interior_dark", rect((0.0, TRAY_BAY_Y, tray.anchor[2]), "front", 2 * tray_x, th + 0.004, DECAL_LIFT))
    # Output tray: a dark recess in the lid where printed pages land, with the exit slot behind it.
    body.add("panel_dark", rect((-0.04, 0.05, h), "top", 0.24, 0.17, DECAL_LIFT))
    body.add("interior_dark", rect((-0.04, 0.140, h), "top", 0.23, 0.008, 2 * DECAL_LIFT))
    label_quad(body, slots, "brand", (x0 + 0.075, y0, (top_frame_z + h) / 2), "front", 0.011)
    # Cooling grilles on both sides, toward the back, as on most laser printers.
    for side, x in (("left", x0), ("right", x1)):
        for i in range(7):
            body.add("interior_dark", rect((x, 0.085, 0.135 + i * 0.012), side, 0.12, 0.004, DECAL_LIFT))
    # Control panel plate.
    body.add("panel_dark", rect((0.1475, -0.160, h), "top", 0.108, 0.032, DECAL_LIFT))

    part = product.part
    for name in ("button_power", "button_resume"):
        p = part(name)
        mat = "button_green" if name == "button_resume" else "button_light"
        root.child(name).add(mat, cylinder(p.anchor, (0, 0, 1), p.size_mm[0] / 2000, 0.003, 20))
        label_quad(body, slots, name, on_face(p, up=0.0105), "top", 0.0045)
    for name in ("led_status", "led_jam"):
        p = part(name)
        # Above the panel plate decal (DECAL_LIFT), or the plate would hide the lens.
        root.child(name).add("led_off", disc(on_face(p, out=DECAL_LIFT + 0.0002), p.normal, p.size_mm[0] / 2000))
        label_quad(body, slots, name, on_face(p, up=0.0105), "top", 0.0045)

    node = root.child(cover.name)
    cy0 = cover.anchor[1]
    node.add("cover_grey", box((-cw / 2, cy0, hinge_z), (cw / 2, cy0 + 0.012, hinge_z + ch), bevel=0.002))
    node.add("interior_dark", rect((0.0, cy0, hinge_z + ch - 0.012), "front", 0.08, 0.008, DECAL_LIFT))
    label_quad(node, slots, cover.name, (0.0, cy0, hinge_z + ch - 0.026), "front", 0.008)

    p = part("paper_jam")
    pw, ph = p.size_mm[0] / 1000, p.size_mm[1] / 1000
    px, py, pz = p.anchor
    node = root.child(p.name)
    # A crumpled sheet: two panels folded toward the viewer, double-sided so it reads from any angle.
    lo = [(px - pw / 2, py, pz - ph / 2), (px + pw / 2, py + 0.004, pz - ph / 2)]
    mid = [(px + pw / 2, py - 0.012, pz + 0.004), (px - pw / 2, py - 0.006, pz + 0.002)]
    top = [(px + pw / 2, py - 0.002, pz + ph / 2), (px - pw / 2, py + 0.003, pz + ph / 2)]
    for a, b in ((lo, mid), (mid, top)):
        quad = [a[0], a[1], b[0], b[1]]
        sheet = Mesh()
        sheet.polygon(quad)
        sheet.polygon(list(reversed(quad)))
        node.add("paper_white", sheet)

    node = root.child(tray.name)
    ty0 = tray.anchor[1]
    node.add("tray_dark", box((-tw / 2, ty0 - 0.003, tray_z0), (tw / 2, ty0 + 0.007, tray_z1), bevel=0.003))
    node.add("interior_dark", rect((0.0, ty0 - 0.003, tray_z1 - 0.014), "front", 0.07, 0.010, DECAL_LIFT))
    label_quad(node, slots, tray.name, (0.0, ty0 - 0.003, tray_z0 + 0.020), "front", 0.009)
    node.add("tray_dark", box((-tw / 2 + 0.004, ty0 + 0.007, tray_z0),
                              (tw / 2 - 0.004, TRAY_DEPTH_END, tray_z0 + 0.004)))
    for sx in (-1, 1):
        xa = sx * (tw / 2 - 0.004)
        node.add("tray_dark", box((min(xa, xa - sx * 0.005), ty0 + 0.007, tray_z0),
                                  (max(xa, xa - sx * 0.005), TRAY_DEPTH_END, tray_z1 - 0.010)))
    node.add("tray_dark", box((-tw / 2 + 0.004, TRAY_DEPTH_END - 0.005, tray_z0),
                              (tw / 2 - 0.004, TRAY_DEPTH_END, tray_z1 - 0.010)))

    p = part("tray_media")
    mw, md = p.size_mm[0] / 1000, p.size_mm[1] / 1000
    mx, my, mz = p.anchor
    y_front = max(my - md / 2, ty0 + 0.009)
    root.child(p.name).add("paper_white", box((mx - mw / 2, y_front, tray_z0 + 0.004),
                                              (mx + mw / 2, my + md / 2, mz)))
    return root, materials(atlas)
