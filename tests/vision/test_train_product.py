"""``fixlens train product``: a tiny real run end to end (every stage, growth for a product with fewer
keypoints, the report), then a rerun that skips every finished stage, and its input errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pytest

from product_models.catalog import CATALOG_DIR, Catalog
from vision.appearance import AppearanceCheck
from vision.keypoints import KeypointModel
from vision.part_net import PartNet
from vision.pipeline import Pipeline
from vision.pose_check import Thresholds, read_thresholds
from vision.training.product import Keep, ProductRun, earlier_set, prepare_before, run_all, stages, stages_done
from vision.training.train import WEIGHTS_DIR

pytestmark = pytest.mark.slow

TINY = ["--images", "24", "--detector-epochs", "1", "--keypoint-warmup-epochs", "1", "--keypoint-epochs", "1",
        "--part-epochs", "1",
        "--appearance-epochs", "1", "--appearance-negatives", "6", "--pose-check-frames", "1", "--eval-frames", "6"]


def _fixlens(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fixlens.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "YOLO_OFFLINE": "1", "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped catalog plus ``router_bx9``: the router with 8 keypoints instead of 10."""
    root = tmp_path_factory.mktemp("train-product") / "catalog"
    shutil.copytree(CATALOG_DIR, root)
    shutil.copytree(root / "router_ax1800", root / "router_bx9")
    path = root / "router_bx9" / "product.yaml"
    lines = re.sub(r"(?m)^id: .*$", "id: router_bx9", path.read_text(encoding="utf-8")).splitlines()
    keypoints = [i for i, line in enumerate(lines) if line.lstrip().startswith("- {name:") and "position:" in line]
    path.write_text("\n".join(line for i, line in enumerate(lines) if i not in keypoints[8:]) + "\n",
                    encoding="utf-8")
    return root


