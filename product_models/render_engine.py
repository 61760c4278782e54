"""The one Panda3D engine of a process: an offscreen, headless pipe and per-size offscreen buffers.

Panda3D allows one ShowBase per process, so every :class:`~product_models.render.Renderer` shares this
engine. The pipe is Mesa's EGL (``p3headlessgl``, OpenGL on llvmpipe or a GPU) when it can open a buffer,
else the software ``p3tinydisplay``. ``FIXLENS_RENDER_DISPLAY=p3tinydisplay`` (or ``p3headlessgl``) forces
one. Both paths use Panda3D's fixed-function pipeline, so they shade alike.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from product_models.camera import CameraIntrinsics, Pose
from product_models.errors import CatalogError

DISPLAYS = ("p3headlessgl", "p3tinydisplay")
NEAR_M, FAR_M = 0.01, 50.0  # metres; the near plane must allow a phone held a few cm from a device
_PRC = """
window-type none
audio-library-name null
framebuffer-multisample 0
textures-power-2 up
sync-video false
notify-level-display error
notify-level-device fatal
notify-level-gobj error
notify-level-glgsg error
"""

T = TypeVar("T")
_lock = threading.Lock()
_engine: Engine | None = None


@dataclass
class Target:
    """One offscreen buffer of a given size, with a background layer and a 3-D layer."""

    buffer: object  # GraphicsOutput
    texture: object  # Texture copied to RAM after each frame
    camera: object  # NodePath of the 3-D camera
    lens: object  # PerspectiveLens
    scene: object  # NodePath: root of the 3-D scene
    background_card: object  # NodePath: full-frame textured card
    background_texture: object  # Texture
    width: int
    height: int
    drawn: bool = False  # a fresh buffer's first frame shows no background texture: it is drawn twice


class Engine:
    """Owns the ShowBase, the graphics pipe and the shared GSG. Use :func:`engine` to get it."""

    def __init__(self) -> None:
        from panda3d.core import GraphicsPipeSelection, loadPrcFileData

        loadPrcFileData("fixlens-render", _PRC)
        from direct.showbase.ShowBase import ShowBase

        self.base = ShowBase(windowType="none")
        from panda3d.core import CullBinEnums, CullBinManager

        # Opaque geometry is drawn in scene-graph order. Panda3D's default sorts it by render state, which
        # compares the states' addresses in memory: where two faces tie in depth (a part's face on the body
        # of a device far from the camera) the winner then changed with the process's history, and the same
        # seed did not always render the same frame.
        bins = CullBinManager.getGlobalPtr()
        bins.setBinType(bins.findBin("opaque"), CullBinEnums.BT_unsorted)
        forced = os.environ.get("FIXLENS_RENDER_DISPLAY", "").strip()
        if forced and forced not in DISPLAYS:
            raise CatalogError(f"FIXLENS_RENDER_DISPLAY={forced!r}; expected one of: {', '.join(DISPLAYS)}")
        errors = []
        self.pipe = None
        self.display = ""
        self._gsg = None
        for name in (forced,) if forced else DISPLAYS:
            pipe = GraphicsPipeSelection.getGlobalPtr().makeModulePipe(name)
            # TinyXGraphicsPipe reports itself invalid without an X display, yet opens offscreen buffers;
            # so only a failed buffer rules a pipe out.
            if pipe is None:
                errors.append(f"{name}: no pipe")
                continue
            self.pipe = pipe
            probe = self._make_buffer(8, 8)
            if probe is None:
                errors.append(f"{name}: cannot open an offscreen buffer")
                self.pipe = None
                continue
            self._gsg = probe.getGsg()
            self._probe = probe
            self.display = name
            break
        if self.pipe is None:
            raise CatalogError("no headless Panda3D display works here: " + "; ".join(errors))
        self.targets: dict[tuple[int, int], Target] = {}
        self.call: Callable[[Callable[[], T]], T] = lambda fn: fn()  # replaced by engine(): the render thread

    def _make_buffer(self, width: int, height: int):
        from panda3d.core import FrameBufferProperties, GraphicsPipe, WindowProperties

        fbp = FrameBufferProperties()
        fbp.setRgbColor(True)
        fbp.setRgbaBits(8, 8, 8, 0)
        fbp.setDepthBits(24)
        flags = GraphicsPipe.BFRefuseWindow | GraphicsPipe.BFFbPropsOptional
        engine = self.base.graphicsEngine
        buf = engine.makeOutput(self.pipe, f"fixlens-{width}x{height}", -10, fbp,
                                WindowProperties.size(width, height), flags, self._gsg, None)
        if buf is None:
            return None
        engine.openWindows()
        if not buf.isValid():
            engine.removeWindow(buf)
            return None
        return buf

    def target(self, width: int, height: int) -> Target:
        """The buffer for ``width`` x ``height``, made on first use."""
        key = (int(width), int(height))
        if key in self.targets:
            return self.targets[key]
        from panda3d.core import (
            Camera,
            CardMaker,
            GraphicsOutput,
            NodePath,
            OrthographicLens,
            PerspectiveLens,
            SamplerState,
            Texture,
        )

        buf = self._make_buffer(*key)
        if buf is None:
            raise CatalogError(f"cannot open a {width}x{height} offscreen buffer on {self.display}")
        buf.setClearColorActive(True)
        tex = Texture("frame")
        buf.addRenderTexture(tex, GraphicsOutput.RTMCopyRam, GraphicsOutput.RTPColor)
        buf.setActive(False)
        # Background layer: an orthographic camera looking at one full-frame card.
        bg_scene = NodePath("background")
        bg_lens = OrthographicLens()
        bg_lens.setFilmSize(2, 2)
        bg_lens.setNearFar(-1, 1)
        bg_cam = bg_scene.attachNewNode(Camera("background-camera", bg_lens))
        cm = CardMaker("background-card")
        cm.setFrame(-1, 1, -1, 1)
        card = bg_scene.attachNewNode(cm.generate())
        card.setDepthTest(False)
        card.setDepthWrite(False)
        card.setLightOff()
        bg_tex = Texture("background")
        bg_tex.setup2dTexture(key[0], key[1], Texture.T_unsigned_byte, Texture.F_rgb)
        bg_tex.setMagfilter(SamplerState.FT_nearest)
        bg_tex.setMinfilter(SamplerState.FT_nearest)
        card.setTexture(bg_tex)
        dr_bg = buf.makeDisplayRegion()
        dr_bg.setSort(0)
        dr_bg.setCamera(bg_cam)
        # 3-D layer.
        scene = NodePath("scene")
        lens = PerspectiveLens()
        lens.setNearFar(NEAR_M, FAR_M)
        cam = scene.attachNewNode(Camera("camera", lens))
        dr = buf.makeDisplayRegion()
        dr.setSort(1)
        dr.setClearDepthActive(True)
        dr.setCamera(cam)
        target = Target(buf, tex, cam, lens, scene, card, bg_tex, key[0], key[1])
        self.targets[key] = target
        return target

    def draw(self, target: Target, background: np.ndarray | None, clear_rgb: tuple[float, float, float]
             ) -> np.ndarray:
        """Render one frame into ``target`` and return it as (h, w, 3) uint8 RGB, top row first."""
        from panda3d.core import LColor

        if background is not None:
            if background.shape != (target.height, target.width, 3) or background.dtype != np.uint8:
                raise ValueError(f"background must be ({target.height}, {target.width}, 3) uint8 RGB, "
                                 f"got {background.shape} {background.dtype}")
            # Panda3D textures start at the bottom row and store BGR.
            target.background_texture.setRamImage(np.ascontiguousarray(background[::-1, :, ::-1]).tobytes())
            target.background_card.show()
        else:
            target.background_card.hide()
        target.buffer.setClearColor(LColor(*clear_rgb, 1.0))
        for other in self.targets.values():
            other.buffer.setActive(other is target)
        self.base.graphicsEngine.renderFrame()
        if not target.drawn:
            # The background texture is prepared on the GPU during the first frame, too late for it.
            self.base.graphicsEngine.renderFrame()
            target.drawn = True
        target.buffer.setActive(False)
        data = target.texture.getRamImageAs("RGB")
        img = np.frombuffer(memoryview(data), np.uint8).reshape(target.height, target.width, 3)
        return np.ascontiguousarray(img[::-1])


def configure_camera(target: Target, pose: Pose, camera: CameraIntrinsics) -> None:
    """Make the Panda3D camera reproduce the OpenCV pinhole ``camera`` at ``pose`` exactly.

    Film units are pixels: the film is ``width`` wide and ``height * fx / fy`` tall with focal length
    ``fx``. Pixel centres sit at integer (u, v), so the image centre is ((w - 1) / 2, (h - 1) / 2) and the
    film offset moves the principal point to (cx, cy). Panda's camera looks down +y with +z up, OpenCV's
    down +z with +y down.
    """
    from panda3d.core import LMatrix4, LVecBase2

    w, h = camera.width, camera.height
    scale_y = camera.fx / camera.fy
    lens = target.lens
    lens.setFilmSize(LVecBase2(w, h * scale_y))
    lens.setFocalLength(camera.fx)
    # The film offset is where the film centre sits relative to the optical axis (film x right, y up):
    # a principal point right of the image centre puts the film centre left of the axis.
    lens.setFilmOffset(LVecBase2((w - 1) / 2.0 - camera.cx, (camera.cy - (h - 1) / 2.0) * scale_y))
    # Panda camera axes expressed in OpenCV camera axes: x -> x, y (forward) -> z, z (up) -> -y.
    axes = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    rot = pose.R.T @ axes  # columns: Panda camera axes in the product frame
    origin = -pose.R.T @ pose.t
    m = np.eye(4)
    m[:3, :3] = rot.T  # Panda matrices are row-vector: rows are the axis images
    m[3, :3] = origin
    target.camera.setMat(LMatrix4(*m.ravel().tolist()))


class _RenderThread:
    """The one thread that touches Panda3D. An OpenGL/EGL context is current on one thread only, so
    every Panda3D call of every renderer runs here, whichever thread (asyncio.to_thread, a test) asks."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="fixlens-render", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            fn, box, done = self._queue.get()
            try:
                box.append((True, fn()))
            except BaseException as exc:  # handed back to the caller, who re-raises it
                box.append((False, exc))
            done.set()

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on the render thread and return its result (or raise its exception)."""
        if threading.current_thread() is self.thread:
            return fn()
        box: list = []
        done = threading.Event()
        self._queue.put((fn, box, done))
        done.wait()
        ok, value = box[0]
        if ok:
            return value
        raise value


_thread: _RenderThread | None = None


def engine() -> Engine:
    """The process-wide engine, started on first use (on the render thread; use ``Engine.call``)."""
    global _engine, _thread
    with _lock:
        if _engine is None:
            _thread = _RenderThread()
            created = _thread.call(Engine)
            created.call = _thread.call
            _engine = created
        return _engine
