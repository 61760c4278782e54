"""The appearance check: its crop, its model file's checks, and how the pipeline uses it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import default_catalog
from tests.vision.synthetic import constant_network
from vision.appearance import CONTEXT, CROP, MODEL_NAME, NONE, AppearanceCheck, box_crop
from vision.detector import WEIGHTS_DIR
from vision.errors import ModelUnavailable, VisionError
from vision.types import FrameInput

CAMERA = CameraIntrinsics.from_fov(640, 480)


def test_the_crop_is_square_around_the_box_with_context_and_keeps_its_aspect() -> None:
    img = np.zeros((480, 640, 3), np.uint8)
    img[200:260, 220:420] = 255  # a wide white box, 200 x 60
    crop = box_crop(img, (220, 200, 420, 260))
    assert crop.shape == (CROP, CROP, 3) and crop.dtype == np.uint8
    cols = np.flatnonzero(crop[CROP // 2, :, 0] > 127)
    rows = np.flatnonzero(crop[:, CROP // 2, 0] > 127)
    # The box's longer side spans 1 / CONTEXT of the crop, centred; the short side keeps its proportion.
    assert abs(len(cols) - CROP / CONTEXT) <= 2 and abs((cols[0] + cols[-1]) / 2 - (CROP - 1) / 2) <= 1
    assert abs(len(rows) - CROP / CONTEXT * 60 / 200) <= 2


def test_a_box_off_the_frame_repeats_the_edge_and_a_degenerate_box_still_crops() -> None:
    img = np.full((480, 640, 3), 90, np.uint8)
    img[:, :20] = 200
    crop = box_crop(img, (-300, 100, 60, 300))  # mostly left of the frame
    assert crop.shape == (CROP, CROP, 3) and (crop[:, 0] == 200).all()
    assert box_crop(img, (320, 240, 320, 240)).shape == (CROP, CROP, 3)  # zero-sized: an 8-px square


def _constant_net(path: Path, classes: list[str] | None, logits: list[float]) -> Path:
    """An ONNX file with the appearance network's input whose logits are always ``logits``; ``classes`` is
    its metadata (None: none at all)."""
    import json

    return constant_network(path, ("crop", CROP), logits, {} if classes is None else {"classes": json.dumps(classes)})


@pytest.mark.parametrize("classes", [None, ["router_ax1800"], ["router_ax1800", "printer_lx400"],
                                     ["router_ax1800", "router_ax1800", NONE]],
                         ids=["no metadata", "only one class", "no none class", "a class twice"])
def test_a_model_file_with_bad_classes_is_refused_naming_the_file(tmp_path: Path, classes: list[str] | None) -> None:
    path = _constant_net(tmp_path / MODEL_NAME, classes, [0.0, 0.0, 0.0])
    with pytest.raises(VisionError, match=str(path)):
        AppearanceCheck(path)


def test_a_missing_model_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="fixlens train appearance"):
        AppearanceCheck(tmp_path / MODEL_NAME)


def test_a_product_the_network_does_not_know_is_not_checked(tmp_path: Path) -> None:
    check = AppearanceCheck(_constant_net(tmp_path / MODEL_NAME, ["router_ax1800", NONE], [2.0, 0.0]))
    img = np.zeros((480, 640, 3), np.uint8)
    assert check.score(img, np.array([10.0, 10.0, 100.0, 80.0]), "router_ax1800") == pytest.approx(
        np.exp(2) / (np.exp(2) + 1), abs=1e-5)
    assert check.score(img, np.array([10.0, 10.0, 100.0, 80.0]), "printer_lx400") is None


def _rendered_router() -> bytes:
    import cv2

    from product_models.render import Renderer

    router = default_catalog().get("router_ax1800")
    renderer = Renderer(640, 480)
    try:
        rgb = renderer.render(router, router.healthy_states(), Pose.orbit(20, 30, 0.55), CAMERA).image
    finally:
        renderer.close()
    ok, jpeg = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return jpeg.tobytes()


def test_the_pipeline_refuses_a_fresh_detection_the_check_says_is_not_the_product(tmp_path: Path) -> None:
    """The shipped weights with a constant appearance network: one that always says ``none`` makes a clearly
    rendered router go unrecognised; one that always says router keeps it; without the file the pipeline
    does not check."""
    from vision.pipeline import Pipeline

    jpeg = _rendered_router()
    classes = ["printer_lx400", "router_ax1800", NONE]
    found = {}
    for name, logits in (("none", [0.0, 0.0, 12.0]), ("router", [0.0, 12.0, 0.0]), ("absent", None)):
        folder = tmp_path / name
        shutil.copytree(WEIGHTS_DIR, folder, ignore=shutil.ignore_patterns(MODEL_NAME, "*.pt", "*.csv"))
        if logits is not None:
            _constant_net(folder / MODEL_NAME, classes, logits)
        pipeline = Pipeline(folder, backend="onnx")
        assert (pipeline.main.appearance is None) == (logits is None)
        found[name] = pipeline.process(FrameInput(jpeg, 0, 0.0, CAMERA)).product_id
    assert found["router"] == found["absent"] == "router_ax1800"
    assert found["none"] is None


def test_products_without_training_crops_are_left_out_not_learnt_as_never_seen() -> None:
    from vision.training.appearance_train import _with_crops

    x = np.zeros((5, CROP, CROP, 3), np.uint8)
    train = (x, np.array([0, 2, 2, 0, 2]), np.zeros(5, np.float32), np.zeros(5, np.int64))
    val = (x[:3], np.array([1, 0, 2]), np.zeros(3, np.float32), np.zeros(3, np.int64))
    classes, splits = _with_crops(["printer_lx400", "router_ax1800", NONE], {"train": train, "val": val},
                                  log=lambda line: None)
    assert classes == ["printer_lx400", NONE]
    assert splits["train"][1].tolist() == [0, 1, 1, 0, 1]
    assert splits["val"][1].tolist() == [0, 1] and len(splits["val"][0]) == 2  # the router crop is dropped
    with pytest.raises(ValueError, match="no product crops"):
        _with_crops(["printer_lx400", NONE], {"train": (x[:1], np.array([1]), *train[2:])}, log=lambda line: None)


def test_mining_labels_products_at_their_boxes_and_drawn_product_free_frames_none(tmp_path: Path) -> None:
    """A few rendered synth frames through the shipped detector: every labelled product gives a crop of its
    class, and the detector's boxes are kept only on a product of their class; drawn product-free frames
    give only ``none``, the detector's boxes among them."""
    from vision.detector import Detector, DetectorConfig
    from vision.training import appearance_train as at
    from vision.training import negatives as ng
    from vision.training.synth import write_dataset

    write_dataset(tmp_path / "d", 16, seed=8124, val_share=0.0, progress=False)
    detector = Detector.from_weights(WEIGHTS_DIR, backend="onnx", config=DetectorConfig(conf=0.05, max_det=8))
    crops = at.Crops()
    classes = ["printer_lx400", "router_ax1800", NONE]
    at.mine_folder(tmp_path / "d", "train", classes, detector, np.random.default_rng(0), crops, log=lambda line: None)
    x, y, conf, source = crops.arrays()
    labelled = [line for f in (tmp_path / "d" / "labels" / "train").glob("*.txt")
                for line in f.read_text().splitlines() if line.strip()]
    assert x.shape[1:] == (CROP, CROP, 3) and (source == at.SOURCE_TRUE).sum() == len(labelled)
    assert (y[source == at.SOURCE_TRUE] < 2).all() and (conf[source == at.SOURCE_TRUE] == -1).all()
    assert (y[source == at.SOURCE_DETECTED] < 2).all() and (conf[source == at.SOURCE_DETECTED] >= 0.05).all()
    assert set(source.tolist()) == {at.SOURCE_TRUE, at.SOURCE_DETECTED}  # the shipped detector finds the products
    negatives = at.Crops()
    at.mine_negatives(12, 5, detector, negatives, none=2, log=lambda line: None)
    _x, y, conf, source = negatives.arrays()
    assert (y == 2).all() and (source == ng.SOURCE_RANDOM).sum() == 24
    assert set(source.tolist()) <= {ng.SOURCE_MISS, ng.SOURCE_RANDOM, ng.SOURCE_OCCLUDER}
    assert (conf[source == ng.SOURCE_MISS] >= 0.05).all() and (conf[source != ng.SOURCE_MISS] == -1).all()
