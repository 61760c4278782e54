"""Backgrounds for renders: plausible indoor clutter, procedural and seeded.

The detector is trained on products over varied backgrounds (:mod:`vision.training.synth`), and the
digital twin's virtual camera films the twin over one too: nobody's router stands in a featureless grey
void, and a detector is right to doubt one that does.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def random_background(rng: np.random.Generator, width: int, height: int,
                      textures: list[np.ndarray]) -> np.ndarray:
    """A plausible indoor clutter surface: smooth colour fields, a texture, edges and blobs."""
    kind = rng.random()
    if kind < 0.35 and textures:
        tex = textures[int(rng.integers(len(textures)))]
        scale = float(rng.uniform(0.6, 2.0))
        tex = cv2.resize(tex, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        reps = (math.ceil(height / tex.shape[0]) + 1, math.ceil(width / tex.shape[1]) + 1, 1)
        tiled = np.tile(tex, reps)
        y0, x0 = int(rng.integers(0, tex.shape[0])), int(rng.integers(0, tex.shape[1]))
        img = tiled[y0:y0 + height, x0:x0 + width].astype(np.float32)
        tint = rng.uniform(0.5, 1.3, size=3)
        img = img * tint[None, None, :]
    else:
        low = rng.uniform(0, 255, size=(int(rng.integers(2, 6)), int(rng.integers(2, 6)), 3)).astype(np.float32)
        img = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
        noise = cv2.resize(rng.normal(0, 1, size=(height // 8, width // 8, 3)).astype(np.float32),
                           (width, height), interpolation=cv2.INTER_LINEAR)
        img += noise * float(rng.uniform(0, 25))
    # Clutter: rectangles (desk edges, books, boxes), lines (cables) and ellipses (cups).
    for _ in range(int(rng.integers(0, 8))):
        colour = tuple(float(c) for c in rng.uniform(0, 255, size=3))
        shape = rng.random()
        p1 = (int(rng.integers(-50, width)), int(rng.integers(-50, height)))
        if shape < 0.45:
            p2 = (p1[0] + int(rng.integers(20, 300)), p1[1] + int(rng.integers(20, 250)))
            cv2.rectangle(img, p1, p2, colour, -1)
        elif shape < 0.75:
            p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(img, p1, p2, colour, int(rng.integers(2, 10)), cv2.LINE_AA)
        else:
            axes = (int(rng.integers(10, 90)), int(rng.integers(10, 90)))
            cv2.ellipse(img, p1, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
    return np.clip(img, 0, 255).astype(np.uint8)


def room_backdrop(width: int, height: int, seed: int = 0) -> np.ndarray:
    """(height, width, 3) uint8 RGB: a fixed procedural background for the twin's virtual camera, in
    muted room colours (mostly grey, a little colour) so the device stands out to a person too."""
    img = random_background(np.random.default_rng(seed), width, height, []).astype(np.float32)
    grey = img.mean(axis=2, keepdims=True)
    muted = 0.35 * img + 0.65 * grey
    return np.clip(0.75 * muted + 40.0, 0, 255).astype(np.uint8)


# Plausible room colours (RGB): painted walls, laminate and wooden desks, shelves.
WALL_COLOURS = ((236, 234, 228), (220, 214, 200), (200, 200, 204), (160, 160, 164), (90, 92, 96),
                (225, 215, 190), (190, 200, 210), (205, 220, 205), (240, 240, 240), (40, 40, 44))
WOOD_COLOURS = ((176, 128, 84), (140, 96, 60), (198, 160, 116), (100, 70, 48), (222, 196, 160), (70, 52, 40))


def home_surface(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A plain surface of a home: a painted wall (flat or with the light falling off across it), a desk or
    shelf in front of a wall, or wood grain. Near-featureless on purpose: a device on a plain grey table is
    the easy case for a person and must be for the detector too."""
    kind = rng.random()
    wall = np.asarray(WALL_COLOURS[int(rng.integers(len(WALL_COLOURS)))], np.float32) * rng.uniform(0.8, 1.1)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = ((xx - width / 2) * math.cos(angle) + (yy - height / 2) * math.sin(angle)) / max(width, height)
    light = 1.0 + rng.uniform(0.0, 0.5) * ramp  # light falling off across the surface
    img = wall[None, None, :] * light[:, :, None]
    if kind < 0.3:
        pass  # a plain wall or table top
    elif kind < 0.65:  # a desk or shelf edge: another surface below a (possibly tilted) line
        y_edge = rng.uniform(0.2, 0.8) * height + (xx - width / 2) * math.tan(rng.normal(0, 0.15))
        other = (np.asarray(WOOD_COLOURS[int(rng.integers(len(WOOD_COLOURS)))], np.float32)
                 if rng.random() < 0.6 else rng.uniform(30, 230, 3).astype(np.float32))
        below = (yy > y_edge)[:, :, None]
        img = np.where(below, other[None, None, :] * light[:, :, None] * rng.uniform(0.7, 1.1), img)
        if rng.random() < 0.5:  # the desk's front edge catches the light
            edge = np.abs(yy - y_edge) < rng.uniform(1.5, 6)
            img[edge] *= rng.uniform(0.6, 1.4)
    else:  # wood grain: stretched noise with rings
        base = np.asarray(WOOD_COLOURS[int(rng.integers(len(WOOD_COLOURS)))], np.float32)
        grain = cv2.resize(rng.normal(0, 1, (int(rng.integers(20, 60)), 3)).astype(np.float32), (width, height),
                           interpolation=cv2.INTER_CUBIC)
        rings = np.sin(yy / rng.uniform(3, 12) + 4.0 * grain + xx * rng.normal(0, 0.004))
        img = base[None, None, :] * (1.0 + 0.12 * rings[:, :, None]) * light[:, :, None]
        if rng.random() < 0.5:
            img = np.ascontiguousarray(np.transpose(cv2.resize(np.transpose(img, (1, 0, 2)), (height, width)),
                                                    (1, 0, 2)))
    img += cv2.resize(rng.normal(0, 1, (height // 4, width // 4, 3)).astype(np.float32), (width, height),
                      interpolation=cv2.INTER_LINEAR) * float(rng.uniform(0, 5))
    return np.clip(img, 0, 255).astype(np.uint8)


def home_background(rng: np.random.Generator, width: int, height: int, textures: list[np.ndarray]) -> np.ndarray:
    """Training backgrounds, mixed: busy photo-like scenes (:func:`dead_leaves`), plain home surfaces (walls,
    desks, shelves, wood), often with a few shaded objects on them (books, boxes, cups, cables), and the older
    cluttered colour fields and textures."""
    kind = rng.random()
    if kind < DEAD_LEAVES_SHARE:
        return dead_leaves(rng, width, height)
    if kind < DEAD_LEAVES_SHARE + 0.25:
        return random_background(rng, width, height, textures)
    tiled = kind >= 1.0 - TILED_SHARE
    img = (tiled_surface if tiled else home_surface)(rng, width, height).astype(np.float32)
    for _ in range(int(rng.choice([0, 0, 1, 2, 3, 4]))):
        _shaded_object(img, rng)
    for _ in range(int(rng.choice([0, 0, 1, 2]))):
        _wall_fixture(img, rng)
    return np.clip(img, 0, 255).astype(np.uint8)


TILED_SHARE = 0.12  # of training backgrounds: tiled floors and splashbacks, checked tablecloths
TILE_COLOURS = ((240, 240, 236), (228, 218, 196), (180, 180, 178), (120, 122, 126), (40, 40, 42), (182, 96, 62),
                (150, 176, 200), (160, 188, 160), (212, 196, 160), (20, 20, 22))
GINGHAM_COLOURS = ((200, 40, 40), (40, 70, 160), (40, 120, 70), (30, 30, 30), (220, 170, 40))


def tiled_surface(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """(height, width, 3) uint8 RGB: a tiled floor or splashback (tiles with grout lines), a chequered floor
    or a checked tablecloth, flat or receding in perspective under light falling off across it.

    Why: a regular pattern of sharp-cornered dark and light squares is common in homes and unlike anything
    else the backgrounds hold. A dark device over black-and-white checks shares its outline with the dark
    squares; a network that has never seen checks takes the device for one more of them."""
    side = float(max(width, height))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    x, y = (xx - width / 2) / side, (yy - height / 2) / side
    turn = rng.uniform(0, math.pi / 2)
    u, v = math.cos(turn) * x - math.sin(turn) * y, math.sin(turn) * x + math.cos(turn) * y
    if rng.random() < 0.6:  # a floor or table seen at an angle: the far side's tiles are smaller
        lean = rng.uniform(0, 2 * math.pi)
        depth = np.maximum(1.0 + rng.uniform(0.3, 1.4) * (math.cos(lean) * x + math.sin(lean) * y), 0.25)
        u, v = u / depth, v / depth
    tile = float(np.exp(rng.uniform(math.log(0.025), math.log(0.16))))  # tile side, a share of the longer side
    fu, fv = u / tile + rng.uniform(0, 1), v / tile + rng.uniform(0, 1)
    iu, iv = np.floor(fu), np.floor(fv)
    style = rng.random()
    if style < 0.45:  # checks, a third of them black and white
        if rng.random() < 0.35:
            a, b = np.array((235, 235, 232), np.float32), np.array((22, 22, 24), np.float32)
        else:
            a, b = (np.asarray(TILE_COLOURS[int(i)], np.float32) for i in rng.choice(len(TILE_COLOURS), 2, False))
        odd = ((iu + iv) % 2 == 1)[:, :, None]
        img = np.where(odd, b[None, None, :], a[None, None, :])
    elif style < 0.8:  # tiles of one colour, each a shade off, with grout lines
        base = np.asarray(TILE_COLOURS[int(rng.integers(len(TILE_COLOURS)))], np.float32)
        shade = 1.0 + rng.uniform(0.0, 0.06) * np.sin(iu * 12.9898 + iv * 78.233) [:, :, None]
        img = base[None, None, :] * shade
        grout = rng.uniform(0.03, 0.1)
        line = ((fu - iu) < grout) | ((fv - iv) < grout)
        img[line] = rng.uniform(60, 200) * np.ones(3, np.float32)
    else:  # a checked tablecloth: coloured bands on white, darker where they cross
        colour = np.asarray(GINGHAM_COLOURS[int(rng.integers(len(GINGHAM_COLOURS)))], np.float32)
        white = np.array((240, 238, 232), np.float32)
        bands = ((iu % 2 == 0).astype(np.float32) + (iv % 2 == 0).astype(np.float32))[:, :, None] / 2.0
        img = white[None, None, :] * (1.0 - bands) + colour[None, None, :] * bands
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (x * math.cos(angle) + y * math.sin(angle))
    img = img * (1.0 + rng.uniform(0.0, 0.5) * ramp)[:, :, None]
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), float(rng.uniform(0.5, 1.2)))  # no aliasing stairs
    img += cv2.resize(rng.normal(0, 1, (height // 4, width // 4, 3)).astype(np.float32), (width, height),
                      interpolation=cv2.INTER_LINEAR) * float(rng.uniform(0, 4))
    return np.clip(img, 0, 255).astype(np.uint8)


def _wall_fixture(img: np.ndarray, rng: np.random.Generator) -> None:
    """A socket or switch plate, or a framed picture, drawn in place. Every home wall has them, and a small
    white plate with two dark holes is exactly what a detector that knows white boxes with dark details
    must learn to leave alone."""
    h, w = img.shape[:2]
    s = float(rng.uniform(0.04, 0.16) * max(w, h))
    x, y = float(rng.uniform(0, w - s)), float(rng.uniform(0, h - s))
    if rng.random() < 0.6:  # a plate: off-white (sometimes brushed metal or black), with a faint bevel
        plate = np.array((rng.uniform(225, 252),) * 3) if rng.random() < 0.75 else rng.uniform(30, 200) * np.ones(3)
        pw, ph = s * (rng.uniform(1.0, 2.1) if rng.random() < 0.3 else 1.0), s
        p1, p2 = (int(x), int(y)), (int(x + pw), int(y + ph))
        cv2.rectangle(img, (p1[0] + 2, p1[1] + 2), (p2[0] + 2, p2[1] + 2), tuple(float(c) * 0.6 for c in plate), -1)
        cv2.rectangle(img, p1, p2, tuple(float(c) for c in plate), -1, cv2.LINE_AA)
        cv2.rectangle(img, p1, p2, tuple(float(c) * 0.85 for c in plate), 1, cv2.LINE_AA)
        sockets = round(pw / ph)
        for i in range(sockets):
            cx = x + (i + 0.5) * pw / sockets
            if rng.random() < 0.6:  # socket holes
                for dx in (-0.15, 0.15):
                    cv2.circle(img, (int(cx + dx * ph), int(y + ph / 2)), max(1, int(ph / 14)), (50, 50, 50), -1,
                               cv2.LINE_AA)
            else:  # a rocker switch
                cv2.rectangle(img, (int(cx - ph * 0.18), int(y + ph * 0.25)), (int(cx + ph * 0.18), int(y + ph * 0.75)),
                              tuple(float(c) * 0.9 for c in plate), -1, cv2.LINE_AA)
    else:  # a framed picture
        fw, fh = s * rng.uniform(1.0, 2.5), s * rng.uniform(0.8, 2.0)
        frame = tuple(float(c) for c in rng.uniform(20, 200, 3))
        cv2.rectangle(img, (int(x), int(y)), (int(x + fw), int(y + fh)), frame, -1)
        t = max(3, int(s * 0.08))
        inner = random_background(rng, max(int(fw) - 2 * t, 4), max(int(fh) - 2 * t, 4), []).astype(np.float32)
        y0, x0 = int(y) + t, int(x) + t
        ih, iw = min(inner.shape[0], h - y0), min(inner.shape[1], w - x0)
        if ih > 0 and iw > 0:
            img[y0:y0 + ih, x0:x0 + iw] = inner[:ih, :iw]


def _shaded_object(img: np.ndarray, rng: np.random.Generator) -> None:
    """A box or book (two lit faces), a cup (a cylinder with a rim) or a cable, drawn in place."""
    h, w = img.shape[:2]
    colour = rng.uniform(15, 240, 3)
    x, y = float(rng.uniform(-0.1, 1.0) * w), float(rng.uniform(-0.1, 1.0) * h)
    kind = rng.random()
    if kind < 0.5:
        bw, bh, depth = rng.uniform(30, 220), rng.uniform(20, 160), rng.uniform(5, 40)
        front = np.array([[x, y], [x + bw, y], [x + bw, y + bh], [x, y + bh]], np.int32)
        top = np.array([[x, y], [x + depth, y - depth * 0.6], [x + bw + depth, y - depth * 0.6], [x + bw, y]],
                       np.int32)
        cv2.fillPoly(img, [front], tuple(float(c) for c in colour), cv2.LINE_AA)
        cv2.fillPoly(img, [top], tuple(float(c) for c in np.clip(colour * 1.25, 0, 255)), cv2.LINE_AA)
    elif kind < 0.8:
        r, ch = rng.uniform(10, 45), rng.uniform(25, 110)
        cv2.rectangle(img, (int(x - r), int(y)), (int(x + r), int(y + ch)), tuple(float(c) for c in colour), -1)
        cv2.ellipse(img, (int(x), int(y + ch)), (int(r), int(r / 3)), 0, 0, 180, tuple(float(c) for c in colour), -1)
        cv2.ellipse(img, (int(x), int(y)), (int(r), int(r / 3)), 0, 0, 360,
                    tuple(float(c) for c in colour * 0.55), -1, cv2.LINE_AA)
    else:
        pts = np.stack([np.linspace(x, x + rng.uniform(-300, 300), 5), y + rng.normal(0, 60, 5)], 1)
        cv2.polylines(img, [pts.astype(np.int32)], False, tuple(float(c) for c in colour * 0.4),
                      int(rng.integers(2, 7)), cv2.LINE_AA)


DEAD_LEAVES_SHARE = 0.35  # of training backgrounds; a real room behind a phone is seldom a plain wall
LEAF_RADIUS = (0.02, 0.7)  # smallest and largest leaf, as shares of the frame's longer side


def dead_leaves(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """(height, width, 3) uint8 RGB: a "dead leaves" image, opaque shapes piled at every scale.

    Why: a photo behind the device (a shelf, a person, a poster) has occlusion edges at every scale and a
    1/f spectrum; smooth colour fields with a few rectangles have neither, and networks trained on them take
    a busy room's edges for the device's. Leaf radii follow the scale-invariant density r^-3 of the dead
    leaves model, so the result shares those statistics without copying any photo (the real photos stay
    evaluation only). Leaves are discs, boxes and polygons; the large ones carry a light gradient or
    stripes, so surfaces are not all flat."""
    # A scene has a palette (a room's few colours), each leaf a shade of one of them.
    palette = [_leaf_colour(rng) for _ in range(int(rng.integers(3, 10)))]
    img = np.empty((height, width, 3), np.float32)
    img[:] = palette[0]
    side = max(width, height)
    r_min, r_max = LEAF_RADIUS[0] * side, LEAF_RADIUS[1] * side
    # Paint until the frame is covered a few times over (sum of leaf areas ~ 3 x the frame).
    budget = 3.0 * width * height
    count = 0
    yy = xx = None
    while budget > 0 and count < 400:
        u = rng.random()
        r = (r_min ** -2 - u * (r_min ** -2 - r_max ** -2)) ** -0.5  # inverse CDF of p(r) ~ r^-3
        budget -= math.pi * r * r
        count += 1
        cx, cy = rng.uniform(-r, width + r), rng.uniform(-r, height + r)
        colour = palette[int(rng.integers(len(palette)))] * rng.uniform(0.75, 1.2) + rng.normal(0, 8, 3)
        mask = np.zeros((height, width), np.uint8)
        shape = rng.random()
        if shape < 0.4:
            axes = (max(1, int(r)), max(1, int(r * rng.uniform(0.4, 1.0))))
            cv2.ellipse(mask, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_AA)
        elif shape < 0.75:
            rect = ((float(cx), float(cy)), (2 * r, 2 * r * rng.uniform(0.2, 1.0)), float(rng.uniform(0, 180)))
            cv2.fillPoly(mask, [cv2.boxPoints(rect).astype(np.int32)], 255, cv2.LINE_AA)
        else:
            n = int(rng.integers(3, 7))
            ang = np.sort(rng.uniform(0, 2 * math.pi, n))
            rad = r * rng.uniform(0.5, 1.0, n)
            pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).astype(np.int32)
            cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA)
        x0, y0 = max(0, int(cx - r) - 1), max(0, int(cy - r) - 1)
        x1, y1 = min(width, int(cx + r) + 2), min(height, int(cy + r) + 2)
        if x1 <= x0 or y1 <= y0:
            continue
        alpha = mask[y0:y1, x0:x1, None].astype(np.float32) / 255.0
        fill = np.broadcast_to(colour, (y1 - y0, x1 - x0, 3))
        if r > 24 and rng.random() < 0.6:  # large leaves: lit unevenly, or striped (fabric, shelves, text)
            if yy is None:
                yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
            a = rng.uniform(0, 2 * math.pi)
            t = ((xx[y0:y1, x0:x1] - cx) * math.cos(a) + (yy[y0:y1, x0:x1] - cy) * math.sin(a)) / r
            if rng.random() < 0.6:
                shade = 1.0 + rng.uniform(0.1, 0.5) * t
            else:
                shade = 1.0 + rng.uniform(0.1, 0.4) * np.sign(np.sin(t * rng.uniform(3, 25)))
            fill = fill * shade[:, :, None]
        region = img[y0:y1, x0:x1]
        region += alpha * (fill - region)
    img += rng.normal(0, rng.uniform(0, 6), img.shape).astype(np.float32)  # texture finer than any leaf
    if rng.random() < 0.5:  # the room behind the device is often out of focus
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 3.0)))
    return np.clip(img, 0, 255).astype(np.uint8)


def _leaf_colour(rng: np.random.Generator) -> np.ndarray:
    """An RGB colour as rooms and photos have them: mostly muted, sometimes saturated, sometimes skin."""
    kind = rng.random()
    if kind < 0.15:  # skin, over the range of tones (people in the background)
        tone = rng.uniform(0, 1)
        return np.array([235 - 150 * tone, 190 - 130 * tone, 160 - 115 * tone], np.float32) * rng.uniform(0.8, 1.1)
    grey = rng.uniform(10, 245)
    chroma = rng.uniform(-1, 1, 3) * (rng.uniform(0, 90) if kind < 0.8 else rng.uniform(60, 160))
    return np.clip(grey + chroma, 0, 255).astype(np.float32)
