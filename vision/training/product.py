"""``fixlens train product ID`` and ``fixlens train all``: every step from a catalog to evaluated weights.

One resumable run in a work folder. Each stage is the ordinary command (``fixlens data synth``, ``fixlens
train detector|keypoints|parts``, ``fixlens vision eval``) in a child process: rendering and torch must not
share a process (EGL, see :mod:`vision.training.train`), and a child's crash names its own stage. A
finished stage leaves ``stages/<name>.json`` (its command and time), so running the same command again
after a kill skips what is done; the detector and part-state stages also resume within themselves
(``--resume``: from the detector's last finished epoch, the part network's checkpoint).

For a new product the data shows it in ``focus_share`` of the product frames and the known products in the
rest. By default the product gets a model set of its own (:mod:`vision.model_set`, ``weights/products/<ID>/``):
a one-class detector (the known products' frames its backgrounds) and its own keypoint, part-state and
appearance networks, each fine-tuned from ``--init``'s, while ``--init``'s set is copied unchanged beside it,
so the known products keep their networks exactly as they were. When ``--init``'s weights already hold a set for
the product (an earlier run's ``weights``), the run goes on from that set: its detector, keypoint and
part-state networks are where each stage starts (the keypoint warm-up is left out: that network has learnt the
product among the others already), so a run that fell short can be given more data or epochs, or a product
whose keypoints were changed can be retrained, without starting over. With ``shared`` (``--shared``, and always
for ``fixlens train all``) the shared networks fine-tune instead, growing for the new product and keeping
what they learnt of the others as far as the data rehearses them (:mod:`vision.keypoint_layout`). The
evaluation runs before and after on the same held-out seed; the report (``report.md``, plots) puts them side
by side.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from product_models.catalog import Catalog, default_catalog
from vision.appearance import MODEL_NAME as APPEARANCE_MODEL_NAME
from vision.part_net import OCCLUSION_MODEL_NAME
from vision.pipeline import PRODUCT_SETS, model_set_folders
from vision.pose_check import THRESHOLDS_FILE
from vision.training.product_report import POSE_CHECK_REPORT
from vision.training.train import WEIGHTS_DIR

DATA_SEED = 8700  # a training seed (8000-8999 are training's; `vision robustness --seed` refuses them)
EVAL_SEED = 9101  # held out: no training command uses 9000-9999
# Stages no later stage builds on: running one again leaves the others done.
INDEPENDENT_STAGES = frozenset({"before"})
# Settings whose default is not what runs from before the setting did.
BEFORE_THEIR_TIME = {"keypoint_warmup_epochs": "0"}
WEIGHT_FILES = ("fixlens-pose.pt", "fixlens-pose.onnx", "keypoints.onnx", "keypoints.state.pt",
                "part-states.onnx", "part-states.state.pt", OCCLUSION_MODEL_NAME, APPEARANCE_MODEL_NAME,
                THRESHOLDS_FILE)


@dataclass(frozen=True)
class ProductRun:
    """What ``fixlens train product`` does; the defaults are the budget the docs state."""

    product: str | None  # None: every product evenly (``fixlens train all``)
    work: Path
    init: Path | None = WEIGHTS_DIR  # None: from scratch
    images: int = 2400
    focus_share: float = 0.6
    detector_epochs: int = 4
    detector_hours: float | None = None  # a wall-clock budget for the detector stage instead of epochs
    keypoint_epochs: int = 5
    part_epochs: int = 8
    eval_frames: int = 300
    device: str = "cpu"
    rehearsal: tuple[Path, ...] = field(default_factory=tuple)  # earlier `data synth` folders to mix in
    keep_known_parts: bool = True  # a new product's part-state stage leaves the known parts' readings as they are
    appearance_epochs: int = 6
    appearance_negatives: int = 2000  # drawn product-free frames for the appearance check
    shared: bool = False  # fine-tune the shared networks instead of giving the product a model set of its own
    pose_check_frames: int = 160  # product and negative frames per condition for the own set's thresholds
    # An own set's keypoint network first learns the product among all the others' crops (every catalog product,
    # from --init's network), then on its crops alone: on the NAS, 15 + 20 such epochs gave crops 3.3 / 8.7 px
    # (median / p90) where 25 on its crops alone from the shipped network gave 5.8 / 27.8 px.
    keypoint_warmup_epochs: int = 5
    keypoint_jitter: int = 1  # crops per training frame, each a slightly different box

    @property
    def weights(self) -> Path:
        """The finished weights folder (what ``after`` evaluates and ``--out`` installs)."""
        return self.work / "weights"

    @property
    def own_set(self) -> bool:
        return self.product is not None and not self.shared

    @property
    def earlier_set(self) -> Path | None:
        """``init``'s own set for the product, when it has one (an earlier run's): where each stage goes on from."""
        return earlier_set(self.init, self.product) if self.own_set else None

    @property
    def before_weights(self) -> Path | None:
        """What the ``before`` evaluation runs: ``init``, or, when it holds a set for the product, a copy
        that keeps that set only if it still fits the catalog (:func:`prepare_before`)."""
        return self.work / "before-weights" if self.earlier_set is not None else self.init

    @property
    def trained(self) -> Path:
        """Where the training stages write: the product's own set inside ``weights``, or ``weights`` itself."""
        return self.weights / PRODUCT_SETS / self.product if self.own_set else self.weights  # type: ignore[operator]


