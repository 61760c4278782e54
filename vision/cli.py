"""``fixlens vision ...`` (model set-up) and ``fixlens bench vision`` (decode and LED timings)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vision.training.cli import add_catalog_option


def register(sub: argparse._SubParsersAction) -> None:
    vision = sub.add_parser("vision", help="vision set-up: model files",
                            description="Vision pipeline tools.")
    vsub = vision.add_subparsers(dest="vision_command", metavar="ACTION", required=True)
    p = vsub.add_parser("models", help="create the MediaPipe hand and face model files",
                        description="Create hand_landmarker.task and face_detection_short_range.tflite from the "
                                    "mediapipe 0.10.21 wheel on PyPI (downloaded once into the cache with pip).")
    p.add_argument("--dir", type=Path, default=None, help="models folder (default: vision/models/)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="download cache (default: $FIXLENS_CACHE_DIR or ~/.cache/fixlens)")
    p.add_argument("--force", action="store_true", help="re-create the files even if they exist")
    p.set_defaults(handler=_cmd_models)

    e = vsub.add_parser("eval", help="accuracy of the whole pipeline on a freshly rendered held-out set",
                        description="Render a held-out set (a seed never used for training), run every frame "
                                    "through the pipeline and compare with the exact ground truth; also count "
                                    "false detections on the real photos shipped in scikit-image and matplotlib.")
    e.add_argument("--frames", type=int, default=400, help="held-out frames (default 400)")
    e.add_argument("--seed", type=int, default=None, help="held-out seed (default 9001)")
    e.add_argument("--backend", default="auto", choices=("auto", "onnx", "torch"))
    e.add_argument("--weights-dir", type=Path, default=None, help="model folder (default vision/weights/)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--out", type=Path, default=None, help="also write the JSON report to this file")
    e.add_argument("--misreads", type=Path, default=None, metavar="JSON",
                   help="write every part >= 4 px read wrong here: frame, product, truth, read, confidence, "
                        "why unknown, size and the frame's pose error (which stage to blame)")
    add_catalog_option(e)
    e.set_defaults(handler=_cmd_eval)

    r = vsub.add_parser("robustness", help="accuracy under one degradation at a time (casts, a hand, low light...)",
                        description="Render held-out frames (seeds 7xxx, never used for training) under each "
                                    "condition, run them through the pipeline, and report recall, part-state "
                                    "accuracy, pose error and unsafe reads per condition; also false "
                                    "verifications on handheld clips of unfixed devices (detect, track, smoothing, "
                                    "step verifier) and false detections on product-free frames.")
    r.add_argument("--frames", type=int, default=150, help="frames per condition (default 150)")
    r.add_argument("--clips", type=int, default=14, help="unfixed-device clips per condition (default 14)")
    r.add_argument("--backgrounds", type=int, default=24,
                   help="drawn product-free frames per condition, beside the real photos (default 24)")
    r.add_argument("--conditions", default=None, metavar="A,B,...", help="conditions to run (default: all)")
    r.add_argument("--seed", type=int, default=None,
                   help="base seed (default 7301; 1000-6999 and 8000-8999 are training's)")
    r.add_argument("--weights-dir", type=Path, default=None, help="model folder (default vision/weights/)")
    r.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    r.add_argument("--out", type=Path, default=None, help="also write the JSON report to this file")
    add_catalog_option(r)
    r.add_argument("--chart", type=Path, default=None, metavar="PNG",
                   help="write a bar chart of recall and part-state accuracy per condition")
    r.add_argument("--debug-dir", type=Path, default=None,
                   help="write sample frames of each condition and a contact sheet here")
    r.add_argument("--misreads", type=Path, default=None, metavar="JSON",
                   help="write every part >= 4 px read wrong here: condition, frame, truth, read, confidence, "
                        "why unknown, size and the frame's pose error (which stage to blame)")
    r.set_defaults(handler=_cmd_robustness)

    t = vsub.add_parser("tune-pose-check", help="choose the pose-check thresholds on training-side frames",
                        description="Render product frames and draw product-free frames from the tuning seeds "
                                    "(8800-8899, training's; never the robustness or eval seeds, and no real "
                                    "photo of the evaluation's) under every robustness condition, run the "
                                    "detector and keypoint network, and score a small grid of pose-check "
                                    "thresholds: recall lost and false detections; the thresholds are chosen "
                                    "by a rule fixed in vision.training.tune_pose_check.")
    t.add_argument("--positives", type=int, default=None, help="product frames per condition (default 160)")
    t.add_argument("--negatives", type=int, default=None, help="product-free frames per condition (default 160)")
    t.add_argument("--conditions", default=None, metavar="A,B,...", help="conditions to run (default: all)")
    t.add_argument("--seed", type=int, default=None, help="tuning seed, within 8800-8899 (default 8800)")
    t.add_argument("--weights-dir", type=Path, default=None, help="model folder (default vision/weights/)")
    t.add_argument("--set", default=None, metavar="ID", dest="product_set",
                   help="tune the product's own model set (products/ID/ in the weights folder) instead of the "
                        "folder's own: its products' frames, with other products' frames among the negatives")
    t.add_argument("--write", action="store_true",
                   help="with --set: save the chosen thresholds in the set's folder (pose-check.json), where "
                        "the pipeline reads them")
    t.add_argument("--photos", type=Path, default=None, metavar="DIR",
                   help="a folder of real photos (never the evaluation's): the real_photo condition's backgrounds "
                        "instead of drawn home backgrounds")
    add_catalog_option(t)
    t.add_argument("--no-records", action="store_true", help="leave the per-detection features out of the JSON")
    t.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    t.add_argument("--out", type=Path, default=None, help="also write the JSON report to this file")
    t.set_defaults(handler=_cmd_tune_pose_check)


def _cmd_models(args: argparse.Namespace) -> int:
    from vision.errors import ModelUnavailable
    from vision.model_files import ensure_models, model_files

    if args.force:
        for path in vars(model_files(args.dir)).values():
            path.unlink(missing_ok=True)
    try:
        files = ensure_models(args.dir, args.cache_dir)
    except ModelUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in vars(files).values():
        print(f"{path} ({path.stat().st_size} bytes)")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from vision.errors import VisionError
    from vision.training.evaluate import EVAL_SEED, evaluate

    if not 1 <= args.frames <= 100_000:
        print(f"error: --frames must be within 1..100000, got {args.frames}", file=sys.stderr)
        return 2
    if args.misreads is not None and args.misreads.suffix.lower() != ".json":
        print(f"error: --misreads {args.misreads}: expected a .json file name", file=sys.stderr)
        return 2
    try:
        report = evaluate(args.frames, EVAL_SEED if args.seed is None else args.seed, args.backend,
                          progress=not args.json, weights_dir=args.weights_dir, misreads_path=args.misreads)
    except VisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=None if args.json else 2))
    if args.out is not None:
        _write_json(args.out, report, indent=1)
    return 0


def _robustness_options(args: argparse.Namespace) -> list[str]:
    """The condition names to run; raises ValueError naming the bad option."""
    from vision.training.conditions import CONDITIONS
    from vision.training.robustness import training_seed, training_seeds_text

    if not 1 <= args.frames <= 100_000:
        raise ValueError(f"--frames must be within 1..100000, got {args.frames}")
    if not 0 <= args.clips <= 10_000:
        raise ValueError(f"--clips must be within 0..10000, got {args.clips}")
    if not 0 <= args.backgrounds <= 10_000:
        raise ValueError(f"--backgrounds must be within 0..10000, got {args.backgrounds}")
    if args.seed is not None and (args.seed < 0 or training_seed(args.seed)):
        raise ValueError(f"--seed must be >= 0 and outside the training seeds {training_seeds_text()}, "
                         f"got {args.seed}")
    if args.weights_dir is not None and not args.weights_dir.is_dir():
        raise ValueError(f"--weights-dir {args.weights_dir}: not found (expected a folder with the models)")
    if args.chart is not None and args.chart.suffix.lower() != ".png":
        raise ValueError(f"--chart {args.chart}: expected a .png file name")
    if args.misreads is not None and args.misreads.suffix.lower() != ".json":
        raise ValueError(f"--misreads {args.misreads}: expected a .json file name")
    names = list(CONDITIONS) if args.conditions is None else [n.strip() for n in args.conditions.split(",")]
    if not names or any(not n for n in names):
        raise ValueError(f"--conditions {args.conditions!r}: expected comma-separated names, e.g. as_rendered,hand")
    for name in names:
        if name not in CONDITIONS:
            raise ValueError(f"--conditions: unknown condition {name!r}; expected some of: {', '.join(CONDITIONS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"--conditions {args.conditions!r}: a condition is named twice")
    return names


def _cmd_robustness(args: argparse.Namespace) -> int:
    from vision.errors import VisionError
    from vision.training.robustness import ROBUSTNESS_SEED, default_verifier, run_robustness
    from vision.training.robustness_report import format_table, write_chart

    try:
        names = _robustness_options(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    verifier = default_verifier()
    if verifier is None and args.clips:
        print("warning: vision.verification is not installed: clips are skipped (false_verifications null)",
              file=sys.stderr)
    try:
        report = run_robustness(names, frames=args.frames, clips=args.clips, backgrounds=args.backgrounds,
                                seed=ROBUSTNESS_SEED if args.seed is None else args.seed,
                                weights_dir=args.weights_dir, verifier=verifier, debug_dir=args.debug_dir,
                                progress=not args.json, misreads_path=args.misreads)
    except VisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out is not None:
        _write_json(args.out, report, indent=2)
    if args.chart is not None:
        write_chart(report, args.chart)
    print(json.dumps(report) if args.json else format_table(report))
    return 0


def _cmd_tune_pose_check(args: argparse.Namespace) -> int:
    from vision.errors import VisionError
    from vision.training import tune_pose_check as tp
    from vision.training.conditions import CONDITIONS

    positives = tp.DEFAULT_POSITIVES if args.positives is None else args.positives
    negatives = tp.DEFAULT_NEGATIVES if args.negatives is None else args.negatives
    seed = tp.TUNING_SEED if args.seed is None else args.seed
    names = list(CONDITIONS) if args.conditions is None else [n.strip() for n in args.conditions.split(",")]
    problem = None
    if not 1 <= positives <= 100_000:
        problem = f"--positives must be within 1..100000, got {positives}"
    elif not 1 <= negatives <= 100_000:
        problem = f"--negatives must be within 1..100000, got {negatives}"
    elif not tp.tuning_seed(seed):
        problem = (f"--seed must be a tuning seed within {tp.TUNING_SEEDS.start}-{tp.TUNING_SEEDS.stop - 1} (never an "
                   f"evaluation seed such as 7301 or 9001), got {seed}")
    elif args.weights_dir is not None and not args.weights_dir.is_dir():
        problem = f"--weights-dir {args.weights_dir}: not found (expected a folder with the models)"
    elif args.write and args.product_set is None:
        problem = ("--write needs --set ID: the shipped set's thresholds are vision/pose_check.py's constants "
                   "(docs/model-card.md, *Pose-check thresholds*)")
    elif not names or any(n not in CONDITIONS for n in names) or len(set(names)) != len(names):
        problem = (f"--conditions {args.conditions!r}: expected distinct comma-separated names among "
                   f"{', '.join(CONDITIONS)}")
    photos: list = []
    if problem is None and args.photos is not None:
        from vision.training.photos import PhotoError, load_photos

        try:
            photos = load_photos(args.photos)
        except PhotoError as exc:
            problem = f"--photos: {exc}"
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        report = tp.run_tuning(names, positives=positives, negatives=negatives, seed=seed,
                               weights_dir=args.weights_dir, product_set=args.product_set, write=args.write,
                               records=not args.no_records, progress=not args.json, photos=photos)
    except VisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out is not None:
        _write_json(args.out, report, indent=1)
    print(json.dumps(report) if args.json else tp.format_summary(report))
    return 0


def _write_json(path: Path, report: dict, indent: int) -> None:
    """``--out``: the JSON report written to ``path`` (its folder created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=indent) + "\n")
