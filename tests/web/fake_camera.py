"""A fake phone camera for browser tests: the router twin with its WAN cable out, filmed hand-held, repaired
on screen part-way, written as a Y4M file that Chromium plays as its camera (``--use-file-for-fake-video-
capture``).

The film follows a script of timed aims and actions instead of a simulated customer: the browser page runs on
its own clock, so the twin cannot wait for the page's steps. The script leaves room on both sides of each
change (Chromium loops the file, and the server holds each reading before it moves on):

    0 s    looking at the status lights: power green, internet red (the server starts "no internet")
    8 s    walking round to the back panel
    14 s   the cable goes into the WAN port; the internet light blinks amber while it connects (4 s)
    17.5 s walking back to the lights, which turn green at 18 s and stay green to the end

Reuses the project's twin (``product_models.twin``), the handheld camera walk and the virtual camera
(``product_models.virtual_camera``), as ``fixlens demo`` does. Rendering happens in whichever process calls
``render_y4m``; tests call this module as a subprocess (``python -m tests.web.fake_camera``) so that Panda3D
stays out of the test process.

Beside the film goes its truth, ``<film>.truth.json``: the camera's pose (product -> camera) of every frame,
for tests that check where the page draws on the device.

The file is cached under ``$XDG_CACHE_HOME/fixlens/fake-camera/`` (default ``~/.cache``), named by a hash of
everything that shapes it: the script and film settings, this file, the product's catalog folder and the
rendering code. A new hash replaces older files there (each is about 200 MB).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Film:
    name: str = "repair"  # films of different names are cached side by side
    product: str = "router_ax1800"
    fault: str = "wan_unplugged"
    seed: int = 3  # the handheld walk's seed
    width: int = 640  # pixels
    height: int = 480
    fps: int = 15
    seconds: float = 32.0
    # (time s, "aim", part) and (time s, "act", "action:part"), in time order
    script: tuple[tuple[float, str, str], ...] = (
        (0.0, "aim", "led_internet"),
        (8.0, "aim", "port_wan"),
        (14.0, "act", "plug:port_wan"),
        (17.5, "aim", "led_internet"),
    )


# The agent hand-off film: the lights first (the scene starts), then the back panel, held by a hand that moves,
# and the cable never goes in, so the session waits for the agent however slow the machine is.
HANDOFF = Film(name="handoff", seconds=24.0, script=((0.0, "aim", "led_internet"), (6.0, "aim", "port_wan")))
FILMS = {"repair": Film(), "handoff": HANDOFF}


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fixlens" / "fake-camera"


def film_key(film: Film) -> str:
    """A hash of the film's settings and of every file that changes its pixels."""
    digest = hashlib.sha256(json.dumps(asdict(film), sort_keys=True).encode())
    inputs = [Path(__file__)]
    inputs += sorted((REPO / "product_models" / "catalog" / film.product).iterdir())
    inputs += sorted((REPO / "product_models").glob("*.py"))
    inputs += sorted((REPO / "product_models" / "modeling").glob("*.py"))
    for path in inputs:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def y4m_header(width: int, height: int, fps: int) -> bytes:
    return f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode("ascii")


def truth_path(film_path: Path) -> Path:
    return film_path.with_suffix(".truth.json")


def load_truth(film_path: Path) -> list[tuple[list[float], list[float]]]:
    """Per frame of the film: (R (9,) row-major, t (3,) metres) of the product in the camera frame."""
    data = json.loads(truth_path(film_path).read_text(encoding="utf-8"))
    return [(pose["R"], pose["t"]) for pose in data["poses"]]


def render_y4m(film: Film, out: Path) -> int:
    """Render ``film`` into ``out`` (written to a temporary name, then renamed) and its truth beside it;
    returns the frame count."""
    import cv2

    from product_models.camera import CameraIntrinsics
    from product_models.catalog import default_catalog
    from product_models.twin import Twin
    from product_models.virtual_camera import HandheldCamera, VirtualCamera

    product = default_catalog().get(film.product)
    twin = Twin(product, fault=film.fault, now=0.0)
    camera = CameraIntrinsics.from_fov(film.width, film.height)
    handheld = HandheldCamera(product, camera, seed=film.seed)
    vcam = VirtualCamera(twin, handheld)
    script = list(film.script)
    frames = round(film.seconds * film.fps)
    partial = out.with_suffix(".partial")
    poses: list[dict[str, list[float]]] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("wb") as fh:
        fh.write(y4m_header(film.width, film.height, film.fps))
        for index in range(frames):
            t = index / film.fps
            while script and script[0][0] <= t:
                at, what, arg = script.pop(0)
                if what == "aim":
                    handheld.aim(arg, at)
                else:
                    action, _, part = arg.partition(":")
                    result = twin.act(action, part, now=at)
                    if not result.happened:
                        raise RuntimeError(f"film script: {action} {part} at {at} s did nothing ({result.refused})")
            twin.advance(t)
            rgb, _ = vcam.capture(t)
            pose = handheld.pose_at(t)
            poses.append({"R": [float(v) for v in pose.R.reshape(9)], "t": [float(v) for v in pose.t]})
            fh.write(b"FRAME\n")
            fh.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    truth_path(out).write_text(json.dumps({"fps": film.fps, "width": film.width, "height": film.height,
                                           "poses": poses}), encoding="utf-8")
    partial.replace(out)
    return frames


def cached_y4m(film: Film = Film()) -> Path:
    """The film's Y4M file, rendered in this process if the cache lacks it."""
    prefix = f"{film.name}-{film.product}-{film.fault}-"
    path = cache_dir() / f"{prefix}{film_key(film)}.y4m"
    if not path.is_file() or not truth_path(path).is_file():
        for old in [*cache_dir().glob(f"{prefix}*.y4m"), *cache_dir().glob(f"{prefix}*.truth.json"),
                    *cache_dir().glob(f"{film.product}-*.y4m")]:  # also films cached before they had names
            old.unlink(missing_ok=True)
        render_y4m(film, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render (or find in the cache) the fake camera film of the "
                                                 "router repair; prints the Y4M path.")
    parser.add_argument("--film", choices=sorted(FILMS), default="repair")
    args = parser.parse_args(argv)
    print(cached_y4m(FILMS[args.film]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