# What an earlier run's set must hold for a run to go on from it: every network a stage starts from (a part-state
# network as its state or as its export).
EARLIER_SET_FILES = (("fixlens-pose.pt",), ("keypoints.state.pt",), ("part-states.state.pt", "part-states.onnx"))


def earlier_set(init: Path | None, product: str | None) -> Path | None:
    """``init/products/<product>/`` when it holds a whole set to go on from (:data:`EARLIER_SET_FILES`)."""
    if init is None or product is None:
        return None
    folder = init / PRODUCT_SETS / product
    whole = all(any((folder / name).is_file() for name in names) for names in EARLIER_SET_FILES)
    return folder if whole else None


@dataclass(frozen=True)
class Keep:
    """A stage given 0 epochs: ``source``'s networks ``names`` (an earlier run's set for the product) are copied
    into the new set as they are, so a run that fell short in one stage can go on with that stage alone."""

    source: Path
    names: tuple[str, ...]

    def describe(self) -> list[str]:
        return ["keep", str(self.source), *self.names]


# What each stage a run may keep (0 epochs) carries over from the earlier set: (files it must have, files it
# takes when there) and the option that keeps it.
KEPT_FILES = {
    "detector": (("fixlens-pose.pt", "fixlens-pose.onnx"), ()),
    "appearance": ((APPEARANCE_MODEL_NAME,), ()),
    "parts": (("part-states.onnx",), ("part-states.state.pt",)),
}
KEEP_FLAGS = {"detector": "--detector-epochs", "appearance": "--appearance-epochs", "parts": "--part-epochs"}


