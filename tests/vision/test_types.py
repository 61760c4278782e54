from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from vision.errors import VisionError
from vision.types import Detections, Keypoints


def _good(**over: object) -> dict[str, object]:
    kw: dict[str, object] = {"xyxy": [[0, 0, 10, 10], [5, 5, 20, 30]], "confidence": [0.9, 0.4],
                             "class_id": [0, 1], "keypoints": np.zeros((2, 3, 2)), "keypoint_conf": np.ones((2, 3))}
    kw.update(over)
    return kw


def test_detections_coerce_dtypes() -> None:
    det = Detections(**_good())
    assert det.xyxy.dtype == np.float32 and det.class_id.dtype == np.int64 and len(det) == 2
    assert len(Detections.empty(10)) == 0 and Detections.empty(10).keypoints.shape == (0, 10, 2)


@pytest.mark.parametrize(("over", "message"), [
    ({"xyxy": [[0, 0, 10]]}, r"xyxy: expected shape \(n, 4\), got \(1, 3\)"),
    ({"confidence": [0.9]}, r"confidence: expected shape \(2,\), got \(1,\)"),
    ({"class_id": [[0, 1]]}, r"class_id: expected shape \(2,\), got \(1, 2\)"),
    ({"confidence": [0.9, 1.5]}, r"confidence: expected values in \[0, 1\], got 0.9..1.5"),
    ({"xyxy": [[10, 0, 0, 10], [0, 0, 1, 1]]}, "expected x2 >= x1"),
    ({"xyxy": [[np.nan, 0, 1, 1], [0, 0, 1, 1]]}, "expected finite pixel coordinates"),
    ({"keypoint_conf": None}, "expected both or neither"),
    ({"keypoint_conf": np.ones((2, 4))}, r"keypoint_conf: expected shape \(2, 3\), got \(2, 4\)"),
    ({"keypoints": np.zeros((2, 3, 3))}, r"keypoints: expected shape \(2, n, 2\), got \(2, 3, 3\)"),
    ({"xyxy": "abc"}, "xyxy: expected an array of float32, got str"),
])
def test_detections_reject_bad_arrays(over: dict[str, object], message: str) -> None:
    with pytest.raises(VisionError, match=message):
        Detections(**_good(**over))


def _yolo_output(rows: list[tuple[float, float, float, float, float, float]], k: int = 2) -> np.ndarray:
    """A raw YOLO pose output (4 + 2 classes + 3k, anchors) with one anchor per row (cx, cy, w, h, score of
    class 0, score of class 1); keypoint j of every anchor sits at (cx + j, cy) with confidence 0.9."""
    out = np.zeros((4 + 2 + 3 * k, len(rows)), np.float32)
    for a, (cx, cy, w, h, s0, s1) in enumerate(rows):
        out[:6, a] = (cx, cy, w, h, s0, s1)
        for j in range(k):
            out[6 + 3 * j: 9 + 3 * j, a] = (cx + j, cy, 0.9)
    return out


def test_detections_from_onnx_undo_the_letterbox_and_suppress_overlaps() -> None:
    out = _yolo_output([(100, 100, 40, 20, 0.9, 0.1), (101, 100, 40, 20, 0.8, 0.1), (200, 150, 10, 10, 0.1, 0.5),
                        (50, 50, 10, 10, 0.2, 0.1)])
    det = Detections.from_onnx(out, num_classes=2, num_keypoints=2, scale=0.5, pad=(0.0, 40.0),
                               frame_size=(640, 480), conf=0.3, iou=0.5, max_det=4)
    assert len(det) == 2  # the overlapping second box is suppressed; the fourth is under the threshold
    assert det.class_id.tolist() == [0, 1] and det.confidence.tolist() == pytest.approx([0.9, 0.5])
    assert det.xyxy[0].tolist() == pytest.approx([160.0, 100.0, 240.0, 140.0])  # (cx +- w/2, cy - 40) / 0.5
    assert np.allclose(det.keypoints[0], [[200.0, 120.0], [202.0, 120.0]])
    assert det.keypoint_conf[0].tolist() == pytest.approx([0.9, 0.9])
    none = Detections.from_onnx(out, num_classes=2, num_keypoints=2, scale=0.5, pad=(0.0, 40.0),
                                frame_size=(640, 480), conf=0.95, iou=0.5, max_det=4)
    assert len(none) == 0 and none.keypoints.shape == (0, 2, 2)


class _Tensor:
    """Stands in for a torch tensor: ``.cpu().numpy()``."""

    def __init__(self, value: object) -> None:
        self.value = np.asarray(value)

    def cpu(self) -> _Tensor:
        return self

    def numpy(self) -> np.ndarray:
        return self.value


class _Boxes:
    """Stands in for Ultralytics' ``Boxes``: tensors of one frame's boxes, and their count."""

    def __init__(self, xyxy: object, conf: object, cls: object) -> None:
        self.xyxy, self.conf, self.cls = _Tensor(xyxy), _Tensor(conf), _Tensor(cls)

    def __len__(self) -> int:
        return len(self.xyxy.value)


def test_detections_from_ultralytics_take_boxes_and_keypoints() -> None:
    result = SimpleNamespace(boxes=_Boxes([[1.0, 2.0, 30.0, 40.0]], [0.7], [1.0]),
                             keypoints=SimpleNamespace(xy=_Tensor(np.ones((1, 3, 2))), conf=_Tensor(np.ones((1, 3)))))
    det = Detections.from_ultralytics(result, 3)
    assert len(det) == 1 and det.class_id.tolist() == [1] and det.keypoints.shape == (1, 3, 2)
    assert det.xyxy.dtype == np.float32 and det.confidence.tolist() == pytest.approx([0.7])
    assert len(Detections.from_ultralytics(SimpleNamespace(boxes=None, keypoints=None), 3)) == 0


def test_keypoints_check_their_shapes() -> None:
    kp = Keypoints(np.zeros((4, 2)), np.array([0.2, 0.4, 0.6, 0.8]), 0.5)
    assert kp.uv.dtype == np.float64 and kp.mean_confidence == pytest.approx(0.5)
    with pytest.raises(VisionError, match=r"uv: expected shape \(n, 2\), got \(4, 3\)"):
        Keypoints(np.zeros((4, 3)), np.ones(4), 0.5)
    with pytest.raises(VisionError, match=r"confidence: expected shape \(4,\), got \(3,\)"):
        Keypoints(np.zeros((4, 2)), np.ones(3), 0.5)
    with pytest.raises(VisionError, match="confidence: expected an array of floats, got int64"):
        Keypoints(np.zeros((4, 2)), np.ones(4, np.int64), 0.5)
    with pytest.raises(VisionError, match="expected keypoints from a pose detector"):
        Keypoints.from_detections(Detections(np.zeros((1, 4)), [0.5], [0]), 0, 0.5)
