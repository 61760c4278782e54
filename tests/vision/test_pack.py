"""Training packs: a synth folder shrunk for a GPU machine, and training the keypoint network from packs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from product_models.catalog import default_catalog
from vision.keypoint_layout import KeypointLayout
from vision.training.keypoints_train import load_samples
from vision.training.pack import DET_SIDE, read_crops, read_part_patches, write_pack, write_part_pack
from vision.training.pack_train import merged_data_yaml
from vision.training.synth import class_names, write_dataset

pytestmark = pytest.mark.slow


def pack_train(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    """``python -m vision.training.pack_train ARGS`` in a child process (torch must not share this process with
    the EGL renderer); asserts success unless ``ok`` is False."""
    done = subprocess.run([sys.executable, "-m", "vision.training.pack_train", *args], capture_output=True,
                          text=True, timeout=300)
    if ok:
        assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.fixture(scope="module")
def synth_and_pack(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pack")
    write_dataset(root / "synth", 10, seed=4343, val_share=0.3, progress=False)
    write_pack(root / "synth", root / "pack", jitter=2, seed=5)
    return root / "synth", root / "pack"


def test_pack_keeps_every_label_and_shrinks_frames_to_the_detector_size(synth_and_pack) -> None:
    synth, pack = synth_and_pack
    meta = json.loads((pack / "pack.json").read_text())
    assert meta["names"] == class_names(default_catalog()) and meta["det_side"] == DET_SIDE
    for split in ("train", "val"):
        originals = sorted(p.name for p in (synth / "images" / split).glob("*.jpg"))
        assert sorted(p.name for p in (pack / "det" / "images" / split).glob("*.jpg")) == originals
        assert meta["frames"][split] == len(originals)
        for name in originals:
            small = cv2.imread(str(pack / "det" / "images" / split / name))
            full = cv2.imread(str(synth / "images" / split / name))
            assert max(small.shape[:2]) == DET_SIDE
            assert abs(small.shape[1] / small.shape[0] - full.shape[1] / full.shape[0]) < 0.01
        for label in (synth / "labels" / split).glob("*.txt"):  # normalised: unchanged by the resize
            assert (pack / "det" / "labels" / split / label.name).read_text() == label.read_text()


def test_pack_crops_are_the_training_crops(synth_and_pack) -> None:
    synth, pack = synth_and_pack
    catalog = default_catalog()
    layout = KeypointLayout.from_catalog(catalog, class_names(catalog))
    x, y, w, c = load_samples([synth], "train", 2, 5, layout)  # the pack's seed: the same jittered boxes
    px, py, pw, pc = read_crops(pack, "train", layout.to_json())
    assert len(px) == len(x) > 0
    np.testing.assert_array_equal(py, y)
    np.testing.assert_array_equal(pw, w)
    np.testing.assert_array_equal(pc, c)
    # JPEG at the pack's quality: close to the crop, never a different picture.
    assert np.abs(px.astype(int) - x.astype(int)).mean() < 4.0


def test_pack_refusals(synth_and_pack, tmp_path: Path) -> None:
    synth, pack = synth_and_pack
    with pytest.raises(ValueError, match="already exists"):
        write_pack(synth, pack)
    with pytest.raises(ValueError, match="not a `fixlens data synth` folder"):
        write_pack(tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="layout differs"):
        read_crops(pack, "train", KeypointLayout((("router_ax1800", ("a", "b")),)).to_json())
    other = tmp_path / "other"
    (other / "det").mkdir(parents=True)
    meta = json.loads((pack / "pack.json").read_text())
    (other / "pack.json").write_text(json.dumps({**meta, "names": ["router_ax1800"]}))
    with pytest.raises(ValueError, match="differ from"):
        merged_data_yaml([pack, other], tmp_path / "w")


def test_merged_data_yaml_lists_every_packs_frames(synth_and_pack, tmp_path: Path) -> None:
    _, pack = synth_and_pack
    data = yaml.safe_load(merged_data_yaml([pack, pack], tmp_path / "w").read_text())
    assert data["train"] == [str((pack / "det" / "images" / "train").resolve())] * 2
    assert list(data["names"].values()) == class_names(default_catalog())
    assert data["kpt_shape"] == json.loads((pack / "pack.json").read_text())["kpt_shape"]


def test_keypoints_train_from_packs_and_export_here(synth_and_pack, tmp_path: Path) -> None:
    """The GPU machine's command, on the CPU: one epoch from two packs, then the export where the catalog is."""
    from vision.keypoints import KeypointModel

    _, pack = synth_and_pack
    pack_train("keypoints", "--packs", str(pack), str(pack), "--out", str(tmp_path), "--epochs", "2", "--batch", "8",
               "--deadline", "0")
    record = json.loads((tmp_path / "keypoints.train.json").read_text())
    # The deadline stops it after the first epoch, and the record says so.
    assert record["epochs"] == 1 and record["epochs_planned"] == 2 and record["device"] == "cpu"
    pack_train("export", "--weights", str(tmp_path))
    net = KeypointModel(tmp_path / "keypoints.onnx")
    assert net.layout.products == tuple(class_names(default_catalog()))
    empty = pack_train("export", "--weights", str(tmp_path / "none"), ok=False)
    assert empty.returncode == 2 and "none of fixlens-pose.pt, keypoints.state.pt" in empty.stderr


