"""Procedural model of the AX1800 router: matte dark body, LED row on top, ports on the back, two antennas."""

from __future__ import annotations

from product_models.catalog import Product
from product_models.modeling.gltf import Material, Node
from product_models.modeling.kit import DECAL_LIFT, LABEL_MATERIAL, label_quad, on_face
from product_models.modeling.labels import build_atlas
from product_models.modeling.mesh import box, cylinder, disc, rect, slab

INK_LIGHT = (215, 218, 222)
DARK_PLASTIC = (20, 21, 23)  # sRGB of the body, so label paper blends into it

# Short texts a real device prints beside each part.
PRINTED = {
    "led_power": "POWER", "led_internet": "INTERNET", "led_wifi": "WI-FI", "led_lan1": "LAN1", "led_lan2": "LAN2",
    "button_wifi": "WPS", "port_power": "DC 12V", "button_power": "ON/OFF", "port_wan": "WAN",
    "port_lan1": "LAN1", "port_lan2": "LAN2", "pinhole_reset": "RESET",
}
CABLE_COLOURS = {"port_wan": "cable_blue", "port_lan1": "cable_grey", "port_lan2": "cable_grey"}


def materials(atlas_png: bytes) -> list[Material]:
    return [
        Material("body_dark", (0.0070, 0.0075, 0.0085, 1.0), 0.0, 0.75),
        Material("vent_black", (0.001, 0.001, 0.001, 1.0), 0.0, 0.9),
        Material("button_grey", (0.03, 0.03, 0.035, 1.0), 0.0, 0.5),
        Material("led_off", (0.05, 0.05, 0.05, 1.0), 0.0, 0.2),
        Material("port_hole", (0.0, 0.0, 0.0, 1.0), 0.0, 1.0),
        Material("port_metal", (0.55, 0.56, 0.58, 1.0), 0.9, 0.35),
        Material("wan_yellow", (0.95, 0.62, 0.02, 1.0), 0.0, 0.5),
        Material("plug_clear", (0.70, 0.74, 0.78, 1.0), 0.0, 0.2),
        Material("cable_blue", (0.02, 0.12, 0.55, 1.0), 0.0, 0.6),
        Material("cable_grey", (0.55, 0.57, 0.60, 1.0), 0.0, 0.6),
        Material("cable_black", (0.01, 0.01, 0.01, 1.0), 0.0, 0.6),
        Material(LABEL_MATERIAL, (1.0, 1.0, 1.0, 1.0), 0.0, 0.8, texture_png=atlas_png),
    ]


