"""Viewpoints that show a given part, and labelled contact sheets of every state of every part."""

from __future__ import annotations

import math

import cv2
import numpy as np

from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import Product
from product_models.render import Renderer

HFOV_DEG = 63.0  # the default phone camera of product_models.camera
FACING_VIEW = {  # facing -> (yaw, pitch) degrees of a camera that looks at that face, slightly off-axis
    "front": (18.0, 28.0), "back": (162.0, 24.0), "left": (-70.0, 25.0), "right": (70.0, 25.0),
    "top": (12.0, 58.0), "bottom": (15.0, -40.0),
}
CAPTION_PX = 22
SMALL_KINDS = frozenset({"led", "button", "pinhole", "port", "switch", "display"})


def default_distance(product: Product) -> float:
    """Phone distance for the whole product in view: about 0.5 m for a router, 0.9-1 m for a printer."""
    return round(2.2 * max(product.size_m), 3)


def product_view(product: Product, yaw: float = 25.0, pitch: float = 30.0, distance: float | None = None) -> Pose:
    """An orbit pose around the middle of ``product``."""
    return Pose.orbit(yaw, pitch, distance or default_distance(product), target=(0.0, 0.0, product.size_m[2] / 2))


def part_view(product: Product, part: str, states: dict[str, str]) -> Pose:
    """A pose from which ``part`` (in ``states``) is seen from its facing side, with the product around it."""
    p = product.part(part)
    yaw, pitch = FACING_VIEW.get(p.facing, (20.0, 30.0))
    if p.kind == "antenna":
        yaw, pitch = 20.0, 15.0
    anchor = product.anchor_at(part, states)
    centre = np.array([0.0, 0.0, product.size_m[2] / 2])
    # Small parts (LEDs, buttons, ports) get a closer look, the way a person would hold the phone.
    small = p.kind in SMALL_KINDS
    weight = 0.75 if small else 0.45
    target = weight * anchor + (1.0 - weight) * centre
    return Pose.orbit(yaw, pitch, (0.55 if small else 0.8) * default_distance(product), target=tuple(target))


def _with_moving_parts_opened(product: Product, states: dict[str, str], part: str) -> dict[str, str]:
    """``states`` with the movable parts that may hide ``part`` moved (opened): the chain it is attached to
    if it has one, else every other movable part (covers, trays)."""
    out = dict(states)
    chain = []
    walk = product.part(part).attached_to
    while walk is not None and walk not in chain:
        chain.append(walk)
        walk = product.part(walk).attached_to
    for p in product.parts:
        if p.moves and p.name != part and (not chain or p.name in chain):
            out[p.name] = next(iter(p.moves))
    return out


def render_part_tile(renderer: Renderer, product: Product, part: str, state: str | None, width: int,
                     height: int) -> np.ndarray:
    """One tile showing ``part`` (in ``state``; all else healthy); opens covers/trays if the part is hidden."""
    camera = CameraIntrinsics.from_fov(width, height, HFOV_DEG)
    states = product.healthy_states()
    if state is not None:
        states[part] = state
    res = renderer.render(product, states, part_view(product, part, states), camera)
    if not res.truth.parts[part].visible and any(p.moves for p in product.parts):
        opened = _with_moving_parts_opened(product, states, part)
        retry = renderer.render(product, opened, part_view(product, part, opened), camera)
        # Ties go to the opened view: an absent part (no paper) is then shown as an empty tray or bay.
        if retry.truth.parts[part].visible_fraction >= res.truth.parts[part].visible_fraction:
            res = retry
    return res.image


def contact_sheet(renderer: Renderer, product: Product, tile_width: int = 256, tile_height: int = 192,
                  columns: int = 5) -> np.ndarray:
    """(h, w, 3) uint8 RGB grid: one captioned tile per state of every part ("part=state"), and one per
    stateless part (captioned with its name)."""
    tiles: list[tuple[str, np.ndarray]] = []
    for p in product.parts:
        for state in p.states or (None,):
            caption = f"{p.name}={state}" if state is not None else p.name
            tiles.append((caption, render_part_tile(renderer, product, p.name, state, tile_width, tile_height)))
    rows = math.ceil(len(tiles) / columns)
    cell_h = tile_height + CAPTION_PX
    sheet = np.full((rows * cell_h + 4, columns * (tile_width + 4) + 4, 3), 255, np.uint8)
    for i, (caption, img) in enumerate(tiles):
        r, c = divmod(i, columns)
        x, y = 4 + c * (tile_width + 4), 4 + r * cell_h
        sheet[y:y + tile_height, x:x + tile_width] = img
        cv2.putText(sheet, caption, (x + 4, y + tile_height + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1,
                    cv2.LINE_AA)
    return sheet