def test_negative_pack_holds_the_trainers_crops_and_trains_from_packs(synth_and_pack, tmp_path: Path) -> None:
    """The product-free crops of `fixlens train keypoints --negatives`, packed for the GPU machine: the same
    crops and products as the trainer draws, and `pack_train keypoints --negative-packs` trains with them."""
    from vision.training.keypoints_train import load_negatives
    from vision.training.negatives import mining_detector
    from vision.training.pack import read_negatives, write_negative_pack

    _, pack = synth_and_pack
    layout = KeypointLayout.from_catalog(default_catalog(), class_names(default_catalog()))
    counts = write_negative_pack(tmp_path / "neg", 10, seed=3)
    detector = mining_detector()
    x, c = load_negatives(9, 2003, layout, detector)  # 10 frames, one held out; the trainer's train seed
    px, pc = read_negatives(tmp_path / "neg", "train", layout.to_json())
    assert counts["train"] == len(px) == len(x) > 0 and counts["val"] > 0
    np.testing.assert_array_equal(pc, c)
    assert np.abs(px.astype(int) - x.astype(int)).mean() < 4  # JPEG at the crops' quality
    with pytest.raises(ValueError, match="already exists"):
        write_negative_pack(tmp_path / "neg", 10)
    pack_train("keypoints", "--packs", str(pack), "--negative-packs", str(tmp_path / "neg"), "--out",
               str(tmp_path / "w"), "--epochs", "1", "--batch", "8")
    final = json.loads((tmp_path / "w" / "keypoints.train.json").read_text())["final"]
    assert 0.0 < final["val_negative_peak_mass"] < 1.0 and 0.0 < final["val_peak_mass"] < 1.0


