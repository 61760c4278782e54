"""``fixlens bench pipeline``: frame latency of the vision pipeline, beside a naive Ultralytics baseline
measured in the same run on the same frames.

Rules:
1. Frames: ``--frames`` 640x480 JPEGs from ``fixlens data synth`` (seed ``EVAL_SEED + 1``, never trained on),
   rendered in a child process, with their true intrinsics.
2. Pipeline: ``vision.pipeline.Pipeline`` as the server runs it (decode + detect + keypoints + pose + part
   states), in this process, which never imports torch for the ONNX backend: torch's idle OpenMP pool slows
   ONNX Runtime by a third on 2 cores, so a shared process would time a pipeline the server never runs.
3. Baseline: ``YOLO(fixlens-pose.pt).predict(frame, imgsz=S)`` on the decoded frame (the decode is timed as
   the pipeline's is), in a child process, with ``torch.set_num_threads(threads)`` where ``threads`` is the
   pipeline detector's ONNX Runtime thread count (Ultralytics would otherwise pick its own: 1 thread on 2
   cores). ``S`` is the detector's own input size (the fair comparison) and 640 (Ultralytics' default).
   Neither side spins its thread pool after a run (ONNX Runtime: ``force_spinning_stop`` in
   ``vision.ort_session``; torch: ``OMP_WAIT_POLICY=PASSIVE``, which costs its predict nothing measurable on
   2 cores), so neither steals the other's cores.
4. Side by side: each frame goes through the three in turn, the order rotating frame by frame, so machine
   noise hits all alike. Figures are medians over the same frames.

5. Stream: the server runs detect-then-track (:mod:`vision.tracking`): a session's frame that follows a
   verified pose skips the detector, and every ``REDETECT_EVERY``-th frame runs it anyway. So the same run
   also times ``frames`` frames of handheld clips (``STREAM_CLIP_FRAMES`` consecutive frames at
   ``STREAM_FPS``, the robustness set's ``as_rendered`` look and its products, seed ``EVAL_SEED + 2``) through a
   :class:`~vision.tracking.Tracker` exactly as a session does, in the same rotation as the others. The
   single-frame figure stays the headline ``p50_ms``; the stream figure is reported beside it, never instead.

``--weights-dir`` times the pipeline on another weights folder, with its product sets (``products/``): each
extra set is one more detector pass on an untracked frame that the sets before it found nothing in, or whose
answer it may claim (:mod:`vision.pipeline`). The naive baseline stays the shipped detector.

Reported: ``frames``, ``model_sets`` (the pipeline's weights folders), ``backend``, ``width``/``height``
(the frames), ``input_size`` (the detector's), ``threads``, ``p50_ms``/``p95_ms`` and ``stages_p50_ms`` (the
pipeline); with the baseline also
``naive_same_size_p50_ms`` and ``ratio_vs_naive_same_size`` (pipeline p50 / baseline p50, same input size,
same threads), ``naive_640_p50_ms`` and ``ratio_vs_naive_640``, ``naive_device`` and ``naive_torch_threads``
(what torch really ran with, read back after every timed call); with the stream, ``stream`` holds
``p50_ms``/``p95_ms`` over its frames, ``detector_share`` (frames that ran the detector), ``recall`` (frames
with the product found), ``fps`` and ``clip_frames``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FRAME_SIZE = (640, 480)
NAIVE_DEFAULT_SIZE = 640  # what `YOLO.predict` uses when nobody says otherwise
PIPELINE_WARMUP = 5  # first runs allocate and tune
STREAM_FPS = 15.0  # what the page sends
STREAM_CLIP_FRAMES = 30  # two seconds of a handheld phone per clip
NAIVE_WARMUP = 3


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    from vision.training.cli import add_catalog_option

    b = bench_sub.add_parser("pipeline", help="frame latency: decode + detect + pose + part states",
                             description="Time the pipeline on 640x480 JPEG renders and, in the same run, a naive "
                                         "YOLO(weights).predict(frame) at the detector's input size and at 640 px, "
                                         "with torch on as many threads as the pipeline's ONNX Runtime.")
    b.add_argument("--frames", type=int, default=60, help="timed frames (default 60)")
    b.add_argument("--backend", default="auto", choices=("auto", "onnx", "torch"))
    b.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    b.add_argument("--no-stream", action="store_true", help="skip the detect-then-track stream")
    b.add_argument("--weights-dir", type=Path, default=None,
                   help="the pipeline's weights folder, with any product sets in its products/ (default "
                        "vision/weights); the naive baseline always runs the shipped detector")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    add_catalog_option(b)
    b.set_defaults(handler=_cmd_bench_pipeline)


def _cmd_bench_pipeline(args: argparse.Namespace) -> int:
    from vision.errors import VisionError

    if not 5 <= args.frames <= 10_000:
        print(f"error: --frames must be within 5..10000, got {args.frames}", file=sys.stderr)
        return 2
    if args.weights_dir is not None and not args.weights_dir.is_dir():
        print(f"error: --weights-dir {args.weights_dir}: no such folder", file=sys.stderr)
        return 2
    try:
        report = bench_pipeline(args.frames, backend=args.backend, naive=not args.no_naive,
                                stream=not args.no_stream, weights_dir=args.weights_dir)
    except VisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


def bench_pipeline(frames: int = 60, *, seed: int | None = None, backend: str = "auto",
                   naive: bool = True, stream: bool = True, weights_dir: Path | None = None) -> dict[str, Any]:
    """Render, time side by side, report (keys in the module docstring). Raises VisionError when the
    weights are missing or the baseline fails."""
    from vision.pipeline import FrameInput, Pipeline
    from vision.tracking import Tracker
    from vision.training.evaluate import EVAL_SEED

    jpegs, cameras = render_frames(frames, EVAL_SEED + 1 if seed is None else seed)
    clips = render_stream(frames, EVAL_SEED + 2 if seed is None else seed + 1) if stream else []
    pipeline = Pipeline(backend=backend) if weights_dir is None else Pipeline(weights_dir, backend=backend)
    for jpeg in jpegs[:PIPELINE_WARMUP]:
        pipeline.process(FrameInput(jpeg, seq=0, ts=0.0))
    input_size = int(pipeline.main.detector.imgsz)
    threads = pipeline_threads(pipeline)
    stages: dict[str, list[float]] = {}
    times: dict[str, list[float]] = {"pipeline": []}

    def run_pipeline(i: int) -> float:
        started = time.perf_counter()
        obs = pipeline.process(FrameInput(jpegs[i], seq=i, ts=0.0, camera=cameras[i]))
        elapsed = (time.perf_counter() - started) * 1000.0
        for stage, ms in obs.timing_ms.items():
            stages.setdefault(stage, []).append(ms)
        return elapsed

    runs: dict[str, Callable[[int], float]] = {"pipeline": run_pipeline}
    session: dict[str, Tracker] = {"tracker": Tracker()}
    streamed: dict[str, int] = {"detected": 0, "found": 0}

    def run_stream(i: int) -> float:
        jpeg, ts, camera, first = clips[i]
        if first:
            session["tracker"] = Tracker()  # a new clip is a new session
        tracker = session["tracker"]
        track = tracker.track_for(ts)
        started = time.perf_counter()
        obs = pipeline.process(FrameInput(jpeg, seq=i, ts=ts, camera=camera, track=track))
        elapsed = (time.perf_counter() - started) * 1000.0
        tracker.follow(obs, ts)
        streamed["detected"] += not obs.tracked
        streamed["found"] += obs.product_id is not None
        return elapsed

    if clips:
        runs["stream"] = run_stream
        times["stream"] = []
    baseline = NaiveBaseline(threads, pipeline.main.detector.device) if naive else None
    try:
        if baseline is not None:
            for size in dict.fromkeys((input_size, NAIVE_DEFAULT_SIZE)):
                for jpeg in jpegs[:NAIVE_WARMUP]:
                    baseline.predict_ms(jpeg, size)
            baseline.torch_threads.clear()  # the first call ran while Ultralytics set up its own threads
            runs["naive_same_size"] = lambda i: baseline.predict_ms(jpegs[i], input_size)
            runs["naive_640"] = lambda i: baseline.predict_ms(jpegs[i], NAIVE_DEFAULT_SIZE)
            times.update({"naive_same_size": [], "naive_640": []})
        names = list(runs)
        for i in range(len(jpegs)):
            turn = i % len(names)
            for name in names[turn:] + names[:turn]:
                times[name].append(runs[name](i))
    finally:
        if baseline is not None:
            baseline.close()
    report = summarise(times, stages)
    if clips:
        report["stream"] = {"p50_ms": round(statistics.median(times["stream"]), 2),
                            "p95_ms": round(sorted(times["stream"])[int(0.95 * (len(clips) - 1))], 2),
                            "detector_share": round(streamed["detected"] / len(clips), 3),
                            "recall": round(streamed["found"] / len(clips), 3), "fps": STREAM_FPS,
                            "clip_frames": STREAM_CLIP_FRAMES}
    report.update({"frames": len(jpegs), "model_sets": [str(m.path) for m in pipeline.sets],
                   "backend": pipeline.backend, "width": FRAME_SIZE[0],
                   "height": FRAME_SIZE[1], "input_size": input_size, "threads": threads})
    if baseline is not None:
        report.update({"naive_device": baseline.device, "naive_torch_threads": sorted(baseline.torch_threads)})
    return report


def summarise(times: dict[str, list[float]], stages: dict[str, list[float]]) -> dict[str, Any]:
    """Medians (ms) and ratios from per-frame times: ``times["pipeline"]`` and, when measured,
    ``times["naive_same_size"]`` and ``times["naive_640"]`` (each one value per frame, same frames)."""
    ours = times["pipeline"]
    p50 = statistics.median(ours)
    out: dict[str, Any] = {
        "p50_ms": round(p50, 2),
        "p95_ms": round(sorted(ours)[int(0.95 * (len(ours) - 1))], 2),
        "stages_p50_ms": {k: round(statistics.median(v), 2) for k, v in sorted(stages.items())},
    }
    for name in ("naive_same_size", "naive_640"):
        if times.get(name):
            naive_p50 = statistics.median(times[name])
            out[f"{name}_p50_ms"] = round(naive_p50, 2)
            out[f"ratio_vs_{name}"] = round(p50 / naive_p50, 3)
    return out


def pipeline_threads(pipeline: Any) -> int:
    """Threads the pipeline's detector runs on: its ONNX Runtime intra-op pool, or torch's for the torch
    backend."""
    session = getattr(pipeline.main.detector, "session", None)
    if session is not None:
        # 0 means ONNX Runtime's default: one thread per core.
        return int(session.get_session_options().intra_op_num_threads) or (os.cpu_count() or 1)
    import torch

    return int(torch.get_num_threads())


def render_frames(count: int, seed: int) -> tuple[list[bytes], list[Any]]:
    """``count`` JPEGs and their intrinsics from ``fixlens data synth``, run in a child process: the
    renderer's EGL context must not share a process with torch (the torch backend loads it here)."""
    import subprocess
    import tempfile

    from product_models.camera import CameraIntrinsics

    jpegs, cameras = [], []
    with tempfile.TemporaryDirectory(prefix="fixlens-bench-pipeline-") as tmp:
        subprocess.run([sys.executable, "-m", "fixlens.cli", "data", "synth", "--out", tmp, "--images",
                        str(count), "--seed", str(seed), "--val-share", "0", "--no-progress"],
                       check=True, capture_output=True)
        # `data synth` keeps at least one image for validation, even with --val-share 0: take both splits.
        for path in sorted(Path(tmp, "images").glob("*/*.jpg"), key=lambda p: p.name):
            truth = json.loads(Path(tmp, "truth", path.parent.name, f"{path.stem}.json").read_text())
            jpegs.append(path.read_bytes())
            cameras.append(CameraIntrinsics(**truth["camera"]) if truth.get("camera") else None)
    return jpegs, cameras