def stages(run: ProductRun) -> list[tuple[str, list[str] | Keep]]:
    """(name, fixlens arguments, or what a stage of 0 epochs keeps) of every stage, in order."""
    data = run.work / "data"
    init = run.init
    synth = ["data", "synth", "--out", str(data), "--images", str(run.images), "--seed", str(DATA_SEED),
             "--no-progress"]
    if run.product is not None:
        synth += ["--focus", run.product, "--focus-share", str(run.focus_share)]
    out_dir = str(run.trained)
    detector = ["train", "detector", "--data", str(data / "data.yaml"), "--out", out_dir,
                "--project", str(run.work / "runs"), "--device", run.device, "--epochs", str(run.detector_epochs),
                "--resume"]
    if run.own_set:
        detector += ["--only", run.product]  # type: ignore[list-item]
    if run.detector_hours is not None:
        detector += ["--time", str(run.detector_hours)]
    earlier = run.earlier_set
    start = earlier if earlier is not None else init  # where the detector, keypoint and part stages begin
    if start is not None and (start / "fixlens-pose.pt").is_file():
        detector += ["--init", str(start / "fixlens-pose.pt")]
    folders = [str(data), *map(str, run.rehearsal)]
    keypoint_init = start / "keypoints.state.pt" if start is not None else None
    keypoint_init = keypoint_init if keypoint_init is not None and keypoint_init.is_file() else None
    warmup = None
    if run.own_set and run.keypoint_warmup_epochs > 0 and earlier is None:
        warmup = _keypoint_stage(run, folders, run.work / "keypoints-all", run.keypoint_warmup_epochs, keypoint_init)
        keypoint_init = run.work / "keypoints-all" / "keypoints.state.pt"
    keypoints = _keypoint_stage(run, folders, run.trained, run.keypoint_epochs, keypoint_init)
    if run.own_set:  # the set's network answers for its one product: every crop goes to it
        keypoints += ["--only", run.product]  # type: ignore[list-item]
    parts = ["train", "parts", "--data", *folders, "--out", out_dir, "--epochs", str(run.part_epochs),
             "--cache", str(run.work / "part-patches.npz"), "--resume"]
    if start is not None:  # the state file, else the exported network (its state is recovered from it)
        for name in ("part-states.state.pt", "part-states.onnx"):
            if (start / name).is_file():
                parts += ["--init", str(start / name)]
                # The parts an earlier set knows are the product's own, which this run trains; --keep-known is
                # for the parts of the products --init already recognised.
                if run.keep_known_parts and run.product is not None and earlier is None:
                    parts.append("--keep-known")
                break
    # The appearance check learns every catalog product (the new data shows them all) and the new detector's
    # mistakes on product-free frames, so it is trained after the detector, from scratch (a few minutes).
    appearance = ["train", "appearance", "--data", *folders, "--out", out_dir, "--detector-weights",
                  out_dir, "--epochs", str(run.appearance_epochs), "--negatives",
                  str(run.appearance_negatives), "--cache", str(run.work / "appearance-crops.npz")]
    out: list[tuple[str, list[str] | Keep]] = []
    if run.before_weights is not None:
        out.append(("before", _eval(run, run.before_weights, run.work / "before.json")))
    out += [("data", synth), ("detector", _or_kept(run, "detector", detector, run.detector_epochs)),
            ("appearance", _or_kept(run, "appearance", appearance, run.appearance_epochs))]
    if warmup is not None:
        out.append(("keypoints-all", warmup))
    out += [("keypoints", keypoints), ("parts", _or_kept(run, "parts", parts, run.part_epochs))]
    if run.own_set:  # a new one-class detector's confidences are not the shipped one's: its own thresholds
        out.append(("pose-check", ["vision", "tune-pose-check", "--weights-dir", str(run.weights), "--set",
                                   run.product, "--write", "--positives", str(run.pose_check_frames),  # type: ignore[list-item]
                                   "--negatives", str(run.pose_check_frames), "--no-records", "--json",
                                   "--out", str(run.work / POSE_CHECK_REPORT)]))
    out.append(("after", _eval(run, run.weights, run.work / "after.json")))
    return out


class PlanError(ValueError):
    """Options ``train product`` cannot plan (a stage at 0 epochs with nothing fit to keep): a usage error,
    raised by :func:`stages` before any work starts."""


def _or_kept(run: ProductRun, stage: str, args: list[str], epochs: int) -> list[str] | Keep:
    """``args``, or for 0 ``epochs`` the earlier set's networks of ``stage`` kept as they are; :class:`PlanError`
    naming the option when there is nothing to keep them from, or nothing fit to keep."""
    if epochs > 0:
        return args
    flag = KEEP_FLAGS[stage]
    if not run.own_set:
        raise PlanError(f"{flag} 0 keeps that network of an earlier run's set for the product; "
                        f"{'--shared trains' if run.product else '`train all` trains'} the shared networks, "
                        "which have none to keep")
    earlier = run.earlier_set
    if earlier is None:
        raise PlanError(f"{flag} 0 keeps that network of an earlier run's set for the product, and --init "
                        f"{run.init or 'none'} holds none for {run.product} (a folder with products/ID/ from "
                        "`fixlens train product ID`)")
    if stage == "appearance" and run.detector_epochs > 0:
        raise PlanError("--appearance-epochs 0 keeps an appearance check trained on the earlier detector's "
                        "mistakes; with the detector trained again, train it again too (or keep both)")
    needed, optional = KEPT_FILES[stage]
    missing = [n for n in needed if not (earlier / n).is_file()]
    if missing:
        raise PlanError(f"{flag} 0: {earlier} has no {', '.join(missing)} to keep; train the stage instead")
    return Keep(earlier, (*needed, *(n for n in optional if (earlier / n).is_file())))


