"""One product from one orbit viewpoint over a plain colour: what ``fixlens products render`` draws.

The command and ``fixlens bench plain`` both render through :func:`render_view`, so a benchmark over
"the router as ``products render`` shows it" measures exactly those pixels.
"""

from __future__ import annotations

import re

from product_models.camera import CameraIntrinsics
from product_models.catalog import Product
from product_models.errors import CatalogError
from product_models.render import DEFAULT_BACKGROUND, Renderer, RenderResult
from product_models.render_sheet import HFOV_DEG, product_view

# Named plain backgrounds, RGB 0..1. "grey" is the renderer's default, so `products render` without
# --background draws what it always drew.
BACKGROUNDS: dict[str, tuple[float, float, float]] = {
    "grey": DEFAULT_BACKGROUND,
    "white": (1.0, 1.0, 1.0),
}
_RGB = re.compile(r"\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*")
MIN_SIZE_PX, MAX_SIZE_PX = 16, 8192
MIN_DISTANCE_M, MAX_DISTANCE_M = 0.05, 50.0


def parse_background(text: str) -> tuple[float, float, float]:
    """``grey``, ``white`` or ``R,G,B`` (three integers 0..255) -> RGB 0..1. Raises CatalogError."""
    name = text.strip().lower()
    if name in BACKGROUNDS:
        return BACKGROUNDS[name]
    match = _RGB.fullmatch(text)
    if match is None or any(int(c) > 255 for c in match.groups()):
        raise CatalogError(f"expected grey, white or R,G,B (three integers 0..255, e.g. 236,234,228), "
                           f"got {text!r}")
    red, green, blue = (int(c) / 255.0 for c in match.groups())
    return red, green, blue


def background_rgb8(rgb: tuple[float, float, float]) -> tuple[int, int, int]:
    """RGB 0..1 -> the 0..255 triple ``parse_background`` would read back."""
    red, green, blue = (round(255.0 * c) for c in rgb)
    return red, green, blue


def view_camera(width: int, height: int) -> CameraIntrinsics:
    """The camera ``products render`` uses: square pixels, centred, ``HFOV_DEG`` horizontal field of view."""
    return CameraIntrinsics.from_fov(width, height, HFOV_DEG)


def render_view(product: Product, states: dict[str, str], *, yaw: float = 25.0, pitch: float = 30.0,
                distance: float | None = None, width: int = 640, height: int = 480,
                background: tuple[float, float, float] = DEFAULT_BACKGROUND, markers: bool = False,
                renderer: Renderer | None = None) -> RenderResult:
    """``product`` in ``states`` (unnamed parts healthy) seen from ``yaw``/``pitch`` degrees at ``distance``
    metres from its middle (default: phone distance), ``width`` x ``height`` pixels, over the plain colour
    ``background`` (RGB 0..1). Pass a ``renderer`` of that size to reuse its loaded models.

    Raises CatalogError naming the bad value (size, distance, part, state).
    """
    if not (MIN_SIZE_PX <= width <= MAX_SIZE_PX and MIN_SIZE_PX <= height <= MAX_SIZE_PX):
        raise CatalogError(f"--width/--height must be within {MIN_SIZE_PX}..{MAX_SIZE_PX}, got {width}x{height}")
    if distance is not None and not MIN_DISTANCE_M <= distance <= MAX_DISTANCE_M:
        raise CatalogError(f"--distance must be within {MIN_DISTANCE_M:g}..{MAX_DISTANCE_M:g} metres, "
                           f"got {distance}")
    if renderer is None:
        renderer = Renderer(width, height)
    camera = view_camera(width, height)
    return renderer.render(product, states, product_view(product, yaw, pitch, distance), camera,
                           background_rgb=background, markers=markers)