def test_a_tiny_run_trains_every_stage_and_a_rerun_skips_them(catalog: Path) -> None:
    work = catalog.parent / "work"
    done = _fixlens("train", "product", "router_bx9", "--catalog", str(catalog), "--work", str(work),
                    "--out", str(catalog.parent / "installed"), *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert set(summary["seconds"]) == {"before", "data", "detector", "appearance", "keypoints-all", "keypoints",
                                       "parts", "pose-check", "after"}
    assert summary["before"]["router_bx9"]["product_recall"] == 0.0  # untrained before: never recognised
    report = (work / "report.md").read_text()
    assert "| router_bx9 | 0.000 |" in report and "| router_ax1800 |" in report
    assert "Pose-check thresholds of the product's set (tuning seed 8800, 16 product frames" in report
    assert (work / "losses.png").is_file() and (work / "recall.png").is_file()
    # parts.png plots validation accuracy per part; 24 frames may leave no validation patch of a new part
    own = work / "weights" / "products" / "router_bx9"
    parts = json.loads((own / "part-states.train.json").read_text())["val_accuracy_by_part"]
    assert (work / "parts.png").is_file() == bool(parts)
    installed = catalog.parent / "installed"
    # The known products' set is --init's, unchanged; the new product has a set of its own beside it.
    for name in ("fixlens-pose.onnx", "keypoints.onnx", "part-states.onnx", "product-appearance.onnx"):
        assert (installed / name).read_bytes() == (WEIGHTS_DIR / name).read_bytes(), name
    mine = installed / "products" / "router_bx9"
    assert {p.name for p in mine.iterdir()} >= {"fixlens-pose.onnx", "keypoints.onnx", "part-states.onnx",
                                                "product-appearance.onnx", "pose-check.json"}
    # The set's own pose-check thresholds, tuned on the new product's frames (one per condition here).
    tuned = json.loads((work / "pose-check-tuning.json").read_text())
    assert tuned["products"] == ["router_bx9"] and tuned["positives"] == 16
    assert read_thresholds(mine / "pose-check.json") == Thresholds(**tuned["chosen"]["thresholds"])

    # The new set's detector knows the new product alone; its keypoint network grew for it (8 keypoints), and
    # its part network has the new parts.
    cat = Catalog.load(catalog)
    pipeline = Pipeline(installed, backend="onnx", catalog=cat)
    assert pipeline.untrained == [] and pipeline.set_for("router_bx9").path == mine
    assert pipeline.set_for("router_bx9").product_ids == ("router_bx9",)
    keypoints = KeypointModel(mine / "keypoints.onnx")
    assert keypoints.layout.products == ("printer_lx400", "router_ax1800", "router_bx9")
    assert len(keypoints.layout.keypoints("router_bx9")) == 8
    assert PartNet(mine / "part-states.onnx").handles("router_bx9", "port_wan")
    # The appearance check was trained on the new data: products then none, those with crops in 24 frames.
    classes = AppearanceCheck(mine / "product-appearance.onnx").classes
    assert classes[-1] == "none" and set(classes[:-1]) <= {"printer_lx400", "router_ax1800", "router_bx9"}
    # The one-class detector trained on the data's view with only the new product labelled.
    view = work / "data" / "only-router_bx9" / "data.yaml"
    assert "router_bx9" in view.read_text() and "router_ax1800" not in view.read_text()
    # The shipped part network has no state file: its state was recovered from the ONNX export.
    assert re.search(r"initialised from \S+/part-states\.onnx: kept 15 of \d+ parts", done.stderr)
    # ... and the shipped products' parts were kept exactly as they were (`--keep-known`, the default).
    assert "keeping the 15 known parts as they are" in done.stderr

    again = _fixlens("train", "product", "router_bx9", "--catalog", str(catalog), "--work", str(work), *TINY,
                     timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("done earlier") == 9

    other = _fixlens("train", "product", "router_bx9", "--catalog", str(catalog), "--work", str(work),
                     *TINY[:-1], "7", timeout=60)
    assert other.returncode == 1 and "holds a run with other settings" in other.stderr
    assert "run.json: eval_frames)" in other.stderr

    # Going on from that run with its keypoint stage alone: 0 epochs keep the detector, the appearance check and
    # the part-state network of its set as they are; the keypoint network and the thresholds are trained again.
    more = catalog.parent / "more"
    again = _fixlens("train", "product", "router_bx9", "--catalog", str(catalog), "--work", str(more),
                     "--init", str(work / "weights"), *TINY, "--detector-epochs", "0", "--appearance-epochs", "0",
                     "--part-epochs", "0")
    assert again.returncode == 0, again.stderr[-3000:]
    kept = more / "weights" / "products" / "router_bx9"
    for name in ("fixlens-pose.pt", "fixlens-pose.onnx", "product-appearance.onnx", "part-states.onnx"):
        assert (kept / name).read_bytes() == (own / name).read_bytes(), name
    assert (kept / "keypoints.onnx").read_bytes() != (own / "keypoints.onnx").read_bytes()
    assert re.search(r"\] detector: 0 epochs, kept from \S+/products/router_bx9: fixlens-pose\.pt, fixlens-pose\.onnx",
                     again.stderr)
    marker = json.loads((more / "stages" / "parts.json").read_text())
    assert marker["args"][:2] == ["keep", str(own)] and "part-states.onnx" in marker["args"]
    assert Pipeline(more / "weights", backend="onnx", catalog=cat).set_for("router_bx9").path == kept
    assert "Epochs: detector 0 (kept from the earlier set), appearance 0 (kept" in (more / "report.md").read_text()


def test_a_run_begun_before_a_setting_existed_resumes_with_its_default(tmp_path: Path) -> None:
    """``run.json`` of an earlier version lacks the settings added since: they count as their defaults there."""
    from vision.training.product import claim_work

    old = {k: str(v) for k, v in asdict(ProductRun("nas_d2", tmp_path, images=4000)).items()
           if k != "pose_check_frames"}
    (tmp_path / "run.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match=r"run.json: pose_check_frames\)"):
        claim_work(ProductRun("nas_d2", tmp_path, images=4000, pose_check_frames=40))
    claim_work(ProductRun("nas_d2", tmp_path, images=4000))  # the default: the same run, resumed
    assert json.loads((tmp_path / "run.json").read_text())["pose_check_frames"] == "160"
    with pytest.raises(ValueError, match=r"run.json: images\)"):
        claim_work(ProductRun("nas_d2", tmp_path, images=2000))
    # The keypoint warm-up came with a default of 5 epochs; the runs before it had none.
    older = {k: v for k, v in old.items() if k not in ("keypoint_warmup_epochs", "keypoint_jitter")}
    (tmp_path / "run.json").write_text(json.dumps(older))
    with pytest.raises(ValueError, match=r"run.json: keypoint_warmup_epochs, pose_check_frames\)"):
        claim_work(ProductRun("nas_d2", tmp_path, images=4000, pose_check_frames=40))
    claim_work(ProductRun("nas_d2", tmp_path, images=4000, keypoint_warmup_epochs=0))
    (tmp_path / "run.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"run.json: not a run's settings"):
        claim_work(ProductRun("nas_d2", tmp_path))


def test_a_stage_that_finished_after_a_later_one_makes_those_after_it_stale() -> None:
    """Re-run, or new in this version: the stages after it that build on it run again, the ones before it stay
    done. `before` feeds nothing: re-running it leaves the rest done."""
    names = ["before", "data", "detector", "appearance", "keypoints-all", "keypoints", "parts", "pose-check", "after"]
    times = [float(k) for k in range(len(names))]
    assert stages_done(names, times) == [True] * 9
    parts_again = [*times[:6], 60.0, *times[7:]]
    assert stages_done(names, parts_again) == [True] * 7 + [False, False]
    assert stages_done(names, [120.0, *times[1:]]) == [True] * 9
    # A stage never run (new in this version, or killed) runs, and so does every later one but `before`.
    assert stages_done(names, [*times[:3], None, *times[4:]]) == [True] * 3 + [False] * 6
    assert stages_done([], []) == []


def test_a_stage_marker_records_when_it_finished_and_an_older_one_gives_its_files_time(tmp_path: Path) -> None:
    from vision.training.product import _finished

    marker = tmp_path / "parts.json"
    assert _finished(marker) is None
    marker.write_text(json.dumps({"args": [], "seconds": 3.0, "finished": 1234.5}))
    assert _finished(marker) == 1234.5  # a copy of the folder keeps it
    marker.write_text(json.dumps({"args": [], "seconds": 3.0}))
    os.utime(marker, (99.0, 99.0))
    assert _finished(marker) == 99.0


@pytest.mark.parametrize(("args", "message"), [
    (["nas_x"], "unknown product 'nas_x'"),
    (["router_ax1800", "--images", "3"], "--images must be within 8..1000000, got 3"),
    (["router_ax1800", "--focus-share", "0"], "--focus-share must be within (0, 1], got 0.0"),
    (["router_ax1800", "--pose-check-frames", "0"], "--pose-check-frames must be within 1..100000, got 0"),
    (["router_ax1800", "--keypoint-warmup-epochs", "-1"], "--keypoint-warmup-epochs must be within 0..1000, got -1"),
    (["router_ax1800", "--keypoint-jitter", "0"], "--keypoint-jitter must be within 1..16, got 0"),
    (["router_ax1800", "--init", "/no/such/weights"], "--init /no/such/weights: no such folder"),
    (["router_ax1800"], "error: router_ax1800 is already recognised by "),
    (["router_ax1800", "--catalog", "/no/such/catalog"], "--catalog: /no/such/catalog: catalog folder does not exist"),
    (["router_ax1800", "--init", "none", "--part-epochs", "0"],
     "--part-epochs 0 keeps that network of an earlier run's set for the product, and --init none holds none"),
    (["router_ax1800", "--detector-epochs", "-1"], "--detector-epochs must be within 0..1000, got -1"),
])
def test_bad_options_are_named(args: list[str], message: str, tmp_path: Path) -> None:
    done = _fixlens("train", "product", *args, "--work", str(tmp_path / "w"), timeout=60)
    assert done.returncode == 2 and message in done.stderr
    assert not (tmp_path / "w").exists()


def test_shared_fine_tunes_the_shared_networks_and_the_default_gives_the_product_its_own_set(tmp_path: Path) -> None:
    own = dict(stages(ProductRun("nas_d2", tmp_path)))
    assert own["detector"][own["detector"].index("--only") + 1] == "nas_d2"
    assert own["keypoints"][own["keypoints"].index("--only") + 1] == "nas_d2"
    for stage in ("detector", "appearance", "keypoints", "parts"):
        assert own[stage][own[stage].index("--out") + 1] == str(tmp_path / "weights" / "products" / "nas_d2")
    # The own set's keypoint network first learns the product among every product's crops, from --init's
    # network, then goes on from there on its crops alone.
    warmup = tmp_path / "keypoints-all"
    assert "--only" not in own["keypoints-all"] and own["keypoints-all"][own["keypoints-all"].index("--out") + 1] \
        == str(warmup)
    assert own["keypoints-all"][own["keypoints-all"].index("--init") + 1] == str(WEIGHTS_DIR / "keypoints.state.pt")
    assert own["keypoints"][own["keypoints"].index("--init") + 1] == str(warmup / "keypoints.state.pt")
    names = list(own)
    assert names.index("keypoints-all") == names.index("keypoints") - 1
    alone = dict(stages(ProductRun("nas_d2", tmp_path, keypoint_warmup_epochs=0)))
    assert "keypoints-all" not in alone
    assert alone["keypoints"][alone["keypoints"].index("--init") + 1] == str(WEIGHTS_DIR / "keypoints.state.pt")
    shared = dict(stages(ProductRun("nas_d2", tmp_path, shared=True)))
    assert "keypoints-all" not in shared  # the shared network learns every product in its one stage
    assert "--only" not in shared["detector"] and "--only" not in shared["keypoints"]
    for stage in ("detector", "appearance", "keypoints", "parts"):
        assert shared[stage][shared[stage].index("--out") + 1] == str(tmp_path / "weights")
    assert "--only" not in dict(stages(ProductRun(None, tmp_path)))["detector"]  # `train all`: shared always


def test_a_killed_detector_run_resumes_from_its_last_epoch(tmp_path: Path) -> None:
    """`train detector --resume` (what `train product`'s detector stage runs) continues an interrupted run from
    the checkpoint of its last finished epoch instead of starting over."""
    import signal
    import time

    data = tmp_path / "data"
    made = _fixlens("data", "synth", "--out", str(data), "--images", "24", "--seed", "8701", "--no-progress")
    assert made.returncode == 0, made.stderr[-2000:]
    args = [sys.executable, "-m", "fixlens.cli", "train", "detector", "--data", str(data / "data.yaml"), "--epochs",
            "40", "--project", str(tmp_path / "runs"), "--out", str(tmp_path / "w"), "--init",
            str(WEIGHTS_DIR / "fixlens-pose.pt"), "--resume"]
    env = {**os.environ, "YOLO_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    last = tmp_path / "runs" / "fixlens-pose" / "weights" / "last.pt"

    def run_until(done: Callable[[str], bool], log: Path) -> str:
        with log.open("w") as out:
            child = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
            try:
                deadline = time.monotonic() + 300
                while not done(log.read_text()) and child.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.5)
            finally:
                child.send_signal(signal.SIGKILL)
                child.wait()
        return log.read_text()

    first = run_until(lambda text: last.is_file() and "2/40" in text, tmp_path / "first.log")
    assert last.is_file(), first[-2000:]
    second = run_until(lambda text: "Resuming training" in text and "/40" in text.split("Resuming training")[-1],
                       tmp_path / "second.log")
    resumed = re.search(r"Resuming training \S+ from epoch (\d+) to 40 total epochs", second)
    assert resumed is not None and int(resumed.group(1)) >= 2, second[-2000:]


def _weights_with_set(root: Path, product: str) -> Path:
    """A weights folder: the shipped set, and the shipped set again as ``products/<product>/`` (its networks
    stand in for an earlier run's set; only their files and records matter here)."""
    for folder in (root, root / "products" / product):
        folder.mkdir(parents=True)
        for name in ("fixlens-pose.pt", "fixlens-pose.onnx", "keypoints.onnx", "keypoints.state.pt",
                     "part-states.onnx", "product-appearance.onnx"):
            if (WEIGHTS_DIR / name).is_file():
                shutil.copy2(WEIGHTS_DIR / name, folder / name)
    return root


def test_an_init_with_the_products_own_set_is_gone_on_from(tmp_path: Path) -> None:
    """An earlier run's weights as --init: every stage starts from the product's set, without the warm-up, and
    its parts are trained (they are the product's own, not the known ones to keep)."""
    init = _weights_with_set(tmp_path / "init", "nas_d2")
    earlier = init / "products" / "nas_d2"
    run = ProductRun("nas_d2", tmp_path / "work", init=init)
    assert run.earlier_set == earlier and run.before_weights == tmp_path / "work" / "before-weights"
    plan = dict(stages(run))
    assert "keypoints-all" not in plan
    assert plan["detector"][plan["detector"].index("--init") + 1] == str(earlier / "fixlens-pose.pt")
    assert plan["keypoints"][plan["keypoints"].index("--init") + 1] == str(earlier / "keypoints.state.pt")
    assert plan["parts"][plan["parts"].index("--init") + 1] == str(earlier / "part-states.onnx")
    assert "--keep-known" not in plan["parts"]
    assert plan["before"][plan["before"].index("--weights-dir") + 1] == str(run.before_weights)
    # 0 epochs keep a stage's networks of that set as they are (the set here has no part-state state file).
    keep = dict(stages(ProductRun("nas_d2", tmp_path / "work", init=init, detector_epochs=0, part_epochs=0)))
    assert keep["detector"] == Keep(earlier, ("fixlens-pose.pt", "fixlens-pose.onnx"))
    assert keep["parts"] == Keep(earlier, ("part-states.onnx",)) and isinstance(keep["appearance"], list)
    with pytest.raises(ValueError, match=r"--detector-epochs 0 keeps that network .* holds none for nas_d2"):
        stages(ProductRun("nas_d2", tmp_path / "work3", init=WEIGHTS_DIR, detector_epochs=0))
    with pytest.raises(ValueError, match="`train all` trains the shared networks, which have none to keep"):
        stages(ProductRun(None, tmp_path / "work3", init=init, part_epochs=0))
    with pytest.raises(ValueError, match="with the detector trained again, train it again too"):
        stages(ProductRun("nas_d2", tmp_path / "work3", init=init, appearance_epochs=0))
    (earlier / "part-states.onnx").unlink()  # a set whose part-state network exists only as its state file
    (earlier / "part-states.state.pt").write_bytes(b"state")
    with pytest.raises(ValueError, match=r"--part-epochs 0: \S+/products/nas_d2 has no part-states.onnx to keep"):
        stages(ProductRun("nas_d2", tmp_path / "work3", init=init, part_epochs=0))
    # Without a set of the product's own, the shipped networks start it, as before.
    fresh = dict(stages(ProductRun("nas_d2", tmp_path / "work2", init=WEIGHTS_DIR)))
    assert "keypoints-all" in fresh and "--keep-known" in fresh["parts"]
    assert fresh["before"][fresh["before"].index("--weights-dir") + 1] == str(WEIGHTS_DIR)


def test_the_before_figures_leave_out_an_earlier_set_the_catalog_no_longer_fits(tmp_path: Path) -> None:
    """A product whose keypoints moved since its set was trained: the weights check refuses the set, so the
    `before` evaluation runs without it (the product counts as not yet learnt) instead of failing."""
    init = _weights_with_set(tmp_path / "init", "router_ax1800")
    run = ProductRun("router_ax1800", tmp_path / "work", init=init)
    said = prepare_before(run)
    assert said == f"before: {init} with its set for router_ax1800"
    assert (run.before_weights / "products" / "router_ax1800" / "keypoints.onnx").is_file()

    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOG_DIR, catalog)
    path = catalog / "router_ax1800" / "product.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("antenna_left_tip", "antenna_left_top", 1), encoding="utf-8")
    said = prepare_before(run, Catalog.load(catalog))
    assert said.startswith(f"before: {init / 'products' / 'router_ax1800'} does not fit the catalog")
    assert "antenna_left_top" in said
    assert not (run.before_weights / "products").exists()
    assert (run.before_weights / "keypoints.onnx").read_bytes() == (WEIGHTS_DIR / "keypoints.onnx").read_bytes()


def _name_detector(folder: Path, names: dict[int, str]) -> None:
    """Give the detector in ``folder`` other class names (what `train product` reads to see what it knows)."""
    import onnx

    path = folder / "fixlens-pose.onnx"
    model = onnx.load(str(path))
    for entry in model.metadata_props:
        if entry.key == "names":
            entry.value = repr(names)
    onnx.save(model, str(path))


def test_an_own_set_of_the_product_in_init_is_gone_on_from_but_a_shared_one_is_refused(catalog: Path,
                                                                                      tmp_path: Path) -> None:
    init = _weights_with_set(tmp_path / "init", "router_bx9")
    _name_detector(init / "products" / "router_bx9", {0: "router_bx9"})
    args = ["train", "product", "router_bx9", "--catalog", str(catalog), "--init", str(init), "--work",
            str(tmp_path / "w"), "--rehearsal", str(tmp_path / "none")]
    accepted = _fixlens(*args, timeout=60)  # past the check on --init, stopped by the next one
    assert accepted.returncode == 2 and "--rehearsal" in accepted.stderr, accepted.stderr[-2000:]
    _name_detector(init, {0: "printer_lx400", 1: "router_bx9"})
    refused = _fixlens(*args, timeout=60)
    assert refused.returncode == 2 and "router_bx9 is already recognised by" in refused.stderr
    assert "printer_lx400, router_bx9" in refused.stderr  # the shared detector's names, not the product's set's


def test_the_report_names_what_refused_the_products_frames_and_the_keypoints_it_cannot_place(tmp_path: Path) -> None:
    from vision.training.product_report import _diagnosis_lines

    stage = {"frames": 100, "refused": {"not_detected": 3, "unsure": 9}, "keypoint_confidence_median":
             {"top_front_left": 0.93, "top_front_mid": 0.08, "display_top_left": 0.71},
             "alone": {"frames": 74, "product_recall": 0.9189, "part_state_accuracy_4px": 0.8}}
    (tmp_path / "after.json").write_text(json.dumps({"stages_by_product": {"nas_d2": stage}}))
    lines = _diagnosis_lines("nas_d2", tmp_path)
    assert "by what refused them (`vision eval`'s `refused`): not_detected 3, unsure 9." in lines[0]
    assert "Over the 74 of its 100 frames with no other catalog product" in lines[1] and "recall 0.919" in lines[1]
    assert "top_front_mid 0.08." in lines[2] and "top_front_left" not in lines[2] and "display" not in lines[2]
    assert _diagnosis_lines("router_bx9", tmp_path) == []  # not evaluated: nothing to say


def test_only_a_whole_earlier_set_is_gone_on_from(tmp_path: Path) -> None:
    """A set missing a network a stage starts from (an earlier run killed after its detector) is not an earlier
    run to go on from: the CLI refuses it as already recognised, and the stages start from --init's own."""
    init = _weights_with_set(tmp_path / "init", "router_bx9")
    own = init / "products" / "router_bx9"
    assert earlier_set(init, "router_bx9") == own
    (own / "keypoints.state.pt").unlink()
    assert earlier_set(init, "router_bx9") is None
    assert ProductRun("router_bx9", tmp_path / "w", init=init).earlier_set is None
    assert earlier_set(init, None) is None and earlier_set(None, "router_bx9") is None


def test_an_init_inside_the_runs_work_folder_is_refused(tmp_path: Path) -> None:
    work = tmp_path / "w"
    (work / "weights").mkdir(parents=True)
    done = _fixlens("train", "product", "router_ax1800", "--init", str(work / "weights"), "--work", str(work),
                    timeout=60)
    assert done.returncode == 2 and "is inside the run's own work folder" in done.stderr


def test_a_run_going_on_from_an_earlier_set_evaluates_before_on_its_own_copy(
        catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run_all` fills the `before` folder (prepare_before) before that stage evaluates it; every later stage is
    marked done here, so only `before` runs (one held-out frame)."""
    from product_models.catalog import default_catalog

    default_catalog()  # this process keeps the shipped catalog (it is loaded once); the child gets the test's
    monkeypatch.setenv("FIXLENS_CATALOG_DIR", str(catalog))
    init = _weights_with_set(tmp_path / "init", "router_bx9")
    _name_detector(init / "products" / "router_bx9", {0: "router_bx9"})
    run = ProductRun("router_bx9", tmp_path / "work", init=init, eval_frames=1)
    (run.work / "stages").mkdir(parents=True)
    for name, _args in stages(run):
        if name != "before":
            (run.work / "stages" / f"{name}.json").write_text(json.dumps({"args": [], "seconds": 1.0,
                                                                           "finished": 4e9}))
    said: list[str] = []
    run_all(run, log=said.append)
    # The weights check refuses the set (its detector names a product its keypoint network and this process's
    # catalog do not know), so it is left out.
    assert any(line.startswith(f"before: {init / 'products' / 'router_bx9'} does not fit") for line in said), said
    assert (run.before_weights / "keypoints.onnx").is_file() and not (run.before_weights / "products").exists()
    before = json.loads((run.work / "before.json").read_text())
    assert before["frames"] == 1 and before["seed"] == 9101
