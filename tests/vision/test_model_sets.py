"""Several model sets in one weights folder (``products/<ID>/``): each product goes to the set that knows it.

The two sets here are real networks: the shipped detector cut, in its ONNX graph, to one product's class row
(the printer for the folder's own set, the router for the set in ``products/``), each beside the shipped
keypoint, part-state and appearance networks. A one-class cut scores its product exactly as the shipped
detector does, so what changes is only which set's detector finds what: the routing under test.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import default_catalog
from tests.vision.sets import make_set as _set
from vision.detector import WEIGHTS_DIR
from vision.errors import VisionError
from vision.pipeline import PRODUCT_SETS, Pipeline, model_set_folders
from vision.types import FrameInput

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def two_sets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("weights")
    _set(root, "printer_lx400")
    _set(root / PRODUCT_SETS / "router_ax1800", "router_ax1800")
    return root


@pytest.fixture(scope="module")
def pipeline(two_sets: Path) -> Pipeline:
    return Pipeline(two_sets, backend="onnx")


def _jpeg(product_id: str, yaw: float, pitch: float, distance: float) -> tuple[bytes, CameraIntrinsics]:
    from product_models.backdrop import room_backdrop
    from product_models.render import Renderer

    product = default_catalog().get(product_id)
    cam = CameraIntrinsics.from_fov(640, 480)
    pose = Pose.orbit(yaw, pitch, distance, target=(0.0, 0.0, product.size_m[2] / 2))
    with Renderer(cam.width, cam.height) as r:
        rgb = r.render(product, {}, pose, cam, background=room_backdrop(cam.width, cam.height, seed=7)).image
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes(), cam


def test_the_folders_are_the_weights_folder_then_its_product_sets_by_name(tmp_path: Path) -> None:
    assert model_set_folders(tmp_path) == [tmp_path]
    for name in ("nas_b", "nas_a"):
        (tmp_path / PRODUCT_SETS / name).mkdir(parents=True)
    (tmp_path / PRODUCT_SETS / "README.txt").write_text("not a set")
    assert model_set_folders(tmp_path) == [tmp_path, tmp_path / PRODUCT_SETS / "nas_a",
                                           tmp_path / PRODUCT_SETS / "nas_b"]


def test_each_product_is_known_by_the_set_whose_detector_names_it(pipeline: Pipeline, two_sets: Path) -> None:
    assert [s.product_ids for s in pipeline.sets] == [("printer_lx400",), ("router_ax1800",)]
    assert pipeline.set_for("router_ax1800").path == two_sets / PRODUCT_SETS / "router_ax1800"
    assert pipeline.set_for("printer_lx400") is pipeline.main
    assert pipeline.untrained == []


def test_a_product_in_two_sets_is_refused_naming_both(tmp_path: Path) -> None:
    _set(tmp_path, "router_ax1800")
    _set(tmp_path / PRODUCT_SETS / "router_copy", "router_ax1800")
    with pytest.raises(VisionError, match="router_ax1800 is recognised by two model sets") as info:
        Pipeline(tmp_path, backend="onnx")
    assert str(tmp_path / PRODUCT_SETS / "router_copy") in str(info.value)


def test_a_set_trained_for_another_catalog_is_refused_by_its_folder(tmp_path: Path) -> None:
    _set(tmp_path, "printer_lx400")
    extra = _set(tmp_path / PRODUCT_SETS / "toaster", "router_ax1800", name="toaster_t1")
    with pytest.raises(VisionError, match="toaster_t1") as info:
        Pipeline(tmp_path, backend="onnx")
    assert str(extra) in str(info.value)


@pytest.mark.parametrize(("product_id", "view"), [("printer_lx400", (-20.0, 25.0, 1.0)),
                                                  ("router_ax1800", (165.0, 30.0, 0.45))])
def test_each_product_is_recognised_by_its_own_set(pipeline: Pipeline, product_id: str,
                                                   view: tuple[float, float, float]) -> None:
    jpeg, cam = _jpeg(product_id, *view)
    obs = pipeline.process(FrameInput(jpeg, 1, 0.0, cam))
    assert obs.product_id == product_id and obs.pose is not None
    alone = Pipeline(WEIGHTS_DIR, backend="onnx").process(FrameInput(jpeg, 1, 0.0, cam))
    assert alone.product_id == product_id  # the shipped set, whole, sees the same
    assert np.allclose(obs.pose.t, alone.pose.t, atol=0.02)


def test_the_sets_look_in_turn_and_the_first_that_verifies_a_product_answers(pipeline: Pipeline) -> None:
    router, cam = _jpeg("router_ax1800", 165.0, 30.0, 0.45)
    printer, _ = _jpeg("printer_lx400", -20.0, 25.0, 1.0)
    calls: list[str] = []
    for s in pipeline.sets:
        detect = s.detector.detect_batch
        s.detector.detect_batch = (lambda images, detect=detect, s=s: calls.append(s.product_ids[0])  # type: ignore[method-assign]
                                   or detect(images))
    try:
        # The main set first, the next when it found nothing, or when it has seen the answered product's look
        # (the sets here share the shipped appearance check, which knows both) and may claim its box.
        for jpeg, product_id in ((router, "router_ax1800"), (printer, "printer_lx400")):
            calls.clear()
            obs = pipeline.process(FrameInput(jpeg, 1, 0.0, cam))
            assert obs.product_id == product_id and calls == ["printer_lx400", "router_ax1800"]
            assert obs.timing_ms["detect_ms"] > 0.0
            assert obs.timing_ms["total_ms"] >= obs.timing_ms["detect_ms"] + obs.timing_ms["pose_ms"]
        calls.clear()
        hinted = pipeline.process(FrameInput(router, 2, 0.0, cam, product_hint="router_ax1800"))
        assert hinted.product_id == "router_ax1800" and calls == ["router_ax1800", "printer_lx400"]  # hinted first
        calls.clear()
        wrong_hint = pipeline.process(FrameInput(printer, 3, 0.0, cam, product_hint="router_ax1800"))
        assert wrong_hint.product_id == "printer_lx400" and calls == ["router_ax1800", "printer_lx400"]
        assert wrong_hint.timing_ms["detect_ms"] > 0.0
        calls.clear()
        blank = cv2.imencode(".jpg", np.full((480, 640, 3), 128, np.uint8))[1].tobytes()
        assert pipeline.process(FrameInput(blank, 4, 0.0)).product_id is None
        assert calls == ["printer_lx400", "router_ax1800"]  # nothing anywhere: every set looked
    finally:
        for s in pipeline.sets:
            del s.detector.detect_batch


@pytest.mark.parametrize("main", ["printer_lx400", "router_ax1800"])
def test_a_product_the_main_set_verifies_stands_whatever_a_later_set_sees(main: str, tmp_path: Path) -> None:
    """Both products in one frame, no hint: the weights folder's own set answers, even where the later set's
    detection is the surer one, so a set added later never takes a frame from the products before it."""
    from product_models.backdrop import room_backdrop
    from product_models.render import Renderer

    cam = CameraIntrinsics.from_fov(640, 480)
    catalog = default_catalog()
    with Renderer(cam.width, cam.height) as r:
        router = r.render(catalog.get("router_ax1800"), {}, Pose.orbit(165.0, 30.0, 0.45, target=(0, 0, 0.02)), cam,
                          background=room_backdrop(cam.width, cam.height, seed=7)).image
        printer = r.render(catalog.get("printer_lx400"), {}, Pose.orbit(-20.0, 25.0, 1.6, target=(0, 0, 0.1)), cam,
                           background=room_backdrop(cam.width, cam.height, seed=7)).image
    both = np.concatenate([router[:, 80:400], printer[:, 160:480]], axis=1)  # the router left, the printer right
    jpeg = cv2.imencode(".jpg", np.ascontiguousarray(both[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    other = "router_ax1800" if main == "printer_lx400" else "printer_lx400"
    _set(tmp_path, main)
    _set(tmp_path / PRODUCT_SETS / other, other)
    pipeline = Pipeline(tmp_path, backend="onnx")
    assert pipeline.process(FrameInput(jpeg, 1, 0.0, cam)).product_id == main
    # Each set alone verifies its own product here, so which answers is the order's doing.
    for model_set in pipeline.sets:
        det = model_set.detector.detect_batch([cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)])[0]
        assert model_set.observe(FrameInput(jpeg, 1, 0.0, cam), cv2.imdecode(np.frombuffer(jpeg, np.uint8), 1), det,
                                 0.0, 0.0).product_id == model_set.product_ids[0]
    hinted = pipeline.process(FrameInput(jpeg, 2, 0.0, cam, product_hint=other))
    assert hinted.product_id == other  # a session that names the other product gets it


def test_a_track_is_followed_by_its_products_set(pipeline: Pipeline) -> None:
    from vision.tracking import track_from

    first, cam = _jpeg("router_ax1800", 165.0, 30.0, 0.45)
    second, _ = _jpeg("router_ax1800", 168.0, 31.0, 0.45)
    detected = pipeline.process(FrameInput(first, 1, 0.0, cam))
    tracked = pipeline.process(FrameInput(second, 2, 0.1, cam, track=track_from(detected)))
    assert tracked.tracked and tracked.product_id == "router_ax1800" and tracked.timing_ms["detect_ms"] == 0.0


def test_a_batch_mixes_products_of_both_sets(pipeline: Pipeline) -> None:
    router, cam = _jpeg("router_ax1800", 165.0, 30.0, 0.45)
    printer, _ = _jpeg("printer_lx400", -20.0, 25.0, 1.0)
    results = pipeline.process_batch([FrameInput(router, 1, 0.0, cam), FrameInput(b"junk", 2, 0.0, cam),
                                      FrameInput(printer, 3, 0.0, cam)])
    assert results[0].product_id == "router_ax1800" and results[2].product_id == "printer_lx400"
    assert isinstance(results[1], VisionError)


def test_a_set_with_its_own_pose_check_thresholds_verifies_by_them(tmp_path: Path) -> None:
    """A product set's ``pose-check.json`` (``fixlens vision tune-pose-check --set ID --write``) applies to that
    set only: a detection floor no detection reaches turns its product off, the folder's own set unchanged."""
    from vision.pose_check import DEFAULT_THRESHOLDS, THRESHOLDS_FILE

    router, cam = _jpeg("router_ax1800", 165.0, 30.0, 0.45)
    printer, _ = _jpeg("printer_lx400", -20.0, 25.0, 1.0)
    _set(tmp_path, "printer_lx400")
    extra = _set(tmp_path / PRODUCT_SETS / "router_ax1800", "router_ax1800")
    (extra / THRESHOLDS_FILE).write_text('{"thresholds": {"min_detection_conf": 1.0}, "tuned": {"seed": 8800}}')
    pipeline = Pipeline(tmp_path, backend="onnx")
    assert pipeline.main.thresholds == DEFAULT_THRESHOLDS
    assert pipeline.sets[1].thresholds.min_detection_conf == 1.0
    assert pipeline.sets[1].thresholds.min_appearance == DEFAULT_THRESHOLDS.min_appearance  # the rest: the module's
    assert pipeline.process(FrameInput(router, 1, 0.0, cam)).product_id is None
    assert pipeline.process(FrameInput(printer, 2, 0.0, cam)).product_id == "printer_lx400"
    (extra / THRESHOLDS_FILE).write_text('{"thresholds": {"min_detection_conf": 2}}')
    with pytest.raises(VisionError, match="min_detection_conf: 2 is outside") as info:
        Pipeline(tmp_path, backend="onnx")
    assert str(extra / THRESHOLDS_FILE) in str(info.value)