@pytest.fixture(scope="module")
def part_pack(synth_and_pack, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from vision.training.parts_train import load_patches, part_index

    synth, _ = synth_and_pack
    root = tmp_path_factory.mktemp("parts")
    index = part_index()
    x_tr, r_tr, y_tr = load_patches([synth], "train", index, 3, 1, 0)
    x_va, r_va, y_va = load_patches([synth], "val", index, 4, 1, 0, required=False)
    np.savez(root / "cache.npz", x_tr=x_tr, r_tr=r_tr, y_tr=y_tr, x_va=x_va, r_va=r_va, y_va=y_va)
    write_part_pack(root / "cache.npz", root / "pack")
    return root / "cache.npz", root / "pack"


def test_detector_trains_from_packs_with_a_set_learning_rate(synth_and_pack, tmp_path: Path) -> None:
    """``--lr`` replaces Ultralytics' own optimizer choice with AdamW at that rate, without warm-up."""
    _synth, pack = synth_and_pack
    pack_train("detector", "--packs", str(pack), "--out", str(tmp_path), "--epochs", "1", "--batch", "4",
               "--workers", "0", "--lr", "1e-4")
    record = json.loads((tmp_path / "fixlens-pose.train.json").read_text())
    extra = dict(record["config"]["extra"])
    assert extra["optimizer"] == "AdamW" and extra["lr0"] == 1e-4 and extra["warmup_epochs"] == 0.0
    assert (tmp_path / "fixlens-pose.pt").is_file() and record["epochs_run"] == 1


def test_part_pack_keeps_every_label_and_the_patches_colours(part_pack) -> None:
    from vision.training.parts_train import part_index

    cache, pack = part_pack
    data = np.load(cache)
    x, rows, labels = read_part_patches(pack, "train", part_index().to_json())
    assert len(x) == len(data["x_tr"]) > 0 and x.shape[1:] == data["x_tr"].shape[1:]
    np.testing.assert_array_equal(rows, data["r_tr"])
    np.testing.assert_array_equal(labels, data["y_tr"])
    # 4:4:4 JPEG at quality 95: every patch close to its original, colour included.
    err = np.abs(x.astype(int) - data["x_tr"].astype(int)).reshape(len(x), -1).mean(axis=1)
    assert err.max() < 4.0


def test_part_pack_shards_split_both_splits_without_loss(part_pack, tmp_path: Path) -> None:
    from vision.training.parts_train import part_index

    cache, _ = part_pack
    data = np.load(cache)
    write_part_pack(cache, tmp_path, shards=2)
    shards = [read_part_patches(tmp_path / f"shard-{k}", "train", part_index().to_json()) for k in (1, 2)]
    assert all(len(x) for x, _, _ in shards)
    np.testing.assert_array_equal(np.concatenate([labels for _, _, labels in shards]), data["y_tr"])
    with pytest.raises(ValueError, match="shards must be within"):
        write_part_pack(cache, tmp_path / "none", shards=0)


def test_part_pack_refusals(part_pack, tmp_path: Path) -> None:
    _, pack = part_pack
    with pytest.raises(ValueError, match="no such patch cache"):
        write_part_pack(tmp_path / "none.npz", tmp_path / "out")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a patch cache"):
        write_part_pack(tmp_path / "other.npz", tmp_path / "out")
    with pytest.raises(ValueError, match="part index differs"):
        read_part_patches(pack, "train", "[]")
    alone = pack_train("parts", "--packs", str(pack), "--out", str(tmp_path / "k"), "--keep-known", ok=False)
    assert alone.returncode == 2 and "keeping the known parts needs --init" in alone.stderr
    both = pack_train("parts", "--packs", str(pack), "--out", str(tmp_path / "k"), "--occlusion", "--states-only",
                      ok=False)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    assert not (tmp_path / "k").exists()  # nothing written by a refused run


def test_parts_train_from_packs_and_export_here(part_pack, tmp_path: Path) -> None:
    """The GPU machine's part-state command on the CPU, stopped by its deadline, then exported here."""
    from vision.part_net import PartNet
    from vision.training.parts_train import part_index

    _, pack = part_pack
    pack_train("parts", "--packs", str(pack), "--out", str(tmp_path), "--epochs", "2", "--batch", "32",
               "--deadline", "0")
    record = json.loads((tmp_path / "part-states.train.json").read_text())
    assert record["epochs"] == 1 and record["epochs_planned"] == 2 and record["device"] == "cpu"
    done = pack_train("export", "--weights", str(tmp_path))
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"parts": str(tmp_path / "part-states.onnx")}
    assert PartNet(tmp_path / "part-states.onnx").index == part_index()