def build(product: Product) -> tuple[Node, list[Material]]:
    """The router's node tree (one node per catalog part) and its materials."""
    entries = [(name, text, INK_LIGHT, DARK_PLASTIC) for name, text in PRINTED.items()]
    entries.append(("logo", "fixlens AX1800", (150, 152, 158), DARK_PLASTIC))
    atlas, slots = build_atlas(entries)
    w, d, h = product.size_m
    root = Node(product.id)
    body = root.child("body")
    body.add("body_dark", box((-w / 2, -d / 2, 0.0), (w / 2, d / 2, h), bevel=0.004))
    # Vent slots across the back half of the lid.
    for i in range(9):
        y = 0.004 + i * 0.0055
        body.add("vent_black", rect((0.0, y, h), "top", 0.150, 0.0018, DECAL_LIFT))
    label_quad(body, slots, "logo", (0.0, -0.022, h), "top", 0.007)
    part = product.part

    for name in ("led_power", "led_internet", "led_wifi", "led_lan1", "led_lan2"):
        p = part(name)
        node = root.child(name)
        node.add("led_off", disc(on_face(p, out=0.0002), p.normal, p.size_mm[0] / 2000.0))
        label_quad(body, slots, name, on_face(p, up=-0.0105), "top", 0.0055)

    p = part("button_wifi")
    root.child(p.name).add("button_grey", slab(p.anchor, "front", p.size_mm[0] / 1000, p.size_mm[1] / 1000,
                                               0.0015, bevel=0.0005))
    label_quad(body, slots, p.name, on_face(p, right=-0.015), "front", 0.005)

    for name in ("port_wan", "port_lan1", "port_lan2"):
        p = part(name)
        node = root.child(name)
        pw, ph = p.size_mm[0] / 1000, p.size_mm[1] / 1000
        node.add("wan_yellow" if name == "port_wan" else "port_metal", rect(p.anchor, "back", pw, ph, 0.0002))
        node.add("port_hole", rect(on_face(p, up=0.0005), "back", pw - 0.004, ph - 0.0045, 0.0004))
        node.add("port_hole", rect(on_face(p, up=-(ph / 2) + 0.0018), "back", 0.005, 0.0022, 0.0004))
        node.add("port_metal", rect(on_face(p, up=ph / 2 - 0.0038), "back", pw - 0.0065, 0.0008, 0.0006))
        label_quad(body, slots, name, on_face(p, up=0.013), "back", 0.005)
        _rj45_cable(node.child(f"cable_{name}"), p.anchor, CABLE_COLOURS[name])

    p = part("port_power")
    node = root.child(p.name)
    node.add("vent_black", disc(on_face(p, out=0.0002), p.normal, 0.005))
    node.add("port_hole", disc(on_face(p, out=0.0004), p.normal, 0.0032))
    node.add("port_metal", disc(on_face(p, out=0.0006), p.normal, 0.001, 10))
    label_quad(body, slots, p.name, on_face(p, up=0.013), "back", 0.005)
    cable = node.child(f"cable_{p.name}")
    cable.add("cable_black", cylinder(p.anchor, p.normal, 0.0045, 0.022, 16))
    _cable_run(cable, (p.anchor[0], p.anchor[1] + 0.022, p.anchor[2]), 0.0018, "cable_black")

    p = part("button_power")
    root.child(p.name).add("button_grey", cylinder(p.anchor, p.normal, p.size_mm[0] / 2000, 0.003, 16))
    label_quad(body, slots, p.name, on_face(p, up=0.013), "back", 0.005)

    p = part("pinhole_reset")
    node = root.child(p.name)
    node.add("button_grey", disc(on_face(p, out=0.0002), p.normal, 0.0022, 16))
    node.add("port_hole", disc(on_face(p, out=0.0004), p.normal, p.size_mm[0] / 2000, 12))
    label_quad(body, slots, p.name, on_face(p, up=0.013), "back", 0.005)

    for name in ("antenna_left", "antenna_right"):
        p = part(name)
        x, y, _ = p.anchor
        length = p.size_mm[1] / 1000
        half = p.size_mm[0] / 2000
        node = root.child(name)
        node.add("body_dark", cylinder((x - 0.008, y, h + 0.007), (1, 0, 0), 0.007, 0.016, 16))
        node.add("body_dark", box((x - half, y - 0.004, h + 0.010), (x + half, y + 0.004, h + length),
                                  bevel=0.003))
    return root, materials(atlas)


def _rj45_cable(node: Node, anchor: tuple[float, float, float], colour: str) -> None:
    """An RJ45 plug seated in a back-panel port with its boot and a short run of cable behind it."""
    x, y, z = anchor
    node.add("plug_clear", box((x - 0.0058, y - 0.004, z - 0.0045), (x + 0.0058, y + 0.020, z + 0.0040)))
    node.add(colour, box((x - 0.005, y + 0.020, z - 0.0040), (x + 0.005, y + 0.034, z + 0.0036), bevel=0.0012))
    _cable_run(node, (x, y + 0.034, z), 0.0027, colour)


def _cable_run(node: Node, start: tuple[float, float, float], radius: float, colour: str) -> None:
    """Cable leaving the back panel, dropping to the desk and running on behind the device."""
    x, y, z = start
    node.add(colour, cylinder((x, y - 0.001, z), (0, 1, 0), radius, 0.030, 12))
    drop = z - radius
    node.add(colour, cylinder((x, y + 0.029, z), (0, 1, -drop / 0.025), radius, (0.025**2 + drop**2) ** 0.5, 12))
    node.add(colour, cylinder((x, y + 0.053, radius), (0, 1, 0), radius, 0.040, 12))
