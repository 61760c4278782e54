"""Synthetic data, the tiny smoke trainings, the ONNX detector path and the part-state network."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import default_catalog
from vision.detector import WEIGHTS_DIR
from vision.part_net import PartIndex, PartNet
from vision.part_patches import COVERED, HAND, HIDDEN, OFF_PART, PATCH, face_patch
from vision.training.parts_train import cut_patches, part_index
from vision.training.synth import flip_index, keypoint_count, pose_label, write_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    write_dataset(out, 12, seed=4242, val_share=0.25, progress=False)
    return out


def test_dataset_layout_and_labels(tiny_dataset: Path) -> None:
    data = yaml.safe_load((tiny_dataset / "data.yaml").read_text())
    catalog = default_catalog()
    assert sorted(data["names"].values()) == sorted(catalog.products)
    k = keypoint_count(catalog)
    assert data["kpt_shape"] == [k, 3]
    images = sorted((tiny_dataset / "images" / "train").glob("*.jpg"))
    assert len(images) == 9 and len(list((tiny_dataset / "images" / "val").glob("*.jpg"))) == 3
    for img in images:
        lines = (tiny_dataset / "labels" / "train" / f"{img.stem}.txt").read_text().splitlines()
        truth = json.loads((tiny_dataset / "truth" / "train" / f"{img.stem}.json").read_text())
        if truth["product"] is None:  # no main product; now and then another one off to the side, labelled
            assert lines == truth["labels"]
            continue
        # The first line is the product; another catalog product standing in the room adds one more.
        assert len(lines) == 1 + len(truth["labels"])
        assert int(lines[0].split()[0]) == sorted(catalog.products).index(truth["product"])
        for line in lines:
            label = line.split()
            assert len(label) == 5 + 3 * k
            values = [float(v) for v in label[1:]]
            coords = values[:4] + [v for i, v in enumerate(values[4:]) if i % 3 != 2]
            assert all(0.0 <= v <= 1.0 for v in coords)
            assert {values[4 + 3 * i + 2] for i in range(k)} <= {0.0, 1.0, 2.0}
        assert set(truth["states"]) == {p.name for p in catalog.get(truth["product"]).stateful_parts()}
        for info in truth["parts"].values():  # a covered part is not visible, and says what covers it
            assert info["covered_by"] in (None, "hand", "object")
            assert not (info["covered_by"] and info["visible"])


def test_same_seed_same_data(tmp_path: Path, tiny_dataset: Path) -> None:
    write_dataset(tmp_path, 12, seed=4242, val_share=0.25, progress=False)
    for label in sorted((tiny_dataset / "labels" / "train").glob("*.txt")):
        assert (tmp_path / "labels" / "train" / label.name).read_text() == label.read_text()


def test_flip_index_swaps_left_and_right() -> None:
    router = default_catalog().get("router_ax1800")
    names = [k.name for k in router.keypoints]
    idx = flip_index(router)
    assert names[idx[names.index("top_front_left")]] == "top_front_right"
    assert sorted(idx) == list(range(len(names)))


def test_pose_label_marks_out_of_frame_keypoints_unlabelled() -> None:
    line = pose_label(1, np.array([10, 20, 110, 220]), np.array([[50, 60], [700, 10]]), np.array([2, 0]), 640, 480)
    parts = line.split()
    assert parts[0] == "1" and parts[-3:] == ["0", "0", "0"] and parts[-4] == "2"


def test_smoke_training_exports_a_working_onnx_detector(tiny_dataset: Path, tmp_path: Path) -> None:
    """The real training command, one epoch on a dozen images, then the ONNX backend runs its export.

    It runs in a child process: this test process has the EGL renderer loaded (for the dataset), and
    torch must not share a process with Mesa's EGL (see vision.training.train)."""
    from vision.detector import DetectorConfig, OnnxDetector

    cmd = [sys.executable, "-m", "fixlens.cli", "train", "detector", "--data", str(tiny_dataset / "data.yaml"),
           "--epochs", "1", "--imgsz", "64", "--batch", "4", "--out-dir", str(tmp_path / "weights"),
           "--project", str(tmp_path / "runs")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "YOLO_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    onnx_path = tmp_path / "weights" / "fixlens-pose.onnx"
    assert onnx_path.is_file() and (tmp_path / "weights" / "fixlens-pose.pt").is_file()
    det = OnnxDetector(onnx_path, DetectorConfig(conf=0.0))
    assert sorted(det.names) == sorted(default_catalog().products)
    frame = np.full((480, 640, 3), 90, np.uint8)
    (out,) = det.detect_batch([frame])
    assert out.keypoints is not None and out.keypoints.shape[1:] == (det.num_keypoints, 2)
    assert len(out) <= DetectorConfig().max_det
    if len(out):  # an untrained net still yields boxes in frame coordinates
        assert (out.xyxy[:, 2] <= 639).all() and (out.xyxy[:, 3] <= 479).all()


def test_smoke_training_exports_a_working_part_state_network(tiny_dataset: Path, tmp_path: Path) -> None:
    """`fixlens train parts`, one epoch on a dozen images (in a child process: torch and EGL do not mix),
    then the pipeline's ONNX Runtime reader loads the export and answers with each part's own classes."""
    cmd = [sys.executable, "-m", "fixlens.cli", "train", "parts", "--data", str(tiny_dataset), "--epochs", "1",
           "--jitter", "1", "--wide-jitter", "0", "--cache", str(tmp_path / "patches.npz"), "--out-dir", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "patches.npz").is_file()  # the runs below read their patches from it
    summary = json.loads(done.stdout[done.stdout.index("{\n"):])
    assert summary["train_patches"] > 0
    assert summary["val_accuracy"] is None or 0.0 <= summary["val_accuracy"] <= 1.0
    net = PartNet(tmp_path / "part-states.onnx")
    assert net.handles("printer_lx400", "paper_jam") and not net.handles("router_ax1800", "button_wifi")
    patches = [np.zeros((PATCH, PATCH, 3), np.uint8), np.full((PATCH, PATCH, 3), 200, np.uint8)]
    out = net.predict(patches, [("printer_lx400", "paper_jam"), ("router_ax1800", "led_power")])
    assert out[0][0] in ("clear", "jammed", HIDDEN, HAND, COVERED)
    assert out[1][0] in (*default_catalog().get("router_ax1800").part("led_power").states, HAND, COVERED, OFF_PART)
    assert all(0.0 <= prob <= 1.0 for _label, prob in out)
    # The run leaves its weights for a fine-tune and a checkpoint a resumed run continues from.
    assert (tmp_path / "part-states.state.pt").is_file() and (tmp_path / "part-states.ckpt.pt").is_file()
    again = subprocess.run([*cmd[:cmd.index("--out-dir")], "--init", str(tmp_path / "part-states.state.pt"),
                            "--out-dir", str(tmp_path / "tuned")], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "initialised from" in again.stdout, again.stderr[-2000:]
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0 and "resumed from" in resumed.stdout, resumed.stderr[-2000:]
    other = subprocess.run([*cmd[:cmd.index("--epochs") + 1], "2", *cmd[cmd.index("--epochs") + 2:], "--resume"],
                           capture_output=True, text=True, timeout=300)
    assert other.returncode == 2 and "other epochs" in other.stderr


def test_a_patch_cache_cut_for_another_part_index_is_cut_again(tiny_dataset: Path, tmp_path: Path) -> None:
    """`train parts --cache` keeps the part index with the patches: labels are class ids in it, so a cache cut
    for another index (a part added, a kind newly classified) is cut again, never read with shifted labels."""
    cache, index, said = tmp_path / "patches.npz", part_index(), []
    first = cut_patches([tiny_dataset], index, 0, 1, 0, log=said.append, cache=cache)
    with np.load(cache) as data:
        saved = {k: data[k] for k in data.files}
    assert PartIndex.from_json(str(saved["index"])) == index and len(first[0]) > 0
    # A cache cut for this index is read as it is: a patch marked in the file comes back marked.
    marked = saved["x_tr"].copy()
    marked[0] = 7
    np.savez(cache, **{**saved, "x_tr": marked})
    again = cut_patches([tiny_dataset], index, 0, 1, 0, log=said.append, cache=cache)
    assert (again[0] == marked).all() and not said
    other = PartIndex((("printer_lx400", "led_status", ("off", "green")),))
    for name, arrays in (("another", {**saved, "index": np.array(other.to_json())}),
                         ("none", {k: v for k, v in saved.items() if k != "index"})):  # caches before they kept it
        np.savez(cache, **arrays)
        said.clear()
        cut = cut_patches([tiny_dataset], index, 0, 1, 0, log=said.append, cache=cache)
        assert any("cutting the patches again" in line for line in said), name
        assert all((a == b).all() for a, b in zip(cut, first, strict=True)), name  # same seed, same patches
        with np.load(cache) as data:
            assert PartIndex.from_json(str(data["index"])) == index


def test_part_index_lays_out_each_parts_classes_end_to_end() -> None:
    index = PartIndex((("p", "a", ("off", "on")), ("p", "b", ("x", "y", "z"))))
    assert index.num_classes == 5 and index.row("p", "b") == 1 and index.row("p", "c") is None
    assert list(index.class_ids(1)) == [2, 3, 4] and index.class_id(1, "z") == 4
    mask = index.logit_mask()
    assert (mask[0, :2] == 0).all() and np.isinf(mask[0, 2:]).all()
    assert PartIndex.from_json(index.to_json()) == index
    with pytest.raises(ValueError, match="part_index"):
        PartIndex.from_json('[["p", "a"]]')
    with pytest.raises(ValueError, match="part_index"):
        PartIndex.from_json('{"format": 3, "rows": [["p", "a", ["off"]]]}')


def test_a_part_index_of_the_first_format_names_its_off_part_class_as_now() -> None:
    """Networks saved before a part could have a state named "absent" (a removable part) named the class of a
    patch off its part "absent"; loading them renames it, so that state and that class never meet."""
    legacy = ('[["p", "led", ["off", "green", "hand", "covered", "absent"]], ["p", "tray", ["open", "closed"]], '
              '["p", "paper", ["absent", "loaded", "hand", "covered", "hidden"]]]')
    assert PartIndex.from_json(legacy).entries == (("p", "led", ("off", "green", HAND, COVERED, OFF_PART)),
                                                   ("p", "tray", ("open", "closed")),  # a state of that name stays:
                                                   ("p", "paper", ("absent", "loaded", HAND, COVERED, HIDDEN)))
    shipped = PartNet(WEIGHTS_DIR / "part-occlusion.onnx").index  # saved in the first format
    assert ("router_ax1800", "led_wifi", ("visible", HAND, COVERED, OFF_PART)) in shipped.entries
    drive = PartIndex((("q", "drive", ("present", "absent", HAND, COVERED)),))
    assert PartIndex.from_json(drive.to_json()) == drive  # the current format keeps a state named "absent"


def test_class_weights_balance_states_and_never_favour_an_abstention() -> None:
    from vision.training.parts_train import class_weights

    index = PartIndex((("p", "led", ("off", "green", HAND, COVERED, OFF_PART)), ("p", "tray", ("empty", HIDDEN))))
    labels = np.array([0] * 10 + [1] * 90 + [2] * 5 + [3] * 1 + [4] * 4 + [5] * 3 + [6] * 97)
    w = class_weights(labels, index)
    assert w[0] / w[1] == pytest.approx(9.0)  # states balanced against each other (10 against 90 samples)
    assert (w[2:5] <= w[1] + 1e-6).all()  # hand, covered, absent: rare, yet never above the lightest state
    assert w[6] <= w[5]  # hidden likewise
    assert (w[:2] <= 10.0).all() and (w > 0).all()


# An LED and a tray with every kind of extra class; seven samples, one per class named in each test's labels.
MIXED = PartIndex((("p", "led", ("off", "green", HAND, COVERED, OFF_PART)), ("p", "tray", ("open", "closed", HIDDEN))))
MIXED_ROWS = np.array([0, 0, 0, 0, 1, 1, 1])


def _split(labels: list[int]) -> tuple[np.ndarray, ...]:
    """Seven patches whose pixels are their own index, on MIXED's rows, with ``labels``."""
    return np.arange(7)[:, None, None, None] * np.ones((7, 2, 2, 3), np.uint8), MIXED_ROWS, np.array(labels)


def _names(index: PartIndex, rows: np.ndarray, labels: np.ndarray) -> list[str]:
    return [index.classes(r)[y - index.class_ids(r)[0]] for r, y in zip(rows, labels, strict=True)]


def test_states_only_drops_the_abstaining_classes_and_renumbers() -> None:
    from vision.training.parts_train import states_only

    kept, [(x, r, y)] = states_only(MIXED, _split([1, 2, 4, 0, 5, 7, 6]))  # green hand absent off open hidden closed
    assert kept.entries == (("p", "led", ("off", "green")), ("p", "tray", ("open", "closed")))
    assert x[:, 0, 0, 0].tolist() == [0, 3, 4, 6]  # the samples of hand, absent and hidden are gone
    assert _names(kept, r, y) == ["green", "off", "open", "closed"]


def test_occlusion_only_relabels_every_state_visible_and_keeps_what_it_has_besides() -> None:
    from vision.training.parts_train import occlusion_only

    occ, [(x, r, y)] = occlusion_only(MIXED, _split([1, 2, 4, 3, 5, 7, 6]))  # green hand absent covered open ...
    # ``off_part`` stays for the part that has it (the LED, in a row), ``hidden`` for the one that has it (the tray)
    assert occ.entries == (("p", "led", ("visible", HAND, COVERED, OFF_PART)),
                           ("p", "tray", ("visible", HAND, COVERED, HIDDEN)))
    assert x[:, 0, 0, 0].tolist() == list(range(7))  # every sample stays
    assert _names(occ, r, y) == ["visible", HAND, OFF_PART, COVERED, "visible", HIDDEN, "visible"]


def test_fingertips_are_drawn_over_visible_ports_and_labelled_hand() -> None:
    from vision.training.parts_train import CUT, with_fingertips

    index = PartIndex((("router_ax1800", "port_wan", ("visible", HAND, COVERED)),
                       ("router_ax1800", "led_power", ("visible", HAND, COVERED))))
    rng = np.random.default_rng(0)
    x = np.zeros((40, CUT, CUT, 3), np.uint8)
    x[:] = (200, 60, 20)  # a blue body, BGR: no skin tone is near it
    rows = np.repeat([0, 1], 20)
    labels = np.where(rows == 0, 0, 3)  # every part visible
    x2, r2, y2 = with_fingertips(index, (x, rows, labels), ("port",), rng, share=0.5)
    assert len(x2) == 50 and (r2[40:] == 0).all() and (y2[40:] == 1).all()  # ten ports, now under a hand
    np.testing.assert_array_equal(x2[:40], x)  # the originals are untouched
    centre = x2[40:, CUT // 2 - 2:CUT // 2 + 2, CUT // 2 - 2:CUT // 2 + 2].astype(int)
    assert (np.abs(centre - x[:10, :4, :4]).reshape(10, -1).mean(axis=1) > 30).all()  # skin over the centre


def test_fingers_beside_the_part_keep_its_label_and_leave_its_centre() -> None:
    from vision.training.parts_train import CUT, with_fingers_beside

    index = PartIndex((("router_ax1800", "port_wan", ("empty", "plugged")),
                       ("router_ax1800", "led_power", ("off", "green"))))
    x = np.zeros((40, CUT, CUT, 3), np.uint8)
    x[:] = (200, 60, 20)  # a blue body, BGR: no skin tone is near it
    rows = np.repeat([0, 1], 20)
    labels = np.tile([0, 1], 20) + 2 * rows  # both states of both parts
    x2, r2, y2 = with_fingers_beside(index, (x, rows, labels), ("port",), np.random.default_rng(0), share=0.5)
    assert len(x2) == 50 and (r2[40:] == 0).all()  # ten ports got a finger, no LED
    assert set(y2[40:].tolist()) == {0, 1}  # labels kept: both of the port's states, nothing else
    np.testing.assert_array_equal(x2[:40], x)  # the originals are untouched
    changed = np.abs(x2[40:].astype(int) - x[:10]).sum(axis=-1) > 30  # (10, CUT, CUT) skin pixels
    face = CUT / 1.5
    yy, xx = np.mgrid[0:CUT, 0:CUT]
    centre = np.hypot(xx + 0.5 - CUT / 2, yy + 0.5 - CUT / 2) < face * 0.05
    inside = (np.abs(xx - CUT / 2) < face / 2) & (np.abs(yy - CUT / 2) < face / 2)
    assert changed.any(axis=(1, 2)).all()  # each copy has a finger ...
    assert not changed[:, centre].any()  # ... never over the part's centre (its soft edge may come near) ...
    assert changed[:, inside].any(axis=1).mean() >= 0.8  # ... and almost always over its face


def test_motion_blur_smears_along_its_line_only() -> None:
    from vision.training.parts_train import motion_blur_patches

    x = np.zeros((1, 3, PATCH, PATCH), np.float32)
    x[0, :, 16, 16] = 1.0  # one lit pixel
    across = motion_blur_patches(x, 9, 0.0)[0, 0]  # horizontal
    assert across.sum() == pytest.approx(1.0, abs=1e-4)  # light is spread, not made
    assert across[16, 12] > 0 and across[16, 20] > 0 and across[12, 16] == 0 and across[20, 16] == 0
    down = motion_blur_patches(x, 9, math.pi / 2)[0, 0]
    assert down[12, 16] > 0 and down[16, 12] == 0


def test_glare_brightens_beside_the_centre_and_stays_in_range() -> None:
    from vision.training.parts_train import glare_patches

    x = np.full((64, 3, PATCH, PATCH), 0.3, np.float32)
    out = glare_patches(x, np.random.default_rng(0))
    assert out.dtype == np.float32 and (out >= 0.3).all() and (out <= 1.0).all()
    peaks = np.array([np.unravel_index(np.argmax(o[0]), o[0].shape) for o in out])  # (64, 2) row, col
    dist = np.hypot(peaks[:, 0] - PATCH / 2, peaks[:, 1] - PATCH / 2)
    assert (dist >= 0.25 * PATCH - 2).all()  # the brightest point is never on the part's centre


def test_jpeg_augmentation_degrades_colour_in_proportion_to_quality() -> None:
    from vision.training.parts_train import jpeg_patches

    patches = np.full((2, PATCH, PATCH, 3), 90, np.uint8)
    patches[:, 13:19, 13:19] = (40, 220, 60)  # a small green LED on grey plastic, BGR
    out = jpeg_patches(patches, np.array([95, 20]), np.array([PATCH, PATCH]))
    assert out.shape == patches.shape and out.dtype == np.uint8
    error = np.abs(out.astype(int) - patches).reshape(2, -1).mean(axis=1)
    assert 0 < error[0] < error[1] / 2  # chroma subsampling smears the LED even at 95; quality 20 far more
    small = jpeg_patches(patches[:1], np.array([95]), np.array([10]))  # the LED 2 px across in the frame
    assert np.abs(small.astype(int) - patches[:1]).mean() > error[0]


def test_part_network_load_errors(tmp_path: Path) -> None:
    from vision.errors import ModelUnavailable, VisionError

    with pytest.raises(ModelUnavailable, match="fixlens train parts"):
        PartNet(tmp_path / "missing.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(VisionError, match="not a part-state model"):
        PartNet(tmp_path / "bad.onnx")
    # A working ONNX model that is not the part-state network (the keypoint network): no part index.
    with pytest.raises(VisionError, match="lacks its part_index"):
        PartNet(WEIGHTS_DIR / "keypoints.onnx")


def test_face_patch_rectifies_the_wan_port() -> None:
    """The WAN port's patch, seen from behind at an angle, shows its yellow socket near the centre."""
    from product_models.render import Renderer

    product = default_catalog().get("router_ax1800")
    cam = CameraIntrinsics.from_fov(640, 480)
    pose = Pose.orbit(160.0, 25.0, 0.45, target=(0.0, 0.0, 0.02))
    with Renderer(640, 480) as r:
        image = r.render(product, {"port_wan": "empty"}, pose, cam).image[:, :, ::-1].copy()
    patch = face_patch(image, product, product.part("port_wan"), pose, cam, {})
    assert patch is not None and patch.shape == (PATCH, PATCH, 3)
    b, g, rr = (patch[8:24, 8:24].reshape(-1, 3).astype(float)).T
    yellow = (rr > 120) & (g > 100) & (b < 0.6 * rr)
    assert yellow.mean() > 0.05


def test_a_product_off_to_the_side_of_a_negative_frame_is_labelled() -> None:
    """Negatives sometimes show another product off to the side; its label was dropped, which taught the
    detector that a product is background."""
    from vision.training.synth import Synthesizer

    synth = Synthesizer(seed=77, negative_share=1.0)
    try:
        samples = [synth.sample() for _ in range(12)]
    finally:
        synth.close()
    assert all(s.product is None for s in samples)
    shown = [s for s in samples if s.truth["labels"]]
    assert shown, "no negative in 12 showed a product off to the side (30 % do)"
    for s in shown:
        assert s.label_line == "\n".join(s.truth["labels"])
        cls, *numbers = s.label_line.splitlines()[0].split()
        assert int(cls) in (0, 1) and all(0.0 <= float(v) <= 1.0 for v in numbers[:4])
    assert all(s.label_line is None for s in samples if not s.truth["labels"])


def test_a_product_frame_records_every_other_product_in_view_labelled_or_cut_by_the_edge() -> None:
    """`vision eval` tells a frame answered with another product truly in view from a mistaken one, and
    scores the frames with no other product apart: the truth names each other product shown and its box."""
    from vision.training.synth import Synthesizer, class_names

    synth = Synthesizer(seed=78, negative_share=0.0)
    try:
        samples = [synth.sample() for _ in range(16)]
    finally:
        synth.close()
    names = class_names(default_catalog())
    assert any(s.truth["others"] for s in samples), "no frame in 16 showed another product (25 % do)"
    for s in samples:
        others, labels = s.truth["others"], s.truth["labels"]
        assert len(others) >= len(labels) and all(o["product"] != s.truth["product"] for o in others)
        h, w = s.image.shape[:2]
        for o, line in zip(others, labels, strict=False):  # a labelled one: its label's box
            cls, cx, cy, bw, bh = (float(v) for v in line.split()[:5])
            assert o["product"] == names[int(cls)]
            assert np.allclose(o["box"], [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h],
                               atol=1.0)


def test_keypoint_samples_of_one_product_only(tiny_dataset: Path) -> None:
    from vision.keypoint_layout import KeypointLayout
    from vision.training.keypoints_train import load_samples
    from vision.training.synth import class_names

    catalog = default_catalog()
    layout = KeypointLayout.from_catalog(catalog, class_names(catalog))
    every = load_samples([tiny_dataset], "train", 1, 0, layout)
    for product in layout.products:
        one = load_samples([tiny_dataset], "train", 1, 0, layout, only=product)
        index = layout.products.index(product)
        assert (one[3] == index).all() and len(one[3]) == int((every[3] == index).sum())
    assert len(every[3]) > 0