KEEP_KNOWN = """
import sys
from pathlib import Path

import numpy as np

from vision.part_net import PartIndex
from vision.training.parts_train import CUT, STATE_NAME, export_state, fit_parts

out, rng = Path(sys.argv[1]), np.random.default_rng(0)
old = PartIndex((("p", "led", ("off", "green")),))
new = PartIndex((("p", "led", ("off", "green", "hand")), ("q", "port", ("empty", "plugged"))))


def data(index, n):
    rows = rng.integers(0, len(index.entries), n)
    labels = np.array([rng.choice(index.class_ids(r)) for r in rows])
    return rng.integers(0, 256, (n, CUT, CUT, 3), dtype=np.uint8), rows, labels


fit_parts(data(old, 64), data(old, 16), old, out / "a", 1, batch=32, log=lambda m: None)
export_state(out / "a" / STATE_NAME, out / "a.onnx")
train = data(new, 128)
fit_parts(train, data(new, 32), new, out / "b", 2, batch=32, log=lambda m: None,
          init=out / "a" / STATE_NAME, keep_known=True)
export_state(out / "b" / STATE_NAME, out / "b.onnx")
print(int((train[1] == 1).sum()))  # the new part's training patches
try:  # only known parts' patches: nothing to learn
    only_known = data(old, 16)
    fit_parts(only_known, only_known, new, out / "c", 1, batch=32, log=lambda m: None,
              init=out / "a" / STATE_NAME, keep_known=True)
except ValueError as exc:
    print(exc)
"""


def test_keep_known_leaves_the_known_parts_readings_exactly_as_they_were(tmp_path: Path) -> None:
    """A fine-tune that adds a part (``--keep-known``, what `train product` does): the known part's readings
    are bit-for-bit the init network's, it learns no new class, and the new part is read."""
    from vision.part_net import PartIndex, PartNet
    from vision.part_patches import PATCH

    done = subprocess.run([sys.executable, "-c", KEEP_KNOWN, str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    new_patches, refusal = done.stdout.strip().splitlines()[-2:]
    # Only the new part's patches were trained on: the known part's could not teach anything.
    assert json.loads((tmp_path / "b" / "part-states.train.json").read_text())["train_patches"] == int(new_patches)
    assert refusal.startswith(f"no training patches of a part that {tmp_path / 'a' / 'part-states.state.pt'} "
                              "does not know") and refusal.endswith("nothing to learn; render more frames")
    before, after = PartNet(tmp_path / "a.onnx"), PartNet(tmp_path / "b.onnx")
    assert after.index == PartIndex((("p", "led", ("off", "green")), ("q", "port", ("empty", "plugged"))))
    patches = list(np.random.default_rng(1).integers(0, 256, (20, PATCH, PATCH, 3), dtype=np.uint8))
    old = before.predict(patches, [("p", "led")] * 20)
    new = after.predict(patches, [("p", "led")] * 20)
    assert [label for label, _ in new] == [label for label, _ in old]
    np.testing.assert_allclose([prob for _, prob in new], [prob for _, prob in old], atol=1e-5)
    assert {label for label, _ in after.predict(patches, [("q", "port")] * 20)} <= {"empty", "plugged"}


@pytest.mark.parametrize(("option", "value"), [("--lr", "0"), ("--lr", "-1e-3"), ("--epochs", "0"), ("--batch", "-4"),
                                               ("--lr", "fast")])
def test_a_rate_epoch_count_or_batch_that_is_not_above_zero_is_refused_by_name(option: str, value: str,
                                                                               capsys: pytest.CaptureFixture) -> None:
    from vision.training.pack_train import main

    with pytest.raises(SystemExit) as exc:
        main(["parts", "--packs", "P", "--out", "O", f"{option}={value}"])  # "=": argparse takes "-1e-3" for an option
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and value in err