def _keypoint_stage(run: ProductRun, folders: list[str], out: Path, epochs: int, init: Path | None) -> list[str]:
    args = ["train", "keypoints", "--data", *folders, "--out", str(out), "--epochs", str(epochs), "--jitter",
            str(run.keypoint_jitter), "--lr", "1e-3", "--device", run.device]
    return [*args, "--init", str(init)] if init is not None else args


def _eval(run: ProductRun, weights: Path, out: Path) -> list[str]:
    return ["vision", "eval", "--frames", str(run.eval_frames), "--seed", str(EVAL_SEED), "--backend", "onnx",
            "--weights-dir", str(weights), "--json", "--out", str(out)]


def run_all(run: ProductRun, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage not yet done, then write the report; returns the report's figures."""
    plan = stages(run)  # raises on options it cannot plan, before the work folder is claimed
    (run.work / "stages").mkdir(parents=True, exist_ok=True)
    claim_work(run)
    names = [name for name, _ in plan]
    markers = [run.work / "stages" / f"{name}.json" for name in names]
    done = stages_done(names, [_finished(marker) for marker in markers])
    for number, ((name, args), marker, is_done) in enumerate(zip(plan, markers, done, strict=True), 1):
        if is_done:
            log(f"[{number}/{len(plan)}] {name}: done earlier ({json.loads(marker.read_text())['seconds']:.0f} s)")
            continue
        started = time.time()
        if isinstance(args, Keep):
            log(f"[{number}/{len(plan)}] {name}: 0 epochs, kept from {args.source}: {', '.join(args.names)}")
            run.trained.mkdir(parents=True, exist_ok=True)
            for file_name in args.names:
                shutil.copy2(args.source / file_name, run.trained / file_name)
        else:
            log(f"[{number}/{len(plan)}] {name}: fixlens {' '.join(args)}")
            if name == "before" and run.earlier_set is not None:
                log(prepare_before(run))
            # The stage's output goes to stderr with the progress lines: stdout carries only the final summary.
            code = subprocess.call([sys.executable, "-m", "fixlens.cli", *args], env={**os.environ},
                                   stdout=sys.stderr)
            if code != 0:
                raise StageFailed(name, code, args)
        if name == "detector":  # the keypoint and part stages write the rest of the weights set
            run.trained.mkdir(parents=True, exist_ok=True)
            if run.own_set and run.init is not None:
                _carry_over(run.init, run.weights, keep_out=run.product)  # type: ignore[arg-type]
            # The occlusion network is not retrained here: it is carried over from --init (it knows the old parts;
            # a product's own set has none, so its parts are read without it).
            elif run.init is not None and (run.init / OCCLUSION_MODEL_NAME).is_file():
                shutil.copy2(run.init / OCCLUSION_MODEL_NAME, run.weights / OCCLUSION_MODEL_NAME)
        now = time.time()
        marker.write_text(json.dumps({"args": args.describe() if isinstance(args, Keep) else args,
                                      "seconds": round(now - started, 1), "finished": now}))
    from vision.training.product_report import write_report

    return write_report(run, names)


def stages_done(names: Sequence[str], finished: Sequence[float | None]) -> list[bool]:
    """Which of the stages ``names`` (in order; ``finished``: when each finished, None where it never did) are
    done. A finished stage is stale when a stage it builds on (every earlier one but the
    :data:`INDEPENDENT_STAGES`) finished after it (re-run, or new in this version) or has to run now."""
    done, newest = [], 0.0
    for name, at in zip(names, finished, strict=True):
        done.append(at is not None and at >= newest)
        if name not in INDEPENDENT_STAGES:
            newest = max(newest, at) if done[-1] else math.inf  # type: ignore[arg-type]
    return done


def prepare_before(run: ProductRun, catalog: Catalog | None = None) -> str:
    """Fill ``run.before_weights`` from ``init``: every set, the product's own only if it still fits
    ``catalog`` (default: the catalog every command uses). A product whose keypoints or parts changed since
    that set was trained is refused by the weights check, so before the run it counts as not yet learnt.
    Returns a line for the log."""
    from vision.errors import VisionError
    from vision.model_set import ModelSet

    dst = run.before_weights
    shutil.rmtree(dst, ignore_errors=True)  # type: ignore[arg-type]
    try:
        ModelSet(run.earlier_set, catalog or default_catalog(), backend="onnx")  # type: ignore[arg-type]
    except VisionError as exc:  # the weights check's mismatch, or a network that does not load
        _copy_sets(run.init, dst, skip=dst / PRODUCT_SETS / run.product)  # type: ignore[arg-type, operator]
        why = str(exc).splitlines()[-1]  # a mismatch's last difference (a line each), or the loading error
        return f"before: {run.earlier_set} does not fit the catalog, so it is left out ({why})"
    _copy_sets(run.init, dst)  # type: ignore[arg-type]
    return f"before: {run.init} with its set for {run.product}"


def _finished(marker: Path) -> float | None:
    """When the stage of ``marker`` finished (None: not done). Recorded in the marker, so that a copied work
    folder keeps it; a marker from before it was recorded gives its file's time."""
    if not marker.is_file():
        return None
    try:
        return float(json.loads(marker.read_text())["finished"])
    except (ValueError, KeyError, TypeError):
        return marker.stat().st_mtime


def claim_work(run: ProductRun) -> None:
    """Record ``run``'s settings in its work folder (``run.json``); ValueError naming the settings that differ
    when the folder holds another run. A setting added since that run began counts as its default there."""
    settings = run.work / "run.json"
    mine = {k: str(v) for k, v in asdict(run).items()}
    if settings.is_file():
        stored = json.loads(settings.read_text())
        if not isinstance(stored, dict):
            raise ValueError(f"{settings}: not a run's settings (expected a JSON object); use another --work folder")
        # A setting added since counts as what the runs before it did: its default, or for the keypoint
        # warm-up (added with a default of 5 epochs), none.
        defaults = {f.name: str(getattr(ProductRun(run.product, run.work), f.name)) for f in fields(ProductRun)}
        defaults.update(BEFORE_THEIR_TIME)
        earlier = {**defaults, **stored}
        differ = sorted(k for k in mine if earlier.get(k) != mine[k])
        if differ:
            raise ValueError(f"{run.work} holds a run with other settings ({settings}: {', '.join(differ)}); use "
                             "another --work folder or the same options")
    settings.write_text(json.dumps(mine, sort_keys=True))


class StageFailed(RuntimeError):
    def __init__(self, stage: str, code: int, args: Sequence[str]) -> None:
        self.stage, self.code = stage, code
        super().__init__(f"stage {stage!r} failed (exit {code}): fixlens {' '.join(args)}; fix the cause and run "
                         "the same command again: finished stages are skipped")


def _carry_over(init: Path, weights: Path, keep_out: str) -> None:
    """``init``'s model sets into ``weights`` unchanged: its own and every set in its ``products/`` but
    ``keep_out``'s (the one being trained now)."""
    _copy_sets(init, weights, skip=weights / PRODUCT_SETS / keep_out)


def install(run: ProductRun, out: Path) -> list[Path]:
    """Copy the run's weights (with every model set in ``products/``) to ``out`` (for ``--out``); returns the
    files copied."""
    return _copy_sets(run.weights, out)


def _copy_sets(src: Path, dst: Path, skip: Path | None = None) -> list[Path]:
    """The weight files of every model set in ``src`` (:func:`vision.pipeline.model_set_folders`) to the same
    place under ``dst``, but the set that would land in ``skip``; returns the files copied."""
    copied = []
    for folder in model_set_folders(src):
        target = dst / folder.relative_to(src)
        if target == skip:
            continue
        target.mkdir(parents=True, exist_ok=True)
        for name in WEIGHT_FILES:
            if (folder / name).is_file():
                shutil.copy2(folder / name, target / name)
                copied.append(target / name)
    return copied
