"""Frame sources: a webcam, a video file, or the digital twin seen through a handheld virtual camera.

    source = open_source("twin:router_ax1800?fault=wan_unplugged&seed=3&clumsy=0.3", 640, 480)
    frame = source.read(now)      # Frame(image (h, w, 3) uint8 RGB, ts) or None at the end of a video

Strings: ``0`` / ``webcam:0`` (a ``cv2.VideoCapture`` device index), ``file:PATH`` or a path to an existing
video file, and ``twin:<product>?fault=<fault>[&seed=N&clumsy=X]``. A bad string raises ``SourceError``
naming it and saying what was expected. Every source delivers frames at the requested size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np

from client_panda3d.errors import SourceError
from client_panda3d.steps import StepView

TWIN_KEYS = {"fault", "seed", "clumsy"}
SOURCE_FORMS = "expected a webcam index (0, webcam:1), file:PATH or an existing video path, or " \
               "twin:<product>?fault=<fault>[&seed=N&clumsy=0..1]"


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # (h, w, 3) uint8 RGB
    ts: float  # capture time, seconds, the caller's clock
    truth: Any = None  # the renderer's GroundTruth for twin frames, None for real cameras


class Source:
    """A frame source; ``read(now)`` returns the frame captured at ``now`` or None when it has ended."""

    name: str = ""
    product: str | None = None  # the product id, when the source knows it (the twin does)

    def read(self, now: float) -> Frame | None:
        raise NotImplementedError

    def on_step(self, step: StepView, now: float) -> None:
        """A new step is on screen (the twin's simulated customer acts on it; cameras ignore it)."""

    def take_choice(self, now: float) -> str | None:
        """A choice the person in front of the camera presses now (the simulated customer only)."""
        return None

    def on_notice(self, code: str, part: str | None, now: float) -> None:
        """A notice is on screen; ``part``: the part a view hint names (the simulated customer looks for it)."""

    def close(self) -> None:
        """Release the device or file."""


class CaptureSource(Source):
    """A ``cv2.VideoCapture`` (webcam index or video file), resized to ``width`` x ``height``."""

    def __init__(self, name: str, target: int | str, width: int, height: int) -> None:
        import cv2

        self.name, self.width, self.height = name, width, height
        self._cap = cv2.VideoCapture(target)
        if not self._cap.isOpened():
            raise SourceError(f"frame source {name!r}: cannot open "
                              + (f"camera {target}" if isinstance(target, int) else f"video file {target}"))
        if isinstance(target, int):
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)

    def read(self, now: float) -> Frame | None:
        import cv2

        ok, bgr = self._cap.read()
        if not ok:
            return None
        if bgr.shape[:2] != (self.height, self.width):
            bgr = cv2.resize(bgr, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), now)

    def close(self) -> None:
        self._cap.release()


class TwinSource(Source):
    """The product's digital twin in a fault, filmed by a handheld virtual camera that a simulated
    customer steers; the customer acts on each step shown (``on_step``)."""

    def __init__(self, name: str, product_id: str, fault: str | None, width: int, height: int, *, seed: int = 0,
                 clumsy: float = 0.0) -> None:
        from client_panda3d.simulated_customer import SimulatedCustomer
        from product_models.camera import CameraIntrinsics
        from product_models.catalog import default_catalog
        from product_models.errors import CatalogError
        from product_models.twin import Twin
        from product_models.virtual_camera import HandheldCamera, VirtualCamera

        try:
            product = default_catalog().get(product_id)
            self.twin = Twin(product, fault=fault, now=0.0)
        except (CatalogError, ValueError) as exc:
            raise SourceError(f"frame source {name!r}: {exc}") from None
        self.name, self.product = name, product.id
        self.camera = CameraIntrinsics.from_fov(width, height)
        self.handheld = HandheldCamera(product, self.camera, seed=seed)
        self.customer = SimulatedCustomer(self.twin, self.handheld, seed=seed, clumsy=clumsy)
        self.vcam = VirtualCamera(self.twin, self.handheld)
        self._start: float | None = None

    def _local(self, now: float) -> float:
        """Twin time: seconds since the first frame (the twin and camera walk start at 0)."""
        if self._start is None:
            self._start = now
        return max(0.0, now - self._start)

    def read(self, now: float) -> Frame | None:
        t = self._local(now)
        self.customer.update(t)
        image, truth = self.vcam.capture(t)
        return Frame(image, now, truth)

    def on_step(self, step: StepView, now: float) -> None:
        self.customer.on_step(step.step_id, step.overlays, self._local(now), [cid for cid, _ in step.choices])

    def take_choice(self, now: float) -> str | None:
        return self.customer.take_choice(self._local(now))

    def on_notice(self, code: str, part: str | None, now: float) -> None:
        self.customer.on_notice(code, part, self._local(now))


def parse_twin(spec: str) -> tuple[str, str | None, int, float]:
    """``twin:<product>?fault=F&seed=N&clumsy=X`` -> (product, fault, seed, clumsy); SourceError if bad."""
    body = spec[len("twin:"):]
    product, _, query = body.partition("?")
    if not product:
        raise SourceError(f"frame source {spec!r}: no product after 'twin:'; {SOURCE_FORMS}")
    params = parse_qs(query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(params) - TWIN_KEYS)
    if unknown:
        raise SourceError(f"frame source {spec!r}: unknown parameter(s) {', '.join(unknown)}; "
                          f"expected: {', '.join(sorted(TWIN_KEYS))}")
    one = {k: v[-1] for k, v in params.items()}
    try:
        seed = int(one.get("seed", "0"))
    except ValueError:
        raise SourceError(f"frame source {spec!r}: seed must be an integer, got {one['seed']!r}") from None
    try:
        clumsy = float(one.get("clumsy", "0"))
    except ValueError:
        clumsy = -1.0
    if not 0.0 <= clumsy <= 1.0:
        raise SourceError(f"frame source {spec!r}: clumsy must be a number within 0..1, got {one['clumsy']!r}")
    fault = one.get("fault") or None
    return product, fault, seed, clumsy


def open_source(spec: str, width: int, height: int) -> Source:
    """Open the frame source named by ``spec`` (see the module docstring)."""
    text = spec.strip()
    if not text:
        raise SourceError(f"frame source {spec!r} is empty; {SOURCE_FORMS}")
    if text.startswith("twin:"):
        product, fault, seed, clumsy = parse_twin(text)
        return TwinSource(spec, product, fault, width, height, seed=seed, clumsy=clumsy)
    index_text = text[len("webcam:"):] if text.startswith("webcam:") else text
    if index_text.isdigit():
        return CaptureSource(spec, int(index_text), width, height)
    if text.startswith("webcam:"):
        raise SourceError(f"frame source {spec!r}: the webcam index must be a number; {SOURCE_FORMS}")
    path = Path(text[len("file:"):] if text.startswith("file:") else text)
    if text.startswith("file:") or path.suffix:
        if not path.is_file():
            raise SourceError(f"frame source {spec!r}: no such video file {path}")
        return CaptureSource(spec, str(path), width, height)
    raise SourceError(f"frame source {spec!r} is not understood; {SOURCE_FORMS}")
