"""Frames for ``fixlens bench plain``: a product as ``fixlens products render`` draws it, over a plain
surface, from seeded handheld-like viewpoints.

Rules:
1. Every frame goes through :func:`product_models.render_view.render_view`, the function behind
   ``fixlens products render``: healthy part states, its camera (``HFOV_DEG`` horizontal field of view, square
   pixels, centred), its orbit about the product's middle, its lighting; only the plain colour changes.
2. Viewpoints: yaw stratified over ``YAW_RANGE_DEG`` (0 = front, +-90 = a side), pitch uniform over
   ``PITCH_RANGE_DEG``, and a wanted share of the frame width, uniform over ``WIDTH_SHARE_RANGE``. The same
   seed gives the same viewpoints.
3. The distance is found per product and viewpoint by rendering and measuring the product's unclipped box
   (antennas included), at most ``FIT_ROUNDS`` times. That box stays inside the middle ``MAX_WIDTH_SHARE`` of
   the frame width, and the body (the catalog's size box) inside the middle ``MAX_HEIGHT_SHARE`` of its
   height, so a product is moved back when needed and its width share may fall below the wanted one. What
   sticks up from the body (the router's antennas) may leave the top of a close frame, as it does when a
   person frames the device itself. Each frame records the share it really has and whether it is cut off.
4. Every surface is rendered at the same distances, so surfaces differ in nothing but the surface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from product_models.camera import CameraIntrinsics, project
from product_models.catalog import Product
from product_models.render import Renderer
from product_models.render_sheet import default_distance, product_view
from product_models.render_view import (
    BACKGROUNDS,
    MAX_DISTANCE_M,
    MIN_DISTANCE_M,
    background_rgb8,
    parse_background,
    render_view,
    view_camera,
)

# Handheld viewpoints: a person walks round the front and the sides of a device on a table, looking down at it
# from a little above the table to steeply above, from arm's length to close enough to read a light.
YAW_RANGE_DEG = (-100.0, 100.0)  # the front half and both sides, a little past them
PITCH_RANGE_DEG = (10.0, 60.0)  # above the product's middle
WIDTH_SHARE_RANGE = (0.20, 0.70)  # share of the frame width the product's box spans
MAX_HEIGHT_SHARE = 0.90  # the body stays within this middle share of the frame height ...
MAX_WIDTH_SHARE = 0.96  # ... and the whole product within this one of its width
FIT_ROUNDS = 4  # renders to find the distance; the box width is close to proportional to 1 / distance
FIT_TOLERANCE = 0.03  # relative error of the width share at which the search stops
JPEG_QUALITY = 85  # what a phone client sends (vision.decode.encode_jpeg's default)


@dataclass(frozen=True)
class Viewpoint:
    yaw_deg: float  # 0 = in front, 90 = on the right
    pitch_deg: float  # above the product's middle
    width_share: float  # wanted share of the frame width


@dataclass(frozen=True)
class Surface:
    name: str  # "grey", "white" or "rgb-R-G-B"
    rgb: tuple[float, float, float]  # 0..1, as render_view takes it

    @classmethod
    def from_text(cls, text: str) -> Surface:
        """``grey``, ``white`` or ``R,G,B`` (``products render --background`` values). Raises CatalogError."""
        rgb = parse_background(text)
        name = text.strip().lower()
        if name not in BACKGROUNDS:
            name = "rgb-" + "-".join(str(c) for c in background_rgb8(rgb))
        return cls(name, rgb)


@dataclass(frozen=True)
class PlainFrame:
    product: str
    surface: str
    index: int  # into the viewpoints
    view: Viewpoint
    distance_m: float  # camera to the product's middle
    width_share: float  # of the frame width, the product's unclipped box, as rendered
    cut_off: bool  # part of the product (the router's antenna tips) lies outside the frame
    jpeg: bytes
    image: np.ndarray  # (h, w, 3) uint8 RGB, as rendered
    camera: CameraIntrinsics  # the true intrinsics, sent in `hello`


def viewpoints(count: int, seed: int) -> list[Viewpoint]:
    """``count`` viewpoints (rule 2); deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    lo, hi = YAW_RANGE_DEG
    # Stratified: one yaw in each of `count` equal slices, so even a few frames go all round.
    yaws = lo + (hi - lo) * (np.arange(count) + rng.uniform(0.0, 1.0, count)) / count
    order = rng.permutation(count)
    pitches = rng.uniform(*PITCH_RANGE_DEG, count)
    shares = rng.uniform(*WIDTH_SHARE_RANGE, count)
    return [Viewpoint(round(float(yaws[i]), 2), round(float(pitches[k]), 2), round(float(shares[k]), 3))
            for k, i in enumerate(order)]


