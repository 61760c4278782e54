"""A made-up product, written on the fly: ``product.yaml``, ``model.glb`` and one scene per fault.

It exists to prove that the project reads its products from the catalog and nothing else: a test copies the
shipped catalog and scene library to a temporary folder, adds a generated product, and runs the catalog tests
against the copy unchanged. So the product is deliberately unlike the shipped ones where a hidden assumption
could lurk: a different keypoint count, at least one part of every kind in :data:`PART_KINDS`, a hidden
twin var, and scenes in every locale the shipped library has (en, de, es).

Everything here goes through public interfaces only: the YAML format of docs/catalog.md, the modelling kit
``product_models.modeling`` ("Building a model without Blender") and the scene format of docs/scenes.md. The
result passes ``fixlens products check`` and ``fixlens scenes validate``.

The housing is a box W x D x H (``seed`` picks the size). Its faces hold, looking at the front:

- front: a display (left), the status LED, the power button and the reset pinhole (right), and below them a
  paper tray that slides out toward the viewer, carrying a paper stack;
- back: the power port (right) and a sync cable (left); top: a hinged lid and an antenna;
- left: a printed label; right: a mode switch and an ink cartridge that can be taken out.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from product_models.catalog import PART_KINDS, Part, Product, load_product
from product_models.errors import CatalogError
from product_models.modeling import (
    DECAL_LIFT,
    MODEL_FILE,
    Material,
    Node,
    box,
    cylinder,
    disc,
    on_face,
    rect,
    slab,
    write_glb,
)

KEYPOINT_COUNT = 12  # the shipped products have 10: a catalog must not assume one count for every product
TRAY_TRAVEL_M = 0.090  # how far the tray slides out
LID_OPEN_DEG = -100.0  # about +x through the lid's back edge: negative lifts its front edge up
RESET_HOLD_S = 10.0  # the pinhole must be held this long to restore the settings (the scene says ten seconds)

# Linear RGBA. Parts that change state stand out from the housing, so the state renders of `products check`
# see them change.
MATERIALS = [
    Material("housing", (0.50, 0.52, 0.55, 1.0), roughness=0.6),
    Material("dark", (0.02, 0.02, 0.025, 1.0), roughness=0.3),
    Material("lid", (0.05, 0.12, 0.45, 1.0), roughness=0.5),
    Material("tray", (0.30, 0.05, 0.05, 1.0), roughness=0.6),
    Material("paper", (0.90, 0.90, 0.88, 1.0), roughness=0.9),
    Material("cable", (0.85, 0.35, 0.02, 1.0), roughness=0.5),
    Material("plug", (0.02, 0.10, 0.50, 1.0), roughness=0.5),
    Material("button", (0.75, 0.75, 0.78, 1.0), roughness=0.4),
    Material("cartridge", (0.80, 0.60, 0.02, 1.0), roughness=0.5),
    Material("label", (0.95, 0.95, 0.95, 1.0), roughness=0.8),
]

# (en, de, es) texts; the shipped scenes have all three, and a missing one is a validation warning.
Text = tuple[str, str, str]


def _i18n(text: Text) -> dict[str, str]:
    return dict(zip(("en", "de", "es"), text, strict=True))


# ------------------------------------------------------------------------------------------------------------
# Parts: one YAML entry and one geometry builder per kind.


def _parts(w: float, d: float, h: float) -> dict[str, dict[str, Any]]:
    """Part kind -> its ``parts:`` entry on a W x D x H (metres) housing."""
    front, back = -d / 2, d / 2
    top_row = round(h - 0.020, 4)
    lid_y = 0.0
    return {
        "display": {"name": "display_main", "facing": "front", "anchor": [-w / 4, front, top_row],
                    "size_mm": [60, 20], "label": _i18n(("Display", "Anzeige", "Pantalla"))},
        "led": {"name": "led_status", "facing": "front", "anchor": [0.020, front, top_row], "size_mm": [5, 5],
                "states": ["off", "green", "red"], "healthy": "green",
                "label": _i18n(("Status", "Status", "Estado"))},  # hints add "light": led_part
        "button": {"name": "button_power", "facing": "front", "anchor": [0.050, front, top_row], "size_mm": [10, 10],
                   "actions": ["press"], "label": _i18n(("Power button", "Ein/Aus-Taste", "Botón de encendido"))},
        "pinhole": {"name": "pinhole_reset", "facing": "front", "anchor": [0.080, front, top_row], "size_mm": [2, 2],
                    "actions": ["hold"], "label": _i18n(("Reset pinhole", "Reset-Öffnung", "Orificio de reinicio"))},
        "tray": {"name": "tray_media", "facing": "front", "anchor": [0.0, front, 0.020], "size_mm": [120, 20],
                 "states": ["closed", "open"], "healthy": "closed", "actions": ["open", "close"],
                 "moves": {"open": {"translate": [0.0, -TRAY_TRAVEL_M, 0.0]}},
                 "label": _i18n(("Media tray", "Medienfach", "Bandeja de soportes"))},
        "paper": {"name": "paper_stack", "facing": "top", "anchor": [0.0, front + 0.045, 0.016], "size_mm": [100, 70],
                  "states": ["empty", "loaded"], "healthy": "loaded", "actions": ["insert", "remove"],
                  "attached_to": "tray_media", "label": _i18n(("Paper stack", "Papierstapel", "Pila de papel"))},
        "port": {"name": "port_power", "facing": "back", "anchor": [0.060, back, 0.030], "size_mm": [10, 10],
                 "states": ["empty", "plugged"], "healthy": "plugged", "actions": ["plug", "unplug"],
                 "label": _i18n(("Power socket", "Stromanschluss", "Toma de corriente"))},
        "cable": {"name": "cable_sync", "facing": "back", "anchor": [-0.060, back, 0.030], "size_mm": [8, 8],
                  "states": ["connected", "unplugged"], "healthy": "connected", "actions": ["plug", "unplug"],
                  "label": _i18n(("Sync cable", "Sync-Kabel", "Cable de sincronización"))},
        "cover": {"name": "cover_lid", "facing": "top", "anchor": [w / 4, lid_y, h], "size_mm": [80, 60],
                  "states": ["closed", "open"], "healthy": "closed", "actions": ["open", "close"],
                  "moves": {"open": {"hinge": [w / 4, lid_y + 0.030, h + 0.001], "axis": [1, 0, 0],
                                     "degrees": LID_OPEN_DEG}},
                  "label": _i18n(("Top lid", "Deckel", "Tapa superior"))},
        "antenna": {"name": "antenna_main", "facing": "top", "anchor": [-w / 4, back - 0.020, h + 0.060],
                    "size_mm": [10, 120], "label": _i18n(("Antenna", "Antenne", "Antena"))},
        "label": {"name": "label_rating", "facing": "left", "anchor": [-w / 2, 0.0, h / 2], "size_mm": [50, 20],
                  "label": _i18n(("Rating label", "Typenschild", "Etiqueta de características"))},
        "removable": {"name": "cartridge_ink", "facing": "right", "anchor": [w / 2, -d / 4, 0.025],
                      "size_mm": [30, 20], "states": ["present", "absent"], "healthy": "present",
                      "actions": ["insert", "remove"],
                      "label": _i18n(("Ink cartridge", "Tintenpatrone", "Cartucho de tinta"))},
        "switch": {"name": "switch_mode", "facing": "right", "anchor": [w / 2, 0.0, h / 2], "size_mm": [12, 6],
                   "label": _i18n(("Mode switch", "Modusschalter", "Interruptor de modo"))},
    }


def _geometry_builders() -> dict[str, Callable[[Node, Part], None]]:
    """Part kind -> what draws it into its node (the part's geometry where it sits in its healthy state)."""

    def flat(material: str) -> Callable[[Node, Part], None]:
        def draw(node: Node, part: Part) -> None:
            node.add(material, rect(part.anchor, part.facing, part.size_mm[0] / 1000, part.size_mm[1] / 1000,
                                    lift=DECAL_LIFT))
        return draw

    def raised(material: str, depth: float) -> Callable[[Node, Part], None]:
        def draw(node: Node, part: Part) -> None:
            node.add(material, slab(part.anchor, part.facing, part.size_mm[0] / 1000, part.size_mm[1] / 1000, depth))
        return draw

    def led(node: Node, part: Part) -> None:  # an unlit lens: the renderer lights it by state
        node.add("dark", disc(on_face(part, out=0.0002), part.normal, part.size_mm[0] / 2000))

    def pinhole(node: Node, part: Part) -> None:
        node.add("dark", disc(on_face(part, out=0.0002), part.normal, part.size_mm[0] / 2000))

    def port(node: Node, part: Part) -> None:
        node.add("dark", rect(part.anchor, part.facing, 0.010, 0.010, lift=DECAL_LIFT))
        node.child(f"cable_{part.name}").add("plug", cylinder(part.anchor, part.normal, 0.004, 0.030))

    def cable(node: Node, part: Part) -> None:  # starts inside the housing so that its anchor lies on it
        node.add("cable", cylinder(on_face(part, out=-0.005), part.normal, 0.004, 0.040))

    def tray(node: Node, part: Part) -> None:
        x, y, _ = part.anchor
        half = part.size_mm[0] / 2000
        node.add("tray", slab(part.anchor, part.facing, 2 * half, part.size_mm[1] / 1000, 0.003))
        # The floor the paper lies on, hidden in the housing while the tray is closed.
        node.add("tray", box((x - half + 0.002, y, 0.010), (x + half - 0.002, y + TRAY_TRAVEL_M, 0.012)))

    def paper(node: Node, part: Part) -> None:
        x, y, z = part.anchor
        hw, hd = part.size_mm[0] / 2000, part.size_mm[1] / 2000
        node.add("paper", box((x - hw, y - hd, 0.012), (x + hw, y + hd, z)))

    def antenna(node: Node, part: Part) -> None:
        x, y, z = part.anchor
        length = part.size_mm[1] / 1000
        node.add("dark", cylinder((x, y, z - length / 2), (0, 0, 1), part.size_mm[0] / 2000, length))

    return {
        "led": led, "port": port, "button": raised("button", 0.002), "pinhole": pinhole, "tray": tray,
        "cover": raised("lid", 0.002), "cable": cable, "label": flat("label"), "antenna": antenna,
        "paper": paper, "display": flat("dark"), "switch": raised("button", 0.003),
        "removable": raised("cartridge", 0.006),
    }


# ------------------------------------------------------------------------------------------------------------
# Keypoints, faults and the twin


def _keypoints(w: float, d: float, h: float) -> list[dict[str, Any]]:
    """The 8 corners of the housing, then marks a network can find, where :func:`_parts` places them: the
    antenna's tip and its foot (a dark rod against the housing, seen from nearly everywhere), the display's top
    left corner and its centre (front), KEYPOINT_COUNT in all. A point half-way along a plain edge is no
    keypoint: nothing marks where along the edge it lies, so the network's heatmap spreads along the edge and
    its confidence stays near zero (the first version of this product had four such points; on its renders
    they scored a median of 0.05-0.10 where its corners scored 0.66-0.93, and the pose check, which counts every
    keypoint, refused its poses as unsure). A corner of a small flat mark is hardly better: the second version's
    display bottom-right corner and the top front corner of its pale label on the left side stayed at 0.08-0.10
    after 40 epochs, where the antenna's tip reached 0.98. The antenna's foot reached 0.74 after 24 epochs from
    fresh rows; the display's centre only 0.15, no better than its corners (docs/catalog.md, *Keypoints*)."""
    corners = [(f"{zn}_{yn}_{xn}", [x, y, z])
               for zn, z in (("top", h), ("bottom", 0.0)) for yn, y in (("front", -d / 2), ("back", d / 2))
               for xn, x in (("left", -w / 2), ("right", w / 2))]
    parts = _parts(w, d, h)
    display, antenna = parts["display"], parts["antenna"]
    dx, dy, dz = display["anchor"]
    dw, dh = (v / 2000 for v in display["size_mm"])  # half sizes, metres
    ax, ay, az = antenna["anchor"]
    half_rod = antenna["size_mm"][1] / 2000
    marks = [("antenna_tip", [ax, ay, az + half_rod]), ("antenna_foot", [ax, ay, az - half_rod]),
             ("display_top_left", [dx - dw, dy, dz + dh]), ("display_centre", [dx, dy, dz])]
    points = (corners + marks)[:KEYPOINT_COUNT]
    return [{"name": name, "position": [round(v, 4) for v in pos]} for name, pos in points]


FAULTS: dict[str, dict[str, Any]] = {
    "unplugged": {"description": _i18n(("The power cable is not plugged in.", "Das Stromkabel ist nicht eingesteckt.",
                                        "El cable de alimentación no está enchufado.")),
                  "states": {"port_power": "empty", "led_status": "off"}},
    "tray_open": {"description": _i18n(("The media tray is pulled out, so the device stops.",
                                        "Das Medienfach ist herausgezogen, daher stoppt das Gerät.",
                                        "La bandeja está fuera, por lo que el dispositivo se detiene.")),
                  "states": {"tray_media": "open", "led_status": "red"}},
    "cartridge_missing": {"description": _i18n(("The ink cartridge has been taken out.",
                                                "Die Tintenpatrone wurde herausgenommen.",
                                                "Se ha sacado el cartucho de tinta.")),
                          "states": {"cartridge_ink": "absent", "led_status": "red"}},
    "settings_lost": {"description": _i18n(("The stored settings are damaged; a reset restores them.",
                                            "Die gespeicherten Einstellungen sind beschädigt; ein Reset stellt "
                                            "sie her.", "Los ajustes guardados están dañados; un reinicio los "
                                            "restaura.")),
                      "states": {"led_status": "red"}},
}


def _twin() -> dict[str, Any]:
    """Every change emits ``check``, whose first matching rule sets the status LED from the device's condition."""
    def toggle(part: str, action: str, before: str, after: str) -> dict[str, Any]:
        return {"name": f"{action}_{part}", "on": {"action": action, "part": part}, "if": {part: before},
                "then": [{"set": {part: after}}, {"emit": "check"}]}

    rules = [
        toggle("port_power", "plug", "empty", "plugged"), toggle("port_power", "unplug", "plugged", "empty"),
        toggle("tray_media", "open", "closed", "open"), toggle("tray_media", "close", "open", "closed"),
        toggle("cover_lid", "open", "closed", "open"), toggle("cover_lid", "close", "open", "closed"),
        toggle("cable_sync", "plug", "unplugged", "connected"),
        toggle("cable_sync", "unplug", "connected", "unplugged"),
        # The twin inserts and removes a removable part by itself; these rules add the LED check.
        toggle("cartridge_ink", "insert", "absent", "present"), toggle("cartridge_ink", "remove", "present", "absent"),
        {"name": "paper_behind_closed_tray", "on": {"action": "insert", "part": "paper_stack"},
         "if": {"tray_media": "closed"}, "refuse": "The tray is closed; pull it out first."},
        toggle("paper_stack", "insert", "empty", "loaded"),
        {"name": "paper_out_of_closed_tray", "on": {"action": "remove", "part": "paper_stack"},
         "if": {"tray_media": "closed"}, "refuse": "The tray is closed; pull it out first."},
        toggle("paper_stack", "remove", "loaded", "empty"),
        {"name": "press_power_rechecks", "on": {"action": "press", "part": "button_power"},
         "then": [{"emit": "check"}]},
        {"name": "reset_restores_settings", "on": {"action": "hold", "part": "pinhole_reset",
                                                   "min_seconds": RESET_HOLD_S},
         "if": {"port_power": "plugged"},
         "then": [{"set_var": {"settings": "ok"}}, {"set": {"led_status": "off"}}, {"after": 3, "emit": "check"}]},
        {"name": "check_unpowered", "on": {"event": "check"}, "if": {"port_power": "empty"},
         "then": [{"set": {"led_status": "off"}}]},
        {"name": "check_tray_open", "on": {"event": "check"}, "if": {"tray_media": "open"},
         "then": [{"set": {"led_status": "red"}}]},
        {"name": "check_cartridge", "on": {"event": "check"}, "if": {"cartridge_ink": "absent"},
         "then": [{"set": {"led_status": "red"}}]},
        {"name": "check_settings", "on": {"event": "check"}, "if": {"settings": "lost"},
         "then": [{"set": {"led_status": "red"}}]},
        {"name": "check_ready", "on": {"event": "check"},
         "then": [{"blink": {"part": "led_status", "state": "green", "hz": 2}},
                  {"after": 2, "set": {"led_status": "green"}}]},
    ]
    return {"vars": {"settings": {"values": ["ok", "lost"], "initial": "ok"}},
            "faults": {"settings_lost": {"vars": {"settings": "lost"}}}, "rules": rules}


# ------------------------------------------------------------------------------------------------------------
# Scenes: one per fault, each a single step the twin's rules repair, with a way to an agent.

# fault -> (scene id suffix, title, trigger conditions, trigger reason, (part, action, overlay direction), text)
SCENES: dict[str, tuple[str, Text, list[dict[str, str]], Text, tuple[str, str, str], Text]] = {
    "unplugged": ("no_power", ("No power", "Kein Strom", "Sin alimentación"),
                  [{"part": "port_power", "is": "empty"}, {"part": "led_status", "is": "off"}],
                  ("the power cable is not plugged in", "das Stromkabel ist nicht eingesteckt",
                   "el cable de alimentación no está enchufado"),
                  ("port_power", "plug", "in"),
                  ("Plug the power cable into the socket on the back.",
                   "Stecken Sie das Stromkabel hinten in die Buchse.",
                   "Enchufe el cable de alimentación en la toma de la parte trasera.")),
    "tray_open": ("tray_open", ("Tray open", "Fach offen", "Bandeja abierta"),
                  [{"part": "tray_media", "is": "open"}, {"part": "led_status", "is": "red"}],
                  ("the media tray is pulled out", "das Medienfach ist herausgezogen", "la bandeja está fuera"),
                  ("tray_media", "close", "in"),
                  ("Push the media tray back in until it clicks.",
                   "Schieben Sie das Medienfach wieder hinein, bis es einrastet.",
                   "Empuje la bandeja hacia dentro hasta que encaje.")),
    "cartridge_missing": ("no_cartridge", ("Cartridge missing", "Patrone fehlt", "Falta el cartucho"),
                          [{"part": "cartridge_ink", "is": "absent"}, {"part": "led_status", "is": "red"}],
                          ("the ink cartridge is missing", "die Tintenpatrone fehlt", "falta el cartucho de tinta"),
                          ("cartridge_ink", "insert", "in"),
                          ("Slide the ink cartridge into its bay on the right side until it clicks.",
                           "Schieben Sie die Tintenpatrone rechts in ihren Schacht, bis sie einrastet.",
                           "Introduzca el cartucho de tinta en su hueco del lado derecho hasta que encaje.")),
    "settings_lost": ("settings_lost", ("Red status light", "Rote Statusleuchte", "Luz de estado roja"),
                      [{"part": "led_status", "is": "red"}],
                      ("the status light is red", "die Statusleuchte ist rot", "la luz de estado está roja"),
                      ("pinhole_reset", "hold", "in"),
                      ("Hold a paper clip in the reset pinhole for ten seconds.",
                       "Halten Sie eine Büroklammer zehn Sekunden lang in die Reset-Öffnung.",
                       "Mantenga un clip en el orificio de reinicio durante diez segundos.")),
}


def _scene(product_id: str, fault: str) -> dict[str, Any]:
    suffix, title, conditions, reason, (part, action, direction), text = SCENES[fault]
    trigger: dict[str, Any] = {"all": conditions} if len(conditions) > 1 else dict(conditions[0])
    trigger["reason"] = _i18n(reason)
    return {
        "id": f"{product_id}_{suffix}", "product": product_id, "default_locale": "en", "title": _i18n(title),
        "triggers": [trigger], "start": "repair",
        "steps": {
            "repair": {
                "text": _i18n(text),
                "overlays": [{"kind": "highlight", "part": part, "color": "amber"},
                             {"kind": "arrow", "part": part, "direction": direction},
                             {"kind": "animate", "part": part, "action": action},
                             {"kind": "highlight", "part": "led_status", "color": "green"}],
                "when": [{"part": "led_status", "is": "green", "hold": 2, "goto": "resolved"}],
                "on_timeout": {"after": 60, "goto": "escalate"},
                "expect_s": 30,
            },
            "resolved": {"outcome": "resolved", "text": _i18n((
                "The status light is green. The device works again.",
                "Die Statusleuchte ist grün. Das Gerät funktioniert wieder.",
                "La luz de estado está verde. El dispositivo vuelve a funcionar."))},
            "escalate": {"outcome": "escalate", "text": _i18n((
                "A support agent will take over from here.", "Ein Support-Mitarbeiter übernimmt ab hier.",
                "Un agente de soporte continuará desde aquí."))},
        },
    }


# ------------------------------------------------------------------------------------------------------------
# Entry point


def _dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)