def render_stream(count: int, seed: int) -> list[tuple[bytes, float, Any, bool]]:
    """``count`` frames of handheld clips: (JPEG, capture time s, intrinsics, first frame of its clip),
    rendered in a child process (see :func:`render_frames`)."""
    import subprocess
    import tempfile

    from product_models.camera import CameraIntrinsics

    with tempfile.TemporaryDirectory(prefix="fixlens-bench-stream-") as tmp:
        subprocess.run([sys.executable, "-c", "import sys; from fixlens.bench_pipeline import _write_stream; "
                        "_write_stream(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))", tmp, str(count),
                        str(seed)], check=True, capture_output=True)
        index = json.loads(Path(tmp, "stream.json").read_text())
        return [(Path(tmp, f["file"]).read_bytes(), f["ts"], CameraIntrinsics(**f["camera"]), f["first"])
                for f in index]


def _write_stream(out: str, count: int, seed: int) -> None:
    """The child's side of :func:`render_stream`: JPEGs and ``stream.json`` in ``out``."""
    import dataclasses

    from product_models.catalog import default_catalog
    from product_models.render import Renderer
    from vision.training import conditions as cn
    from vision.training.robustness import clip_fault, clip_faults, clip_frames

    catalog = default_catalog()
    products = [catalog.get(pid) for pid in sorted(catalog.products) if clip_faults(catalog.get(pid))]
    if not products:
        raise SystemExit(f"{catalog.root}: no product has a part with a healthy state to film unfixed")
    cond = cn.CONDITIONS["as_rendered"]
    renderer = Renderer(cond.width, cond.height)
    index: list[dict[str, Any]] = []
    try:
        for j in range(-(-count // STREAM_CLIP_FRAMES)):
            product = products[j % len(products)]
            part, fault = clip_fault(product, j // len(products), 0)  # the stream is one condition's, from 0
            clip = cn.clip_scene(cond, product, part, fault, seed, j, STREAM_CLIP_FRAMES, STREAM_FPS, [])
            for frame in clip_frames(renderer, cond, clip, seed, j, STREAM_FPS):
                if len(index) == count:
                    break
                name = f"{len(index):05d}.jpg"
                Path(out, name).write_bytes(frame.jpeg)
                index.append({"file": name, "ts": frame.ts, "camera": dataclasses.asdict(clip.camera),
                              "first": frame.index == 0})
    finally:
        renderer.close()
    Path(out, "stream.json").write_text(json.dumps(index))


class NaiveBaseline:
    """Ultralytics ``YOLO.predict`` in a child process (rule 3); ``predict_ms`` times one frame there."""

    def __init__(self, threads: int, device: str) -> None:
        import multiprocessing

        from vision.detector import WEIGHTS_DIR, WEIGHTS_STEM

        self.threads, self.device = threads, device
        self.torch_threads: set[int] = set()
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no fork of a loaded ORT
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_naive_worker, name="fixlens-bench-naive", daemon=True,
                                        args=(child, str(WEIGHTS_DIR / f"{WEIGHTS_STEM}.pt"), threads, device))
        self._process.start()
        child.close()
        self._reply()  # loaded, or the error that stopped it

    def predict_ms(self, jpeg: bytes, size: int) -> float:
        self._conn.send((jpeg, size))
        ms, torch_threads = self._reply()
        self.torch_threads.add(torch_threads)
        return ms

    def close(self) -> None:
        try:
            self._conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self._process.join(30.0)
        if self._process.is_alive():
            self._process.kill()

    def _reply(self) -> Any:
        from vision.errors import VisionError

        try:
            kind, value = self._conn.recv()
        except EOFError:
            raise VisionError(f"naive baseline: its process ended (exit code {self._process.exitcode})") from None
        if kind == "error":
            raise VisionError(f"naive baseline: {value}")
        return value


def _naive_worker(conn: Any, weights: str, threads: int, device: str) -> None:
    """The child's side of :class:`NaiveBaseline`: answers ``("ok", value)`` or ``("error", text)``."""
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read when torch loads its OpenMP runtime: set it first
    try:
        import cv2
        import numpy as np
        import torch

        from vision.yolo import load_yolo

        model = load_yolo()(weights)
    except Exception as exc:  # a missing file or a broken install: say so to the parent
        conn.send(("error", f"{weights}: {type(exc).__name__}: {exc}"))
        return
    conn.send(("ok", None))
    while (job := conn.recv()) is not None:
        jpeg, size = job
        try:
            # Ultralytics sets its own thread count when its predictor starts; put ours back before timing.
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            started = time.perf_counter()
            model.predict(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), imgsz=size,
                          device=device, verbose=False)
            conn.send(("ok", ((time.perf_counter() - started) * 1000.0, torch.get_num_threads())))
        except Exception as exc:  # reported to the parent, which raises it
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
            return