def fit_distance(product: Product, view: Viewpoint, width: int, height: int, renderer: Renderer) -> float:
    """Metres from the product's middle at which its box spans ``view.width_share`` of the width (rule 3)."""
    states = product.healthy_states()
    camera = view_camera(width, height)
    body = _body_corners(product)
    distance = default_distance(product)
    for _ in range(FIT_ROUNDS):
        box = render_view(product, states, yaw=view.yaw_deg, pitch=view.pitch_deg, distance=distance, width=width,
                          height=height, renderer=renderer).truth.product_box_unclipped
        if box is None:  # not in view at all: this only happens far off; come closer
            scale = 0.5
        else:
            # The orbit aims at the product's middle, which lands on the principal point; extents from there
            # shrink about as 1 / distance.
            uv, _ = project(body, product_view(product, view.yaw_deg, view.pitch_deg, distance), camera)
            scale = max((box[2] - box[0]) / (view.width_share * width),
                        max(camera.cx - box[0], box[2] - camera.cx) / (MAX_WIDTH_SHARE * width / 2.0),
                        float(np.max(np.abs(uv[:, 1] - camera.cy))) / (MAX_HEIGHT_SHARE * height / 2.0))
        if abs(scale - 1.0) <= FIT_TOLERANCE:
            break
        distance = min(MAX_DISTANCE_M, max(MIN_DISTANCE_M, distance * float(scale)))
    return distance


def _body_corners(product: Product) -> np.ndarray:
    """(8, 3) metres: the corners of the catalog's size box (the body, without antennas or cables)."""
    w, d, h = product.size_m
    return np.array([[x, y, z] for x in (-w / 2, w / 2) for y in (-d / 2, d / 2) for z in (0.0, h)])


def render_plain_frames(product: Product, surfaces: Sequence[Surface], views: Sequence[Viewpoint], *,
                        width: int = 640, height: int = 480, renderer: Renderer | None = None
                        ) -> dict[str, list[PlainFrame]]:
    """Surface name -> one frame per viewpoint, each surface at the same distances (rule 4)."""
    from vision.decode import encode_jpeg

    renderer = renderer or Renderer(width, height)
    camera = view_camera(width, height)
    states = product.healthy_states()
    distances = [fit_distance(product, view, width, height, renderer) for view in views]
    out: dict[str, list[PlainFrame]] = {}
    for surface in surfaces:
        frames = []
        for index, (view, distance) in enumerate(zip(views, distances, strict=True)):
            result = render_view(product, states, yaw=view.yaw_deg, pitch=view.pitch_deg, distance=distance,
                                 width=width, height=height, background=surface.rgb, renderer=renderer)
            box = result.truth.product_box_unclipped
            share = 0.0 if box is None else float(box[2] - box[0]) / width
            clipped = result.truth.product_box
            cut_off = box is None or clipped is None or not np.allclose(box, clipped)
            jpeg = encode_jpeg(np.ascontiguousarray(result.image[:, :, ::-1]), JPEG_QUALITY)  # the encoder takes BGR
            frames.append(PlainFrame(product.id, surface.name, index, view, round(distance, 4), round(share, 3),
                                     cut_off, jpeg, result.image, camera))
        out[surface.name] = frames
    return out