def generate_product(root: Path, product_id: str, seed: int, *, scene_dir: Path | None = None) -> Path:
    """Write a new product ``<root>/<product_id>/`` (``product.yaml`` and ``model.glb``) and, when ``scene_dir``
    is given, one scene per fault into it (``<product_id>_<...>.yaml``). ``seed`` picks the housing's size, so
    two seeds give two different products. Returns the product folder.

    Raises CatalogError when :data:`PART_KINDS` holds a kind this generator cannot build yet: the product must
    have a part of every kind, or it would silently stop covering the new one."""
    specs = _parts(0.0, 0.0, 0.0)  # only the kinds are read here
    builders = _geometry_builders()
    missing = [k for k in PART_KINDS if k not in specs or k not in builders]
    if missing:
        raise CatalogError(f"product_models.generate cannot build part kind(s) {', '.join(missing)} yet; "
                           "add a part entry and a geometry builder for each (expected every kind in PART_KINDS)")
    rng = random.Random(seed)
    w, d, h = rng.randint(220, 260) / 1000, rng.randint(150, 170) / 1000, rng.randint(70, 90) / 1000
    sized = _parts(w, d, h)
    parts = []
    for kind in PART_KINDS:
        entry = dict(sized[kind])
        entry = {"name": entry.pop("name"), "kind": kind, **entry}
        entry["anchor"] = [round(float(v), 4) for v in entry["anchor"]]
        parts.append(entry)
    doc = {
        "id": product_id,
        "name": _i18n((f"Test hub {product_id}", f"Test-Hub {product_id}", f"Concentrador de prueba {product_id}")),
        "size_mm": [round(w * 1000), round(d * 1000), round(h * 1000)],
        "parts": parts, "keypoints": _keypoints(w, d, h), "faults": FAULTS, "twin": _twin(),
    }
    folder = root / product_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "product.yaml").write_text(_dump(doc), encoding="utf-8")
    product = load_product(folder / "product.yaml")  # build from the YAML, so the two cannot disagree
    (folder / MODEL_FILE).write_bytes(_model(product, builders))
    if scene_dir is not None:
        scene_dir.mkdir(parents=True, exist_ok=True)
        for fault in FAULTS:
            scene = _scene(product_id, fault)
            (scene_dir / f"{scene['id']}.yaml").write_text(_dump(scene), encoding="utf-8")
    return folder


def _model(product: Product, builders: dict[str, Callable[[Node, Part], None]]) -> bytes:
    w, d, h = product.size_m
    root = Node(product.id)  # part nodes are the root's direct children: the renderer moves each one itself
    root.child("body").add("housing", box((-w / 2, -d / 2, 0.0), (w / 2, d / 2, h), bevel=0.003))
    for part in product.parts:
        builders[part.kind](root.child(part.name), part)
    return write_glb(root, MATERIALS)