def test_a_later_set_that_knows_both_looks_claims_a_box_the_earlier_set_took_for_its_own_product(
        pipeline: Pipeline) -> None:
    """The shipped set's appearance check never saw a product added later, so it can take that product for one
    of its own; a later set trained on data showing both takes the frame back when it verifies its product on
    the same object and its appearance check finds that product the likelier there."""
    from vision.model_set import same_object
    from vision.types import Observation

    router, cam = _jpeg("router_ax1800", 165.0, 30.0, 0.45)
    image = cv2.imdecode(np.frombuffer(router, np.uint8), cv2.IMREAD_COLOR)
    later = pipeline.sets[1]
    right = pipeline.process(FrameInput(router, 1, 0.0, cam))
    assert right.product_id == "router_ax1800"
    x1, _, x2, y2 = right.box
    mistaken = Observation(1, 0.0, "printer_lx400", 0.9, right.box, right.pose, 1.0,
                           timing_ms={"detect_ms": 5.0, "total_ms": 9.0})
    assert later.judges("printer_lx400") and later.judges("router_ax1800")
    assert later.claims(image, right, mistaken)
    assert not later.claims(image, right, replace(mistaken, box=(x2, y2, x2 + (x2 - x1), y2 + 40)))  # elsewhere
    x1, y1, x2, y2 = right.box
    front = (x1, (y1 + y2) / 2, (x1 + x2) / 2, y2)  # a quarter of the router, inside its box: one object
    assert later.claims(image, right, replace(mistaken, box=front))
    assert not same_object(front, right.box)  # but not the other way round: a part of their product
    assert not later.claims(image, replace(right, box=front), mistaken)
    assert not later.claims(image, replace(right, product_id="printer_lx400"),
                            replace(mistaken, product_id="router_ax1800"))  # its check finds the router likelier

    main_observe = pipeline.main.observe
    pipeline.main.observe = lambda *args: mistaken  # type: ignore[method-assign]  # the earlier set's mistake
    try:
        obs = pipeline.process(FrameInput(router, 2, 0.0, cam))
        assert obs.product_id == "router_ax1800" and obs is not mistaken
        hinted = pipeline.process(FrameInput(router, 3, 0.0, cam, product_hint="printer_lx400"))
        assert hinted.product_id == "router_ax1800"  # a hint orders the sets; it does not silence a claim
        # A later set that fails while it looks leaves the answer already found (it is not the frame's fault).
        def fail(*args: object) -> None:
            raise VisionError("the later set broke")
        later.observe = fail  # type: ignore[method-assign]
        assert pipeline.process(FrameInput(router, 5, 0.0, cam)) is mistaken
        # ... and so does one whose claim fails with a bug (logged), not the batch.
        later.__dict__.pop("observe", None)
        def broken_claim(*args: object) -> bool:
            raise ValueError("the claim broke")
        later.claims = broken_claim  # type: ignore[method-assign]
        assert pipeline.process(FrameInput(router, 6, 0.0, cam)) is mistaken
    finally:
        pipeline.main.observe = main_observe  # type: ignore[method-assign]
        later.__dict__.pop("observe", None)
        later.__dict__.pop("claims", None)
    # A later set without the earlier product's look never gets asked: the earlier answer stands.
    appearance, later.appearance = later.appearance, None
    pipeline.main.observe = lambda *args: mistaken  # type: ignore[method-assign]
    try:
        mistaken.timing_ms.update(detect_ms=5.0, total_ms=9.0)
        kept = pipeline.process(FrameInput(router, 4, 0.0, cam))
        assert kept is mistaken and kept.timing_ms["detect_ms"] > 0.0
        assert kept.timing_ms["total_ms"] == pytest.approx(9.0 - 5.0 + kept.timing_ms["detect_ms"])
    finally:
        pipeline.main.observe = main_observe  # type: ignore[method-assign]
        later.appearance = appearance


def test_boxes_show_one_object_when_they_overlap_enough_or_the_earlier_lies_inside_the_later() -> None:
    from vision.model_set import same_object

    assert same_object((0, 0, 100, 100), (10, 0, 110, 100))  # IoU 0.82
    assert same_object((0, 0, 100, 100), (0, 50, 50, 100))  # the earlier box is a quarter of mine, inside it
    assert same_object((0, 0, 100, 100), (-5, 45, 45, 100))  # 90 % of it inside
    assert not same_object((0, 50, 50, 100), (0, 0, 100, 100))  # mine inside theirs: a part of their product
    assert not same_object((0, 0, 100, 100), (-20, 40, 40, 100))  # a third of it outside, IoU 0.21
    assert not same_object((0, 0, 100, 100), (100, 0, 200, 100))  # side by side, touching
    assert not same_object((0, 0, 100, 100), (300, 300, 310, 310))  # elsewhere
