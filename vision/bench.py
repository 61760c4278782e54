"""Timings behind ``fixlens bench vision`` (wired in ``fixlens.bench_vision``): median milliseconds per call, on
synthetic frames."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from product_models.camera import CameraIntrinsics, Pose, project
from product_models.catalog import default_catalog
from vision.decode import decode_jpeg, encode_jpeg
from vision.led import classify_led
from vision.pose import estimate_pose


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: first calls pay for lazy imports and allocations
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000.0, 4)


def _frames(rng: np.random.Generator) -> dict[str, np.ndarray]:
    import cv2

    noise = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)  # worst case for the entropy decoder
    yy, xx = np.mgrid[0:480, 0:640]
    base = np.stack([xx * 255 / 639, yy * 255 / 479, np.full_like(xx, 128)], axis=-1).astype(np.float32)
    textured = cv2.GaussianBlur(noise, (0, 0), 3).astype(np.float32) * 0.5 + base * 0.5
    return {"noise": noise, "smooth": textured.astype(np.uint8)}


def run_bench(repeat: int = 200) -> dict[str, float | int | str]:
    """Median ms per call of each stage, and the JPEG sizes used."""
    import cv2

    rng = np.random.default_rng(0)
    out: dict[str, float | int | str] = {"opencv": cv2.__version__, "threads": cv2.getNumThreads(),
                                         "repeat": repeat}
    for name, frame in _frames(rng).items():
        jpeg = encode_jpeg(frame, 85)
        out[f"decode_640x480_{name}_bytes"] = len(jpeg)
        out[f"decode_640x480_{name}_ms"] = _median_ms(lambda j=jpeg: decode_jpeg(j), repeat)
        out[f"decode_640x480_{name}_reduce2_ms"] = _median_ms(lambda j=jpeg: decode_jpeg(j, reduce=2), repeat)

    frame = _frames(rng)["smooth"]
    cv2.circle(frame, (320, 240), 4, (40, 170, 255), -1)
    states = ("off", "green", "amber", "red")
    out["classify_led_5px_ms"] = _median_ms(lambda: classify_led(frame, (320.0, 240.0), 5.0, states), repeat)
    out["classify_led_20px_ms"] = _median_ms(lambda: classify_led(frame, (320.0, 240.0), 20.0, states), repeat)

    product = default_catalog().get("router_ax1800")
    camera = CameraIntrinsics.from_fov(640, 480)
    pose = Pose.orbit(20.0, 35.0, 0.5)
    xyz = np.array([k.position for k in product.keypoints])
    uv, _ = project(xyz, pose, camera)
    uv += rng.normal(0.0, 0.5, uv.shape)
    out["estimate_pose_10kp_ms"] = _median_ms(lambda: estimate_pose(uv, xyz, camera), repeat)
    return out
